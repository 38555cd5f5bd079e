#!/usr/bin/env python3
"""A small task of one's own in sdmlm's task layout: two-number additions answered in an
<answer> tag, seeded. Nothing in sdmlm special-cases it; it exercises the general path
(data split → finetune → verifier train → eval → verify) with `--reward exact` or `tag:answer`.

Usage: arithmetic_task.py OUTPUT.jsonl [--count N] [--seed S] [--layout task|preference|messages]
  task:        {"prompt", "positive", "negatives"}        (negatives: a near-miss answer)
  preference:  {"prompt", "chosen", "rejected"}           (the TRL / DPO layout)
  messages:    {"messages": [system, user], "positive"}   (chat turns as given)
"""
import argparse
import json
import random


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("output")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=["task", "preference", "messages"], default="task")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seen = set()
    with open(args.output, "w", encoding="utf-8") as out:
        while len(seen) < args.count:
            a, b = rng.randint(0, 49), rng.randint(0, 49)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            prompt = f"What is {a} plus {b}? Reply with the number in <answer></answer> tags."
            positive = f"<answer>{a + b}</answer>"
            wrong = f"<answer>{a + b + rng.choice([-2, -1, 1, 2, 10])}</answer>"
            if args.layout == "task":
                row = {"prompt": prompt, "positive": positive, "negatives": [wrong], "metadata": {"a": a, "b": b}}
            elif args.layout == "preference":
                row = {"prompt": prompt, "chosen": positive, "rejected": wrong}
            else:
                row = {"messages": [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": prompt}],
                       "positive": positive}
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
