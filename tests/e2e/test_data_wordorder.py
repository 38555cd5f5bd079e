#!/usr/bin/env python3
"""`sdmlm data wordorder` end to end: records exactly per docs/reference.md §7.1–7.2, splits per §7.3, the
manifest, determinism for a seed, and bad inputs exiting 3 (usage errors 2) with no partial output.
Usage: test_data_wordorder.py SDMLM_BINARY WORKDIR
"""
import gzip
import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys

TEMPLATE = ("Complete the sentence '{P}' by reordering all of the following without adding new punctuation nor "
            "words: '{M}'. Only reply with the sentence in the XML <sentence> </sentence> followed by "
            "<verified>Yes</verified> if your answer correctly addressed the instructions, and "
            "<verified>No</verified> if it did not.")
FIELDS = ["id", "original_document", "genai_document", "prompt", "default_negative", "multiset"]
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
WORDNET = pathlib.Path("/usr/share/wordnet/data.noun")
HARVARD = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "harvard-sentences.txt"

failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def run(binary, *args):
    return subprocess.run([binary, "data", "wordorder", *map(str, args)], capture_output=True, text=True)


def negative_suffix(negative, prefix):
    """The negative's sentence (tags removed) minus the prefix, and the corruption kind."""
    body = negative[:-len("\n<verified>No</verified>")]
    opening, closing = body.startswith("<sentence>"), body.endswith("</sentence>")
    body = body[len("<sentence>") if opening else 0:len(body) - (len("</sentence>") if closing else 0)]
    kind = {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}[(opening, closing)]
    return body[len(prefix) + 1:], kind, body.startswith(prefix + " ")


