#!/usr/bin/env python3
"""Chat-template goldens from `transformers` for sdmlm's chat_render parity test.

For each template below, renders a seeded set of conversations (system/user/assistant turns,
multi-turn, empty system, whitespace-heavy and Unicode content, special-token text inside content)
with and without a generation prompt through transformers'
`tokenizer.apply_chat_template(messages, tokenize=False / True, add_generation_prompt=...)`:

  llama3           ../shared/data/tokenizers/llama3 as given (Llama 3's first released template:
                   the assistant header is appended even without add_generation_prompt)
  llama3_official  the same tokenizer.json with Meta-Llama-3-Instruct's current template
                   (header only with add_generation_prompt), written to OUT/llama3_official/
  phi35            the Phi-3.5 variant of make_tokenizer_goldens.py (llama2 + Phi-3.5 specials and
                   chat template), written to OUT/phi35/
  qwen2            qwen3's tokenizer.json with Qwen2-Instruct's official ChatML template (default
                   system message "You are a helpful assistant."), written to OUT/qwen2/
  qwen3            ../shared/data/tokenizers/qwen3 as given (reasoning blocks; conversations also
                   carry assistant contents with <think>…</think>)
  qwen25           qwen3's tokenizer.json with Qwen2.5-Instruct's template without its tool-calling
                   branch (default system message "You are Qwen, created by Alibaba Cloud. You are a
                   helpful assistant."), written to OUT/qwen25/
  llama31          llama3's tokenizer.json with Llama-3.1-Instruct's template without its tool
                   branches (a system header always, knowledge cutoff, date_string "26 Jul 2024"),
                   written to OUT/llama31/
  llama32          the same with Llama-3.2-Instruct's date rule (strftime_now: today's date, which
                   transformers provides), written to OUT/llama32/
The tool branches left out render nothing for conversations without tools, and sdmlm's roles are
system, user and assistant; these templates were written here from the published ones.

The tokenizer is transformers' AutoTokenizer (TokenizersBackend for llama3, LlamaTokenizer for
phi35, Qwen2Tokenizer for qwen2: transformers 5 rebuilds the latter two from their
tokenizer_class instead of running tokenizer.json as given). Its ids are the goldens ("ids"); the
rows where they differ from TokenizersBackend (tokenizer.json as given, as sdmlm and the
`tokenizers` package run it) also carry "ids_backend" and are counted in the manifest
("backend_ids_mismatches").

  OUT/manifest.json  {"templates": [{"name", "family", "tokenizer", "config", "goldens", "count",
                      "tokenizer_class", "backend_ids_mismatches"}], "transformers_version", ...}
  OUT/<name>.jsonl   {"messages": [{"role", "content"}], "add_generation_prompt", "text", "ids"
                      [, "ids_backend"]}

Writes OUT/manifest.json with a "skip" reason when ../shared or transformers is absent.

Usage: make_chat_goldens.py --out DIR [--shared DIR] [--count N] [--seed S]
"""
import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_tokenizer_goldens as mtg  # noqa: E402  (word lists, build_phi35)
from sdmtest import fresh_output  # noqa: E402

# Meta-Llama-3-8B-Instruct's template since May 2024.
LLAMA3_OFFICIAL_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")
# Qwen2-7B-Instruct's template.
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

# Qwen2.5-Instruct's template, tool-calling branch aside.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n")


def llama31_template(date_rule):
    """Llama-3.1-Instruct's template, tool branches aside; date_rule sets date_string when undefined."""
    return (
        "{{- bos_token }}\n"
        "{%- if not date_string is defined %}\n" + date_rule + "{%- endif %}\n"
        "{%- if messages[0]['role'] == 'system' %}\n"
        "    {%- set system_message = messages[0]['content']|trim %}\n"
        "    {%- set messages = messages[1:] %}\n"
        "{%- else %}\n"
        "    {%- set system_message = \"\" %}\n"
        "{%- endif %}\n"
        "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
        "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
        "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
        "{{- system_message }}\n"
        "{{- \"<|eot_id|>\" }}\n"
        "{%- for message in messages %}\n"
        "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
        "{%- endfor %}\n"
        "{%- if add_generation_prompt %}\n"
        "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
        "{%- endif %}\n")


