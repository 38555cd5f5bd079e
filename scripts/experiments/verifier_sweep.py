#!/usr/bin/env python3
"""Verifier-settings sweep over fine-tuned models of a `sdmlm replicate` / `sdmlm demo` run directory:
for each (model, setting, verifier seed) `sdmlm verifier train` on the run's calibration split, then
`sdmlm eval` on its test and shifted splits; prints one line per triple (exact match, HR proportion
and accuracy at alpha 0.95 on test and shifted, the verifier's accuracy on wrong / right test
answers). Finished triples are skipped when rerun.

Usage: verifier_sweep.py SDMLM RUN_DIR OUT_DIR MODELS [SETTINGS] [--seeds 0,1,2] [--max_new_tokens 96]
  MODELS: comma-separated run names under RUN_DIR/runs (e.g. ft-cm,ft-cm-seed1,ft-cm-seed2)
  SETTINGS: comma-separated names from SETTINGS below (default: all)
  --seeds: verifier seeds (the draw of the calibration documents, their halves, the adaptor's
    start); results go to OUT_DIR/MODEL/SETTING (seed 0) or SETTING-sN
  --max_new_tokens: the decode limit of the verifier's and the eval's decodes (the run's
    eval.max_new_tokens: 96 since E14, 64 before)
Examples (docs/experiments.md):
  E11: scripts/experiments/verifier_sweep.py build/sdmlm runs/demo runs/vsweep ft-cm,ft-cm-seed1,ft-cm-seed2 --max_new_tokens 64
  E16: scripts/experiments/verifier_sweep.py build/sdmlm runs/e14 runs/vsweep ft-cm,ft-cm-seed1,sdm-ft-cm-hn lr1e-4,lr1e-3,ep1000 --seeds 0,1,2
"""
import argparse
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
    "ep1000": ["--sdm_learning_rate", "1e-4", "--sdm_epochs", "1000"],
}


def main() -> int:
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("binary")
    ap.add_argument("run", type=pathlib.Path)
    ap.add_argument("out_root", type=pathlib.Path)
    ap.add_argument("models")
    ap.add_argument("settings", nargs="?", default=",".join(SETTINGS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--max_new_tokens", default="96")
    a = ap.parse_args()
    binary, run, out_root = a.binary, a.run, a.out_root
    for model in a.models.split(","):
        for name in a.settings.split(","):
            for seed in a.seeds.split(","):
                out = out_root / model / (name if seed == "0" else f"{name}-s{seed}")
                out.mkdir(parents=True, exist_ok=True)
                started = time.time()
                best = run / "runs" / model / "best"
                flags = SETTINGS[name] if "--sdm_epochs" in SETTINGS[name] else ["--sdm_epochs", "200"] + SETTINGS[name]
                if not (out / "verifier" / "verifier.json").exists():
                    subprocess.run([binary, "verifier", "train", "--model", str(best), "--data", str(run / "data"),
                                    "--output", str(out / "verifier"), "--max_new_tokens", a.max_new_tokens,
                                    "--seed", seed, "--overwrite"] + flags, check=True, capture_output=True)
                if not (out / "eval" / "tables.json").exists():
                    inputs = [f"{split}={run / 'data' / (split + '.jsonl')}" for split in ("test", "shifted")
                              if (run / "data" / (split + ".jsonl")).exists()]
                    subprocess.run([binary, "eval", "--model", str(best), "--verifier", str(out / "verifier"), "--input",
                                    *inputs, "--output", str(out / "eval"), "--max_new_tokens", a.max_new_tokens,
                                    "--overwrite"], check=True, capture_output=True)
                results = {r["dataset"]: r for r in json.loads((out / "eval" / "tables.json").read_text())["results"]}
                t = results["test"]
                by_class = t["table4"]["NO-REJECT"]["class_conditional"]
                nan = float("nan")
                line = (f"{model:22s} {name:8s} seed {seed} exact {t['exact_match_accuracy']:.3f} "
                        f"HR {t['hr_proportion']:.3f} acc {t['hr_accuracy'] if t['hr_accuracy'] is not None else nan:.3f}")
                if "shifted" in results:
                    sh = results["shifted"]
                    line += f" shifted HR {sh['hr_proportion']:.3f}"
                print(line + f" verifier acc y0 {by_class[0]['accuracy']:.2f} y1 {by_class[1]['accuracy']:.2f}"
                      f"  {time.time() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
