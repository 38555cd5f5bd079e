#!/usr/bin/env python3
"""How well a base model's language knowledge alone orders the scrambled suffix: for each record of
a word-ordering split, score every distinct ordering of the last three words by the model's
log-likelihood of the plain sentence (BOS + sentence + EOS, as `sdmlm pretrain` trains it) and count
how often the reference ordering wins (ties: the first in itertools.permutations order). This is a
ceiling on the ordering part of the task (copying is not tested) and a cheap check of a base model
before any fine-tuning. Loads the model with transformers from its Hugging Face directory.

Usage: ordering_ceiling.py MODEL_DIR SPLIT.jsonl [--limit N]
"""
import argparse
import itertools
import json

import sentencepiece
import torch
import transformers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("split")
    ap.add_argument("--limit", type=int, default=500)
    a = ap.parse_args()
    torch.manual_seed(0)
    sp = sentencepiece.SentencePieceProcessor(model_file=f"{a.model}/tokenizer.model")  # sdmlm's own tokenizer
    config = json.load(open(f"{a.model}/config.json"))
    bos, eos, pad = config["bos_token_id"], config["eos_token_id"], config.get("pad_token_id") or 0
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    records = [json.loads(line) for line in open(a.split)][: a.limit]
    right = total = 0
    by_distinct = {}
    for r in records:
        words = r["original_document"].split()
        head, tail = words[:-3], words[-3:]
        candidates = []
        for perm in itertools.permutations(tail):
            s = " ".join(head + list(perm))
            if s not in candidates:
                candidates.append(s)
        ids = [[bos] + sp.encode(c) + [eos] for c in candidates]
        width = max(len(x) for x in ids)
        batch = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        with torch.no_grad():
            logits = model(input_ids=batch, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch[:, 1:, None])[..., 0] * mask[:, 1:]
        best = int(logp.sum(-1).argmax())
        hit = candidates[best] == r["original_document"]
        right += hit
        total += 1
        k = len(candidates)
        by_distinct.setdefault(k, [0, 0])
        by_distinct[k][0] += hit
        by_distinct[k][1] += 1
    print(json.dumps({"model": a.model, "split": a.split, "records": total, "ordering_accuracy": right / max(1, total),
                      "by_distinct_orderings": {str(k): {"right": v[0], "of": v[1]} for k, v in sorted(by_distinct.items())}}))


if __name__ == "__main__":
    main()
