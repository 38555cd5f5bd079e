#!/usr/bin/env python3
"""sdmlm-save → transformers-load: each tiny fixture model is written by `sdmlm model convert` and
loaded by transformers, whose logits must equal the original model's (max abs difference 0 for
float32; the weights are copied bit for bit).
Usage: test_lm_roundtrip.py SDMLM_BINARY FIXTURES_DIR WORKDIR
"""
import pathlib
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main() -> int:
    binary, fixtures, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    failures = 0
    for name in ("llama", "qwen2", "phi3"):
        out = work / name
        subprocess.run([binary, "model", "convert", "--model", str(fixtures / name), "--output", str(out)], check=True)
        golden = load_file(str(fixtures / name / "golden.safetensors"))
        model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = model(input_ids=golden["ids"]).logits
        difference = (logits - golden["plain.logits"]).abs().max().item()
        print(f"{name}: sdmlm-saved model loaded by transformers, max |logit difference| = {difference:.3g}")
        failures += difference > 1e-6
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
