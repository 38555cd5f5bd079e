#!/usr/bin/env python3
"""Compare two scored JSONL files row by row (sdmlm vs the reexpress-sdm peer).

Exact: prediction, q, centroidRegionAlpha, lowerRegionAlpha, nearestSupportIndex.
Within --tolerance: sdm, sdmLower, d, zPrime (absolute); qPrime, qPrimeLower (relative, since
q' = (2+q)^p grows with q).
Exits 1 and prints the first mismatches when anything differs.
"""
import argparse
import json
import sys

EXACT = ("prediction", "q", "centroidRegionAlpha", "lowerRegionAlpha", "nearestSupportIndex")
CLOSE = ("sdm", "sdmLower", "qPrime", "qPrimeLower", "d", "zPrime")
RELATIVE = ("qPrime", "qPrimeLower")


def load(path):
    with open(path, encoding="utf-8") as stream:
        return {row["id"]: row for row in map(json.loads, stream) if row}


def as_list(value):
    return value if isinstance(value, list) else [value]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("ours")
    parser.add_argument("peer")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    ours, peer = load(args.ours), load(args.peer)
    if set(ours) != set(peer):
        print(f"row ids differ: {len(set(ours) ^ set(peer))} not in both")
        return 1
    problems = []
    worst = 0.0
    for key, a in ours.items():
        b = peer[key]
        for field in EXACT:
            if a.get(field) != b.get(field):
                problems.append(f"{key}: {field} {a.get(field)} != peer {b.get(field)}")
        for field in CLOSE:
            for x, y in zip(as_list(a[field]), as_list(b[field])):
                difference = abs(x - y) / (max(1.0, abs(y)) if field in RELATIVE else 1.0)
                worst = max(worst, difference)
                if difference > args.tolerance:
                    problems.append(f"{key}: {field} {a[field]} vs peer {b[field]}")
    regions = sum(1 for row in ours.values() if row["centroidRegionAlpha"] > 0)
    print(f"{len(ours)} rows, {regions} in a region, max abs difference {worst:.3g}, {len(problems)} mismatches")
    for line in problems[:10]:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
