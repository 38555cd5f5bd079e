#!/usr/bin/env python3
"""Whole-run benchmark: sdmlm's LM runtime (build/bench_lm) vs transformers on the same CPU, same
model files, same shapes, in one invocation. Reports prefill tokens/s, greedy generation tokens/s
at batch 1 and 16, one forward+backward step, and sdmlm's peak RSS on load vs the weight bytes.

Models are random Llama checkpoints made here with transformers (f32): `tiny` (~7M parameters)
and `100m` (~124M). Both sides use the machine's threads (torch default).
Usage (repository root): .venv/bin/python bench/lm_vs_transformers.py [--models tiny,100m]
    [--prompt_len 64] [--new_tokens 32] [--workdir /tmp/sdm_lm_bench] [--json bench/results/lm_vs_transformers.json]
"""
import argparse
import json
import pathlib
import subprocess
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": dict(vocab_size=2048, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=4),
    "100m": dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                 num_attention_heads=12, num_key_value_heads=4),
}


def make_model(name, workdir):
    directory = workdir / f"llama-{name}"
    if not (directory / "model.safetensors").exists():
        torch.manual_seed(0)
        config = LlamaConfig(**SIZES[name], max_position_embeddings=2048, eos_token_id=2, bos_token_id=1, pad_token_id=0)
        LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    return directory


def best_of(reps, fn):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def transformers_figures(directory, args):
    model = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    figures = {"prefill_tokens_per_second": {}, "generation": {}}
    for batch in args.batches:
        ids = torch.randint(3, vocab, (batch, args.prompt_len))
        with torch.no_grad():
            seconds = best_of(args.reps, lambda: model(input_ids=ids, logits_to_keep=1))
            figures["prefill_tokens_per_second"][str(batch)] = batch * args.prompt_len / seconds
            def generate(tokens):
                return lambda: model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                              max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=0)
            seconds = best_of(args.reps, generate(args.new_tokens))
            first = best_of(args.reps, generate(1))
        figures["generation"][str(batch)] = {
            "seconds": seconds, "tokens_per_second": batch * args.new_tokens / seconds, "first_token_seconds": first,
            "decode_tokens_per_second": batch * (args.new_tokens - 1) / (seconds - first)}
    model.train()
    ids = torch.randint(3, vocab, (args.train_batch, args.train_len))

    def step():
        loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[:, :-1].reshape(-1, vocab),
                                                 ids[:, 1:].reshape(-1))
        loss.backward()
        model.zero_grad(set_to_none=False)

    seconds = best_of(args.reps, step)
    figures["train_step_seconds"] = seconds
    figures["train_tokens_per_second"] = args.train_batch * args.train_len / seconds
    return figures


def machine_rates():
    """The ceilings: fp32 GEMM rates of the two BLAS inside the torch wheel on 2048^3 — MKL (torch.mm,
    what transformers runs; it takes AVX2 kernels on AMD CPUs) and oneDNN (mkldnn_linear, what sdmlm's
    projections of 33+ rows run) — and streaming read bandwidth (sum of 512 MiB). Shares are given
    against the faster GEMM rate, the machine's."""
    a = torch.randn(2048, 2048)
    mkl = 2 * 2048 ** 3 / best_of(3, lambda: torch.mm(a, a)) / 1e9
    am = a.to_mkldnn()
    onednn = 2 * 2048 ** 3 / best_of(3, lambda: torch._C._nn.mkldnn_linear(am, am)) / 1e9
    big = torch.ones(128 * 2 ** 20)
    read = big.numel() * 4 / best_of(3, lambda: big.sum()) / 1e9
    return {"gemm_gflops": max(mkl, onednn), "mkl_gemm_gflops": mkl, "onednn_gemm_gflops": onednn,
            "read_gb_per_s": read}


def training_gflop(size, tokens, seq_len):
    """Forward+backward FLOPs of one step: 6 per token and weight (all matrices but the embedding
    lookup) plus the causal attention products (QK^T and AV, forward 2·T·H per token and layer)."""
    h, i, v, layers = size["hidden_size"], size["intermediate_size"], size["vocab_size"], size["num_hidden_layers"]
    kv = h * size["num_key_value_heads"] // size["num_attention_heads"]
    matrices = layers * (2 * h * h + 2 * h * kv + 3 * h * i) + v * h
    return (6 * matrices * tokens + 3 * 2 * layers * seq_len * h * tokens) / 1e9


