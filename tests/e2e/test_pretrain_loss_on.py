#!/usr/bin/env python3
"""`sdmlm pretrain --loss_on`: on a tiny model, `answer` (only the assistant text of chat items is a
next-token target) and `all` (every token) both train, give different losses from the same first
items (the prompt tokens are masked, not re-weighted), record the choice in pretrain.json, and an
unknown value is a usage error (exit 2) that writes nothing.
Usage: test_pretrain_loss_on.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import shutil
import subprocess
import sys

from tiny_pretrain_setup import make_tiny_init


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        corpus = make_tiny_init(binary, work, seed=0, size=400, tokenizer_flags=("--whitespace_token",))
    except RuntimeError as e:
        print(e)
        return 1
    run = lambda *argv: subprocess.run([binary, *argv], capture_output=True, text=True)
    failures, losses = [], {}
    for mode in ("all", "answer"):
        res = run("pretrain", "--model", str(work / "init"), "--corpus", str(corpus), "--steps", "3", "--batch_size", "4",
                  "--task_fraction", "0.5", "--loss_on", mode, "--seed", "1", "--output", str(work / mode))
        if res.returncode != 0:
            failures.append(f"--loss_on {mode} exited {res.returncode}: {res.stderr[-800:]}")
            continue
        summary = json.loads((work / mode / "pretrain.json").read_text())
        if summary.get("loss_on") != mode:
            failures.append(f"pretrain.json records loss_on {summary.get('loss_on')!r}, not {mode!r}")
        losses[mode] = summary["loss"][0]["loss"]
    if len(losses) == 2 and not (losses["all"] > 0 and losses["answer"] > 0 and losses["all"] != losses["answer"]):
        failures.append(f"the losses of the first steps should differ and be positive: {losses}")
    res = run("pretrain", "--model", str(work / "init"), "--corpus", str(corpus), "--steps", "1", "--loss_on", "prompt",
              "--output", str(work / "bad"))
    if res.returncode != 2 or "--loss_on must be all or answer" not in res.stderr or (work / "bad").exists():
        failures.append(f"--loss_on prompt: exit {res.returncode}, {res.stderr[-400:]!r}")
    print(f"first-step losses {losses}; {len(failures)} failures")
    for failure in failures:
        print("FAIL: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
