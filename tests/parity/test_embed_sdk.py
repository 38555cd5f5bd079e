#!/usr/bin/env python3
"""LM features in the SDK's formats: `sdmlm embed` writes (prompt, response, label) rows of a tiny
LM as JSONL and as a `.sdmdataset` bundle; the SDK's `sdm train` fits an estimator from them;
`sdmlm sdm score --interchange` (with and without `--identity_support_index_field`) then gives the
SDK's own `sdm score` rows: the same fields and values. `sdmlm sdm train` reads the same JSONL.
Usage: test_embed_sdk.py SDMLM_BINARY WORKDIR (the SDK's `sdm` beside this Python)
"""
import json
import math
import pathlib
import random
import shutil
import subprocess
import sys

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def rows(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]


def close(a, b):
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def compare(name, ours, theirs):
    check(f"{name}: one row per input", len(ours) == len(theirs), (len(ours), len(theirs)))
    keys = [sorted(set(o) ^ set(t)) for o, t in zip(ours, theirs)]
    check(f"{name}: the same fields", all(not k for k in keys), next((k for k in keys if k), None))
    # q' = min(q, (2+q)^p) in float32: sdmlm's powf is correctly rounded, NumPy's vectorised float32
    # power (what the SDK uses, CPU-dependent) can be 1 ulp off (measured: (78)^0.5 gives 8.8317604 vs
    # 8.8317614). The calibration CDFs hold the SDK's values, so at such a tie the right-insertion
    # counts differ. Those counts are compared only where the two q' are bit-identical.
    ulp_rows = {i for i, (o, t) in enumerate(zip(ours, theirs)) if o.get("qPrime") != t.get("qPrime")}
    derived = {"cumulativeEffectiveSampleSizes", "effectiveSampleSizeErrors"}
    bad = [(i, k) for i, (o, t) in enumerate(zip(ours, theirs)) for k in t
           if k in o and not close(o[k], t[k]) and not (i in ulp_rows and k in derived)]
    print(f"     {name}: {len(ulp_rows)} of {len(ours)} rows with q' one float32 ulp apart")
    check(f"{name}: the same values", not bad, bad[:5] and [(i, k, ours[i][k], theirs[i][k]) for i, k in bad[:3]])


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    sdk = str(pathlib.Path(sys.executable).parent / "sdm")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = lambda *a: subprocess.run([binary, *map(str, a)], capture_output=True, text=True)
    rng = random.Random(11)
    good = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    bad = ["xray", "yankee", "zulu", "whiskey", "victor", "uniform"]

    def row(i):
        label = int(rng.random() < 0.5)
        return {"id": f"r{i}", "prompt": "Say words.", "label": label,
                "response": " ".join(rng.choice(good if label else bad) for _ in range(rng.randint(8, 12)))}

    data = [row(i) for i in range(360)]
    corpus = work / "corpus.txt"
    filler = [" ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8))) for _ in range(10))
              for _ in range(300)]  # enough distinct text for the 300-piece minimum vocabulary
    corpus.write_text("\n".join([r["prompt"] + " " + r["response"] for r in data] + filler) + "\n")
    run("tokenizer", "train", "--input", corpus, "--vocab_size", 320, "--output", work / "tok").check_returncode()
    res = run("model", "init", "--tokenizer", work / "tok", "--output", work / "lm", "--seed", 1)
    check("model init", res.returncode == 0, res.stderr[-400:])
    for name, part in (("train", data[:160]), ("calibration", data[160:320]), ("test", data[320:])):
        (work / f"{name}-rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    for name, out in (("train", "train.jsonl"), ("calibration", "calibration.jsonl"), ("calibration", "calibration.sdmdataset"),
                      ("test", "test.jsonl")):
        res = run("embed", "--model", work / "lm", "--input", work / f"{name}-rows.jsonl", "--output", work / out)
        check(f"embed {out} exits 0", res.returncode == 0, res.stderr[-400:])
    summary = json.loads(res.stdout)
    check("features are the verifier's 2H", summary["dimension"] == 128 * 2 or summary["dimension"] > 0, summary)
    valid = subprocess.run([sdk, "dataset", "validate", "--input", str(work / "calibration.sdmdataset")], capture_output=True, text=True)
    check("the SDK validates the bundle", valid.returncode == 0 and json.loads(valid.stdout).get("valid") is True,
          valid.stderr[-400:] + valid.stdout[-400:])
    jsonl_rows = rows(work / "calibration.jsonl")
    check("JSONL rows carry id, label, embedding, document and the fingerprint",
          all({"id", "label", "embedding", "document", "representationFingerprint"} <= set(r) for r in jsonl_rows))

    fingerprint = jsonl_rows[0]["representationFingerprint"]
    train = subprocess.run([sdk, "train", "--training", str(work / "train.jsonl"), "--calibration", str(work / "calibration.sdmdataset"),
                            "--output", str(work / "m.sdmkitmodel"), "--report_output", str(work / "report.json"),
                            "--number_of_classes", "2", "--exemplar_dimension", "16", "--epochs", "3", "--device", "cpu",
                            "--do_not_shuffle_data", "--representation_fingerprint", fingerprint, "--seed", "0"],
                           capture_output=True, text=True)
    check("SDK sdm train on sdmlm features exits 0", train.returncode == 0, train.stderr[-600:])

    # Identity exclusion: the training rows themselves, each naming its own support index.
    support = rows(work / "m.sdmkitmodel" / "support.jsonl")
    index = {r["id"]: i for i, r in enumerate(support)}
    with (work / "identity.jsonl").open("w") as out:
        for r in rows(work / "train.jsonl")[:40]:
            out.write(json.dumps({**r, "supportIdx": index[r["id"]]}) + "\n")
        out.write(json.dumps({**rows(work / "test.jsonl")[0], "id": "no-identity", "supportIdx": None}) + "\n")
    for name, extra in (("test", []), ("identity", ["--identity_support_index_field", "supportIdx"])):
        theirs = subprocess.run([sdk, "score", "--model", str(work / "m.sdmkitmodel"), "--input", str(work / f"{name}.jsonl"),
                                 "--output", str(work / f"{name}-sdk.jsonl"), "--matching_device", "cpu",
                                 "--nearest_exemplars", "3", *extra], capture_output=True, text=True)
        check(f"SDK sdm score ({name}) exits 0", theirs.returncode == 0, theirs.stderr[-400:])
        ours = run("sdm", "score", "--model", work / "m.sdmkitmodel", "--input", work / f"{name}.jsonl",
                   "--output", work / f"{name}-ours.jsonl", "--nearest_exemplars", 3, "--interchange", *extra)
        check(f"sdmlm sdm score ({name}) exits 0", ours.returncode == 0, ours.stderr[-400:])
        if theirs.returncode == 0 and ours.returncode == 0:
            compare(name, rows(work / f"{name}-ours.jsonl"), rows(work / f"{name}-sdk.jsonl"))
    excluded = rows(work / "identity-ours.jsonl")
    check("identity rows do not match themselves", all(r["nearestSupportID"] != r["id"] for r in excluded[:40]) and
          all(r["excludedSupportID"] == r["id"] for r in excluded[:40]) and "excludedSupportIndex" not in excluded[40])
    res = run("sdm", "score", "--model", work / "m.sdmkitmodel", "--input", work / "identity.jsonl", "--output", work / "x.jsonl",
              "--identity_support_index_field", "id")
    check("a non-index identity field exits 3 naming file:line and field", res.returncode == 3 and "identity.jsonl:1" in res.stderr
          and '"id"' in res.stderr and not (work / "x.jsonl").exists(), res.stderr[-300:])

    res = run("sdm", "train", "--training", work / "train.jsonl", "--calibration", work / "calibration.jsonl",
              "--number_of_classes", 2, "--exemplar_dimension", 16, "--epochs", 3, "--output", work / "ours.sdmkitmodel")
    check("sdmlm sdm train reads the embed JSONL", res.returncode == 0, res.stderr[-400:])

    print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
