#!/usr/bin/env python3
"""Interop parity with the reference `safetensors` package (PyPI, in .venv), through the test helper
safetensors_roundtrip (sdmlm reads a file, reports each tensor's dtype, shape and SHA-256 of its
bytes, then rewrites the file with safetensors_write):
  0. what sdmlm reads matches the tensors Python wrote (dtype, shape, bytes);
  1. files from safetensors.torch.save_file (every dtype sdmlm supports, odd names, NaN/Inf, empty
     and 0-d tensors) come back byte-identical to what save_file writes, and load in Python to the
     same tensors (bit for bit);
  2. multi-key metadata survives (key order in the reference is a hash order, so no byte check);
  3. a sharded checkpoint (index + shards) written in Python reads through sdmlm::Checkpoint;
  4. a truncated file, which the reference rejects, fails with exit code 3 naming the tensor.
Usage: test_safetensors_interop.py ROUNDTRIP_BINARY WORKDIR
"""
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import time

import torch


def import_safetensors():
    """Another process may be installing the package; retry for up to 10 minutes."""
    deadline = time.time() + 600
    while True:
        try:
            import safetensors.torch  # noqa: F401
            return sys.modules["safetensors.torch"]
        except (ImportError, OSError) as e:
            if time.time() > deadline:
                raise
            for name in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")]:
                del sys.modules[name]
            print(f"safetensors not importable yet ({e}); retrying in 10 s", flush=True)
            time.sleep(10)


def sample_tensors():
    g = torch.Generator().manual_seed(5)
    return {
        "model.embed_tokens.weight": torch.randn(6, 4, generator=g),
        "model.norm.weight": torch.randn(4, generator=g).to(torch.bfloat16),
        "lm_head.weight": torch.randn(3, 4, generator=g).to(torch.float16),
        "position_ids": torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4),
        "f64": torch.randn(2, 2, dtype=torch.float64, generator=g),
        "i32": torch.randint(-10**6, 10**6, (5,), dtype=torch.int32, generator=g),
        "i16": torch.randint(-30000, 30000, (3,), dtype=torch.int16, generator=g),
        "i8": torch.randint(-128, 128, (4,), dtype=torch.int8, generator=g),
        "u8": torch.randint(0, 256, (2, 3), dtype=torch.uint8, generator=g),
        "mask": torch.rand(7, generator=g) > 0.5,
        "scalar": torch.tensor(1.25),
        "empty": torch.zeros(0, 3),
        'quote "é"\n\ttab': torch.randn(2, generator=g),
        "nan_inf": torch.tensor([float("nan"), float("inf"), -0.0], dtype=torch.float32),
    }


def raw_bytes(t):
    return bytes(t.contiguous().reshape(-1).view(torch.uint8).tolist())


def same_tensors(expected, got):
    if sorted(expected) != sorted(got):
        return f"names differ: {sorted(expected)} vs {sorted(got)}"
    for name, a in expected.items():
        b = got[name]
        if a.dtype != b.dtype or a.shape != b.shape or raw_bytes(a) != raw_bytes(b):
            return f"tensor {name!r}: {a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)} or different bytes"
    return None


DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
               torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
               torch.bool: "BOOL"}


def same_as_read(expected, stdout):
    """Compares the helper's per-tensor report with the tensors Python wrote."""
    got = {row["name"]: row for row in map(json.loads, stdout.splitlines())}
    if sorted(got) != sorted(expected):
        return f"sdmlm read names {sorted(got)}, expected {sorted(expected)}"
    for name, t in expected.items():
        want = {"name": name, "dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                "sha256": hashlib.sha256(raw_bytes(t)).hexdigest()}
        if got[name] != want:
            return f"sdmlm read {got[name]}, expected {want}"
    return None


def roundtrip(binary, *args):
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)


def main() -> int:
    st = import_safetensors()
    from safetensors import safe_open

    binary, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    failures = []

    def check(label, problem):
        print(f"{label}: {'ok' if problem is None else 'FAIL: ' + problem}", flush=True)
        if problem is not None:
            failures.append(label)

    tensors = sample_tensors()
    subset = {k: tensors[k] for k in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "position_ids")}
    for label, data, metadata in (("F32/BF16/F16/I64", subset, {"format": "pt"}),
                                  ("every dtype, metadata", tensors, {"format": "pt"}),
                                  ("every dtype, no metadata", tensors, None)):
        ours, theirs = work / "ours.safetensors", work / "theirs.safetensors"
        st.save_file(data, str(theirs), metadata=metadata)
        result = roundtrip(binary, theirs, ours)
        if result.returncode != 0:
            check(label, f"exit {result.returncode}: {result.stderr.strip()}")
            continue
        check(f"{label}: sdmlm reads what python wrote", same_as_read(data, result.stdout))
        check(f"{label}: python loads the sdmlm file", same_tensors(data, st.load_file(str(ours))))
        check(f"{label}: bytes equal save_file's",
              None if ours.read_bytes() == theirs.read_bytes() else
              f"{len(ours.read_bytes())} vs {len(theirs.read_bytes())} bytes; headers "
              f"{ours.read_bytes()[:200]!r} vs {theirs.read_bytes()[:200]!r}")

    metadata = {"format": "pt", "zeta": "1", "alpha": "é \"x\"\n"}
    st.save_file(subset, str(work / "meta.safetensors"), metadata=metadata)
    result = roundtrip(binary, work / "meta.safetensors", work / "meta_ours.safetensors")
    if result.returncode != 0:
        check("multi-key metadata", f"exit {result.returncode}: {result.stderr.strip()}")
    else:
        with safe_open(str(work / "meta_ours.safetensors"), framework="pt") as f:
            got = f.metadata()
        check("multi-key metadata", None if got == metadata else f"{got} != {metadata}")

    shard_dir = work / "sharded"
    shard_dir.mkdir()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, members in shards.items():
        st.save_file({n: tensors[n] for n in members}, str(shard_dir / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in members})
    (shard_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2))
    merged = work / "merged.safetensors"
    result = roundtrip(binary, "--checkpoint", shard_dir, merged)
    check("sharded checkpoint", f"exit {result.returncode}: {result.stderr.strip()}" if result.returncode != 0
          else same_as_read(tensors, result.stdout) or same_tensors(tensors, st.load_file(str(merged))))

    truncated = work / "truncated.safetensors"
    st.save_file(tensors, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:-1])
    try:
        st.load_file(str(truncated))
        check("truncated file", "the reference accepted it; the test premise is wrong")
    except Exception:  # noqa: BLE001 - the reference raises SafetensorError
        result = roundtrip(binary, truncated, work / "never.safetensors")
        check("truncated file", None if result.returncode == 3 and 'tensor "' in result.stderr and
              not (work / "never.safetensors").exists() else
              f"exit {result.returncode}, stderr {result.stderr.strip()!r}")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
