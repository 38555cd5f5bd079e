#!/usr/bin/env python3
"""Crash safety of `sdmlm finetune`: a run killed with SIGKILL after its first checkpoint and continued
with --resume ends with byte-identical final and best weights, and the same per-step losses, as an
uninterrupted run (SDM loss with online hard negatives, so every random draw and cache is involved).
Bad inputs exit 3 naming the file. Usage: test_finetune_resume.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def steps(run):
    return [(m["step"], round(m["loss"], 9)) for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if m["type"] == "step"]


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 7))) for _ in range(300)]
    corpus = work / "sentences.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))) for _ in range(600)) + "\n")
    run = lambda *a, **k: subprocess.run([binary, *map(str, a)], capture_output=True, text=True, **k)
    run("data", "wordorder", "--sentences", corpus, "--output", work / "data", "--training_size", "48",
        "--calibration_size", "24", "--test_size", "8", "--shifted_size", "8").check_returncode()
    run("tokenizer", "train", "--input", corpus, "--vocab_size", "400", "--output", work / "tok").check_returncode()
    run("model", "init", "--tokenizer", work / "tok", "--output", work / "base", "--seed", "2").check_returncode()
    options = ["finetune", "--model", work / "base", "--data", work / "data", "--loss", "sdm", "--epochs", "3",
               "--batch_size", "4", "--hard_negative_probability", "0.5", "--sdm_epochs", "3", "--sdm_exemplar_dimension", "32",
               "--max_generation_new_tokens", "16", "--learning_rate", "1e-3", "--eval_steps", "4"]
    whole = run(*options, "--output", work / "whole")
    check("uninterrupted run exits 0", whole.returncode == 0, whole.stderr[-800:])

    killed_dir = work / "killed"
    proc = subprocess.Popen([binary, *map(str, options), "--output", str(killed_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any((killed_dir / "checkpoints").glob("step-*/state.json")):
            break
        time.sleep(0.02)
    time.sleep(0.05)  # into the steps after the checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    check("the run was killed mid-way", proc.returncode == -signal.SIGKILL and not (killed_dir / "final").exists(),
          f"returncode {proc.returncode}")
    resumed = run(*options, "--output", killed_dir, "--resume")
    check("resume exits 0", resumed.returncode == 0, resumed.stderr[-800:])
    check("resume says where it continues", "resuming" in resumed.stderr, resumed.stderr[-300:])
    for name in ("final/model.safetensors", "best/model.safetensors"):
        a, b = (work / "whole" / name), (killed_dir / name)
        check(f"{name} identical", a.exists() and b.exists() and a.read_bytes() == b.read_bytes())
    check("same per-step losses", steps(work / "whole") == steps(killed_dir),
          f"{steps(work / 'whole')[:3]} vs {steps(killed_dir)[:3]}")

    # Bad input: exit 3, the file named, nothing written.
    bad = work / "bad"
    shutil.copytree(work / "data", bad)
    lines = (bad / "train.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"prompt"', '"prompx"')
    (bad / "train.jsonl").write_text("\n".join(lines) + "\n")
    res = run("finetune", "--model", work / "base", "--data", bad, "--output", work / "bad_run")
    check("missing field exits 3 naming file:line and field", res.returncode == 3 and "train.jsonl:3" in res.stderr
          and "prompt" in res.stderr and not (work / "bad_run").exists(), res.stderr)
    res = run("finetune", "--model", work / "base", "--data", work / "data", "--output", work / "whole")
    check("existing run without --resume is refused (exit 2, as every existing output)", res.returncode == 2 and "--resume" in res.stderr and "already exists" in res.stderr, res.stderr)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
