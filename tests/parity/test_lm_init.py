#!/usr/bin/env python3
"""`sdmlm model init` writes models that transformers loads with no missing or unexpected weights,
and whose greedy generations (sdmlm CLI vs transformers) are identical, for both architectures.
Usage: test_lm_init.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import shutil
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    failures = 0
    prompt = [5, 17, 99, 3, 250, 8]
    for arch in ("llama", "phi3"):
        out = work / arch
        subprocess.run([binary, "model", "init", "--arch", arch, "--preset", "tiny", "--vocab_size", "300", "--seed", "7",
                        "--output", str(out)], check=True)
        model, info = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, output_loading_info=True)
        problems = {key: value for key, value in info.items() if value}
        with torch.no_grad():
            theirs = model.generate(input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=8, min_new_tokens=8,
                                    pad_token_id=0)[0, len(prompt):].tolist()
        result = subprocess.run([binary, "generate", "--model", str(out), "--prompt_ids", ",".join(map(str, prompt)),
                                 "--max_new_tokens", "8", "--format", "json"], check=True, capture_output=True, text=True)
        ours = json.loads(result.stdout)["generated_ids"]
        ok = not problems and ours == theirs
        print(f"{arch}: loading problems {problems or 'none'}; greedy sdmlm {ours} transformers {theirs}: {'ok' if ok else 'FAIL'}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
