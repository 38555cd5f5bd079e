#!/usr/bin/env python3
"""Linear probe: do a fine-tuned model's verification features separate its right and wrong answers?
Embeds (`sdmlm embed`, the verifier's features) the verifier's D_ca decodes and the test decodes of one
fine-tuned model of a `sdmlm demo` / `replicate` run, fits an L2-regularised logistic regression on
the D_ca rows (standardised) and reports on test: AUC, the share of right answers among the top-scored
5/10/20% and of wrong answers among the bottom 10/20%, beside the AUC of the run's own verifier
(its SDM probability of Yes) on the same rows. Needs torch (the project's .venv).

Usage: linear_probe.py SDMLM RUN_DIR MODEL WORK_DIR [--train_rows N]
  MODEL: a run name under RUN_DIR/runs (e.g. ft-cm); --train_rows: use only the first N D_ca rows
Example (docs/experiments.md, E12):
  .venv/bin/python scripts/experiments/linear_probe.py build/sdmlm runs/demo ft-cm runs/probe
"""
import argparse
import json
import pathlib
import subprocess

import torch


def auc(scores, labels):
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def write_rows(decodes, split_file, out):
    prompts = {r["id"]: r["prompt"] for r in map(json.loads, open(split_file))}
    with open(out, "w") as f:
        for r in map(json.loads, open(decodes)):
            response = r["generated_response"].split("\n<verified>")[0]
            f.write(json.dumps({"id": r["id"], "prompt": prompts[r["id"]], "response": response,
                                "label": r["label"]}) + "\n")


def load(path):
    x, y = [], []
    for r in map(json.loads, open(path)):
        x.append(r["embedding"])
        y.append(r["label"])
    return torch.tensor(x), torch.tensor(y, dtype=torch.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sdmlm")
    p.add_argument("run", type=pathlib.Path)
    p.add_argument("model")
    p.add_argument("work", type=pathlib.Path)
    p.add_argument("--train_rows", type=int, default=-1)
    a = p.parse_args()
    model_run = a.run / "runs" / a.model
    work = a.work / a.model
    work.mkdir(parents=True, exist_ok=True)
    write_rows(model_run / "verifier" / "decode.jsonl", a.run / "data" / "calibration.jsonl", work / "cal_in.jsonl")
    write_rows(model_run / "eval" / "predictions-test.jsonl", a.run / "data" / "test.jsonl", work / "test_in.jsonl")
    for split in ("cal", "test"):
        if not (work / f"{split}.jsonl").exists():
            subprocess.run([a.sdmlm, "embed", "--model", str(model_run / "best"), "--input",
                            str(work / f"{split}_in.jsonl"), "--output", str(work / f"{split}.jsonl")],
                           check=True, capture_output=True)
    xc, yc = load(work / "cal.jsonl")
    xt, yt = load(work / "test.jsonl")
    if a.train_rows > 0:
        xc, yc = xc[:a.train_rows], yc[:a.train_rows]
    mean, std = xc.mean(0), xc.std(0) + 1e-6
    xc, xt = (xc - mean) / std, (xt - mean) / std
    for decay in (1e-1, 1e-2, 1e-3):
        w = torch.zeros(xc.shape[1], requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=500)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(xc @ w + b, yc) + decay * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            st, sc = xt @ w + b, xc @ w + b
            top, bottom = yt[torch.argsort(-st)], 1 - yt[torch.argsort(st)]
            n = len(yt)
            right = " ".join(f"{int(c * 100)}% {float(top[:int(c * n)].mean()):.2f}" for c in (0.05, 0.1, 0.2))
            wrong = " ".join(f"{int(c * 100)}% {float(bottom[:int(c * n)].mean()):.2f}" for c in (0.1, 0.2))
        print(f"{a.model} L2 {decay:g} ({len(yc)} D_ca rows): train AUC {auc(sc, yc):.3f}, test AUC {auc(st, yt):.3f}; "
              f"right among top-scored: {right}; wrong among bottom-scored: {wrong}; right rate {float(yt.mean()):.3f}")
    rows = [json.loads(line) for line in open(model_run / "eval" / "predictions-test.jsonl")]
    s = torch.tensor([r["sdm"][1] for r in rows])
    y = torch.tensor([float(r["label"]) for r in rows])
    print(f"{a.model} the run's verifier, SDM p(Yes): test AUC {auc(s, y):.3f}")


if __name__ == "__main__":
    main()
