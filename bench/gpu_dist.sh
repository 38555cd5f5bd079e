#!/usr/bin/env bash
# The GPU check of data-parallel fine-tuning (NCCL), for a session lent a GPU machine: a tiny
# `sdmlm finetune --loss sdm` with online hard negatives on every local GPU through torchrun, against
# the same run on one GPU with the whole batch per step; prints both runs' step times and the
# largest relative weight difference (expected ≲ 1e-4: the same documents, NCCL's sum order).
# Usage (repository root, after the build): bench/gpu_dist.sh [WORKDIR] [NGPUS]
#   NGPUS defaults to every GPU nvidia-smi lists (one GPU: a world of 1 against itself, which still
#   runs the NCCL group's setup path through torchrun). DRY_RUN=1 runs it on the CPU with Gloo.
set -euo pipefail
WORK=${1:-/tmp/sdm_gpu_dist}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SDMLM="$ROOT/build/sdmlm"
DEVICE=cuda; [ "${DRY_RUN:-0}" = 1 ] && DEVICE=cpu
if [ "$DEVICE" = cuda ]; then N=${2:-$(nvidia-smi -L | wc -l)}; else N=${2:-2}; fi
rm -rf "$WORK"; mkdir -p "$WORK"
"$ROOT/.venv/bin/python" - "$WORK/sentences.txt" <<'PYEOF'
import random, sys
rng = random.Random(1)
words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 7))) for _ in range(500)]
open(sys.argv[1], "w").write("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))) for _ in range(2000)) + "\n")
PYEOF
"$SDMLM" data wordorder --sentences "$WORK/sentences.txt" --output "$WORK/data" --training_size $((32 * N * 4)) \
  --calibration_size 64 --test_size 8 --shifted_size 8 >/dev/null
"$SDMLM" tokenizer train --input "$WORK/sentences.txt" --vocab_size 600 --output "$WORK/tok" >/dev/null 2>&1
"$SDMLM" model init --tokenizer "$WORK/tok" --output "$WORK/base" --seed 0 >/dev/null
OPTS=(finetune --model "$WORK/base" --data "$WORK/data" --loss sdm --epochs 2 --hard_negative_probability 0.5
  --sdm_epochs 3 --sdm_exemplar_dimension 64 --max_generation_new_tokens 16 --learning_rate 1e-3 --device "$DEVICE")
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
t0=$(date +%s.%N)
"$SDMLM" "${OPTS[@]}" --batch_size $((8 * N)) --output "$WORK/one" >/dev/null
t1=$(date +%s.%N)
"$ROOT/.venv/bin/torchrun" --standalone --no-python --nproc-per-node "$N" "$SDMLM" "${OPTS[@]}" --batch_size 8 \
  --output "$WORK/many" >/dev/null
t2=$(date +%s.%N)
"$ROOT/.venv/bin/python" - "$WORK" "$N" "$t0" "$t1" "$t2" <<'PYEOF'
import json, statistics, sys
import numpy as np
from safetensors.numpy import load_file
work, n, t0, t1, t2 = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
a, b = load_file(f"{work}/one/final/model.safetensors"), load_file(f"{work}/many/final/model.safetensors")
diff = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a) / max(float(np.max(np.abs(a[k]))) for k in a)
step = lambda run: statistics.median(m["seconds"] for m in map(json.loads, open(f"{work}/{run}/metrics.jsonl")) if m["type"] == "step")
reduce = statistics.median(m["allreduce_seconds"] for m in map(json.loads, open(f"{work}/many/metrics.jsonl")) if m["type"] == "step")
out = {"gpus": n, "one_process_seconds": t1 - t0, "data_parallel_seconds": t2 - t1, "one_process_step_s": step("one"),
       "data_parallel_step_s": step("many"), "allreduce_step_s": reduce, "max_relative_weight_difference": diff}
json.dump(out, open(f"{work}/result.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PYEOF
