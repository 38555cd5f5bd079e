#!/usr/bin/env python3
"""Data-parallel `sdmlm finetune` on c10d (Gloo over loopback, 2 CPU processes), launched by the real
torchrun from the .venv and by `--nproc`:
- one all-reduced step gives the gradients of one process on the same documents (Adam's first moment
  after step 1 is 0.1 × the clipped gradient; ≤ 1e-5 relative);
- `--loss sdm` with online hard negatives for 2 epochs at world size 2 reaches the weights, losses,
  hard-negative counts and evaluation table of world size 1 within float tolerance;
- a rank killed mid-run makes every rank exit non-zero within a bounded time (torchrun and --nproc),
  and --resume at world size 2 then ends with the uninterrupted world-size-2 run's weights;
- a rank that never arrives fails the rendezvous naming it; --nproc inside a launched job is refused.
Usage: test_finetune_dist.py SDMLM_BINARY TORCHRUN WORKDIR
"""
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def metrics(run, kind):
    return [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["type"] == kind]


def rel_diff(a, b):
    keys = sorted(a)
    if keys != sorted(b):
        return float("inf")
    num = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in keys)
    den = max(float(np.max(np.abs(a[k].astype(np.float64)))) for k in keys)
    return num / max(den, 1e-30)


def children(pid):
    try:
        return [int(p) for p in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> int:
    binary, torchrun, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 7))) for _ in range(300)]
    corpus = work / "sentences.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))) for _ in range(600)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMP_NUM_THREADS")}
    run = lambda *a, **k: subprocess.run([binary, *map(str, a)], capture_output=True, text=True, env=env, **k)
    tr = lambda *a, **k: subprocess.run([torchrun, "--standalone", "--no-python", "--nproc-per-node", "2", binary,
                                         *map(str, a)], capture_output=True, text=True, env=env, **k)
    run("data", "wordorder", "--sentences", corpus, "--output", work / "data", "--training_size", "48",
        "--calibration_size", "24", "--test_size", "8", "--shifted_size", "8").check_returncode()
    run("tokenizer", "train", "--input", corpus, "--vocab_size", "400", "--output", work / "tok").check_returncode()
    run("model", "init", "--tokenizer", work / "tok", "--output", work / "base", "--seed", "2").check_returncode()

    # 1. One step's gradients: world size 1 with 8 documents a step vs 2 ranks of 4 (torchrun).
    step = ["finetune", "--model", work / "base", "--data", work / "data", "--loss", "ce", "--epochs", "1",
            "--eval_steps", "1", "--eval_limit", "8", "--stop_after_steps", "1", "--learning_rate", "1e-3"]
    one = run(*step, "--batch_size", "8", "--output", work / "g1")
    check("one-process step exits 0", one.returncode == 0, one.stderr[-600:])
    two = tr(*step, "--batch_size", "4", "--output", work / "g2")
    check("torchrun step exits 0", two.returncode == 0, (two.stdout + two.stderr)[-1200:])
    if one.returncode == 0 and two.returncode == 0:
        a = load_file(str(work / "g1/checkpoints/step-1/optimizer.safetensors"))
        b = load_file(str(work / "g2/checkpoints/step-1/optimizer.safetensors"))
        first = lambda d: {k: v for k, v in d.items() if "exp_avg" in k and "exp_avg_sq" not in k}
        check("the step's documents and tokens are the same", metrics(work / "g1", "step")[0]["loss_tokens"]
              == metrics(work / "g2", "step")[0]["loss_tokens"])
        d = rel_diff(first(a), first(b))
        check("all-reduced gradients equal one process's (<= 1e-5 relative)", d <= 1e-5, f"relative difference {d:.3g}")
        check("only rank 0 wrote the run directory", json.loads((work / "g2/config.json").read_text())["world_size"] == 2)
        # With accumulation (2 micro-batches of 2 per rank), the all-reduce runs once per step, after both.
        acc = tr(*step, "--batch_size", "2", "--gradient_accumulation_steps", "2", "--output", work / "g3")
        check("torchrun step with accumulation exits 0", acc.returncode == 0, (acc.stdout + acc.stderr)[-800:])
        if acc.returncode == 0:
            c = load_file(str(work / "g3/checkpoints/step-1/optimizer.safetensors"))
            d = rel_diff(first(a), first(c))
            check("accumulated, all-reduced gradients equal one process's (<= 1e-5 relative)", d <= 1e-5, f"{d:.3g}")

    # Pretraining: 8 items a step in one process vs 2 ranks of 4.
    pre = ["pretrain", "--model", work / "base", "--corpus", corpus, "--steps", "30", "--learning_rate", "3e-3",
           "--task_fraction", "0.5"]
    p1 = run(*pre, "--batch_size", "8", "--output", work / "pre1")
    p2 = run(*pre, "--batch_size", "4", "--nproc", "2", "--output", work / "pre2")
    check("pretrain at world sizes 1 and 2 exits 0", p1.returncode == 0 and p2.returncode == 0, (p1.stderr + p2.stderr)[-800:])
    if p1.returncode == 0 and p2.returncode == 0:
        l1 = json.loads((work / "pre1/pretrain.json").read_text())["loss"]
        l2 = json.loads((work / "pre2/pretrain.json").read_text())
        check("pretrain.json records the world size", l2["world_size"] == 2)
        check("pretraining losses equal within 1e-4 relative", len(l1) == len(l2["loss"]) and all(
            abs(a["loss"] - b["loss"]) <= 1e-4 * abs(a["loss"]) for a, b in zip(l1, l2["loss"])), f"{l1} vs {l2['loss']}")
        d = rel_diff(load_file(str(work / "pre1/model.safetensors")), load_file(str(work / "pre2/model.safetensors")))
        check("pretrained weights equal within 1e-4 relative", d <= 1e-4, f"{d:.3g}")

    # 2. SDM loss with online hard negatives, 2 epochs: world size 1 (batch 4) vs 2 (--nproc, batch 2).
    sdm = ["finetune", "--model", work / "base", "--data", work / "data", "--loss", "sdm", "--epochs", "2",
           "--hard_negative_probability", "0.5", "--sdm_epochs", "3", "--sdm_exemplar_dimension", "32",
           "--max_generation_new_tokens", "16", "--learning_rate", "1e-3", "--eval_steps", "6"]
    t0 = time.time()
    w1 = run(*sdm, "--batch_size", "4", "--output", work / "w1")
    t1 = time.time()
    w2 = run(*sdm, "--batch_size", "2", "--nproc", "2", "--output", work / "w2")
    t2 = time.time()
    check("world size 1 exits 0", w1.returncode == 0, w1.stderr[-600:])
    check("--nproc 2 exits 0", w2.returncode == 0, w2.stderr[-1200:])
    print(f"     sdm run: world size 1 {t1 - t0:.1f} s, world size 2 {t2 - t1:.1f} s", flush=True)
    if w1.returncode == 0 and w2.returncode == 0:
        s1, s2 = metrics(work / "w1", "step"), metrics(work / "w2", "step")
        check("same number of steps", len(s1) == len(s2) > 0, f"{len(s1)} vs {len(s2)}")
        check("hard negatives generated online", sum(m["hard_negatives"] for m in s1) > 0)
        check("same generations and hard negatives per step",
              [(m["generated"], m["hard_negatives"]) for m in s1] == [(m["generated"], m["hard_negatives"]) for m in s2],
              f"{[(m['generated'], m['hard_negatives']) for m in s1]} vs {[(m['generated'], m['hard_negatives']) for m in s2]}")
        worst = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(s1, s2))
        check("per-step losses equal within 1e-4 relative", worst <= 1e-4, f"worst {worst:.3g}")
        # Each evaluation fits a fresh SDM layer from features that the ranks compute in other batch
        # compositions (float-level differences), which moves its log bases slightly: 1e-3.
        e1, e2 = metrics(work / "w1", "eval"), metrics(work / "w2", "eval")
        check("evaluation losses equal within 1e-3 relative", len(e1) == len(e2) and all(
            abs(a["eval_loss"] - b["eval_loss"]) <= 1e-3 * abs(a["eval_loss"]) for a, b in zip(e1, e2)),
              f"{[m['eval_loss'] for m in e1]} vs {[m['eval_loss'] for m in e2]}")
        d = rel_diff(load_file(str(work / "w1/final/model.safetensors")), load_file(str(work / "w2/final/model.safetensors")))
        check("final weights equal within 1e-4 relative", d <= 1e-4, f"relative difference {d:.3g}")
        tables = []
        for name in ("w1", "w2"):
            ev = run("eval", "--model", work / name / "final", "--input", f"test={work / 'data/test.jsonl'}",
                     "--max_new_tokens", "24", "--output", work / f"eval_{name}")
            check(f"eval of {name} exits 0", ev.returncode == 0, ev.stderr[-600:])
            tables.append((work / f"eval_{name}" / "predictions-test.jsonl").read_text() if ev.returncode == 0 else name)
        check("the same evaluation predictions (tables) at world sizes 1 and 2", tables[0] == tables[1])
        # Sharded decoding: eval and verifier train with --nproc 2 decode what one process decodes.
        ev = run("eval", "--model", work / "w1/final", "--input", f"test={work / 'data/test.jsonl'}", "--max_new_tokens", "24",
                 "--nproc", "2", "--output", work / "eval_w1_nproc")
        check("eval --nproc 2 exits 0", ev.returncode == 0, ev.stderr[-600:])
        check("eval --nproc 2 writes one process's predictions", ev.returncode == 0 and tables[0] ==
              (work / "eval_w1_nproc/predictions-test.jsonl").read_text())
        vt = ["verifier", "train", "--model", work / "w1/final", "--data", work / "data", "--max_new_tokens", "24",
              "--sdm_epochs", "3", "--sdm_exemplar_dimension", "32"]
        v1 = run(*vt, "--output", work / "ver1")
        v2 = run(*vt, "--nproc", "2", "--output", work / "ver2")
        check("verifier train at world sizes 1 and 2 exits 0", v1.returncode == 0 and v2.returncode == 0,
              (v1.stderr + v2.stderr)[-800:])
        if v1.returncode == 0 and v2.returncode == 0:
            check("verifier train --nproc 2 decodes what one process decodes",
                  (work / "ver1/decode.jsonl").read_text() == (work / "ver2/decode.jsonl").read_text())

    # 3. A rank killed mid-run: every rank exits non-zero in bounded time; then resume at world size 2.
    for launcher in ("torchrun", "nproc"):
        out = work / f"killed_{launcher}"
        cmd = ([torchrun, "--standalone", "--no-python", "--nproc-per-node", "2", binary] if launcher == "torchrun"
               else [binary]) + [str(x) for x in sdm] + ["--batch_size", "2", "--output", str(out)]
        if launcher == "nproc":
            cmd += ["--nproc", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if any((out / "checkpoints").glob("step-*/state.json")):
                break
            time.sleep(0.05)
        ranks = children(proc.pid)
        if launcher == "torchrun":  # torchrun → its agent's children are the ranks
            ranks = [c for r in ranks for c in (children(r) or [r])]
        victim = ranks[-1] if ranks else None
        if victim:
            os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        waited = time.time() - killed_at
        err = proc.stderr.read()
        alive = [r for r in ranks if pathlib.Path(f"/proc/{r}").exists()
                 and "Z" not in pathlib.Path(f"/proc/{r}/stat").read_text().split()[2]]
        check(f"{launcher}: a killed rank stops the job non-zero within 60 s", victim is not None and proc.returncode != 0
              and waited < 60 and not alive and not (out / "final").exists(),
              f"victim {victim}, rc {proc.returncode}, {waited:.1f} s, alive {alive}: {err[-600:]}")
    resumed = run(*sdm, "--batch_size", "2", "--nproc", "2", "--output", work / "killed_nproc", "--resume")
    check("resume at world size 2 exits 0", resumed.returncode == 0, resumed.stderr[-800:])
    if resumed.returncode == 0 and w2.returncode == 0:
        a = (work / "w2/final/model.safetensors").read_bytes()
        b = (work / "killed_nproc/final/model.safetensors").read_bytes()
        check("resumed world-size-2 run ends with the uninterrupted run's weights", a == b)
    res = run(*sdm, "--batch_size", "4", "--output", work / "killed_nproc", "--resume")
    check("the same run resumes at world size 1 (batch 4 × 1 = 2 × 2)", res.returncode == 0, res.stderr[-600:])

    # 4. Rendezvous errors and misuse.
    lonely = dict(env, RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29731", SDMLM_DIST_TIMEOUT="3")
    t0 = time.time()
    res = subprocess.run([binary, *map(str, sdm), "--batch_size", "2", "--output", str(work / "lonely")],
                         capture_output=True, text=True, env=lonely)
    check("a rank that never arrives: exit 4 naming it, within the timeout", res.returncode == 4 and "rank(s) 1 of 2" in res.stderr
          and time.time() - t0 < 30, f"rc {res.returncode}: {res.stderr[-400:]}")
    nostore = dict(env, RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29733", SDMLM_DIST_TIMEOUT="3")
    t0 = time.time()
    res = subprocess.run([binary, *map(str, sdm), "--batch_size", "2", "--output", str(work / "nostore")],
                         capture_output=True, text=True, env=nostore)
    check("no store at MASTER_ADDR:MASTER_PORT: exit 4 naming the address, within the timeout", res.returncode == 4
          and "127.0.0.1:29733" in res.stderr and time.time() - t0 < 30, f"rc {res.returncode}: {res.stderr[-400:]}")
    # Ranks started by hand (no launcher to stop them): when one dies, the other fails by itself.
    port = 29735
    procs = [subprocess.Popen([binary, *map(str, sdm), "--batch_size", "2", "--output", str(work / "bare")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=dict(env, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2",
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)))
             for r in range(2)]
    deadline = time.time() + 300
    while time.time() < deadline and procs[0].poll() is None:
        if any((work / "bare/checkpoints").glob("step-*/state.json")):
            break
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    try:
        procs[0].wait(timeout=120)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].wait()
    procs[1].wait()
    err = procs[0].stderr.read()
    check("without a launcher, the surviving rank exits 4 within 60 s when its peer dies",
          procs[0].returncode == 4 and time.time() - killed_at < 60 and "another rank died" in err,
          f"rc {procs[0].returncode} after {time.time() - killed_at:.1f} s: {err[-500:]}")
    nomaster = dict(env, RANK="0", WORLD_SIZE="2")
    res = subprocess.run([binary, *map(str, sdm), "--batch_size", "2", "--output", str(work / "nomaster")],
                         capture_output=True, text=True, env=nomaster)
    check("no MASTER_ADDR: usage error naming it", res.returncode == 2 and "MASTER_ADDR" in res.stderr, res.stderr[-300:])
    res = subprocess.run([binary, *map(str, sdm), "--batch_size", "2", "--nproc", "2", "--output", str(work / "nested")],
                         capture_output=True, text=True, env=dict(env, RANK="0", WORLD_SIZE="2"))
    check("--nproc inside a launched job is refused", res.returncode == 2 and "--nproc" in res.stderr, res.stderr[-300:])
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
