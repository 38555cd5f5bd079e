#!/usr/bin/env python3
"""Bring-your-own-model: the own-task pipeline (data split, finetune --loss sdm with online hard
negatives, verifier train, eval, verify, verifier train --labeled) on tiny random Hugging Face
Qwen2 and Llama 3 directories with their real tokenizers and chat templates
(scripts/ref/make_tiny_chat_models.py). Prompts must be rendered by each model's own template: the
verifier's sidecar names the family, and the sequences the verifier scores begin with the
template's markers (checked through `sdmlm generate --chat` of the same prompt).
Usage: test_own_model.py SDMLM_BINARY TINY_CHAT_MODELS_DIR WORKDIR
"""
import json
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "examples" / "arithmetic_task.py"
FAMILY_CODE = {"chatml": 2, "llama3": 1}  # sdmlm::ChatFamily values recorded in verifier.json
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def rows(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def main() -> int:
    binary, models, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    manifest = json.loads((models / "manifest.json").read_text())
    if manifest.get("skip"):
        print("skipped: " + manifest["skip"])
        return 0
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = lambda *a: subprocess.run([binary, *map(str, a)], capture_output=True, text=True)
    subprocess.run([sys.executable, str(GENERATOR), str(work / "task.jsonl"), "--count", "48", "--seed", "9"], check=True)
    run("data", "split", "--input", work / "task.jsonl", "--output", work / "data", "--calibration_size", 16,
        "--test_size", 8).check_returncode()
    small = ["--sdm_epochs", 2, "--sdm_exemplar_dimension", 16]
    for m in manifest["models"]:
        name, model = m["name"], m["dir"]
        out = work / name
        res = run("finetune", "--model", model, "--data", work / "data", "--loss", "sdm", "--epochs", 2, "--batch_size", 8,
                  "--learning_rate", "1e-3", "--hard_negative_probability", 1.0, "--max_generation_new_tokens", 6, *small,
                  "--output", out / "run")
        check(f"{name}: finetune --loss sdm exits 0", res.returncode == 0, res.stderr[-600:])
        metrics = rows(out / "run" / "metrics.jsonl") if res.returncode == 0 else []
        check(f"{name}: online generations happened", sum(x.get("generated", 0) for x in metrics if x["type"] == "step") > 0)
        res = run("verifier", "train", "--model", out / "run", "--data", work / "data", "--reward", "tag:answer",
                  "--max_new_tokens", 6, *small, "--output", out / "verifier")
        check(f"{name}: verifier train exits 0", res.returncode == 0, res.stderr[-600:])
        sidecar = json.loads((out / "verifier" / "verifier.json").read_text()) if res.returncode == 0 else {}
        check(f"{name}: the model's own chat family", sidecar.get("chat_family") == FAMILY_CODE[m["family"]], sidecar.get("chat_family"))
        res = run("eval", "--model", out / "run", "--verifier", out / "verifier", "--input", f"test={work / 'data' / 'test.jsonl'}",
                  "--max_new_tokens", 6, "--output", out / "eval")
        check(f"{name}: eval exits 0", res.returncode == 0, res.stderr[-600:])
        predictions = rows(out / "eval" / "predictions-test.jsonl") if res.returncode == 0 else []
        tests = rows(work / "data" / "test.jsonl")
        with (out / "pairs.jsonl").open("w") as f:
            for p, t in zip(predictions, tests):
                f.write(json.dumps({"id": p["id"], "prompt": t["prompt"], "response": p["generated_response"]}) + "\n")
        res = run("verify", "--model", out / "run", "--verifier", out / "verifier", "--input", out / "pairs.jsonl",
                  "--output", out / "verdicts.jsonl")
        check(f"{name}: verify exits 0", res.returncode == 0, res.stderr[-600:])
        verdicts = rows(out / "verdicts.jsonl") if res.returncode == 0 else []
        check(f"{name}: verify equals eval", len(verdicts) == len(predictions) and
              all(abs(v["sdm"][1] - p["sdm"][1]) < 1e-6 for v, p in zip(verdicts, predictions)))
        # Greedy decode of the same prompt through the chat template equals eval's response.
        res = run("generate", "--model", out / "run" / "best", "--chat", "--system", "You are a helpful AI assistant.",
                  "--prompt", tests[0]["prompt"], "--max_new_tokens", 6, "--format", "json")
        text = json.loads(res.stdout.splitlines()[0])["text"] if res.returncode == 0 else None
        check(f"{name}: eval decoded through the model's chat template (generate --chat agrees)",
              text is not None and predictions and text == predictions[0]["generated_response"],
              (text, predictions[0]["generated_response"] if predictions else None, res.stderr[-300:]))
        labeled = out / "labeled.jsonl"
        labeled.write_text("".join(json.dumps({"prompt": t["prompt"], "response": t["positive"] if i % 2 else t["negatives"][0],
                                               "label": i % 2}) + "\n" for i, t in enumerate(rows(work / "data" / "train.jsonl"))))
        res = run("verifier", "train", "--model", model, "--labeled", labeled, *small, "--output", out / "posthoc")
        check(f"{name}: verifier train --labeled exits 0", res.returncode == 0, res.stderr[-600:])
    print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
