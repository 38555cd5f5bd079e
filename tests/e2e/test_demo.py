#!/usr/bin/env python3
"""`sdmlm demo` from scratch (label slow, ~20-30 min on 2 cores): exits 0 within 30 minutes, prints
the report path, and holds the science rule of the issue: wherever an HR region is non-empty on the
in-distribution test split, its accuracy is at least 0.90. Usage: test_demo.py SDMLM_BINARY WORKDIR
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, SDMLM_CACHE=str(work / "cache"))
    start = time.time()
    res = subprocess.run([binary, "demo", "--output", str(work / "demo"), "--quiet"], env=env, capture_output=True, text=True)
    seconds = time.time() - start
    failures = []
    if res.returncode != 0:
        failures.append(f"demo exited {res.returncode}: {res.stderr[-1500:]}")
    else:
        if res.stdout.strip() != str(work / "demo" / "report" / "report.html"):
            failures.append(f"stdout is not the report path: {res.stdout!r}")
        tables = json.loads((work / "demo" / "report" / "tables.json").read_text())
        for r in tables["results"]:
            print(f"{r['dataset']:8s} {r['model']:16s} HR {r['hr_accuracy']}, {r['hr_proportion']:.3f}; "
                  f"sentence {r['sentence_accuracy']:.3f}, exact {r['exact_match_accuracy']:.3f}")
            if r["dataset"] == "test" and r["hr_accuracy"] is not None and r["hr_proportion"] > 0 and r["hr_accuracy"] < 0.90:
                failures.append(f"{r['model']}: HR accuracy {r['hr_accuracy']:.3f} < 0.90 on the test split")
    if seconds > 30 * 60:
        failures.append(f"the demo took {seconds / 60:.1f} minutes (> 30)")
    print(f"demo: {seconds / 60:.1f} minutes; {len(failures)} failures")
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
