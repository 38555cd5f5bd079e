#!/usr/bin/env python3
"""Bring-your-own-task: a task no code special-cases (two-number additions answered in <answer>
tags, made by scripts/examples/arithmetic_task.py) through `data split`, `finetune --loss sdm` with
online hard negatives judged by a `command:` reward, `verifier train --reward tag:answer`, `eval`
and `verify`; the TRL preference layout and chat `messages` through fine-tuning; a post-hoc
verifier from labeled responses (`verifier train --labeled`); and the bad inputs of task files,
rows and rewards (exit 3 naming file, line and field; nothing written).
Usage: test_own_task.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import random
import re
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "examples" / "arithmetic_task.py"
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def rows(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def tag_answer(text):
    m = re.search(r"<answer>(.*?)</answer>", text, re.S)
    return m.group(1).strip() if m else None


def judged_positive(generation, positive):
    """The documented rule: strip(g) == C + "\\n<verified>Yes</verified>", C == strip(C), r(C) = 1."""
    g = generation.strip()
    suffix = "\n<verified>Yes</verified>"
    if not g.endswith(suffix) or len(g) <= len(suffix):
        return False
    c = g[: -len(suffix)]
    if c != c.strip():
        return False
    got = tag_answer(c)
    return got is not None and got == (tag_answer(positive) or positive.strip())


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = lambda *a, **k: subprocess.run([binary, *map(str, a)], capture_output=True, text=True, **k)
    gen = lambda out, *a: subprocess.run([sys.executable, GENERATOR, out, *map(str, a)], check=True)

    # ---- data split ----
    gen(work / "task.jsonl", "--count", 160, "--seed", 3)
    res = run("data", "split", "--input", work / "task.jsonl", "--output", work / "data", "--calibration_size", 48,
              "--test_size", 24, "--seed", 0)
    check("data split exits 0", res.returncode == 0, res.stderr[-500:])
    sizes = {name: len(rows(work / "data" / f"{name}.jsonl")) for name in ("train", "calibration", "test")}
    check("split sizes", sizes == {"train": 88, "calibration": 48, "test": 24}, sizes)
    run("data", "split", "--input", work / "task.jsonl", "--output", work / "data2", "--calibration_size", 48,
        "--test_size", 24, "--seed", 0).check_returncode()
    check("split is deterministic", all((work / "data" / f).read_bytes() == (work / "data2" / f).read_bytes()
                                        for f in ("train.jsonl", "calibration.jsonl", "test.jsonl")))

    # ---- a tiny model of the task's text ----
    text = work / "text.txt"
    text.write_text("\n".join(r["prompt"] + " " + r["positive"] for r in rows(work / "task.jsonl")) + "\n")
    run("tokenizer", "train", "--input", text, "--vocab_size", 340, "--output", work / "tok").check_returncode()
    run("model", "init", "--tokenizer", work / "tok", "--output", work / "base", "--seed", 0).check_returncode()

    # ---- finetune --loss sdm, hard negatives judged by a command reward ----
    checker = work / "checker.py"
    log = work / "checker.log"
    checker.write_text("import json, sys\n"
                       "log = open(sys.argv[1], 'a')\n"
                       "for line in sys.stdin:\n"
                       "    q = json.loads(line)\n"
                       "    log.write(line); log.flush()\n"
                       "    print(1 if q['response'].strip() == q['positive'].strip() else 0, flush=True)\n")
    reward = f"command:{sys.executable} {checker} {log}"
    small = ["--sdm_epochs", 3, "--sdm_exemplar_dimension", 32]
    res = run("finetune", "--model", work / "base", "--data", work / "data", "--loss", "sdm", "--epochs", 2,
              "--batch_size", 8, "--learning_rate", "3e-3", "--hard_negative_probability", 1.0,
              "--max_generation_new_tokens", 12, "--reward", reward, *small, "--output", work / "run")
    check("finetune --loss sdm exits 0", res.returncode == 0, res.stderr[-800:])
    config = json.loads((work / "run" / "config.json").read_text())
    check("the run records its reward", config.get("reward") == reward, config.get("reward"))
    queries = rows(log) if log.exists() else []
    check("the command reward judged the online generations", len(queries) > 0 and
          all(set(q) == {"id", "prompt", "response", "positive"} for q in queries), len(queries))
    train_ids = {r["id"] for r in rows(work / "data" / "train.jsonl")} | {r["id"] for r in rows(work / "data" / "calibration.jsonl")}
    check("queries name the task's records", all(q["id"] in train_ids for q in queries))
    check("queries hold completions without the verdict", all("<verified>" not in q["response"] for q in queries))

    # ---- verifier train, eval, verify ----
    res = run("verifier", "train", "--model", work / "run", "--data", work / "data", "--reward", "tag:answer",
              "--max_new_tokens", 12, *small, "--output", work / "verifier")
    check("verifier train exits 0", res.returncode == 0, res.stderr[-800:])
    sidecar = json.loads((work / "verifier" / "verifier.json").read_text())
    check("the sidecar records reward and layout", sidecar.get("reward") == "tag:answer" and sidecar.get("data_layout") == "task",
          sidecar)
    res = run("eval", "--model", work / "run", "--verifier", work / "verifier", "--input", f"test={work / 'data' / 'test.jsonl'}",
              "--max_new_tokens", 12, "--output", work / "eval")
    check("eval exits 0", res.returncode == 0, res.stderr[-800:])
    predictions = rows(work / "eval" / "predictions-test.jsonl")
    tests = rows(work / "data" / "test.jsonl")
    check("one prediction per test record", [p["id"] for p in predictions] == [t["id"] for t in tests])
    check("labels follow the documented rule with the verifier's reward",
          all(p["label"] == int(judged_positive(p["generated_response"], t["positive"])) for p, t in zip(predictions, tests)))
    pairs = work / "pairs.jsonl"
    with pairs.open("w") as out:
        for p, t in zip(predictions, tests):
            out.write(json.dumps({"id": p["id"], "prompt": t["prompt"], "response": p["generated_response"]}) + "\n")
        out.write(json.dumps({"id": "given-right", "prompt": tests[0]["prompt"], "response": tests[0]["positive"], "label": 1}) + "\n")
    res = run("verify", "--model", work / "run", "--verifier", work / "verifier", "--input", pairs, "--output", work / "verdicts.jsonl",
              "--nearest_exemplars", 3)
    check("verify exits 0", res.returncode == 0, res.stderr[-800:])
    verdicts = rows(work / "verdicts.jsonl")
    check("one verdict per row, in order", [v["id"] for v in verdicts] == [p["id"] for p in predictions] + ["given-right"])
    check("verdict fields", all(v["verified"] in ("Yes", "No") and v["response"].endswith(f"<verified>{v['verified']}</verified>")
                                and 0 <= v["probability"] <= 1 and isinstance(v["high_reliability"], bool)
                                and len(v["nearestSupportMatches"]) == 3 and "qPrime" in v and "d" in v for v in verdicts), verdicts[0])
    check("verify's scores equal eval's for the same (prompt, response)",
          all(abs(v["sdm"][1] - p["sdm"][1]) < 1e-6 and v["prediction"] == p["prediction"] for v, p in zip(verdicts, predictions)))
    check("a labeled row keeps its label", verdicts[-1].get("label") == 1)

    # ---- sdmlm replicate over the task file (data.task, reward) ----
    config = {"name": "own", "variants": ["FT(CM)", "SDM+FT(CM+HN)"], "reward": "tag:answer",
              "data": {"task": str(work / "task.jsonl"), "calibration_size": 48, "test_size": 24},
              "base": {"model": str(work / "base")},
              "finetune": {"epochs": 2, "batch_size": 8, "eval_limit": 16, "sdm_epochs": 3, "max_generation_new_tokens": 12,
                           "sdm_exemplar_dimension": 32},
              "verifier": {"sdm_epochs": 3, "sdm_exemplar_dimension": 32}, "eval": {"max_new_tokens": 12}}
    (work / "own.json").write_text(json.dumps(config))
    res = run("replicate", "--config", work / "own.json", "--output", work / "replicate")
    check("replicate over a task file exits 0", res.returncode == 0, res.stderr[-800:])
    rep = work / "replicate"
    check("replicate's split is data split's (same file, sizes, seed)",
          (rep / "data" / "test.jsonl").exists() and (rep / "data" / "test.jsonl").read_bytes() == (work / "data" / "test.jsonl").read_bytes())
    check("replicate passes the reward to every stage",
          all(json.loads((rep / "runs" / r / "config.json").read_text()).get("reward") == "tag:answer" for r in ("ft-cm", "sdm-ft-cm-hn"))
          and json.loads((rep / "runs" / "ft-cm" / "verifier" / "verifier.json").read_text()).get("reward") == "tag:answer",
          sorted(p.name for p in (rep / "runs").glob("*")) if (rep / "runs").exists() else None)
    tables = json.loads((rep / "report" / "tables.json").read_text()) if (rep / "report" / "tables.json").exists() else {}
    check("replicate's tables hold the test split of both variants",
          sorted((r["model"], r["dataset"]) for r in tables.get("results", [])) == [("FT(CM)", "test"), ("SDM+FT(CM+HN)", "test")],
          tables.get("results"))

    # ---- the TRL preference layout and chat messages ----
    for layout in ("preference", "messages"):
        gen(work / f"{layout}.jsonl", "--count", 60, "--seed", 4, "--layout", layout)
        run("data", "split", "--input", work / f"{layout}.jsonl", "--output", work / f"data-{layout}", "--calibration_size", 12,
            "--test_size", 8).check_returncode()
        res = run("finetune", "--model", work / "base", "--data", work / f"data-{layout}", "--loss", "ce", "--epochs", 1,
                  "--batch_size", 8, "--max_generation_new_tokens", 8, "--output", work / f"run-{layout}")
        check(f"finetune on the {layout} layout exits 0", res.returncode == 0, res.stderr[-800:])
        config = json.loads((work / f"run-{layout}" / "config.json").read_text())
        check(f"{layout}: default reward exact", config.get("reward") == "exact", config.get("reward"))

    # ---- a post-hoc verifier from labeled responses ----
    rng = random.Random(5)
    good = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    bad = ["xray", "yankee", "zulu", "whiskey", "victor", "uniform"]

    def labeled_row(i):
        label = rng.random() < 0.5
        # Twelve words: with a random (untrained) LM the response must be long enough to move the
        # mean-pooled feature (four words were measured too few: training accuracy 0.56).
        words = [rng.choice(good if label else bad) for _ in range(12)]
        return {"id": f"l{i}", "prompt": "Say words.", "response": " ".join(words), "label": int(label)}

    labeled = [labeled_row(i) for i in range(700)]
    (work / "labeled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labeled[:500]))
    (work / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labeled[500:]))
    far = [{"id": f"far{i}", "prompt": "Say words.", "response": "".join(rng.choice("0123456789+-*/") for _ in range(40))}
           for i in range(100)]
    (work / "far.jsonl").write_text("".join(json.dumps(r) + "\n" for r in far))
    res = run("verifier", "train", "--model", work / "base", "--labeled", work / "labeled.jsonl", "--sdm_epochs", 60,
              "--sdm_exemplar_dimension", 100, "--sdm_learning_rate", "1e-3", "--output", work / "posthoc")  # 1.1 s fit
    check("verifier train --labeled exits 0", res.returncode == 0, res.stderr[-800:])
    sidecar = json.loads((work / "posthoc" / "verifier.json").read_text()) if res.returncode == 0 else {}
    check("the labeled sidecar says where it came from", sidecar.get("source") == "labeled" and sidecar.get("documents") == 500)
    for name in ("heldout", "far"):
        run("verify", "--model", work / "base", "--verifier", work / "posthoc", "--input", work / f"{name}.jsonl",
            "--output", work / f"{name}-verdicts.jsonl").check_returncode()
    held = rows(work / "heldout-verdicts.jsonl")
    admitted = [v for v in held if v["high_reliability"]]
    accuracy = sum(v["prediction"] == v["label"] for v in admitted) / max(1, len(admitted))
    print(f"     post-hoc verifier: {len(admitted)} of {len(held)} held-out rows in the HR region, accuracy {accuracy:.3f}")
    check("post-hoc HR region non-empty with accuracy >= 0.93", len(admitted) > 0 and accuracy >= 0.93, (len(admitted), accuracy))
    far_admitted = sum(v["high_reliability"] for v in rows(work / "far-verdicts.jsonl"))
    check("far-off rows rejected (>= 95% outside the HR region)", far_admitted <= 5, far_admitted)

    # ---- bad input: exit 3 naming file, line and field; nothing written ----
    def bad_split(name, line, expect):
        path = work / f"{name}.jsonl"
        good_line = json.dumps({"prompt": "p1", "positive": "a"})
        path.write_text(good_line + "\n" + line + "\n")
        res = run("data", "split", "--input", path, "--output", work / f"out-{name}")
        check(f"bad task file ({name}) exits 3 naming {name}.jsonl:2 and {expect}",
              res.returncode == 3 and f"{name}.jsonl:2" in res.stderr and expect in res.stderr
              and not (work / f"out-{name}").exists(), res.stderr[-300:])

    bad_split("no_prompt", json.dumps({"positive": "b"}), "prompt")
    bad_split("no_positive", json.dumps({"prompt": "p2"}), "positive")
    bad_split("empty_prompt", json.dumps({"prompt": " ", "positive": "b"}), "prompt")
    bad_split("duplicate_id", json.dumps({"prompt": "p1", "positive": "a"}), "id")
    (work / "bad_label.jsonl").write_text(json.dumps({"prompt": "p", "response": "r", "label": 1}) + "\n" +
                                          json.dumps({"prompt": "q", "response": "r", "label": 2}) + "\n")
    res = run("verify", "--model", work / "base", "--verifier", work / "posthoc", "--input", work / "bad_label.jsonl",
              "--output", work / "bad_label_out.jsonl")
    check("a label not 0/1 exits 3 naming file:line and field", res.returncode == 3 and "bad_label.jsonl:2" in res.stderr
          and "label" in res.stderr and not (work / "bad_label_out.jsonl").exists(), res.stderr[-300:])
    for name, program, expect in (("crash", "exit 3", "exit"), ("junk", "while read l; do echo maybe; done", "maybe")):
        res = run("eval", "--model", work / "run", "--input", f"test={work / 'data' / 'test.jsonl'}", "--max_new_tokens", 4,
                  "--reward", f"command:{program}", "--output", work / f"eval-{name}")
        check(f"a reward program that {'crashes' if name == 'crash' else 'prints junk'} exits 3 naming the record",
              res.returncode == 3 and expect in res.stderr and "record" in res.stderr and not (work / f"eval-{name}").exists(),
              res.stderr[-300:])
    res = run("eval", "--model", work / "run", "--input", work / "data" / "test.jsonl", "--reward", "fuzzy",
              "--output", work / "eval-fuzzy")
    check("an unknown --reward is a usage error naming the choices", res.returncode == 2 and "unknown --reward" in res.stderr
          and not (work / "eval-fuzzy").exists(), res.stderr[-300:])

    print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
