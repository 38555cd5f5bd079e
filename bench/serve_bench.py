#!/usr/bin/env python3
"""Serving throughput and latency of `sdmlm serve`, with and without its SDM verifier, against
llama.cpp's server on the same model (converted to GGUF at float32, the precision sdmlm serves), in
one run on one machine. Every server runs alone on the cores; the load comes from Python threads,
each sending its requests one after another (concurrency C = C threads).

Workload: word-ordering task prompts (the chat template's system + user turns, ~125 tokens), 64
new tokens each (`ignore_eos`, so every server decodes the same number of tokens), greedy.
Reported per server and concurrency 1, 8, 32 (the best of 3 rounds that visit the servers in
turn, all started at once and idle while another is measured): generated tokens/s over the wall
time, and request latency p50 / p95; then the two targets: batching (throughput at 32 / at 1) and the verifier's cost
(time per request with a verifier / without, at each concurrency), and the engine thread's own accounting of each
server. The verifier's cost is measured twice: on the base model above (its answers run past their end, so the
re-encoded verification text parts from the generated tokens), and on the deployment an SDM LM is for — the base
fine-tuned for one epoch so that its answers end "<verified>" (`SDM LM` rows; requests stop where the model does),
with and without its verifier.

  bench/serve_bench.py [--llama_server PATH] [--out bench/results/serve_bench.json]

llama.cpp's server is built from the llama-cpp-python sdist on PyPI (bench/peer/build_llama_server.sh:
its vendored llama.cpp, `llama-server` target); the model is converted with that tree's
convert_hf_to_gguf.py. Without --llama_server the peer rows are left out and the report says so.
"""
import argparse
import os
import http.client
import json
import pathlib
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from lm_vs_transformers import machine_rates  # noqa: E402

MODEL = ROOT / "models" / "wordorder-tiny"
SYSTEM = "You are a helpful AI assistant."
NEW_TOKENS = 64
LEVELS = {1: 16, 8: 64, 32: 128}  # concurrency: requests per round
ROUNDS = 3


def wait_ready(port, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready")


def post(port, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {data}")
    return data


def run_level(port, prompts, concurrency, requests, verified, ignore_eos=True):
    bodies = []
    for i in range(requests):
        messages = [{"role": "user", "content": prompts[i % len(prompts)]}]
        if not verified:  # the verifier's server adds the same system turn itself
            messages.insert(0, {"role": "system", "content": SYSTEM})
        bodies.append({"model": "bench", "messages": messages, "max_tokens": NEW_TOKENS, "temperature": 0, "ignore_eos": ignore_eos})
    latencies, tokens, prompt_tokens, errors = [], [0], [0], []
    lock = threading.Lock()
    next_index = [0]

    def worker():
        while True:
            with lock:
                if next_index[0] >= len(bodies):
                    return
                body = bodies[next_index[0]]
                next_index[0] += 1
            start = time.perf_counter()
            try:
                out = post(port, body)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(str(e))
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                tokens[0] += out["usage"]["completion_tokens"]
                prompt_tokens[0] += out["usage"]["prompt_tokens"]

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")
    return {"concurrency": concurrency, "requests": requests, "errors": len(errors), "error_examples": errors[:3], "wall_seconds": wall,
            "completion_tokens": tokens[0], "prompt_tokens_per_request": prompt_tokens[0] / max(1, len(latencies)),
            "tokens_per_second": tokens[0] / wall, "latency_p50": q(0.5), "latency_p95": q(0.95),
            "latency_mean": statistics.mean(latencies) if latencies else float("nan")}


def start_server(name, command, port):
    log = open(f"/tmp/serve_bench_{name}.log", "w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SDMLM_SERVE_PROFILE": "1"})
    wait_ready(port, proc)
    return proc


def log_name(server):
    return server.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "_")


