#!/usr/bin/env python3
"""Golden ids and decoded text from the PyPI `tokenizers` package for sdmlm's tokenizer parity test.

Loads the real tokenizer.json files in ../shared/data/tokenizers/{llama2,llama3,qwen3}, builds the
Phi-3.5 variant (llama2 + Phi-3.5's added special tokens, written to OUT/phi35/), trains a tiny
SentencePiece model with byte fallback (OUT/sp_tiny/tokenizer.model), and writes for a seeded set
of a few thousand varied strings (Unicode scripts, emoji, code, whitespace runs, numbers, embedded
special tokens, chat-templated turns):

  OUT/manifest.json        {"tokenizers": [{"name", "kind", "tokenizer", "config", "goldens",
                            "count", "vocab_size", "bos_id", "eos_id", "pad_id"}], "seed": ...}
  OUT/<name>.jsonl         {"text", "ids", "ids_special", "decoded", "decoded_skip"} per string
                           ids: encode(add_special_tokens=False); ids_special: ...=True;
                           decoded: decode(ids, skip_special_tokens=False);
                           decoded_skip: decode(ids_special, skip_special_tokens=True)
  OUT/<name>.decode.jsonl  {"ids", "decoded", "decoded_skip"} for 1000 arbitrary id sequences
                           (partial UTF-8, lone byte tokens, specials), decoding only

When the shared data or the `tokenizers` package is absent, writes OUT/manifest.json with a
"skip" reason instead, so the C++ test skips saying why.

Usage: make_tokenizer_goldens.py --out DIR [--shared DIR] [--count N] [--seed S]
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdmtest import fresh_output  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Phi-3.5-mini adds these to the Llama 2 vocabulary (ids 32000..32010, in this order). As in its
# tokenizer.json, all but <|endoftext|> strip whitespace on their right.
PHI35_SPECIAL = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
                 "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>",
                 "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
PHI35_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")

WORDS = ("the quick brown fox jumps over lazy dog tokenizer model language verified answer "
         "Hello world I'm you're we've they'll she'd DON'T it's can't won't Python C++ "
         "résumé naïve café coöperate façade Zürich São Paulo München ŁÓDŹ İstanbul ſtraße "
         "straße ÆSIR Ωmega σίγμα Привет мир Київ שלום مرحبا नमस्ते ধন্যবাদ สวัสดี 你好 世界 "
         "日本語 こんにちは カタカナ 한국어 안녕하세요 Ελληνικά Tiếng Việt ქართული Հայերեն").split()
SCRIPTS = ["ab", "Ωσ", "Жж", "אב", "عر", "हि", "ไท", "漢字", "かな", "한글", "ğü", "Ꭰ", "ሀ", "ᚠ"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "🇯🇵", "❤️", "🏳️‍🌈", "🤖", "🧪", "✨", "🔥", "👩🏾‍💻",
         "☕", "1️⃣", "🫠", "🐍"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000",
          "\u2009", "\u0085", "\u200b", " \t \n", "    ", "\n\n\n", "\u2028", "\x0b", "\x0c"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "A\u030a", "\u1100\u1161\u11a8", "o\u0302\u0301",
             "\u0915\u094d\u0937", "i\u0307"]
CODE = [
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "if __name__ == \"__main__\":\n    main()",
    "const auto& [k, v] : map) { std::cout << k << '\\n'; }",
    "SELECT id, name FROM users WHERE age >= 21;",
    "<div class=\"x\">&nbsp;</div>",
    "{\"key\": [1, 2.5, null, true], \"s\": \"\\u00e9\"}",
    "x = [i for i in range(10) if i % 2 == 0]",
    "#include <vector>\nint main() { return 0; }",
    "    \tindented\ttabs  and   spaces",
    "git commit -m 'fix: tokenizer' && make -j8",
    "$ ls -la /usr/local/bin | grep -v '^d'",
]
SPECIAL_TOKENS = PHI35_SPECIAL + [
    "<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_5|>", "<|im_start|>",
    "<|im_end|>", "<think>", "</think>", "<tool_call>", "<|fim_prefix|>", "<|vision_pad|>",
    "<|im_start", "<s >", "< s>", "<|end|", "|>", "<0x0A>", "[INST]", "[/INST]"]


def number(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 13)))
    if kind == 1:
        return f"{rng.uniform(-1e4, 1e4):.{rng.randrange(0, 6)}f}"
    if kind == 2:
        return f"{rng.randrange(1, 10 ** 7):,}"
    if kind == 3:
        a, b, c = rng.randrange(100, 999), rng.randrange(100, 999), rng.randrange(1000, 9999)
        return f"+1 ({a}) {b}-{c}"
    if kind == 4:
        return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    return "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 30)))


def random_char(rng):
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
              (0x900, 0x97F), (0xE00, 0xE7F), (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00),
              (0x1F300, 0x1F64F), (0x2000, 0x206F), (0x0, 0x1F), (0x300, 0x36F), (0xFF00, 0xFFEF)]
    lo, hi = rng.choice(ranges)
    return chr(rng.randint(lo, hi))


def chat_turns(rng, family):
    msgs = [(rng.choice(["system", "user", "assistant"]), sentence(rng))
            for _ in range(rng.randrange(1, 4))]
    out = ""
    for role, text in msgs:
        if family == "phi":
            out += f"<|{role}|>\n{text}<|end|>\n"
        elif family == "llama3":
            out += f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"
        elif family == "qwen":
            out += f"<|im_start|>{role}\n{text}<|im_end|>\n"
        else:
            out += f"[INST] {text} [/INST]" if role == "user" else f" {text} </s><s>"
    if family == "phi":
        out += "<|assistant|>\n"
    elif family == "qwen":
        out += "<|im_start|>assistant\n" + rng.choice(["", "<think>\n\n</think>\n\n"])
    elif family == "llama3":
        out = "<|begin_of_text|>" + out + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    return out


def sentence(rng):
    parts = []
    for _ in range(rng.randrange(1, 12)):
        r = rng.random()
        if r < 0.55:
            parts.append(rng.choice(WORDS))
        elif r < 0.65:
            parts.append(number(rng))
        elif r < 0.75:
            parts.append(rng.choice(EMOJI))
        elif r < 0.85:
            parts.append(rng.choice(".,;:!?'\"()-–—…«»¿¡%$€@#&*/\\"))
        elif r < 0.92:
            parts.append(rng.choice(COMBINING))
        else:
            parts.append(rng.choice(SCRIPTS) * rng.randrange(1, 4))
    seps = [" "] * 8 + SPACES
    return "".join(p + (rng.choice(seps) if i + 1 < len(parts) else "")
                   for i, p in enumerate(parts))


def make_strings(seed, count):
    rng = random.Random(seed)
    fixed = ["", " ", "  ", "\n", "\t", "a", "Hello", " Hello", "Hello world", "Hello  world ",
             "<|user|>\nHello<|end|>\n<|assistant|>\n", "<s>Hello</s>",
             "<|im_start|>user\nhi<|im_end|>",
             "<|begin_of_text|>Hi", "   leading and trailing   ", "I'M you'LL they'Re", "ſ's",
             "1234567890", "3.14159", "😀😀😀", "\u0085\u0085 x", "e\u0301 vs \u00e9", "\x00\x01\x7f",
             "<|user|>  spaced  <|end|>   <|assistant|>", "a<|endoftext|>b", "x <|end|>\n\n y"]
    out = list(fixed)
    generators = [
        lambda: sentence(rng),
        lambda: rng.choice(CODE) + rng.choice(["", " ", "\n"]) + sentence(rng),
        lambda: "".join(rng.choice(SPACES + ["x", "ab", "1"]) for _ in range(rng.randrange(1, 15))),
        lambda: " ".join(number(rng) for _ in range(rng.randrange(1, 6))),
        lambda: "".join(rng.choice([sentence(rng), rng.choice(SPECIAL_TOKENS), rng.choice(SPACES)])
                        for _ in range(rng.randrange(1, 6))),
        lambda: chat_turns(rng, rng.choice(["phi", "llama3", "qwen", "llama2"])),
        lambda: "".join(random_char(rng) for _ in range(rng.randrange(1, 40))),
        lambda: "".join(rng.choice(EMOJI + COMBINING) for _ in range(rng.randrange(1, 10))),
    ]
    while len(out) < count:
        out.append(rng.choice(generators)())
    return out


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def hf_goldens(tok, strings):
    rows = []
    for text in strings:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_special = tok.encode(text, add_special_tokens=True).ids
        rows.append({"text": text, "ids": ids, "ids_special": ids_special,
                     "decoded": tok.decode(ids, skip_special_tokens=False),
                     "decoded_skip": tok.decode(ids_special, skip_special_tokens=True)})
    return rows


def random_id_lists(seed, vocab_size, added_ids, count=1000):
    """Arbitrary id sequences (partial UTF-8, lone byte tokens, specials) to exercise decoders."""
    rng = random.Random(seed)
    lists = []
    for _ in range(count):
        ids = []
        for _ in range(rng.randrange(1, 20)):
            r = rng.random()
            if r < 0.5 or not added_ids:
                ids.append(rng.randrange(vocab_size))
            elif r < 0.8:
                ids.append(rng.randrange(3, 300))  # byte tokens (SentencePiece-style) and ASCII
            else:
                ids.append(rng.choice(added_ids))
        lists.append(ids)
    return lists


def hf_decode_goldens(tok, id_lists):
    return [{"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
             "decoded_skip": tok.decode(ids, skip_special_tokens=True)} for ids in id_lists]


def config_ids(tok, config_path):
    config = json.load(open(config_path, encoding="utf-8")) if config_path else {}
    out = {}
    for key in ("bos", "eos", "pad"):
        value = config.get(key + "_token")
        if isinstance(value, dict):
            value = value.get("content")
        out[key + "_id"] = tok.token_to_id(value) if value else None
    return out


def build_phi35(shared, out):
    from tokenizers import AddedToken, Tokenizer
    tok = Tokenizer.from_file(os.path.join(shared, "llama2", "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, rstrip=(t != "<|endoftext|>"), lstrip=False,
                                       normalized=False, special=True) for t in PHI35_SPECIAL])
    for i, t in enumerate(PHI35_SPECIAL):
        assert tok.token_to_id(t) == 32000 + i, (t, tok.token_to_id(t))
    d = os.path.join(out, "phi35")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    config_path = os.path.join(shared, "llama2", "tokenizer_config.json")
    config = json.load(open(config_path, encoding="utf-8"))
    config.update({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "chat_template": PHI35_CHAT_TEMPLATE})
    # As Phi-3.5's own tokenizer_config.json: transformers 5 loads this directory as a
    # LlamaTokenizer, which takes its added tokens from here rather than from tokenizer.json.
    decoder = config.setdefault("added_tokens_decoder", {})
    for i, t in enumerate(PHI35_SPECIAL):
        decoder[str(32000 + i)] = {"content": t, "lstrip": False, "normalized": False,
                                   "rstrip": t != "<|endoftext|>", "single_word": False,
                                   "special": True}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    return d


def build_sp_tiny(out, seed):
    import sentencepiece as spm
    d = os.path.join(out, "sp_tiny")
    os.makedirs(d, exist_ok=True)
    corpus = os.path.join(d, "corpus.txt")
    rng = random.Random(seed + 1)  # words and code only, so rarer characters take byte fallback
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(3000):
            words = (rng.choice(WORDS + CODE[:3]).strip() for _ in range(rng.randrange(3, 15)))
            f.write(" ".join(words) + "\n")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=os.path.join(d, "tokenizer"), vocab_size=800, model_type="bpe",
        hard_vocab_limit=False, byte_fallback=True, character_coverage=0.99, num_threads=1,
        minloglevel=2, bos_id=1, eos_id=2, unk_id=0)
    return d


def sp_goldens(model_path, strings):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_path)
    rows = []
    for text in strings:
        ids = sp.encode(text)
        rows.append({"text": text, "ids": ids, "ids_special": [sp.bos_id()] + ids,
                     "decoded": sp.decode(ids), "decoded_skip": sp.decode(ids)})
    return rows, {"bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "pad_id": None,
                  "vocab_size": sp.get_piece_size()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared", "data", "tokenizers"))
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args()
    out, manifest_path, skip = fresh_output(args.out, "make_tokenizer_goldens")

    try:
        from tokenizers import Tokenizer
        import tokenizers
    except ImportError:
        return skip("the Python package `tokenizers` is not installed in the venv")
    shared = os.path.abspath(args.shared)
    if not os.path.isfile(os.path.join(shared, "llama2", "tokenizer.json")):
        return skip(f"shared tokenizer files not found under {shared}")

    strings = make_strings(args.seed, args.count)
    entries = []
    sources = [(n, os.path.join(shared, n)) for n in ("llama2", "llama3", "qwen3")]
    sources.append(("phi35", build_phi35(shared, out)))
    for name, d in sources:
        tj, tc = os.path.join(d, "tokenizer.json"), os.path.join(d, "tokenizer_config.json")
        tc = tc if os.path.isfile(tc) else ""
        tok = Tokenizer.from_file(tj)
        write_jsonl(os.path.join(out, name + ".jsonl"), hf_goldens(tok, strings))
        vocab_size = tok.get_vocab_size(with_added_tokens=True)
        added_ids = sorted(tok.get_added_tokens_decoder().keys())
        id_lists = random_id_lists(args.seed, vocab_size, added_ids)
        write_jsonl(os.path.join(out, name + ".decode.jsonl"), hf_decode_goldens(tok, id_lists))
        entry = {"name": name, "kind": "json", "tokenizer": tj, "config": tc,
                 "goldens": os.path.join(out, name + ".jsonl"), "count": len(strings),
                 "decode_goldens": os.path.join(out, name + ".decode.jsonl"),
                 "decode_count": len(id_lists), "vocab_size": vocab_size}
        entry.update(config_ids(tok, tc))
        entries.append(entry)
    try:
        d = build_sp_tiny(out, args.seed)
        rows, info = sp_goldens(os.path.join(d, "tokenizer.model"), strings)
        write_jsonl(os.path.join(out, "sp_tiny.jsonl"), rows)
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
        id_lists = random_id_lists(args.seed, sp.get_piece_size(), [])
        # python sentencepiece drops control ids; sdmlm keeps them unless skipping specials, so
        # only the skip_special_tokens=True decoding is compared ("decoded": null).
        write_jsonl(os.path.join(out, "sp_tiny.decode.jsonl"),
                    [{"ids": ids, "decoded": None, "decoded_skip": sp.decode(ids)}
                     for ids in id_lists])
        entry = {"name": "sp_tiny", "kind": "sentencepiece",
                 "tokenizer": os.path.join(d, "tokenizer.model"), "config": "",
                 "goldens": os.path.join(out, "sp_tiny.jsonl"), "count": len(rows),
                 "decode_goldens": os.path.join(out, "sp_tiny.decode.jsonl"),
                 "decode_count": len(id_lists)}
        entry.update(info)
        entries.append(entry)
    except ImportError:
        print("make_tokenizer_goldens: sentencepiece not installed; no sp_tiny goldens",
              file=sys.stderr)
    manifest = {"seed": args.seed, "tokenizers_version": tokenizers.__version__,
                "tokenizers": entries}
    json.dump(manifest, open(manifest_path, "w"), indent=2)
    print(f"make_tokenizer_goldens: {len(strings)} strings x {len(entries)} tokenizers -> {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