def check_records(path, m=3):
    """Validates every record of one split file; returns (records, corrupted count)."""
    records, corrupted, bad = [], 0, []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        r = json.loads(line)
        words = r["original_document"].split()
        prefix, suffix = " ".join(words[:-m]), " ".join(words[-m:])
        neg_suffix, kind, has_prefix = negative_suffix(r["default_negative"], prefix)
        problems = [
            list(r) != FIELDS and "field order",
            json.dumps(r) != line and "not json.dumps layout",
            not UUID4.match(r["id"]) and "id",
            r["original_document"] != " ".join(words) and "whitespace",
            r["genai_document"] != f"<sentence>{r['original_document']}</sentence>\n<verified>Yes</verified>" and "genai",
            r["prompt"] != TEMPLATE.replace("{P}", prefix).replace("{M}", r["multiset"]) and "prompt",
            sorted(r["multiset"].split()) != sorted(words[-m:]) and "multiset words",
            r["multiset"] == suffix and "multiset equals original",
            not r["default_negative"].endswith("\n<verified>No</verified>") and "negative label",
            not has_prefix and "negative prefix",
            sorted(neg_suffix.split()) != sorted(words[-m:]) and "negative words",
            neg_suffix in (suffix, r["multiset"]) and "negative suffix not distinct",
            len(set(words[-m:])) < 2 and "skip rule",
        ]
        problems = [p for p in problems if p]
        if problems:
            bad.append(f"{path.name}:{number}: {problems}")
        corrupted += kind != 0
        records.append(r)
    check(f"records {path.name} ({len(records)})", not bad, "; ".join(bad[:3]))
    return records, corrupted


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)

    # ---- a corpus from files: text, gzip text and JSONL (sentence/text), with duplicates ----
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] + ("." if j == 4 + i % 40 else "")
                      for j in range(5 + i % 40)) + f" n{i}" for i in range(600)]
    (work / "a.txt").write_text("\n".join(lines[:300]) + "\n\n" + lines[0] + "\n", encoding="utf-8")
    with gzip.open(work / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines[300:450]) + "\n")
    with open(work / "c.jsonl", "w", encoding="utf-8") as f:
        for i, s in enumerate(lines[450:]):
            f.write(json.dumps({"sentence" if i % 2 else "text": s}) + "\n")
    (work / "extra.txt").write_text("The birch canoe slid on the smooth planks.\nno no no no\n", encoding="utf-8")
    sizes = ["--training_size", 200, "--calibration_size", 150, "--test_size", 100, "--shifted_size", 50]
    files = ["--sentences", work / "a.txt", work / "b.txt.gz", work / "c.jsonl"]
    out = work / "files"
    res = run(binary, *files, "--output", out, *sizes, "--extra_test", f"extra={work / 'extra.txt'}")
    check("files: exit 0", res.returncode == 0, res.stderr.strip()[:300])
    if res.returncode != 0:
        return 1
    manifest = json.loads((out / "manifest.json").read_text())
    check("files: stdout is the manifest", json.loads(res.stdout) == manifest)
    check("files: duplicates removed", manifest["corpus"]["duplicates_removed"] == 1, str(manifest["corpus"]))
    check("files: 600 unique sentences", manifest["corpus"]["unique"] == 600)
    splits = {}
    for name in ["train", "calibration", "test", "shifted", "extra"]:
        path = out / f"{name}.jsonl"
        splits[name], _ = check_records(path)
        entry = manifest["splits"][name]
        check(f"files: manifest {name}", entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
              and entry["records"] == len(splits[name]), str(entry))
    check("files: sizes", [len(splits[n]) for n in ["train", "calibration", "test", "shifted"]] == [200, 150, 100, 50])
    check("files: extra skip rule", len(splits["extra"]) == 1 and manifest["splits"]["extra"]["skipped"] == 1)
    docs = [r["original_document"] for n in ["train", "calibration", "test", "shifted"] for r in splits[n]]
    check("files: splits disjoint", len(docs) == len(set(docs)))
    lengths = {n: [len(r["original_document"].split()) for r in splits[n]] for n in splits}
    check("files: length filter", all(5 <= x <= 60 for n in ["train", "calibration", "test", "shifted"] for x in lengths[n]))
    check("files: shifted holds the longest",
          min(lengths["shifted"]) >= max(max(lengths[n]) for n in ["train", "calibration", "test"]))
    ids = [r["id"] for n in splits for r in splits[n]]
    check("files: ids unique", len(ids) == len(set(ids)))
    remaining = (out / "remaining.txt").read_text().splitlines()
    check("files: remaining.txt holds the sentences in no split", len(remaining) > 0 and not set(remaining) & set(docs)
          and manifest["splits"]["remaining"]["sentences"] == len(remaining), str(manifest["splits"].get("remaining")))

    # ---- determinism ----
    again = work / "files_again"
    run(binary, *files, "--output", again, *sizes, "--extra_test", f"extra={work / 'extra.txt'}")
    same = all((out / p.name).read_bytes() == p.read_bytes() for p in again.iterdir())
    check("determinism: same seed, identical files", same and len(list(again.iterdir())) == 7)  # + remaining.txt
    other = work / "files_seed1"
    run(binary, *files, "--output", other, *sizes, "--seed", 1)
    check("determinism: another seed differs", (other / "train.jsonl").read_bytes() != (out / "train.jsonl").read_bytes())
    res = run(binary, *files, "--output", other, *sizes, "--seed", 1)
    check("output exists without --overwrite: exit 2", res.returncode == 2 and "--overwrite" in res.stderr, res.stderr.strip())
    res = run(binary, *files, "--output", other, *sizes, "--seed", 0, "--overwrite")
    check("--overwrite replaces", res.returncode == 0 and (other / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes())

    # ---- scaled down with a warning ----
    scaled = work / "scaled"
    res = run(binary, "--sentences", work / "a.txt", "--output", scaled)
    manifest = json.loads((scaled / "manifest.json").read_text()) if res.returncode == 0 else {}
    check("small corpus: scaled down with a warning", res.returncode == 0 and "warning: only 300 sentences" in res.stderr
          and manifest.get("scaled_down") is True, res.stderr.strip()[:300])

    # ---- WordNet (paper sizes) and Harvard ----
    if WORDNET.exists():
        wn = work / "wordnet"
        args = ["--sentences", "wordnet", "--output", wn]
        if HARVARD.exists():
            args += ["--extra_test", f"harvard={HARVARD}"]
        res = run(binary, *args)
        check("wordnet: exit 0", res.returncode == 0, res.stderr.strip()[:300])
        manifest = json.loads((wn / "manifest.json").read_text())
        check("wordnet: 29580 unique sentences of 5-60 words", manifest["corpus"]["in_length_range"] == 29580,
              str(manifest["corpus"]))
        total = corrupted = 0
        for name in ["train", "calibration", "test", "shifted"] + (["harvard"] if HARVARD.exists() else []):
            records, c = check_records(wn / f"{name}.jsonl")
            total, corrupted = total + len(records), corrupted + c
        check("wordnet: paper sizes", [manifest["splits"][n]["records"] for n in ["train", "calibration", "test", "shifted"]]
              == [5000, 5000, 2000, 2000])
        if HARVARD.exists():
            check("harvard: 720 records", manifest["splits"]["harvard"]["records"] == 720)
        rate = corrupted / total
        check(f"wordnet: tag corruption rate {rate:.4f} over {total} records", abs(rate - 0.1) < 0.01)
    else:
        print("skip wordnet: /usr/share/wordnet not installed")

    # ---- bad inputs: exit 3, a clear message, nothing written ----
    (work / "bad.jsonl").write_text('{"sentence": "one two three four five"}\n{"sentence": \n')
    (work / "nofield.jsonl").write_text('{"words": "one two three four five"}\n')
    (work / "empty.txt").write_text("")
    (work / "bad.txt.gz").write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03KL")
    (work / "tiny.txt").write_text("one two three four five\nsix seven eight nine ten\n")
    cases = [
        ("missing file", ["--sentences", work / "nope.txt"], 3, "nope.txt: file not found"),
        ("malformed JSONL", ["--sentences", work / "bad.jsonl"], 3, "bad.jsonl:2: malformed JSON"),
        ("missing field", ["--sentences", work / "nofield.jsonl"], 3, 'nofield.jsonl:1: field "sentence" (or "text") is missing'),
        ("empty file", ["--sentences", work / "empty.txt"], 3, "empty.txt: no sentences"),
        ("corrupt gzip", ["--sentences", work / "bad.txt.gz"], 3, "corrupt or truncated gzip"),
        ("too small", ["--sentences", work / "tiny.txt"], 3, "too small: 2 usable sentences"),
        ("no wordnet", ["--sentences", "wordnet", "--wordnet_dir", work / "no_wordnet"], 3, "install Debian's wordnet-base"),
        ("missing extra test", ["--sentences", work / "a.txt", "--extra_test", f"x={work / 'nope2.txt'}"], 3, "nope2.txt: file not found"),
        ("multiset size", ["--sentences", work / "a.txt", "--multiset_size", 2], 2, "--multiset_size must be in [3, 20]"),
        ("extra test spec", ["--sentences", work / "a.txt", "--extra_test", "train=x"], 2, "reserved"),
    ]
    for name, args, code, fragment in cases:
        target = work / "bad_out"
        res = run(binary, *args, "--output", target)
        leftovers = [p.name for p in work.iterdir() if p.name.startswith(".bad_out")]
        check(f"bad input {name}: exit {code}", res.returncode == code and fragment in res.stderr and not target.exists()
              and not leftovers, f"exit {res.returncode}: {res.stderr.strip()[:200]}")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
