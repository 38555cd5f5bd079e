#!/usr/bin/env python3
"""Why a verifier's calibration certifies no region (docs/experiments.md, E13).

A region at alpha is the first rescaled-similarity cut q' >= v at which, for each true class, 95% of
the calibration rows kept have an SDM probability of their own class >= alpha (docs/estimator-format.md,
"Nested calibration"); a class with no kept row fails it. For the calibration rows stored in an
estimator (`.sdmkitmodel/calibration.jsonl`) this prints, at cuts spread over the q' values where both
classes still keep rows, how many rows of each class are kept and how many of them are below alpha.

Usage: calibration_cuts.py MODEL.sdmkitmodel [--alpha 0.95] [--cuts 8]
Example: calibration_cuts.py runs/demo/runs/ft-cm/verifier/estimator.sdmkitmodel
"""
import argparse
import json
import math
import pathlib


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=pathlib.Path)
    p.add_argument("--alpha", type=float, default=0.95)
    p.add_argument("--cuts", type=int, default=8)
    a = p.parse_args()
    manifest = json.loads((a.model / "manifest.json").read_text())
    ood = manifest["configuration"]["oodLimit"]
    classes = manifest["configuration"]["numberOfClasses"]
    rows = [json.loads(line) for line in (a.model / "calibration.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if math.floor(r["qPrime"]) > ood]
    found = []
    for v in sorted({r["qPrime"] for r in rows}):
        kept = [r for r in rows if r["qPrime"] >= v]
        counts = [sum(1 for r in kept if r["label"] == c) for c in range(classes)]
        below = [sum(1 for r in kept if r["label"] == c and r["sdm"][c] < a.alpha) for c in range(classes)]
        if min(counts) > 0:
            found.append((v, counts, below))
    print(f"regions stored: {[r['alpha'] for r in manifest['regions']]}")
    print(f"| cut | " + " | ".join(f"class {c}: kept (below {a.alpha})" for c in range(classes)) + " |")
    print("|---|" + "---|" * classes)
    step = max(1, len(found) // a.cuts)
    picked = found[::step] + ([found[-1]] if found and found[-1] is not found[::step][-1] else [])
    for v, counts, below in picked:
        print(f"| q' >= {v:.1f} | " + " | ".join(f"{n} ({b})" for n, b in zip(counts, below)) + " |")


if __name__ == "__main__":
    main()
