#!/usr/bin/env python3
"""Data-parallel step time on this machine: `sdmlm finetune` (cross-entropy, the tiny preset, the
same documents per step) at world size 1 with one thread, world size 1 with two threads, and world
size 2 (--nproc 2, one thread per rank), plus the gradient all-reduce's time per step, with the
machine's float32 GEMM rate. Runs are interleaved over rounds; the median step of the best round is
reported. Writes bench/results/dist_bench.{json,md}.
Usage: bench/dist_bench.py [--sdmlm build/sdmlm] [--rounds 2] [--steps 24]
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def gemm_gflops():
    import torch
    torch.set_num_threads(2)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    return 2 * 1024 ** 3 * 20 / (time.perf_counter() - t) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdmlm", default=str(ROOT / "build/sdmlm"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batch", type=int, default=16, help="documents per step (all ranks together)")
    args = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="sdmlm_dist_bench_"))
    sdm = args.sdmlm
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8))) for _ in range(800)]
    corpus = work / "sentences.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(8, 14))) for _ in range(3000)) + "\n")
    run = lambda *a, **k: subprocess.run([sdm, *map(str, a)], capture_output=True, text=True, check=True, **k)
    run("data", "wordorder", "--sentences", corpus, "--output", work / "data", "--training_size", str(args.batch * args.steps),
        "--calibration_size", "16", "--test_size", "8", "--shifted_size", "8")
    run("tokenizer", "train", "--input", corpus, "--vocab_size", "1000", "--output", work / "tok")
    run("model", "init", "--tokenizer", work / "tok", "--output", work / "base", "--seed", "0")
    base = ["finetune", "--model", work / "base", "--data", work / "data", "--loss", "ce", "--epochs", "1",
            "--eval_limit", "16", "--eval_steps", "100000", "--learning_rate", "1e-3"]
    configs = {
        "world 1, 1 thread": (["--batch_size", str(args.batch)], {"OMP_NUM_THREADS": "1"}),
        "world 1, 2 threads": (["--batch_size", str(args.batch)], {"OMP_NUM_THREADS": "2"}),
        "world 2, 1 thread each": (["--batch_size", str(args.batch // 2), "--nproc", "2"], {"OMP_NUM_THREADS": "1"}),
    }
    results = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, (extra, env) in configs.items():
            out = work / f"run_{r}_{len(results[name])}"
            e = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
            e.update(env)
            run(*base, *extra, "--output", out, env=e)
            steps = [m for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if m["type"] == "step"]
            steps = steps[2:]  # warm-up steps
            results[name].append({"step_seconds": statistics.median(m["seconds"] for m in steps),
                                  "allreduce_seconds": statistics.median(m.get("allreduce_seconds", 0.0) for m in steps),
                                  "tokens_per_step": statistics.median(m["tokens"] for m in steps)})
            shutil.rmtree(out)
    gemm = gemm_gflops()
    best = {name: min(v, key=lambda x: x["step_seconds"]) for name, v in results.items()}
    ref = best["world 1, 2 threads"]["step_seconds"]
    summary = {"machine": {"gemm_gflops_fp32": gemm, "cores": os.cpu_count()}, "documents_per_step": args.batch,
               "steps": args.steps, "rounds": args.rounds, "best": best, "all": results}
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dist_bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# Data-parallel step time (`bench/dist_bench.py`)", "",
             f"Machine: {os.cpu_count()} cores, float32 GEMM {gemm:.0f} GFLOP/s (torch.mm 1024³, 2 threads). "
             f"`sdmlm finetune --loss ce`, tiny preset, {args.batch} documents per step; median step of the best of "
             f"{args.rounds} interleaved rounds.", "",
             "| configuration | step (ms) | vs world 1, 2 threads | gradient all-reduce (ms) | tokens per step |",
             "|---|---:|---:|---:|---:|"]
    for name, b in best.items():
        lines.append(f"| {name} | {1000 * b['step_seconds']:.1f} | {ref / b['step_seconds']:.2f}× | "
                     f"{1000 * b['allreduce_seconds']:.2f} | {b['tokens_per_step']:.0f} |")
    (out / "dist_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