LLAMA31_TEMPLATE = llama31_template("    {%- set date_string = \"26 Jul 2024\" %}\n")
LLAMA32_TEMPLATE = llama31_template(
    "    {%- if strftime_now is defined %}\n        {%- set date_string = strftime_now(\"%d %b %Y\") %}\n"
    "    {%- else %}\n        {%- set date_string = \"26 Jul 2024\" %}\n    {%- endif %}\n")

# Python str.isspace characters (what Jinja's `trim` removes) and look-alikes that are not.
PY_SPACES = ["\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680", "\u2000", "\u2005",
             "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\t", "\n", "\r", "\x0b",
             "\x0c", " "]
NOT_SPACES = ["\u200b", "\u180e", "\ufeff", "\u2060", "\u00ad"]


def content(rng):
    kind = rng.randrange(10)
    if kind == 0:
        return ""
    if kind == 1:  # whitespace-heavy: runs of Unicode spaces around and inside
        ws = lambda: "".join(rng.choice(PY_SPACES + NOT_SPACES[:1]) for _ in range(rng.randrange(0, 5)))
        return ws() + mtg.sentence(rng) + ws() + rng.choice(["", mtg.sentence(rng)]) + ws()
    if kind == 2:  # whitespace only
        return "".join(rng.choice(PY_SPACES + NOT_SPACES) for _ in range(rng.randrange(1, 6)))
    if kind == 3:
        return rng.choice(mtg.CODE) + rng.choice(["", "\n", "\n\n"])
    if kind == 4:
        return "".join(mtg.random_char(rng) for _ in range(rng.randrange(1, 30)))
    if kind == 5:  # special-token text inside content
        return "".join(rng.choice([mtg.sentence(rng), rng.choice(mtg.SPECIAL_TOKENS), "\n"])
                       for _ in range(rng.randrange(1, 5)))
    if kind == 6:
        return "\n".join(mtg.sentence(rng) for _ in range(rng.randrange(2, 5)))
    return mtg.sentence(rng)


def conversation(rng):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": "" if rng.random() < 0.3 else content(rng)})
    if rng.random() < 0.15:  # any role order, system turns in the middle included
        for _ in range(rng.randrange(1, 6)):
            msgs.append({"role": rng.choice(["system", "user", "assistant"]), "content": content(rng)})
        return msgs
    turns = rng.randrange(1, 7)
    for t in range(turns):
        msgs.append({"role": "user" if t % 2 == 0 else "assistant", "content": content(rng)})
    return msgs


def conversations(seed, count):
    m = lambda role, text: {"role": role, "content": text}
    fixed = [
        [m("user", "Hello")],
        [m("system", "Be brief."), m("user", "Hi")],
        [m("system", ""), m("user", "Hi")],
        [m("system", "Only a system message.")],
        [m("user", "What is 2+2?"), m("assistant", "4"), m("user", "And 3+3?")],
        [m("system", "You are a helpful assistant."), m("user", "Hi"), m("assistant", "Hello!")],
        [m("assistant", "I start."), m("user", "ok")],
        [m("user", "   ")],
        [m("user", "\u3000\u00a0 padded \u2028\n"), m("assistant", "\n\n  answer  \n\n")],
        [m("user", "\u200bzero width\u200b"), m("assistant", "\ufeffbom")],
        [m("user", "Привет, 世界! 👋🏽 e\u0301 ﷽"), m("assistant", "こんにちは 🇯🇵")],
        [m("user", "tabs\t\tand\r\nCRLF\r\n")],
        [m("user", ""), m("assistant", "")],
        [m("user", "<|end|><|eot_id|><|im_end|> inside"), m("assistant", "<|endoftext|>")],
        [m("system", "sys"), m("system", "second system"), m("user", "u")],
        [m("user", "x"), m("system", "late system"), m("assistant", "y")],
        # reasoning blocks (Qwen3 splits them off; the other templates render the text as it is)
        [m("user", "q"), m("assistant", "<think>\nreason\n</think>\n\nanswer")],
        [m("user", "q1"), m("assistant", "<think>r1</think>a1"), m("user", "q2"),
         m("assistant", "\n\n<think>\n\nr2\n\n</think>\n\n\nfinal\n")],
        [m("user", "q"), m("assistant", "a</think>b</think>c")],
        [m("user", "q"), m("assistant", "<think>r</think>a"), m("assistant", "b")],
        [m("user", "q"), m("assistant", "no reasoning"), m("assistant", "<think>late</think>x")],
        [m("assistant", "<think>x</think>y")],
        [m("system", "s"), m("user", "u"), m("user", "<tool_response>x</tool_response>"), m("assistant", "y")],
        [m("user", "u"), m("assistant", "plain"), m("user", "u2")],
    ]
    rng = random.Random(seed)
    out = list(fixed)
    while len(out) < count:
        out.append(conversation(rng))
    return out


