#!/usr/bin/env python3
"""Whole-run benchmark: sdmlm (build/sdmlm) vs the reexpress-sdm peer (.venv/bin/sdm) on one CPU.

For each --epochs value both tools fit the same seeded Gaussian-mixture data with the same options,
then score one held-out set: sdmlm and the peer each score the peer-trained model, and sdmlm also
scores its own model. Every subprocess is timed (wall) and its peak RSS read from os.wait4. The
region ladders of the two manifests and the fraction of scored rows with centroidRegionAlpha >=
--region_alpha are compared. Finally one large fp32 torch GEMM gives the machine GEMM rate, and
sdmlm's scoring throughput is stated as an estimated GFLOP/s (distances + adaptor GEMM over the
whole scoring wall time, I/O and JSON parsing included).

Run from the repository root with the venv's Python (needs numpy and torch):
  .venv/bin/python bench/sdm_vs_peer.py                           # paper scale: D=6144, 20 epochs
  .venv/bin/python bench/sdm_vs_peer.py --dim 256 --rows 1000 --epochs 3 --score_rows 2000  # smoke
  .venv/bin/python bench/sdm_vs_peer.py --epochs 20,200           # include the 200-epoch variant
Markdown goes to stdout, progress to stderr, all figures to --json; data and models to --workdir.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDMLM, PEER = ROOT / "build" / "sdmlm", ROOT / ".venv" / "bin" / "sdm"
GENERATOR = ROOT / "scripts" / "ref" / "gaussian_rows.py"
ALPHA_RE = re.compile(rb'"centroidRegionAlpha":\s*([-+0-9.eE]+)')


def log(message):
    print(f"[sdm_vs_peer {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command, log_path, timeout):
    """Run command; return wall seconds, peak RSS (MiB, from wait4) and exit status."""
    log(" ".join(map(str, command)))
    with open(log_path, "wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(list(map(str, command)), stdout=sink, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if timeout and time.perf_counter() - start > timeout:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    result = {"wall_s": round(wall, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
              "rc": process.returncode, "timed_out": bool(timeout and wall > timeout), "log": str(log_path)}
    log(f"  -> {result['wall_s']} s, {result['peak_rss_mib']} MiB, rc {result['rc']}")
    if result["rc"] != 0 and not result["timed_out"]:
        sys.exit(f"command failed (rc {result['rc']}); see {log_path}")
    return result


def generate(args, name, rows, seed):
    path = args.workdir / f"{name}_d{args.dim}_n{rows}_s{seed}.jsonl"
    if not path.exists():
        log(f"generating {path.name}")
        command = [sys.executable, GENERATOR, "--classes", args.classes, "--rows", rows, "--dim",
                   args.dim, "--seed", seed, "--prefix", name, "--out", f"{path}.tmp"]
        subprocess.run(list(map(str, command)), check=True)
        os.replace(f"{path}.tmp", path)
    return path


def manifest_regions(model):
    manifest = json.loads((model / "manifest.json").read_text())
    return manifest["regions"], manifest["support"]["count"]


def region_fraction(scored, alpha):
    values = [float(m.group(1)) for m in map(ALPHA_RE.search, open(scored, "rb")) if m]
    return sum(v >= alpha for v in values) / max(1, len(values)), len(values)


def ladder(regions):
    return [(r["alpha"], round(r["minimumRescaledSimilarity"], 4)) for r in regions]


def gemm_gflops(n, reps):
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    seconds = (time.perf_counter() - start) / reps
    return {"n": n, "reps": reps, "threads": torch.get_num_threads(), "seconds_per_gemm": round(seconds, 4),
            "gflops": round(2 * n ** 3 / seconds / 1e9, 1)}


def bench_epochs(args, epochs, train, cal, score):
    out = args.workdir / f"e{epochs}"
    out.mkdir(parents=True, exist_ok=True)
    common = ["--training", train, "--calibration", cal, "--number_of_classes", args.classes,
              "--exemplar_dimension", args.exemplar_dimension, "--epochs", epochs,
              "--batch_size", args.batch_size, "--learning_rate", args.learning_rate, "--seed", args.seed]
    models = {tool: out / f"{tool}.sdmkitmodel" for tool in ("sdmlm", "peer")}
    result = {"epochs": epochs, "fit": {}, "score": {}, "regions": {}}
    for tool, exe, extra in (("sdmlm", [SDMLM, "sdm", "train"], []),
                             ("peer", [PEER, "train"], ["--device", "cpu"])):
        report = out / f"{tool}.report.json"
        command = exe + common + extra + ["--output", models[tool], "--report_output", report, "--overwrite"]
        result["fit"][tool] = run(command, out / f"{tool}.train.log", args.timeout)
        if result["fit"][tool]["timed_out"]:
            log(f"{tool} fit exceeded --timeout {args.timeout} s; stopping this variant")
            return result
        summary = json.loads(report.read_text())
        result["fit"][tool].update({k: summary.get(k) for k in ("bestEpoch", "bestBalancedCalibrationSDMLoss")})
    runs = (("sdmlm@peer", [SDMLM, "sdm", "score"], models["peer"], []),
            ("peer@peer", [PEER, "score"], models["peer"], ["--matching_device", "cpu"]),
            ("sdmlm@sdmlm", [SDMLM, "sdm", "score"], models["sdmlm"], []))
    for name, exe, model, extra in runs:
        scored = out / f"scores.{name.replace('@', '_on_')}.jsonl"
        command = exe + ["--model", model, "--input", score, "--output", scored] + extra + [
            "--nearest_exemplars", args.nearest_exemplars]
        result["score"][name] = run(command, out / f"{name.replace('@', '_on_')}.score.log", args.timeout)
        fraction, rows = region_fraction(scored, args.region_alpha)
        result["score"][name].update({"rows": rows, "fraction_in_region": round(fraction, 4)})
        if not args.keep_scores:
            scored.unlink()
    for tool, model in models.items():
        regions, support = manifest_regions(model)
        result["regions"][tool] = {"support_count": support, "ladder": regions}
    return result


def markdown(results, gemm, args):
    lines = [f"D={args.dim}, {args.rows}+{args.rows} rows, M={args.exemplar_dimension}, "
             f"{args.score_rows} scored rows, {os.cpu_count()} CPUs", "",
             "| epochs | measure | sdmlm | peer | peer/sdmlm |", "|---|---|---|---|---|"]
    for r in results:
        s, p = r["fit"].get("sdmlm", {}), r["fit"].get("peer", {})
        for label, key in (("fit wall s", "wall_s"), ("fit peak RSS MiB", "peak_rss_mib")):
            if s and p:
                lines.append(f"| {r['epochs']} | {label} | {s[key]} | {p[key]} | {p[key] / s[key]:.2f} |")
        sc = r["score"]
        if not sc:
            continue
        a, b = sc["sdmlm@peer"], sc["peer@peer"]
        for label, key in (("score (peer model) wall s", "wall_s"), ("score (peer model) peak RSS MiB", "peak_rss_mib")):
            lines.append(f"| {r['epochs']} | {label} | {a[key]} | {b[key]} | {b[key] / a[key]:.2f} |")
        own = sc["sdmlm@sdmlm"]
        lines.append(f"| {r['epochs']} | score (own model) wall s / RSS MiB | {own['wall_s']} / "
                     f"{own['peak_rss_mib']} | (= peer model row) | |")
        lines.append(f"| {r['epochs']} | rows alpha>={args.region_alpha}, peer model | "
                     f"{a['fraction_in_region']} | {b['fraction_in_region']} | |")
        lines.append(f"| {r['epochs']} | rows alpha>={args.region_alpha}, own model | "
                     f"{own['fraction_in_region']} | {b['fraction_in_region']} | |")
        for tool in ("sdmlm", "peer"):
            lines.append(f"| {r['epochs']} | ladder {tool} (alpha, minRescaledSim) | "
                         f"{ladder(r['regions'][tool]['ladder'])} | | |")
        lines.append(f"| {r['epochs']} | best epoch / best cal SDM loss | {s['bestEpoch']} / "
                     f"{s['bestBalancedCalibrationSDMLoss']:.4f} | {p['bestEpoch']} / "
                     f"{p['bestBalancedCalibrationSDMLoss']:.4f} | |")
        if "knn_estimate" in r:
            k = r["knn_estimate"]
            lines.append(f"| {r['epochs']} | sdmlm scoring GFLOP/s (est., incl. I/O) | {k['gflops']} | | "
                         f"{k['fraction_of_gemm']:.3f} of GEMM |")
    if gemm:
        lines += ["", f"Machine GEMM: {gemm['n']}^3 fp32 torch.mm, {gemm['threads']} threads: "
                  f"{gemm['gflops']} GFLOP/s ({gemm['seconds_per_gemm']} s each)"]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sdm_bench"))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "sdm_vs_peer.json")
    parser.add_argument("--dim", type=int, default=6144)
    parser.add_argument("--rows", type=int, default=2500, help="rows per split (training, calibration)")
    parser.add_argument("--score_rows", type=int, default=10000)
    parser.add_argument("--epochs", default="20", help="comma-separated, e.g. 20,200")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--exemplar_dimension", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--learning_rate", default="1e-5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nearest_exemplars", type=int, default=25)
    parser.add_argument("--region_alpha", type=float, default=0.95)
    parser.add_argument("--timeout", type=float, default=0, help="kill a command after this many s (0: none)")
    parser.add_argument("--gemm_n", type=int, default=4096)
    parser.add_argument("--gemm_reps", type=int, default=3)
    parser.add_argument("--keep_scores", action="store_true", help="keep scored JSONL files in --workdir")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    train = generate(args, "train", args.rows, args.seed)
    cal = generate(args, "cal", args.rows, args.seed + 1)
    score = generate(args, "score", args.score_rows, args.seed + 2)
    results = [bench_epochs(args, int(e), train, cal, score) for e in args.epochs.split(",")]
    log(f"GEMM {args.gemm_n}^3 x {args.gemm_reps}")
    gemm = gemm_gflops(args.gemm_n, args.gemm_reps) if args.gemm_n > 0 else None
    for r in results:
        if "sdmlm@peer" in r["score"]:
            support, m = r["regions"]["peer"]["support_count"], args.exemplar_dimension
            flops = 2 * args.score_rows * support * m + 2 * args.score_rows * args.dim * m
            gflops = flops / r["score"]["sdmlm@peer"]["wall_s"] / 1e9
            r["knn_estimate"] = {"flops": flops, "support_count": support, "gflops": round(gflops, 2),
                                 "fraction_of_gemm": gflops / gemm["gflops"] if gemm else None,
                                 "note": "flops / whole scoring wall time, including I/O and JSON parsing"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) for k, v in vars(args).items()}
    args.json.write_text(json.dumps({"settings": settings, "cpus": os.cpu_count(), "gemm": gemm,
                                     "results": results}, indent=2))
    print(markdown(results, gemm, args))
    log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
