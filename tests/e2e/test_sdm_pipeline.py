#!/usr/bin/env python3
"""The whole SDM-LM pipeline at a tiny scale through the CLI (`sdmlm demo --config tiny`): data, base
model (tokenizer, init, pretraining; cached), base + FT(CM) + SDM+FT(CM+HN), verifiers, decodes and the
tables. Checks the files and fields each stage promises, that a rerun continues instead of redoing
work, that a verifier refuses another model (exit 3), and verified generation's output.
The numbers at this scale mean nothing; the demo (label slow) is the science.
Usage: test_sdm_pipeline.py SDMLM_BINARY WORKDIR
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, SDMLM_CACHE=str(work / "cache"))
    out = work / "run"
    t0 = time.time()
    res = subprocess.run([binary, "demo", "--config", "tiny", "--output", str(out), "--quiet"], env=env,
                         capture_output=True, text=True)
    first = time.time() - t0
    check("demo exits 0", res.returncode == 0, res.stderr[-2000:])
    if res.returncode != 0:
        return 1
    check("stdout is the report path", res.stdout.strip() == str(out / "report" / "report.html"), res.stdout)
    for f in ("tables.json", "tables.md", "tables.tex", "report.html"):
        check(f"report/{f} written", (out / "report" / f).stat().st_size > 0)
    tables = json.loads((out / "report" / "tables.json").read_text())
    rows = tables["results"]
    check("3 models x 2 datasets", sorted((r["dataset"], r["model"]) for r in rows) == sorted(
        (d, m) for d in ("test", "shifted") for m in ("base", "FT(CM)", "SDM+FT(CM+HN)")), str([(r["dataset"], r["model"]) for r in rows]))
    for key in ("hr_accuracy", "hr_proportion", "sentence_accuracy", "exact_match_accuracy", "table4"):
        check(f"tables.json has {key}", all(key in r for r in rows))
    html = (out / "report" / "report.html").read_text()
    check("HTML has SVG plots", html.count("<svg") >= 6, str(html.count("<svg")))
    summary = json.loads((out / "summary.json").read_text())
    check("cost breakdown", "SDM+FT(CM+HN) / FT(CM)" in summary["wall_time_ratios"]
          and {"lm_steps", "sdm_fits", "features", "generation"} <= set(summary["cost"]["SDM+FT(CM+HN)"]["finetune_breakdown"]),
          json.dumps(summary["cost"])[:500])
    sdm_run = out / "runs" / "sdm-ft-cm-hn"
    for f in ("config.json", "metrics.jsonl", "best/config.json", "final/model.safetensors", "summary.json",
              "verifier/verifier.json", "verifier/estimator.sdmkitmodel/manifest.json", "eval/predictions-test.jsonl"):
        check(f"sdm run has {f}", (sdm_run / f).exists())
    metrics = [json.loads(l) for l in (sdm_run / "metrics.jsonl").read_text().splitlines()]
    check("metrics: steps, evals and SDM layers", {"step", "eval", "sdm_layer"} <= {m["type"] for m in metrics})
    check("hard negatives generated in epoch 2", sum(m.get("generated", 0) for m in metrics if m["type"] == "step") > 0)
    preds = [json.loads(l) for l in (sdm_run / "eval" / "predictions-test.jsonl").read_text().splitlines()]
    check("predictions: one per test record", len(preds) == len((out / "data" / "test.jsonl").read_text().splitlines()))
    check("predictions carry verifier fields", all({"prediction", "sdm", "q", "d", "qPrime", "centroidRegionAlpha", "lowerRegionAlpha", "high_reliability", "label"} <= set(p) for p in preds))

    # A rerun finds every stage complete.
    t0 = time.time()
    res = subprocess.run([binary, "demo", "--config", "tiny", "--output", str(out), "--quiet"], env=env, capture_output=True, text=True)
    again = time.time() - t0
    check("rerun continues (no stage redone)", res.returncode == 0 and "fine-tuning" not in res.stderr and again < first / 2,
          f"{again:.1f}s vs {first:.1f}s; {res.stderr[-500:]}")

    # A shipped base model: scripts/ship_base.py copies the cached one to models/NAME with a SHA-256
    # manifest; with an empty cache the run uses it (checked), a damaged file is exit 3 naming it, and
    # --rebuild_base pretrains anew whatever is shipped.
    cached = sorted((work / "cache").glob("base-*"))
    check("one cached base model with recipe.json", len(cached) == 1 and (cached[0] / "recipe.json").exists(), str(cached))
    models = work / "models"
    script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "ship_base.py"
    res = subprocess.run([sys.executable, str(script), str(cached[0]), str(models / "tiny-base")], capture_output=True, text=True)
    check("ship_base.py exits 0", res.returncode == 0, res.stderr)
    manifest = json.loads((models / "tiny-base" / "manifest.json").read_text())
    check("manifest: key, commands, digests", manifest["cache_key"] in cached[0].name and len(manifest["commands"]) == 4
          and {"model.safetensors", "pretrain.json", "config.json"} <= set(manifest["files"]), json.dumps(manifest)[:400])
    # The tiny config inherits the cpu scale's tokenizer and loss settings; the recorded commands carry them.
    check("manifest: commands carry --whitespace_token and --loss_on answer",
          "--whitespace_token" in manifest["commands"][1] and "--loss_on answer" in manifest["commands"][3],
          json.dumps(manifest["commands"]))
    shipped_env = dict(os.environ, SDMLM_CACHE=str(work / "cache2"), SDMLM_MODELS=str(models))
    res = subprocess.run([binary, "demo", "--config", "tiny", "--output", str(out), "--quiet"], env=shipped_env,
                         capture_output=True, text=True)
    check("empty cache: the shipped base is used", res.returncode == 0 and "shipped at" in res.stderr
          and "pretraining" not in res.stderr, res.stderr[-800:])
    weights = models / "tiny-base" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    res = subprocess.run([binary, "demo", "--config", "tiny", "--output", str(out), "--quiet"], env=shipped_env,
                         capture_output=True, text=True)
    check("damaged shipped base: exit 3 naming the file", res.returncode == 3 and "model.safetensors" in res.stderr
          and "SHA-256" in res.stderr, f"{res.returncode}: {res.stderr[-800:]}")
    res = subprocess.run([binary, "demo", "--config", "tiny", "--output", str(out), "--quiet", "--rebuild_base"],
                         env=shipped_env, capture_output=True, text=True)
    check("--rebuild_base pretrains instead", res.returncode == 0 and "pretraining" in res.stderr
          and (work / "cache2").exists() and any((work / "cache2").glob("base-*")), res.stderr[-800:])

    # A verifier refuses a model it was not trained for.
    res = subprocess.run([binary, "generate", "--model", str(out / "runs" / "ft-cm" / "best"), "--verifier",
                          str(sdm_run / "verifier"), "--prompt", "x"], capture_output=True, text=True)
    check("verifier paired with another model exits 3", res.returncode == 3 and "trained for the model" in res.stderr, res.stderr)

    # Verified generation: the label is force-decoded from the estimator.
    prompt = json.loads((out / "data" / "test.jsonl").read_text().splitlines()[0])["prompt"]
    res = subprocess.run([binary, "generate", "--model", str(sdm_run), "--verifier", str(sdm_run / "verifier"), "--prompt",
                          prompt, "--format", "json", "--max_new_tokens", "24", "--search_depth", "2"], capture_output=True, text=True)
    check("verified generation exits 0", res.returncode == 0, res.stderr[-800:])
    if res.returncode == 0:
        row = json.loads(res.stdout)
        forced = "Yes</verified>" if row["verified"] == "Yes" else "No</verified>"
        check("response ends with the estimator's label", row["response"].endswith("<verified>" + forced), row["response"])
        check("verified output fields", {"prediction", "verified", "sdm", "q", "d", "qPrime", "centroidRegionAlpha",
                                         "lowerRegionAlpha", "high_reliability", "accepted", "attempts",
                                         "nearestSupportMatches"} <= set(row)
              and not {"q_prime", "centroid_region_alpha", "nearest_exemplars"} & set(row))
        check("search depth bounds attempts", 1 <= row["attempts"] <= 3)
    print(f"first run {first:.1f}s, rerun {again:.1f}s; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
