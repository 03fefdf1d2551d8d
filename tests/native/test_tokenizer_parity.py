"""Tokenizer parity with llama.cpp's own test cases (models/ggml-vocab-*.gguf + .inp/.out)."""

from pathlib import Path

import pytest

from llamabind import _native

VOCABS = sorted((Path(__file__).resolve().parents[2] / "vendor/llama.cpp/models").glob("ggml-vocab-*.gguf"))
SEPARATOR = "\n__ggml_vocab_test__\n"


def cases(vocab: Path):
    inputs = vocab.with_name(vocab.name + ".inp").read_text(encoding="utf-8").split(SEPARATOR)[:-1]
    outputs = vocab.with_name(vocab.name + ".out").read_text(encoding="utf-8").split("\n")
    assert len(outputs) >= len(inputs)
    return [(text, [int(t) for t in out.split()]) for text, out in zip(inputs, outputs)]


def test_the_vendored_vocabularies_cover_spm_bpe_and_wpm():
    types = {_native.Model(str(v), vocab_only=True).vocab_type for v in VOCABS}
    assert {1, 2, 3} <= types


@pytest.mark.parametrize("vocab", VOCABS, ids=lambda p: p.name.removeprefix("ggml-vocab-").removesuffix(".gguf"))
def test_tokenize_matches_llama_cpp_cases(vocab):
    model = _native.Model(str(vocab), vocab_only=True)
    for text, expected in cases(vocab):
        assert model.tokenize(text, add_special=False, parse_special=False) == expected, repr(text)