def best_row(rows):
    """The round with the most tokens/s (its latencies with it): on a shared machine the noise only
    ever slows a round down, so the fastest is the best estimate of what the server does."""
    return max(rows, key=lambda r: r["tokens_per_second"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdmlm", default=str(ROOT / "build" / "sdmlm"))
    ap.add_argument("--llama_server", default="")
    ap.add_argument("--work", default="/tmp/serve_bench")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve_bench.json"))
    args = ap.parse_args()
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run([args.sdmlm, *map(str, a)], capture_output=True, text=True, check=True)
    if not (work / "data" / "test.jsonl").exists():
        run("data", "wordorder", "--sentences", "wordnet", "--seed", 0, "--training_size", 100, "--calibration_size", 300,
            "--test_size", 128, "--shifted_size", 20, "--output", work / "data")
    if not (work / "verifier" / "verifier.json").exists():
        run("verifier", "train", "--model", MODEL, "--data", work / "data", "--max_new_tokens", 64, "--output", work / "verifier")
    # The deployment an SDM LM is for: a fine-tuned model whose answers end "<verified>" (one epoch over 600 task
    # documents teaches the format, ~10 s) and its verifier; requests stop where the answer does (no ignore_eos).
    if not (work / "sdm_lm" / "best").exists():
        run("data", "wordorder", "--sentences", "wordnet", "--seed", 0, "--training_size", 600, "--calibration_size", 300,
            "--test_size", 128, "--shifted_size", 20, "--output", work / "sdm_lm_data")
        run("finetune", "--model", MODEL, "--data", work / "sdm_lm_data", "--output", work / "sdm_lm", "--epochs", 1,
            "--batch_size", 16, "--learning_rate", 1e-3, "--eval_limit", 64, "--overwrite")
    if not (work / "sdm_lm_verifier" / "verifier.json").exists():
        run("verifier", "train", "--model", work / "sdm_lm" / "best", "--data", work / "sdm_lm_data", "--max_new_tokens", 64,
            "--output", work / "sdm_lm_verifier")
    prompts = [json.loads(line)["prompt"] for line in (work / "data" / "test.jsonl").read_text().splitlines()]
    import torch
    rates = machine_rates()
    results = {"machine": {"gemm_gflops_fp32": rates["gemm_gflops"], "threads": torch.get_num_threads()},
               "new_tokens": NEW_TOKENS, "model": str(MODEL), "servers": {}}
    sdmlm = [args.sdmlm, "serve", "--model", str(MODEL), "--model_name", "bench", "--parallel", "32", "--max_queue", "256"]
    one = [args.sdmlm, "serve", "--model", str(MODEL), "--model_name", "bench", "--parallel", "1", "--max_queue", "256"]
    sdm_lm = [args.sdmlm, "serve", "--model", str(work / "sdm_lm" / "best"), "--model_name", "bench", "--parallel", "32",
              "--max_queue", "256"]
    servers = {  # name: (command, port, verified); the one-slot server is the sequential baseline
        "sdmlm": (sdmlm + ["--port", "18431"], 18431, False),
        "sdmlm+verifier": (sdmlm + ["--port", "18432", "--verifier", str(work / "verifier")], 18432, True),
        "sdmlm (1 slot)": (one + ["--port", "18433"], 18433, False),
        "SDM LM": (sdm_lm + ["--port", "18435"], 18435, False),
        "SDM LM+verifier": (sdm_lm + ["--port", "18436", "--verifier", str(work / "sdm_lm_verifier")], 18436, True),
    }
    natural_stop = {"SDM LM", "SDM LM+verifier"}  # these answers end where the model stops
    if args.llama_server:
        gguf = work / "wordorder-tiny-f32.gguf"
        tree = pathlib.Path(args.llama_server).resolve().parents[2]
        if not gguf.exists():
            subprocess.run([sys.executable, tree / "convert_hf_to_gguf.py", MODEL, "--outtype", "f32", "--outfile", gguf],
                           env={"PYTHONPATH": str(tree / "gguf-py"), "PATH": "/usr/bin:/bin"}, check=True, capture_output=True)
        servers["llama.cpp"] = ([args.llama_server, "-m", str(gguf), "--port", "18434", "--host", "127.0.0.1", "-t",
                                 str(torch.get_num_threads()), "--parallel", "32", "-c", str(32 * 512), "-ngl", "0"], 18434, False)
    else:
        results["peer_note"] = "llama.cpp's server not given (--llama_server): no peer rows"
    # Every server is started first and idles while another is measured; each concurrency level is
    # measured in ROUNDS rounds that visit the servers in turn, so that the machine's drift (this
    # shared machine's rate moves by tens of percent within minutes) falls on all of them alike.
    procs = {}
    try:
        for name, (command, port, verified) in servers.items():
            print(f"[serve bench] starting {name}", file=sys.stderr, flush=True)
            procs[name] = start_server(log_name(name), command, port)
            run_level(port, prompts, 4, 8, verified, name not in natural_stop)  # warm-up
        rounds = {name: {c: [] for c in LEVELS} for name in servers}
        for c, n in LEVELS.items():
            for k in range(ROUNDS):
                for name, (command, port, verified) in servers.items():
                    print(f"[serve bench] {name} concurrency {c} round {k + 1}", file=sys.stderr, flush=True)
                    rounds[name][c].append(run_level(port, prompts, c, n, verified, name not in natural_stop))
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=60)
    results["rounds"] = ROUNDS
    for name in servers:
        results["servers"][name] = [dict(best_row(rounds[name][c]), rounds_tokens_per_second=[r["tokens_per_second"] for r in rounds[name][c]])
                                    for c in LEVELS]
    s = {name: {r["concurrency"]: r for r in rows} for name, rows in results["servers"].items()}
    results["batching_speedup_32_vs_1"] = s["sdmlm"][32]["tokens_per_second"] / s["sdmlm"][1]["tokens_per_second"]
    results["batching_speedup_32_vs_1_slot"] = s["sdmlm"][32]["tokens_per_second"] / s["sdmlm (1 slot)"][32]["tokens_per_second"]
    results["verifier_time_ratio"] = {c: s["sdmlm+verifier"][c]["latency_mean"] / s["sdmlm"][c]["latency_mean"] for c in LEVELS}
    results["verifier_time_ratio_sdm_lm"] = {c: s["SDM LM+verifier"][c]["latency_mean"] / s["SDM LM"][c]["latency_mean"]
                                             for c in LEVELS}
    # The engine thread's own accounting (SDMLM_SERVE_PROFILE), over every level and round: what the noise of
    # the machine does not blur.
    results["engine_profiles"] = {}
    for name in servers:
        log = pathlib.Path(f"/tmp/serve_bench_{log_name(name)}.log")
        found = re.search(r"engine profile: (.*)", log.read_text()) if log.exists() else None
        if found:
            results["engine_profiles"][name] = found.group(1)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"fp32 GEMM {rates['gemm_gflops']:.0f} GFLOP/s, {torch.get_num_threads()} threads; {NEW_TOKENS} new tokens per request\n")
    print(f"best of {ROUNDS} interleaved rounds (each round's tokens/s in brackets)\n")
    print("| server | concurrency | requests | errors | prompt tokens | generated tokens/s | latency p50 (s) | p95 (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in results["servers"].items():
        for r in rows:
            each = ", ".join(f"{x:.0f}" for x in r["rounds_tokens_per_second"])
            print(f"| {name} | {r['concurrency']} | {r['requests']} | {r['errors']} | {r['prompt_tokens_per_request']:.0f} | "
                  f"{r['tokens_per_second']:.0f} [{each}] | {r['latency_p50']:.3f} | {r['latency_p95']:.3f} |")
    if "llama.cpp" in s:
        print("\n| concurrency | sdmlm / llama.cpp tokens/s |\n|---:|---:|")
        for c in LEVELS:
            print(f"| {c} | {s['sdmlm'][c]['tokens_per_second'] / s['llama.cpp'][c]['tokens_per_second']:.2f} |")
    print(f"\nbatching: {results['batching_speedup_32_vs_1']:.2f}x the tokens/s of concurrency 1 at concurrency 32 "
          f"({results['batching_speedup_32_vs_1_slot']:.2f}x a one-slot server at concurrency 32); target >= 4x")
    print("verifier: time per request with / without: " +
          ", ".join(f"C={c}: {v:.3f}" for c, v in results["verifier_time_ratio"].items()) + "; target <= 1.10")
    print("verifier on the SDM LM (answers stop at <verified>): time per request with / without: " +
          ", ".join(f"C={c}: {v:.3f}" for c, v in results["verifier_time_ratio_sdm_lm"].items()) + "; target <= 1.10")
    print("\nengine-thread accounting (every level and round):\n")
    for name, line in results["engine_profiles"].items():
        print(f"- {name}: {line}")


if __name__ == "__main__":
    main()
