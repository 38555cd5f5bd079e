"""Shared setup of the pretraining e2e tests: a seeded corpus of random words, a tokenizer trained on
it and a `tiny` model initialised from that tokenizer, in WORK (corpus.txt, tok/, init/)."""
import pathlib
import random
import subprocess


def make_tiny_init(binary: str, work: pathlib.Path, seed: int, size: int, tokenizer_flags=()) -> pathlib.Path:
    """Writes `size` random sentences over `size` random words and a `size`-piece tokenizer; returns the
    corpus path. Raises RuntimeError with the command's stderr when a step fails."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 7))) for _ in range(size)]
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))) for _ in range(size)) + "\n")
    for argv in (["tokenizer", "train", "--input", str(corpus), "--vocab_size", str(size), *tokenizer_flags, "--output",
                  str(work / "tok")],
                 ["model", "init", "--arch", "llama", "--preset", "tiny", "--tokenizer", str(work / "tok"), "--output",
                  str(work / "init")]):
        res = subprocess.run([binary, *argv], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{argv[0]} {argv[1]} exited {res.returncode}: {res.stderr[-2000:]}")
    return corpus
