"""The second real model: Gemma 3 270M (SPM vocabulary of 262k tokens, sliding-window attention)."""

import numpy as np
import pytest

from llamabind import _native


@pytest.fixture(scope="module")
def gemma3(gemma3_path):
    with _native.Model(gemma3_path) as model:
        yield model


def test_facts(gemma3):
    assert gemma3.architecture == "gemma3"
    assert gemma3.n_vocab == 262144
    assert gemma3.vocab_type == 1  # SPM
    assert gemma3.add_bos
    assert gemma3.chat_template() is None  # this GGUF ships no chat template


def test_greedy_generation_matches_argmax_loop(gemma3):
    tokens = gemma3.tokenize("The capital of France is", add_special=True)
    assert tokens[0] == gemma3.special_tokens["bos"]
    with _native.Context(gemma3, n_ctx=512, n_threads=2) as ctx:
        gen = ctx.generate(tokens, _native.Sampler(gemma3, temperature=0), max_tokens=8)
        generated = [t for t, _ in gen]
        ctx.memory_clear()
        ctx.decode(tokens)
        manual = []
        for _ in range(len(generated)):
            manual.append(int(np.argmax(ctx.logits())))
            ctx.decode([manual[-1]])
    assert generated == manual
    assert b"France" in gemma3.detokenize(generated)
