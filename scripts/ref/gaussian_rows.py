#!/usr/bin/env python3
"""Seeded Gaussian-mixture estimator rows (JSONL: id, label, embedding) for tests and benchmarks.

Each class has a random mean direction; rows are mean * separation + N(0, 1) noise. `--shift`
moves every row far from the training distribution (for out-of-distribution checks).
Usage: gaussian_rows.py --classes 2 --rows 4000 --dim 64 --seed 0 --out rows.jsonl [--shift 25]
"""
import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixture_seed", type=int, default=1234, help="fixes the class means")
    parser.add_argument("--separation", type=float, default=1.2)
    parser.add_argument("--label_noise", type=float, default=0.02)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--prefix", default="row")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    means = np.random.default_rng(args.mixture_seed).normal(size=(args.classes, args.dim))
    means /= np.linalg.norm(means, axis=1, keepdims=True) / np.sqrt(args.dim) * 0.25
    rng = np.random.default_rng(args.seed)
    labels = rng.integers(0, args.classes, size=args.rows)
    x = means[labels] * args.separation + rng.normal(size=(args.rows, args.dim))
    flip = rng.random(args.rows) < args.label_noise
    labels = np.where(flip, rng.integers(0, args.classes, size=args.rows), labels)
    if args.shift:
        direction = np.random.default_rng(args.mixture_seed + 1).normal(size=args.dim)
        x = x + direction / np.linalg.norm(direction) * args.shift * np.sqrt(args.dim)
    with open(args.out, "w", encoding="utf-8") as out:
        for i in range(args.rows):
            row = {"id": f"{args.prefix}-{i}", "label": int(labels[i]),
                   "embedding": [round(float(v), 6) for v in x[i].astype(np.float32)]}
            out.write(json.dumps(row, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
