#!/usr/bin/env python3
"""Seeded tiny random decoder-only models made with `transformers`, plus golden outputs for
sdmlm's LM runtime parity tests (tests/parity/lm_parity_test.cpp).

For each fixture OUT/<name>/ holds an HF model directory (config.json, model.safetensors) and
OUT/<name>/golden.safetensors + golden.json: input ids and attention masks (one batch without and
one with left padding), logits [B, T, V], final (post-norm) hidden states [B, T, H], and greedy
generations for ragged prompts. Fixtures: llama (llama3 rope scaling, GQA), qwen2 (qkv biases,
tied embeddings), phi3 (fused qkv / gate_up, longrope with a 16-token original context, so the
long golden sequence exercises the long factors).
Usage: make_tiny_models.py OUT_DIR
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM

COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.1, bos_token_id=1,
              eos_token_id=2, pad_token_id=0)


GRADIENT_NAMES = ("model.norm.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.mlp.down_proj.weight",
                  "model.embed_tokens.weight")


def fixtures():
    yield "llama", LlamaForCausalLM, LlamaConfig(**COMMON, rms_norm_eps=1e-6, tie_word_embeddings=False, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16, "rope_theta": 500000.0})
    yield "qwen2", Qwen2ForCausalLM, Qwen2Config(**COMMON, rms_norm_eps=1e-6, tie_word_embeddings=True)
    half = COMMON["hidden_size"] // COMMON["num_attention_heads"] // 2
    yield "phi3", Phi3ForCausalLM, Phi3Config(**COMMON, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                              original_max_position_embeddings=16, rope_scaling={
        "type": "longrope", "short_factor": [1.0 + 0.05 * i for i in range(half)],
        "long_factor": [1.5 + 0.25 * i for i in range(half)]})


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    for index, (name, cls, config) in enumerate(fixtures()):
        torch.manual_seed(1234 + index)
        model = cls(config).eval()
        with torch.no_grad():  # give the norms non-trivial weights too
            for key, value in model.named_parameters():
                if "norm" in key:
                    value.uniform_(0.5, 1.5)
        directory = out / name
        model.save_pretrained(directory, safe_serialization=True)
        generator = torch.Generator().manual_seed(99 + index)
        ids = torch.randint(3, config.vocab_size, (2, 24), generator=generator)
        masks = {"plain": torch.ones_like(ids), "padded": torch.ones_like(ids)}
        masks["padded"][1, :5] = 0
        golden = {}
        with torch.no_grad():
            for key, mask in masks.items():
                result = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                golden[f"{key}.logits"] = result.logits.float().contiguous()
                golden[f"{key}.hidden"] = result.hidden_states[-1].float().contiguous()
                golden[f"{key}.mask"] = mask.contiguous()
        golden["ids"] = ids.contiguous()
        # One training step's reference: next-token cross-entropy over the plain batch and the
        # gradients of a few parameters (all would double the fixture size).
        model.zero_grad()
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, config.vocab_size), ids[:, 1:].reshape(-1))
        loss.backward()
        golden["train.loss"] = loss.detach().reshape(1)
        for key, value in model.named_parameters():
            if key in GRADIENT_NAMES:
                golden["grad." + key] = value.grad.contiguous()
        save_file(golden, str(directory / "golden.safetensors"))
        prompts = [ids[0, :7].tolist(), ids[1, :3].tolist(), ids[0, 10:20].tolist()]
        width = max(len(p) for p in prompts)
        batch = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            generated = model.generate(input_ids=batch, attention_mask=attention, do_sample=False, max_new_tokens=12,
                                       pad_token_id=0, eos_token_id=2)
        new_tokens = []
        for row in generated[:, width:].tolist():
            cut = row.index(2) + 1 if 2 in row else len(row)
            new_tokens.append(row[:cut])
        (directory / "golden.json").write_text(json.dumps({"prompts": prompts, "greedy": new_tokens,
                                                          "max_new_tokens": 12}, indent=1))
        size = sum(p.stat().st_size for p in directory.iterdir())
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {size} bytes")


if __name__ == "__main__":
    main()