def write_dir(d, tokenizer_json, config):
    os.makedirs(d, exist_ok=True)
    os.symlink(os.path.abspath(tokenizer_json), os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared", "data", "tokenizers"))
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20240612)
    args = ap.parse_args()
    out, manifest_path, skip = fresh_output(args.out, "make_chat_goldens")

    try:
        import transformers
        from transformers import AutoTokenizer
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError as e:
        return skip(f"the Python package `transformers` is not usable in the venv ({e})")
    shared = os.path.abspath(args.shared)
    if not os.path.isfile(os.path.join(shared, "llama3", "tokenizer.json")):
        return skip(f"shared tokenizer files not found under {shared}")

    llama3 = os.path.join(shared, "llama3")
    qwen3 = os.path.join(shared, "qwen3")
    llama3_config = json.load(open(os.path.join(llama3, "tokenizer_config.json"), encoding="utf-8"))
    qwen_config = json.load(open(os.path.join(qwen3, "tokenizer_config.json"), encoding="utf-8"))
    qwen_config["chat_template"] = QWEN2_TEMPLATE
    templates = [
        ("llama3", "llama3_always_prompt", llama3),
        ("llama3_official", "llama3",
         write_dir(os.path.join(out, "llama3_official"), os.path.join(llama3, "tokenizer.json"),
                   dict(llama3_config, chat_template=LLAMA3_OFFICIAL_TEMPLATE))),
        ("phi35", "phi3", mtg.build_phi35(shared, out)),
        ("qwen2", "chatml",
         write_dir(os.path.join(out, "qwen2"), os.path.join(qwen3, "tokenizer.json"), qwen_config)),
        ("qwen3", "qwen3", qwen3),
        ("qwen25", "chatml",
         write_dir(os.path.join(out, "qwen25"), os.path.join(qwen3, "tokenizer.json"),
                   dict(qwen_config, chat_template=QWEN25_TEMPLATE))),
        ("llama31", "llama31",
         write_dir(os.path.join(out, "llama31"), os.path.join(llama3, "tokenizer.json"),
                   dict(llama3_config, chat_template=LLAMA31_TEMPLATE))),
        ("llama32", "llama31",
         write_dir(os.path.join(out, "llama32"), os.path.join(llama3, "tokenizer.json"),
                   dict(llama3_config, chat_template=LLAMA32_TEMPLATE))),
    ]
    convs = conversations(args.seed, args.count)
    entries = []
    for name, family, d in templates:
        tok = AutoTokenizer.from_pretrained(d)
        backend = TokenizersBackend.from_pretrained(d)
        rows, backend_bad = [], 0
        for msgs in convs:
            for prompt in (False, True):
                text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=prompt)
                ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=prompt,
                                              return_dict=False)
                row = {"messages": msgs, "add_generation_prompt": prompt, "text": text, "ids": ids}
                assert text == backend.apply_chat_template(
                    msgs, tokenize=False, add_generation_prompt=prompt), name
                backend_ids = backend.apply_chat_template(
                    msgs, tokenize=True, add_generation_prompt=prompt, return_dict=False)
                if backend_ids != ids:
                    backend_bad += 1
                    row["ids_backend"] = backend_ids
                rows.append(row)
        mtg.write_jsonl(os.path.join(out, name + ".jsonl"), rows)
        entries.append({"name": name, "family": family,
                        "tokenizer": os.path.join(d, "tokenizer.json"),
                        "config": os.path.join(d, "tokenizer_config.json"),
                        "goldens": os.path.join(out, name + ".jsonl"), "count": len(rows),
                        "tokenizer_class": type(tok).__name__,
                        "backend_ids_mismatches": backend_bad})
        print(f"make_chat_goldens: {name}: {len(rows)} renderings ({type(tok).__name__}); ids "
              f"differ from TokenizersBackend's on {backend_bad}", file=sys.stderr)
    json.dump({"seed": args.seed, "transformers_version": transformers.__version__,
               "templates": entries}, open(manifest_path, "w"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
