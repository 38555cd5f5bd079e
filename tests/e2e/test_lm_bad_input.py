#!/usr/bin/env python3
"""LM bad input through the CLI: unsupported architecture (the message lists the supported ones),
missing tensor and shape mismatch (the tensor is named), corrupted safetensors, and a prompt longer
than the context all exit 3 with a clear message and no crash.
Usage: test_lm_bad_input.py SDMLM_BINARY FIXTURES_DIR WORKDIR
"""
import json
import pathlib
import shutil
import struct
import subprocess
import sys

from safetensors.torch import load_file, save_file


def main() -> int:
    binary, fixtures, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = fixtures / "llama"

    def variant(name, edit):
        target = work / name
        shutil.copytree(source, target)
        edit(target)
        return target

    def edit_config(key, value):
        def apply(target):
            config = json.loads((target / "config.json").read_text())
            config[key] = value
            (target / "config.json").write_text(json.dumps(config))
        return apply

    def drop_tensor(target):
        tensors = load_file(str(target / "model.safetensors"))
        del tensors["model.layers.1.mlp.down_proj.weight"]
        save_file(tensors, str(target / "model.safetensors"))

    def corrupt_header(target):
        data = bytearray((target / "model.safetensors").read_bytes())
        data[:8] = struct.pack("<Q", len(data) * 4)
        (target / "model.safetensors").write_bytes(bytes(data))

    cases = [
        ("architecture", ["model", "inspect", "--model", variant("arch", edit_config("architectures", ["GPT2LMHeadModel"]))],
         "supported: LlamaForCausalLM"),
        ("missing_tensor", ["model", "inspect", "--model", variant("missing", drop_tensor)],
         "model.layers.1.mlp.down_proj.weight"),
        ("shape", ["model", "inspect", "--model", variant("shape", edit_config("intermediate_size", 96))],
         "model.layers.0.mlp.gate_proj.weight\" has shape"),
        ("corrupt_header", ["model", "inspect", "--model", variant("corrupt", corrupt_header)], "model.safetensors"),
        ("context", ["generate", "--model", source, "--prompt_ids", ",".join(["5"] * 200)], "context"),
        ("bad_ids", ["generate", "--model", source, "--prompt_ids", "5,x,7"], "comma-separated integers"),
        ("id_range", ["generate", "--model", source, "--prompt_ids", "5,99999"], "outside the vocabulary"),
    ]
    failures = []
    for name, args, fragment in cases:
        result = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
        ok = result.returncode == 3 and fragment in result.stderr
        print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {result.returncode}: {result.stderr.strip()[:200]}")
        if not ok:
            failures.append(name)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
