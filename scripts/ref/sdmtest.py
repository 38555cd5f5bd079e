"""Helpers shared by the Python-driven tests: run a command, generate Gaussian rows, report."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "scripts" / "ref" / "gaussian_rows.py"


def run(*args, **kwargs):
    """Run a command (arguments converted to str); raise if it fails."""
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def gaussian(path, classes, rows, dim, seed, prefix, shift=0):
    """Write seeded Gaussian-mixture estimator rows to `path` (see gaussian_rows.py)."""
    run(sys.executable, GENERATOR, "--classes", classes, "--rows", rows, "--dim", dim, "--seed", seed,
        "--shift", shift, "--prefix", prefix, "--out", path)
    return path


def finish(failures):
    """Print every failure and return the process exit code."""
    for failure in failures:
        print("FAIL: " + failure)
    return 1 if failures else 0


def fresh_output(out, tool):
    """Empty directory `out` for generated goldens, and a `skip(reason)` that records a skip in its
    manifest.json (read by the C++ parity tests, which then skip saying why) and returns 0."""
    out = os.path.abspath(out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    manifest_path = os.path.join(out, "manifest.json")

    def skip(reason):
        with open(manifest_path, "w") as stream:
            json.dump({"skip": reason}, stream)
        print(f"{tool}: SKIP: {reason}", file=sys.stderr)
        return 0

    return out, manifest_path, skip
