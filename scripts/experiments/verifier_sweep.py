#!/usr/bin/env python3
"""Verifier-settings sweep over fine-tuned models of a `sdmlm replicate` / `sdmlm demo` run directory:
for each (model, setting) `sdmlm verifier train` on the run's calibration split, then `sdmlm eval` on
its test split; prints one line per pair (exact match, HR proportion and accuracy at alpha 0.95, the
verifier's accuracy on wrong / right answers). Finished pairs are skipped when rerun.

Usage: verifier_sweep.py SDMLM RUN_DIR OUT_DIR MODELS [SETTINGS]
  MODELS: comma-separated run names under RUN_DIR/runs (e.g. ft-cm,ft-cm-seed1,ft-cm-seed2)
  SETTINGS: comma-separated names from SETTINGS below (default: all)
Example (docs/experiments.md, E11):
  scripts/experiments/verifier_sweep.py build/sdmlm runs/demo runs/vsweep ft-cm,ft-cm-seed1,ft-cm-seed2
"""
import json
import pathlib
import subprocess
import sys
import time

SETTINGS = {
    "lr1e-4": ["--sdm_learning_rate", "1e-4"],  # the demo's verifier (configs/cpu.json)
    "lr1e-3": ["--sdm_learning_rate", "1e-3"],
    "reference": ["--sdm_learning_rate", "1e-4", "--feature_layout", "reference"],
    "M100": ["--sdm_learning_rate", "1e-4", "--sdm_exemplar_dimension", "100"],
    "lr1e-5": ["--sdm_learning_rate", "1e-5"],
}


def main() -> int:
    if len(sys.argv) < 5:
        print(__doc__)
        return 2
    binary, run, out_root = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    models = sys.argv[4].split(",")
    names = sys.argv[5].split(",") if len(sys.argv) > 5 else list(SETTINGS)
    for model in models:
        for name in names:
            out = out_root / model / name
            out.mkdir(parents=True, exist_ok=True)
            started = time.time()
            best = run / "runs" / model / "best"
            if not (out / "verifier" / "verifier.json").exists():
                subprocess.run([binary, "verifier", "train", "--model", str(best), "--data", str(run / "data"),
                                "--output", str(out / "verifier"), "--max_new_tokens", "64", "--sdm_epochs", "200",
                                "--seed", "0", "--overwrite"] + SETTINGS[name], check=True, capture_output=True)
            if not (out / "eval" / "tables.json").exists():
                subprocess.run([binary, "eval", "--model", str(best), "--verifier", str(out / "verifier"), "--input",
                                f"test={run / 'data' / 'test.jsonl'}", "--output", str(out / "eval"),
                                "--max_new_tokens", "64", "--overwrite"], check=True, capture_output=True)
            t = json.loads((out / "eval" / "tables.json").read_text())["results"][0]
            by_class = t["table4"]["NO-REJECT"]["class_conditional"]
            hr_accuracy = t["hr_accuracy"] if t["hr_accuracy"] is not None else float("nan")
            print(f"{model:22s} {name:10s} exact {t['exact_match_accuracy']:.3f} HR {t['hr_proportion']:.3f} "
                  f"acc {hr_accuracy:.3f} verifier acc y0 {by_class[0]['accuracy']:.2f} y1 {by_class[1]['accuracy']:.2f}"
                  f"  {time.time() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