def streamed_gb(size):
    """Weight bytes one decode step reads (every matrix once; one embedding row is negligible)."""
    h, i, v, layers = size["hidden_size"], size["intermediate_size"], size["vocab_size"], size["num_hidden_layers"]
    kv = h * size["num_key_value_heads"] // size["num_attention_heads"]
    return 4 * (layers * (2 * h * h + 2 * h * kv + 3 * h * i + 2 * h) + v * h + h) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny,100m")
    parser.add_argument("--prompt_len", type=int, default=64)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--train_batch", type=int, default=4)
    parser.add_argument("--train_len", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/sdm_lm_bench")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "lm_vs_transformers.json"))
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rates = machine_rates()
    results = {"threads": torch.get_num_threads(), "machine": rates, "models": {}}
    print(f"Machine ceilings: fp32 GEMM {rates['gemm_gflops']:.0f} GFLOP/s (MKL {rates['mkl_gemm_gflops']:.0f}, "
          f"oneDNN {rates['onednn_gemm_gflops']:.0f}), streaming read "
          f"{rates['read_gb_per_s']:.1f} GB/s, {torch.get_num_threads()} threads\n")
    print("| model | measure | sdmlm | transformers | sdmlm/transformers |\n|---|---|---|---|---|")
    for name in args.models.split(","):
        directory = make_model(name, workdir)
        print(f"[lm bench] {name}: sdmlm", file=sys.stderr)
        ours = json.loads(subprocess.run(
            [str(ROOT / "build" / "bench_lm"), str(directory), "--prompt_len", str(args.prompt_len), "--new_tokens",
             str(args.new_tokens), "--batches", ",".join(map(str, args.batches)), "--train_batch", str(args.train_batch),
             "--train_len", str(args.train_len), "--reps", str(args.reps)], check=True, capture_output=True,
            text=True).stdout)
        print(f"[lm bench] {name}: transformers", file=sys.stderr)
        theirs = transformers_figures(directory, args)
        weights_mib = (directory / "model.safetensors").stat().st_size / 2**20
        results["models"][name] = {"sdmlm": ours, "transformers": theirs, "weights_mib": weights_mib}
        rows = []
        for batch in map(str, args.batches):
            rows.append((f"prefill tok/s, batch {batch}", ours["prefill_tokens_per_second"][batch],
                         theirs["prefill_tokens_per_second"][batch]))
            rows.append((f"greedy generation tok/s, batch {batch} (prefill + {args.new_tokens} tokens)",
                         ours["generation"][batch]["tokens_per_second"], theirs["generation"][batch]["tokens_per_second"]))
            rows.append((f"decode tok/s, batch {batch} (the {args.new_tokens - 1} steps after the first token)",
                         ours["generation"][batch]["decode_tokens_per_second"],
                         theirs["generation"][batch]["decode_tokens_per_second"]))
        rows.append(("train step tok/s (fwd+bwd)", ours["train_tokens_per_second"], theirs["train_tokens_per_second"]))
        # Where each side stands against the machine: training GFLOP/s as a share of the GEMM rate,
        # batch-1 decode as weight bytes streamed per second against the read bandwidth.
        step_gflop = training_gflop(SIZES[name], args.train_batch * args.train_len, args.train_len)
        gemm = rates["gemm_gflops"]
        rows.append(("train step GFLOP/s (est.; % of GEMM rate)",
                     step_gflop / ours["train_step_seconds"], step_gflop / theirs["train_step_seconds"]))
        rows.append(("batch-1 decode, weight GB/s streamed", ours["generation"]["1"]["decode_tokens_per_second"] *
                     streamed_gb(SIZES[name]), theirs["generation"]["1"]["decode_tokens_per_second"] * streamed_gb(SIZES[name]))
                    if "1" in ours["generation"] else None)
        rows = [r for r in rows if r]
        results["models"][name]["train_gflops"] = {"sdmlm": rows[-2][1], "transformers": rows[-2][2], "gemm_rate": gemm}
        for label, a, b in rows:
            note = ""
            if label.startswith("train step GFLOP/s"):
                note = f" ({100 * a / gemm:.0f}% / {100 * b / gemm:.0f}%)"
            if label.startswith("batch-1 decode"):
                note = f" ({100 * a / rates['read_gb_per_s']:.0f}% / {100 * b / rates['read_gb_per_s']:.0f}% of read bandwidth)"
            print(f"| {name} ({ours['parameters'] / 1e6:.1f}M) | {label}{note} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
        growth = ours["peak_rss_after_load_mib"] - ours["rss_before_load_mib"]
        print(f"| {name} | RSS growth on load / weights | {growth:.0f} MiB | {weights_mib:.0f} MiB weights | "
              f"{growth / weights_mib:.2f} |")
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
