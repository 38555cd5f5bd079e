#!/usr/bin/env python3
"""`sdmlm tokenizer train` on the Harvard sentences (or generated text when ../shared is absent):
the same seed gives the same vocabulary (pieces and scores; the model file also records its temporary
path); the PyPI `sentencepiece` package loads it, the Phi-3 chat tokens are single pieces, byte
fallback pieces exist, sdmlm's own loader reads it (`model init --tokenizer` takes its size), and
sdmlm's ids (the prompt_ids of `sdmlm generate --prompt`) equal sentencepiece's.
Usage: test_tokenizer_train.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import random
import shutil
import subprocess
import sys

import sentencepiece

HARVARD = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "harvard-sentences.txt"


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = work / "corpus.txt"
    if HARVARD.exists():
        shutil.copy(HARVARD, corpus)
    else:
        # Seeded pseudo-words: enough distinct character pairs for a 600-piece vocabulary.
        rng = random.Random(0)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
        corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(3000)) + "\n")
    # The second run reads a copy of the corpus under another name: the model file must not depend on
    # where its input or output lies (shipped base models are checked against a rebuild byte for byte).
    (work / "elsewhere").mkdir()
    shutil.copy(corpus, work / "elsewhere" / "other-name.txt")
    models = []
    for name, source in (("a", corpus), ("b", work / "elsewhere" / "other-name.txt")):
        out = work / name
        subprocess.run([binary, "tokenizer", "train", "--input", str(source), "--vocab_size", "600", "--seed", "3",
                        "--output", str(out)], check=True)
        models.append(out / "tokenizer.model")
    failures = []
    if models[0].read_bytes() != models[1].read_bytes():
        failures.append("the same text at another path gives a different tokenizer.model file")
    processors = [sentencepiece.SentencePieceProcessor(model_file=str(m)) for m in models]
    vocabularies = [[(p.id_to_piece(i), p.get_score(i)) for i in range(p.get_piece_size())] for p in processors]
    if vocabularies[0] != vocabularies[1]:
        failures.append("two runs with the same seed give different vocabularies")
    sp = processors[0]
    for token in ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"):
        pieces = sp.encode("x " + token + " y", out_type=str)
        if token not in pieces:
            failures.append(f"{token} is not a single piece: {pieces}")
    if sp.piece_to_id("<0x41>") == sp.unk_id():
        failures.append("no byte-fallback pieces")
    # sdmlm's own loader reads it: a model initialised from this tokenizer takes its vocabulary size.
    subprocess.run([binary, "model", "init", "--tokenizer", str(work / "a"), "--output", str(work / "model")], check=True)
    inspect = subprocess.run([binary, "model", "inspect", "--model", str(work / "model")], check=True, capture_output=True,
                             text=True).stdout
    if f'"vocabSize": {sp.get_piece_size()}' not in inspect:
        failures.append(f"model init vocabulary differs from the tokenizer's {sp.get_piece_size()}")
    # sdmlm's ids (prompt_ids of `generate`, BOS added as add_bos_token says) equal sentencepiece's.
    for text in ("The birch canoe slid on the smooth planks.", "<|user|>\nHello 123<|end|>\n<|assistant|>\n", "Ünïcödé ✓ 42"):
        result = subprocess.run([binary, "generate", "--model", str(work / "model"), "--prompt", text, "--max_new_tokens", "1",
                                 "--format", "json"], check=True, capture_output=True, text=True)
        ours = json.loads(result.stdout)["prompt_ids"]
        theirs = [sp.bos_id()] + sp.encode(text)
        if ours != theirs:
            failures.append(f"ids differ for {text!r}: sdmlm {ours} sentencepiece {theirs}")
    # --whitespace_token: "▁" is a piece of its own, so a word has the same pieces after a quote as
    # after a space; sdmlm's ids equal sentencepiece's, and the text round-trips.
    out = work / "ws"
    subprocess.run([binary, "tokenizer", "train", "--input", str(corpus), "--vocab_size", "600", "--seed", "3",
                    "--whitespace_token", "--output", str(out)], check=True)
    ws = sentencepiece.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    word = corpus.read_text().split()[7].strip(".,;'")
    # The quote is a piece of its own, or its byte piece where the corpus has no quote (the generated one).
    quoted = [p for p in ws.encode("'" + word, out_type=str) if p not in ("'", "<0x27>")]
    spaced = ws.encode("x " + word, out_type=str)[len(ws.encode("x ", out_type=str)):]
    if quoted != spaced or any("\u2581" in p for p in quoted):
        failures.append(f"--whitespace_token: {word!r} is {quoted} after a quote but {spaced} after a space")
    subprocess.run([binary, "model", "init", "--tokenizer", str(out), "--output", str(work / "ws_model")], check=True)
    for text in ("The birch canoe slid on the smooth planks.", "<|user|>\nQuote 'the words' here<|end|>\n<|assistant|>\n"):
        result = subprocess.run([binary, "generate", "--model", str(work / "ws_model"), "--prompt", text, "--max_new_tokens",
                                 "1", "--format", "json"], check=True, capture_output=True, text=True)
        ours = json.loads(result.stdout)["prompt_ids"]
        theirs = [ws.bos_id()] + ws.encode(text)
        if ours != theirs:
            failures.append(f"--whitespace_token ids differ for {text!r}: sdmlm {ours} sentencepiece {theirs}")
        if ws.decode(ws.encode(text)) != text:
            failures.append(f"--whitespace_token does not round-trip {text!r}")
    print(f"vocabulary {sp.get_piece_size()}, deterministic, chat tokens single pieces, byte fallback present;"
          f" {len(failures)} failures")
    for failure in failures:
        print("FAIL: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
