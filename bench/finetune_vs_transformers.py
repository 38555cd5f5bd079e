#!/usr/bin/env python3
"""Whole-run benchmark: sdmlm fine-tuning vs a transformers training loop on the same CPU, the same
model files, the same batches and CONTRASTIVE-MASKING labels, in one invocation; and hard-negative
generation (sdmlm's batched KV-cache greedy decoding used inside training) vs transformers'
`generate` on the same prompts, batch size and token budget.

Models: the `tiny` and `small` presets of `sdmlm model init` with a tokenizer trained on WordNet
sentences; documents: word-ordering records (positive and static-negative responses alternating).
The peer loop is the standard one: model(input_ids, attention_mask, labels) (logits at every
position), loss.backward(), torch.optim.AdamW.step(). Both use the machine's threads.
Usage (repository root): .venv/bin/python bench/finetune_vs_transformers.py [--presets tiny,small]
    [--steps 10] [--batch 16] [--workdir /tmp/sdm_ft_bench] [--json bench/results/finetune_vs_transformers.json]
"""
import argparse
import json
import pathlib
import subprocess
import time

import torch
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[1]


def setup(workdir, preset):
    sdmlm = ROOT / "build" / "sdmlm"
    data = workdir / "data"
    if not data.exists():
        subprocess.run([sdmlm, "data", "wordorder", "--sentences", "wordnet", "--output", data], check=True, capture_output=True)
        subprocess.run([sdmlm, "tokenizer", "train", "--input", data / "remaining.txt", "--output", workdir / "tok"],
                       check=True, capture_output=True)
    model = workdir / preset
    if not model.exists():
        subprocess.run([sdmlm, "model", "init", "--preset", preset, "--tokenizer", workdir / "tok", "--output", model],
                       check=True, capture_output=True)
    docs = workdir / "docs.jsonl"
    if not docs.exists():
        records = [json.loads(l) for l in (data / "train.jsonl").read_text().splitlines()[:64]]
        with open(docs, "w") as f:
            for i, r in enumerate(records):
                response = r["genai_document"] + "\n\n" if i % 2 == 0 else r["default_negative"] + "\n\n"
                f.write(json.dumps({"prompt": r["prompt"], "response": response}) + "\n")
    return model, docs


def transformers_train(model_dir, encodings, pad, steps, batch):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    seconds, tokens = 0.0, 0
    for s in range(steps + 1):
        chunk = [encodings[(s * batch + i) % len(encodings)] for i in range(batch)]
        start = time.perf_counter()
        T = max(len(e["ids"]) for e in chunk)
        ids = torch.full((batch, T), pad, dtype=torch.long)
        mask = torch.zeros((batch, T), dtype=torch.long)
        labels = torch.full((batch, T), -100, dtype=torch.long)
        for i, e in enumerate(chunk):
            n = len(e["ids"])
            ids[i, :n] = torch.tensor(e["ids"])
            mask[i, :n] = 1
            labels[i, e["mask_until"]:n] = ids[i, e["mask_until"]:n]
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if s > 0:
            seconds += time.perf_counter() - start
            tokens += ids.numel()
    return tokens / seconds


def transformers_generate(model_dir, encodings, pad, stop_ids, gen_batch, new_tokens):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = [e["prompt_ids"] for e in encodings]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # as sdmlm: similar lengths together
    start = time.perf_counter()
    generated = 0
    with torch.no_grad():
        for b in range(0, len(order), gen_batch):
            chunk = [prompts[i] for i in order[b:b + gen_batch]]
            T = max(map(len, chunk))
            ids = torch.full((len(chunk), T), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), T), dtype=torch.long)
            for i, p in enumerate(chunk):
                ids[i, T - len(p):] = torch.tensor(p)
                mask[i, T - len(p):] = 1
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                                 eos_token_id=stop_ids, pad_token_id=pad)
            generated += int((out[:, T:] != pad).sum())
    return time.perf_counter() - start, generated


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--gen_batch", type=int, default=32)
    ap.add_argument("--new_tokens", type=int, default=32)
    ap.add_argument("--workdir", default="/tmp/sdm_ft_bench")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "finetune_vs_transformers.json"))
    args = ap.parse_args()
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for preset in args.presets.split(","):
        model, docs = setup(workdir, preset)
        out = workdir / f"sdmlm_{preset}.json"
        subprocess.run([ROOT / "build" / "bench_finetune", model, docs, out, str(args.steps), str(args.batch),
                        str(args.gen_batch), str(args.new_tokens)], check=True)
        ours = json.loads(out.read_text())
        theirs_train = transformers_train(model, ours["encodings"], ours["pad_id"], args.steps, args.batch)
        gen_seconds, gen_tokens = transformers_generate(model, ours["encodings"], ours["pad_id"], ours["stop_ids"],
                                                        args.gen_batch, args.new_tokens)
        row = {"preset": preset, "threads": torch.get_num_threads(), "documents": len(ours["encodings"]),
               "sdmlm_train_tokens_per_s": ours["train_tokens_per_second"], "transformers_train_tokens_per_s": theirs_train,
               "train_ratio": ours["train_tokens_per_second"] / theirs_train,
               "sdmlm_generation_s": ours["generation_seconds"], "transformers_generation_s": gen_seconds,
               "generation_ratio": gen_seconds / ours["generation_seconds"],
               "sdmlm_generated_tokens": ours["generated_tokens"], "transformers_generated_tokens": gen_tokens}
        print(json.dumps(row))
        rows.append(row)
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    md = ["| preset | train tok/s sdmlm | transformers | ratio | generation s sdmlm | transformers | ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['preset']} | {r['sdmlm_train_tokens_per_s']:.0f} | {r['transformers_train_tokens_per_s']:.0f} | "
                  f"{r['train_ratio']:.2f}x | {r['sdmlm_generation_s']:.2f} | {r['transformers_generation_s']:.2f} | {r['generation_ratio']:.2f}x |")
    pathlib.Path(args.json).with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
