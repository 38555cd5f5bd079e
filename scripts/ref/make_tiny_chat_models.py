#!/usr/bin/env python3
"""Tiny random Qwen2 and Llama 3 model directories with real tokenizers and chat templates, for the
bring-your-own-model e2e test: the tokenizer files that make_chat_goldens.py writes (qwen2: Qwen3's
tokenizer.json with Qwen2-Instruct's ChatML template; llama3_official: Llama 3's tokenizer.json with
Meta-Llama-3-Instruct's template), beside a seeded random model of that vocabulary made by
transformers (hidden 32, 2 layers).

Usage: make_tiny_chat_models.py CHAT_GOLDENS_DIR OUT_DIR
Writes OUT_DIR/manifest.json: {"models": [{"name", "dir", "family"}]}, or {"skip": reason} when the
goldens were skipped (no ../shared tokenizers).
"""
import json
import pathlib
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

MODELS = (("qwen2", "qwen2", Qwen2ForCausalLM, Qwen2Config, "chatml"),
          ("llama3", "llama3_official", LlamaForCausalLM, LlamaConfig, "llama3"))


def vocab_size(tokenizer_json):
    data = json.loads(tokenizer_json.read_text())
    ids = list(data["model"]["vocab"].values()) + [t["id"] for t in data.get("added_tokens", [])]
    return max(ids) + 1


def token_id(tokenizer_json, text):
    data = json.loads(tokenizer_json.read_text())
    for t in data.get("added_tokens", []):
        if t["content"] == text:
            return t["id"]
    return data["model"]["vocab"].get(text)


def main() -> None:
    goldens, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((goldens / "manifest.json").read_text())
    if manifest.get("skip"):
        (out / "manifest.json").write_text(json.dumps({"skip": manifest["skip"]}) + "\n")
        return
    made = []
    for index, (name, source, model_class, config_class, family) in enumerate(MODELS):
        tokenizer_dir = goldens / source
        tok = tokenizer_dir / "tokenizer.json"
        config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
        eos = config.get("eos_token")
        eos = eos["content"] if isinstance(eos, dict) else eos
        eos_id = token_id(tok, eos)
        torch.manual_seed(4321 + index)
        model = model_class(config_class(vocab_size=vocab_size(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                         eos_token_id=eos_id, bos_token_id=token_id(tok, "<|begin_of_text|>"),
                                         tie_word_embeddings=name == "qwen2")).eval()
        directory = out / name
        model.save_pretrained(directory, safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(tokenizer_dir / f, directory / f)
        made.append({"name": name, "dir": str(directory), "family": family})
    (out / "manifest.json").write_text(json.dumps({"models": made}, indent=1) + "\n")


if __name__ == "__main__":
    main()
