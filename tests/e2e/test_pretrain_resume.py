#!/usr/bin/env python3
"""`sdmlm pretrain` resumed after a stop trains the same model as a run never stopped: a run of 8
steps stopped after step 3 (`--stop_after_steps 3`, which leaves OUTPUT.checkpoint/) and resumed with
the same command writes a model.safetensors byte-identical to the uninterrupted run's and the same
loss log (the step-8 entry is the mean over steps 1-8 in both: the checkpoint carries the steps
since the last log entry); the resumed run announces the step it resumes at and removes the checkpoint.
A resume with another setting (a learning rate, a corpus) is refused with exit 2 naming the setting,
leaving the checkpoint as it was.
Usage: test_pretrain_resume.py SDMLM_BINARY WORKDIR
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
        corpus = make_tiny_init(binary, work, seed=1, size=300, tokenizer_flags=())
    except RuntimeError as e:
        print(e)
        return 1
    run = lambda *argv: subprocess.run([binary, *argv], capture_output=True, text=True)
    common = ["pretrain", "--model", str(work / "init"), "--corpus", str(corpus), "--steps", "8", "--batch_size", "4",
              "--task_fraction", "0.5", "--seed", "3"]
    failures = []

    def expect(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    res = run(*common, "--output", str(work / "straight"))
    expect(res.returncode == 0, f"uninterrupted run exits 0 ({res.stderr[-400:]!r})")
    res = run(*common, "--stop_after_steps", "3", "--output", str(work / "resumed"))
    expect(res.returncode == 0 and (work / "resumed.checkpoint" / "state.json").exists() and not (work / "resumed").exists(),
           f"a stopped run leaves only its checkpoint (exit {res.returncode})")
    state = (work / "resumed.checkpoint" / "state.json").read_bytes()
    res = run(*common, "--learning_rate", "0.01", "--output", str(work / "resumed"))
    expect(res.returncode == 2 and "learning_rate" in res.stderr and "state.json" in res.stderr,
           f"a resume with another --learning_rate is refused, naming it (exit {res.returncode}, {res.stderr[-300:]!r})")
    other = work / "other_corpus.txt"
    other.write_text("".join(line + " again\n" for line in corpus.read_text().splitlines()))
    common_other = [str(other) if a == str(corpus) else a for a in common]
    res = run(*common_other, "--output", str(work / "resumed"))
    expect(res.returncode == 2 and "corpus_sha256" in res.stderr,
           f"a resume over another corpus is refused (exit {res.returncode}, {res.stderr[-300:]!r})")
    expect((work / "resumed.checkpoint" / "state.json").read_bytes() == state and not (work / "resumed").exists(),
           "the refused resumes leave the checkpoint as it was and write no output")
    res = run(*common, "--output", str(work / "resumed"))
    expect(res.returncode == 0 and "resuming pretraining at step 3" in res.stderr,
           f"the second run resumes at step 3 ({res.stderr[-400:]!r})")
    if failures:
        return 1
    expect(not (work / "resumed.checkpoint").exists(), "the checkpoint is removed once the output is published")
    same = (work / "straight" / "model.safetensors").read_bytes() == (work / "resumed" / "model.safetensors").read_bytes()
    expect(same, "resumed weights are byte-identical to the uninterrupted run's")
    a = json.loads((work / "straight" / "pretrain.json").read_text())["loss"]
    b = json.loads((work / "resumed" / "pretrain.json").read_text())["loss"]
    expect(a == b and [e["step"] for e in a] == [8], f"same loss log {a} vs {b}")
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
