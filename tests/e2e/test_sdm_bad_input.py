#!/usr/bin/env python3
"""Bad input exits 3 with a message naming file, line and field, and leaves no partial output.
Usage: test_sdm_bad_input.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import shutil
import subprocess
import sys

GOOD = [{"id": f"r{i}", "label": i % 2, "embedding": [float(i % 2) + 0.01 * i, 1.0, -0.5 * (i % 3), 0.25]}
        for i in range(40)]


def write_rows(path, rows, raw_lines=()):
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
        for line in raw_lines:
            out.write(line + "\n")


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    good = work / "good.jsonl"
    write_rows(good, GOOD)
    cases = {  # name: (rows written before, raw line appended, expected message fragment)
        "malformed": (GOOD[:1], ['{"id": "x", "label": 1, "embedding": [1,2'], ":2: malformed JSON"),
        "missing_field": (GOOD[:2], ['{"id": "x", "label": 1}'], ':3: field "embedding" is missing'),
        "non_numeric": (GOOD[:1], ['{"id": "x", "label": "yes", "embedding": [1,2,3,4]}'], ':2: field "label" must be an integer, got "yes"'),
        "non_numeric_embedding": (GOOD[:1], ['{"id": "x", "label": 1, "embedding": [1,"a",3,4]}'], ':2: field "embedding[1]" must be a number'),
        "wrong_length": (GOOD[:3], ['{"id": "x", "label": 1, "embedding": [1,2,3]}'], ':4: field "embedding" has 3 values, expected 4'),
        "nan": (GOOD[:1], ['{"id": "x", "label": 1, "embedding": [NaN,2,3,4]}'], ":2: malformed JSON"),
        "inf": (GOOD[:1], ['{"id": "x", "label": 1, "embedding": [1e999,2,3,4]}'], ":2:"),
        "label_range": (GOOD[:1], ['{"id": "x", "label": 5, "embedding": [1,2,3,4]}'], ':2: field "label" must be an integer in [0, 1]'),
        "duplicate_id": (GOOD[:2], ['{"id": "r0", "label": 1, "embedding": [1,2,3,4]}'], ':3: field "id" duplicates'),
        "duplicate_key": (GOOD[:1], ['{"id": "x", "id": "y", "label": 1, "embedding": [1,2,3,4]}'], ':2: duplicate JSON key "id"'),
        "empty": ([], [], "no rows"),
        "absent_class": ([r for r in GOOD if r["label"] == 0], [], "absent_class.jsonl: no row has label 1"),
    }
    failures = []

    def check(name, args, fragment, output):
        result = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
        leftovers = [p.name for p in output.parent.iterdir() if p.name.startswith("." + output.name)]
        ok = result.returncode == 3 and fragment in result.stderr and not output.exists() and not leftovers
        print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {result.returncode}: {result.stderr.strip()[:160]}")
        if not ok:
            failures.append(name)

    for name, (rows, raw, fragment) in cases.items():
        bad = work / f"{name}.jsonl"
        write_rows(bad, rows, raw)
        out = work / f"{name}.sdmkitmodel"
        # as the calibration split (training is good): file name, line and field must be named
        check(f"train/{name}", ["sdm", "train", "--training", good, "--calibration", bad, "--number_of_classes", 2,
                                "--exemplar_dimension", 8, "--epochs", 2, "--do_not_shuffle_data", "--output", out],
              f"{bad}{fragment}" if fragment.startswith(":") else fragment, out)

    model = work / "good.sdmkitmodel"
    # ids must not overlap: make a distinct calibration file
    cal = work / "cal.jsonl"
    write_rows(cal, [{**row, "id": "c" + row["id"]} for row in GOOD])
    subprocess.run([str(a) for a in (binary, "sdm", "train", "--training", good, "--calibration", cal,
                    "--number_of_classes", 2, "--exemplar_dimension", 8, "--epochs", 2, "--output", model,
                    "--report_output", work / "report.json")], check=True, capture_output=True)
    corruptions = {
        "checksum": lambda m: (m / "support.f32").write_bytes(b"\x01" + (m / "support.f32").read_bytes()[1:]),
        "truncated": lambda m: (m / "weights.f32").write_bytes((m / "weights.f32").read_bytes()[:-4]),
        "duplicate_keys": lambda m: (m / "manifest.json").write_text(
            (m / "manifest.json").read_text().replace("{", '{"modelID": "x",', 1)),
        "missing_file": lambda m: (m / "support.jsonl").unlink(),
    }
    expected = {"checksum": "support.f32: checksum mismatch", "truncated": "weights.f32",
                "duplicate_keys": 'duplicate JSON key "modelID"', "missing_file": "support.jsonl"}
    for name, corrupt in corruptions.items():
        broken = work / f"broken_{name}.sdmkitmodel"
        shutil.copytree(model, broken)
        corrupt(broken)
        out = work / f"scores_{name}.jsonl"
        check(f"score/{name}", ["sdm", "score", "--model", broken, "--input", good, "--output", out], expected[name], out)
        check(f"validate/{name}", ["sdm", "validate", "--model", broken], expected[name], work / "none")

    usage = subprocess.run([binary, "sdm", "score", "--input", good], capture_output=True, text=True)
    print(f"{'ok  ' if usage.returncode == 2 else 'FAIL'} usage error exits 2 (got {usage.returncode})")
    if usage.returncode != 2:
        failures.append("usage")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
