#!/usr/bin/env python3
"""Interop parity with the reexpress-sdm peer (the `sdm` CLI in .venv), on generated fixtures:
  1. a model trained by `sdm train` scores in sdmlm with the same prediction, q, nearest support,
     region alphas, and probabilities within 1e-5 (scripts/ref/compare_scores.py);
  2. a model written by sdmlm passes the peer's validation and scores the same there;
  3. recalibration of the same saved calibration rows gives the same region ladder in both tools.
Usage: test_sdm_interop.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import shutil
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts" / "ref"))
from sdmtest import ROOT, finish, gaussian, run  # noqa: E402

PEER = pathlib.Path(sys.executable).with_name("sdm")
COMPARE = ROOT / "scripts" / "ref" / "compare_scores.py"
TRAIN_OPTIONS = ["--exemplar_dimension", "64", "--epochs", "12", "--learning_rate", "1e-3", "--batch_size", "50",
                 "--seed", "3", "--max_neighbors", "2048"]


def regions(model):
    return json.loads((model / "manifest.json").read_text())["regions"]


def same_regions(a, b):
    if [r["alpha"] for r in a] != [r["alpha"] for r in b]:
        return False
    for x, y in zip(a, b):
        if abs(x["minimumRescaledSimilarity"] - y["minimumRescaledSimilarity"]) > 1e-5 * max(1, y["minimumRescaledSimilarity"]):
            return False
        if any(abs(p - q) > 1e-6 for p, q in zip(x["outputThresholds"], y["outputThresholds"])):
            return False
    return True


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    failures = []
    for classes in (2, 3):
        data = {}
        for name, seed, rows in (("train", 21, 600), ("cal", 22, 600), ("test", 23, 400)):
            data[name] = gaussian(work / f"{name}{classes}.jsonl", classes, rows, 32, seed, name)
        common = ["--training", data["train"], "--calibration", data["cal"], "--number_of_classes", classes, *TRAIN_OPTIONS]
        peer_model, our_model = work / f"peer{classes}.sdmkitmodel", work / f"ours{classes}.sdmkitmodel"
        run(PEER, "train", *common, "--device", "cpu", "--output", peer_model, "--report_output", work / "peer_report.json",
            stderr=subprocess.DEVNULL)
        run(binary, "sdm", "train", *common, "--output", our_model, "--report_output", work / "our_report.json")
        run(PEER, "artifact", "validate", "--model", our_model, "--output", work / "validate.json")
        print(f"C={classes}: the peer validates the sdmlm artifact: {json.loads((work / 'validate.json').read_text())['valid']}")
        for label, model in (("peer-trained", peer_model), ("sdmlm-trained", our_model)):
            ours, theirs = work / f"o_{label}{classes}.jsonl", work / f"p_{label}{classes}.jsonl"
            run(binary, "sdm", "score", "--model", model, "--input", data["test"], "--output", ours, "--nearest_exemplars", 5)
            run(PEER, "score", "--model", model, "--input", data["test"], "--output", theirs, "--matching_device", "cpu",
                "--nearest_exemplars", 5)
            print(f"C={classes} {label} model:", end=" ", flush=True)
            if subprocess.run([sys.executable, COMPARE, ours, theirs]).returncode != 0:
                failures.append(f"C={classes}: scores of the {label} model differ")
            if not regions(model):
                failures.append(f"C={classes}: the {label} model has no region (fixture too weak to test regions)")
        for label, model in (("peer-trained", peer_model), ("sdmlm-trained", our_model)):
            ours, theirs = work / f"ro_{label}{classes}.sdmkitmodel", work / f"rp_{label}{classes}.sdmkitmodel"
            run(binary, "sdm", "recalibrate", "--model", model, "--output", ours, "--alpha_resolution", 0.01,
                "--report_output", work / "r.json")
            run(PEER, "recalibrate", "--model", model, "--output", theirs, "--alpha_resolution", 0.01,
                "--report_output", work / "r.json")
            ok = same_regions(regions(ours), regions(theirs))
            print(f"C={classes} recalibrated {label} model: {len(regions(ours))} regions, same as the peer: {ok}")
            if not ok:
                failures.append(f"C={classes}: recalibration of the {label} model differs")
    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
