#!/usr/bin/env python3
"""Classify the greedy decodes of `sdmlm eval` (predictions-NAME.jsonl) on word-ordering data.

Default classes: exact / right sentence, wrong tags / prefix miscopied / right words, wrong order /
suffix words not reproduced, with two examples of each failure.

With `--slots SPLIT.jsonl` (the split the predictions were decoded from, for its `multiset` field)
the decodes whose prefix is right are classed instead by the first suffix slot (1–3) that differs
from the reference, and by what was written there: another remaining multiset word (an ordering
error), a used word repeated, a partial or over-long remaining word, a word of the prefix, a word not
in the prompt (a copying error), or nothing (the sentence stopped).

Usage: failures.py PREDICTIONS.jsonl [...] [--slots SPLIT.jsonl]
"""
import argparse
import collections
import json
import re


def sentence_of(generation):
    m = re.search(r"<sentence>(.*?)</sentence>", generation, re.S)
    return (m.group(1) if m else generation.strip().split("\n")[0].replace("<sentence>", "")).strip()


def classify(ref, gen):
    g = gen.strip()
    if g == f"<sentence>{ref}</sentence>\n<verified>Yes</verified>":
        return "exact"
    body = sentence_of(g)
    rw, bw = ref.split(), body.split()
    if body == ref:
        return "right sentence, wrong tags"
    pre = rw[:-3]
    if bw[:len(pre)] != pre:
        return "prefix miscopied"
    if sorted(bw[len(pre):]) == sorted(rw[-3:]):
        return "right words, wrong order"
    return "suffix words not reproduced"


def classify_slot(ref, gen, multiset):
    o, g = ref.split(), sentence_of(gen).split()
    if g == o:
        return "right sentence"
    pre = o[:-3]
    if g[:len(pre)] != pre:
        return "prefix miscopied"
    remaining = list(multiset.split())
    suffix = g[len(pre):]
    for i in range(3):
        slot = f"slot {i + 1}: "
        if i >= len(suffix):
            return slot + "stopped"
        w = suffix[i]
        if w == o[len(pre) + i]:
            if w in remaining:
                remaining.remove(w)
            continue
        if w in remaining:
            return slot + "another remaining word (order)"
        if w in multiset.split():
            return slot + "a used word repeated"
        if any(r.startswith(w) or w.startswith(r) for r in remaining):
            return slot + "partial / over-long remaining word"
        if w in pre:
            return slot + "a prefix word"
        return slot + "a word not in the prompt (copy)"
    return "extra words after the suffix"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("predictions", nargs="+")
    ap.add_argument("--slots", help="the split file (for each record's multiset)")
    a = ap.parse_args()
    multisets = {}
    if a.slots:
        for line in open(a.slots):
            r = json.loads(line)
            multisets[r["id"]] = r["multiset"]
    for path in a.predictions:
        c = collections.Counter()
        ex = collections.defaultdict(list)
        for line in open(path):
            r = json.loads(line)
            if a.slots:
                k = classify_slot(r["original_document"], r["generated_response"], multisets[r["id"]])
            else:
                k = classify(r["original_document"], r["generated_response"])
            c[k] += 1
            if len(ex[k]) < 2:
                ex[k].append((r["original_document"], r["generated_response"][:200]))
        n = sum(c.values())
        print(path, n)
        for k, v in sorted(c.items()):
            print(f"  {k:44s} {v:4d} {v / n:.3f}")
        for k in ex:
            if k not in ("exact", "right sentence"):
                for ref, gen in ex[k]:
                    print("   ", k, "|", ref, "|", repr(gen))


if __name__ == "__main__":
    main()
