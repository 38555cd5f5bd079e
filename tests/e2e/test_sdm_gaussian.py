#!/usr/bin/env python3
"""End to end: on seeded Gaussian mixtures (2 and 3 classes, 4000 pooled rows, D = 64) the region
at alpha = 0.95 on held-out in-distribution rows has class- and prediction-conditional accuracy
>= 0.93 with non-trivial coverage, and >= 95% of far-shifted rows are rejected.
Usage: test_sdm_gaussian.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts" / "ref"))
from sdmtest import finish, gaussian, run  # noqa: E402



def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    failures = []
    for classes in (2, 3):
        files = {}
        for name, seed, rows, shift in (("train", 11, 2000, 0), ("cal", 12, 2000, 0), ("test", 13, 2000, 0), ("far", 14, 500, 25)):
            files[name] = gaussian(work / f"{name}{classes}.jsonl", classes, rows, 64, seed, name, shift)
        model = work / f"m{classes}.sdmkitmodel"
        run(binary, "sdm", "train", "--training", files["train"], "--calibration", files["cal"], "--number_of_classes",
            classes, "--exemplar_dimension", 1000, "--epochs", 20, "--learning_rate", 1e-4, "--seed", 0,
            "--output", model, "--report_output", work / f"report{classes}.json")
        reports = {}
        for name in ("test", "far"):
            out = work / f"eval_{name}{classes}.json"
            run(binary, "sdm", "evaluate", "--model", model, "--input", files[name], "--alpha", 0.95, "--output", out)
            reports[name] = json.loads(out.read_text())
        hr = reports["test"]["highReliability"]
        coverage = hr["marginal"]["proportion"]
        print(f"C={classes}: accuracy {reports['test']['accuracy']:.4f}, HR {hr['marginal']['accuracy']}, "
              f"coverage {coverage:.3f}, far admitted {reports['far']['hrProportion']:.4f}")
        print(f"  Table 4  NO-REJECT {reports['test']['table4']['NO-REJECT']}")
        print(f"  Table 4  SDM_HR    {reports['test']['table4']['SDM_HR']}")
        if coverage < 0.05:
            failures.append(f"C={classes}: HR coverage {coverage} is trivial")
        for kind in ("classConditional", "predictionConditional"):
            for c, cell in enumerate(hr[kind]):
                if cell["n"] >= 20 and cell["accuracy"] < 0.93:
                    failures.append(f"C={classes}: {kind}[{c}] accuracy {cell['accuracy']} < 0.93 (n={cell['n']})")
                if cell["n"] < 20:
                    failures.append(f"C={classes}: {kind}[{c}] has only {cell['n']} admitted rows")
        if reports["far"]["hrProportion"] > 0.05:
            failures.append(f"C={classes}: {reports['far']['hrProportion']} of far-shifted rows admitted (> 5%)")
    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
