#!/usr/bin/env python3
"""One fine-tuning micro-batch against the references, on tiny Llama and Phi-3 models made by sdmlm:
* CONTRASTIVE-MASKING boundaries equal docs/reference.md §5.3's rule (decode the full sequence, find
  the final `<verified>No</verified>` or the last `<|assistant|>`, re-tokenise the prefix with the
  PyPI `sentencepiece`) on golden documents: positive, static, tag-corrupted, generated and
  repeated-label negatives; the ids equal sentencepiece's encoding of the rendered chat text.
* The masked cross-entropy and every parameter gradient equal `transformers` (labels −100) within
  1e-4; the SDM loss with per-document β equals −(1/ln β)·log_softmax(ln β·z)[label] computed on
  transformers' logits within 1e-4.
Usage: test_finetune_parity.py SDMLM_BINARY DUMP_BINARY WORKDIR
"""
import json
import pathlib
import random
import shutil
import subprocess
import sys

import sentencepiece
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

SYSTEM = "You are a helpful AI assistant."
TOLERANCE = 1e-4


def format_malformed(g):  # reference §5.5
    t = g.strip()
    if t.endswith("<verified>No</verified>"):
        return t + "\n\n"
    if t.endswith("<verified>Yes</verified>"):
        return t[: -len("<verified>Yes</verified>")] + "<verified>No</verified>\n\n"
    return t + "\n<verified>No</verified>\n\n"


def render(prompt, response):  # reference §5.1, Phi-3.5 template without the generation prompt
    return f"<|system|>\n{SYSTEM}<|end|>\n<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>\n<|endoftext|>"


def reference_mask(sp, ids, response):  # reference §5.3 as the research code does it
    full = sp.decode(ids)
    if "<verified>No</verified>" in response:
        p = response.rfind("<verified>No</verified>")
        anchor = response[:p] + "<verified>No</verified>"
        prefix = full[: full.rfind(anchor) + p]
    else:
        prefix = full[: full.rfind("<|assistant|>") + len("<|assistant|>")]
    return len(sp.encode(prefix))


def documents(records):
    rng = random.Random(5)
    docs = []
    for i, r in enumerate(records[:6]):
        sentence = r["original_document"]
        kinds = [
            f"<sentence>{sentence}</sentence>\n<verified>Yes</verified>\n\n",          # positive
            format_malformed(r["default_negative"]),                                    # static negative
            format_malformed(f"{sentence} <sentence>{sentence[::-1]}</sentence>\n<verified>Yes</verified>"),
            format_malformed("some words <verified>No</verified> then more"),           # generated junk
            format_malformed(f"<sentence>a</sentence>\n<verified>No</verified>\n<sentence>b</sentence>\n<verified>No</verified>"),
        ]
        docs.append({"prompt": r["prompt"], "response": kinds[i % len(kinds)], "beta": 2.0 + rng.random()})
    return docs


def main() -> int:
    binary, dump, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8))) for _ in range(800)]
    corpus = work / "sentences.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) + "."
                                for _ in range(1500)) + "\n")
    subprocess.run([binary, "data", "wordorder", "--sentences", str(corpus), "--output", str(work / "data"),
                    "--training_size", "40", "--calibration_size", "20", "--test_size", "20", "--shifted_size", "20"],
                   check=True, capture_output=True)
    subprocess.run([binary, "tokenizer", "train", "--input", str(corpus), "--vocab_size", "700", "--output",
                    str(work / "tok")], check=True, capture_output=True)
    records = [json.loads(line) for line in (work / "data" / "train.jsonl").read_text().splitlines()]
    docs = documents(records)
    with open(work / "docs.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    sp = sentencepiece.SentencePieceProcessor(model_file=str(work / "tok" / "tokenizer.model"))
    verified_id = sp.piece_to_id("<verified>")
    failures = []
    for arch in ("llama", "phi3"):
        model_dir = work / arch
        subprocess.run([binary, "model", "init", "--arch", arch, "--tokenizer", str(work / "tok"), "--output",
                        str(model_dir), "--seed", "1"], check=True, capture_output=True)
        subprocess.run([dump, str(model_dir), str(work / "docs.jsonl"), str(work / f"dump_{arch}")], check=True)
        result = json.loads((work / f"dump_{arch}" / "encodings.json").read_text())
        for d, enc in zip(docs, result["encodings"]):
            ids = enc["ids"]
            if ids != sp.encode(render(d["prompt"], d["response"])):
                failures.append(f"{arch}: ids differ from sentencepiece for {d['response']!r}")
            m = reference_mask(sp, ids, d["response"])
            if enc["mask_until"] != m:
                failures.append(f"{arch}: mask boundary {enc['mask_until']} != reference {m} for {d['response']!r}")
            last = max(i for i, t in enumerate(ids) if t == verified_id)
            if enc["verified"] != last:
                failures.append(f"{arch}: verified token {enc['verified']} != {last}")
        # transformers: the same batch, right-padded, labels −100 on the mask and the padding.
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        T = max(len(e["ids"]) for e in result["encodings"])
        pad = result["pad_id"]
        ids = torch.full((len(docs), T), pad, dtype=torch.long)
        mask = torch.zeros((len(docs), T), dtype=torch.long)
        labels = torch.full((len(docs), T), -100, dtype=torch.long)
        for i, e in enumerate(result["encodings"]):
            n = len(e["ids"])
            ids[i, :n] = torch.tensor(e["ids"])
            mask[i, :n] = 1
            labels[i, e["mask_until"]:n] = ids[i, e["mask_until"]:n]
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        if abs(out.loss.item() - result["ce_loss"]) > TOLERANCE:
            failures.append(f"{arch}: CE loss {result['ce_loss']} != transformers {out.loss.item()}")
        grads = load_file(str(work / f"dump_{arch}" / "grads.safetensors"))
        worst = 0.0
        for name, p in model.named_parameters():
            if name not in grads:
                failures.append(f"{arch}: no gradient for {name}")
                continue
            worst = max(worst, (p.grad - grads[name]).abs().max().item())
        if worst > TOLERANCE:
            failures.append(f"{arch}: largest gradient difference {worst:.3g}")
        with torch.no_grad():
            z = out.logits[:, :-1].float()
            target = labels[:, 1:]
            keep = target != -100
            beta = torch.tensor([d["beta"] for d in docs]).log()[:, None].expand_as(target)
            logp = torch.log_softmax(z * beta[..., None], -1).gather(-1, target.clamp(min=0)[..., None])[..., 0]
            sdm = (-(logp / beta))[keep].mean().item()
        if abs(sdm - result["sdm_loss"]) > TOLERANCE:
            failures.append(f"{arch}: SDM loss {result['sdm_loss']} != reference {sdm}")
        print(f"{arch}: CE {result['ce_loss']:.6f} vs {out.loss.item():.6f}; SDM {result['sdm_loss']:.6f} vs {sdm:.6f};"
              f" max |grad diff| {worst:.2e}; {len(docs)} documents, {result['loss_tokens']} loss tokens")
    for failure in failures:
        print("FAIL: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
