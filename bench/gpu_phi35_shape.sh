#!/usr/bin/env bash
# The GPU check of the LM runtime, for a session that is lent a GPU machine (one short run):
# a randomly initialised model of Phi-3.5-mini-instruct's shape (3.8B parameters: hidden 3072,
# 32 layers, 32 heads, intermediate 8192, vocabulary 32064, LongRoPE) in bf16 on the GPU —
#   one forward+backward step (batch 4 x 512 tokens) and its MFU against the GPU's dense bf16 peak,
#   greedy generation tokens/s at batch 16 (prompt 64, 32 new tokens), prefill tokens/s.
# The model is written once by transformers (random weights, seed 0, bf16 safetensors, ~7.6 GB).
# Usage (repository root, after the build): bench/gpu_phi35_shape.sh [WORKDIR] [PEAK_TFLOPS]
#   PEAK_TFLOPS defaults to 989 (H100/H200 SXM dense bf16). Writes WORKDIR/result.json and prints it.
#   DRY_RUN=1 runs the same steps on the CPU with a 2-layer, 256-wide model of the same layout (to
#   check the script where no GPU is lent; its figures mean nothing).
set -euo pipefail
WORK=${1:-/tmp/sdm_gpu_phi35}
PEAK=${2:-989}
DRY_RUN=${DRY_RUN:-0}
DEVICE=cuda; [ "$DRY_RUN" = 1 ] && DEVICE=cpu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
mkdir -p "$WORK"
if [ ! -f "$WORK/model/model.safetensors.index.json" ] && [ ! -f "$WORK/model/model.safetensors" ]; then
  "$PY" - "$WORK/model" "$DRY_RUN" <<'PYEOF'
import sys, torch
from transformers import Phi3Config, Phi3ForCausalLM
dry = sys.argv[2] == "1"
hidden, layers, heads, inter = (256, 2, 4, 512) if dry else (3072, 32, 32, 8192)
half = hidden // heads // 2  # rotary frequencies per head
config = Phi3Config(vocab_size=32064, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                    num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=131072,
                    original_max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                    rope_scaling={"type": "longrope", "short_factor": [1.0] * half, "long_factor": [1.05] * half},
                    bos_token_id=1, eos_token_id=32000, pad_token_id=32000, tie_word_embeddings=False)
torch.manual_seed(0)
with torch.device("cpu" if dry else "cuda"):
    model = Phi3ForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(sys.argv[1], safe_serialization=True)
print(f"wrote {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters", file=sys.stderr)
PYEOF
fi
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$ROOT/build/bench_lm" "$WORK/model" --device "$DEVICE" --dtype bf16 --batches 16 --prompt_len 64 --new_tokens 32 \
  --train_batch 4 --train_len 512 --reps 3 > "$WORK/bench_lm.json"
"$PY" - "$WORK/bench_lm.json" "$PEAK" "$WORK/result.json" "$WORK/model/config.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); peak = float(sys.argv[2]) * 1e12
c = json.load(open(sys.argv[4]))
params, tokens, seconds = r["parameters"], 4 * 512, r["train_step_seconds"]
# 6 FLOPs per token and weight (forward 2, backward 4) plus causal attention (QK^T and AV).
flops = 6 * params * tokens + 6 * c["num_hidden_layers"] * 512 * c["hidden_size"] * tokens
r["train_step_tflops"] = flops / seconds / 1e12
r["train_step_mfu"] = flops / seconds / peak
json.dump(r, open(sys.argv[3], "w"), indent=2)
print(json.dumps({"train_step_seconds": seconds, "train_tflops": round(r["train_step_tflops"], 1),
                  "mfu": round(r["train_step_mfu"], 3), "generation_b16_tok_s": r["generation"]["16"]["tokens_per_second"],
                  "decode_b16_tok_s": r["generation"]["16"]["decode_tokens_per_second"],
                  "prefill_b16_tok_s": r["prefill_tokens_per_second"]["16"], "load_seconds": r["load_seconds"]}, indent=2))
PYEOF
