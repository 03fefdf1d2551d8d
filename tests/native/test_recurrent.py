"""Prompt reuse on recurrent and hybrid models (issue 16): a Mamba state cannot be cut back to a
shorter prefix, so a prompt that shares only part of what a sequence holds is evaluated again
from the start, on the single-sequence path (csrc/generator.cpp) and in the batch loop
(csrc/batch.cpp). The models are a tiny synthetic Mamba and a Jamba hybrid (Mamba and attention
layers), written by synthetic_recurrent.py; their greedy output depends on every earlier token,
so a wrongly kept state shows as different tokens.

A generation is checked against a fresh context by teacher forcing (``off_greedy``): each token
must be that context's argmax, or within ``TIE`` of it. Batches of other shapes round
differently (about 1e-5 relatively), which can flip a near tie of the 32000 random logits; a
wrong state picks tokens whose logits lie units below the best."""

import threading

import numpy as np
import pytest

pytest.importorskip("gguf")

from llamabind import _native
from synthetic_recurrent import JAMBA, MAMBA, write_ssm_gguf

N_TOKENS = 12
TEXT_A = "The quick brown fox jumps over the lazy dog"
N_SHARED = 6  # tokens of A (with BOS) that prompt B starts with
TEXT_B_TAIL = " sat on the warm mat by the door"
MORE_TEXT = " and then it rained"
TIE = 1e-2  # a logit this close to the best is a tie (the best two are ~2 apart on average)


@pytest.fixture(scope="module", params=[MAMBA, JAMBA], ids=["mamba", "jamba"])
def model(request, tmp_path_factory):
    """The recurrent model, then the hybrid one."""
    shape = request.param
    path = write_ssm_gguf(tmp_path_factory.mktemp(shape.arch) / f"{shape.arch}.gguf", shape)
    with _native.Model(str(path)) as model:
        yield model


@pytest.fixture(scope="module")
def prompt_a(model):
    return model.tokenize(TEXT_A, add_special=True)


@pytest.fixture(scope="module")
def prompt_b(model, prompt_a):
    return prompt_a[:N_SHARED] + model.tokenize(TEXT_B_TAIL, add_special=False)


def greedy(model):
    return _native.Sampler(model, temperature=0)


def context(model, n_seq_max=1):
    return _native.Context(model, n_ctx=512, n_seq_max=n_seq_max, n_threads=2)


def generate(ctx, model, prompt, seq_id=0, max_tokens=N_TOKENS):
    """The generated token ids and the generator (for its counters)."""
    gen = ctx.generate(prompt, greedy(model), max_tokens=max_tokens, seq_id=seq_id)
    return [t for t, _ in gen], gen


def alone(model, prompt, max_tokens=N_TOKENS):
    """The tokens of one generation on a fresh single-sequence context."""
    with context(model) as ctx:
        return generate(ctx, model, prompt, max_tokens=max_tokens)[0]


def off_greedy(model, prompt, tokens):
    """Where ``tokens`` leave the greedy path of a fresh context after ``prompt``.

    Returns (index, token, best token, logit gap) for each token that is neither the argmax
    nor within TIE of it; an empty list for a greedy continuation.
    """
    misses = []
    with context(model) as ctx:
        ctx.decode(prompt)
        for i, token in enumerate(tokens):
            logits = np.asarray(ctx.logits())
            best = int(np.argmax(logits))
            gap = float(logits[best] - logits[token])
            if gap > TIE:
                misses.append((i, token, best, round(gap, 3)))
            ctx.decode([token])
    return misses


def consume_all(gens):
    """Iterates every generator on a thread of its own; returns their token ids."""
    out = [[] for _ in gens]

    def consume(i):
        for token, _ in gens[i]:
            out[i].append(token)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(gens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return out


def test_the_synthetic_model_loads(model):
    assert model.architecture in ("mamba", "jamba")
    # llama.cpp counts a hybrid as not recurrent (llama_model_is_hybrid is apart)
    assert model.is_recurrent == (model.architecture == "mamba")
    assert model.n_vocab == 32000  # copied from ggml-vocab-llama-spm.gguf


def test_a_wrongly_kept_state_would_show(model, prompt_a, prompt_b):
    # What the issue warns of: B's tail evaluated on top of the state of all of A.
    assert len(set(alone(model, prompt_a))) > N_TOKENS // 2
    with context(model) as ctx:
        ctx.decode(prompt_a)
        ctx.decode(prompt_b[N_SHARED:])
        wrong = []
        for _ in range(N_TOKENS):
            wrong.append(int(np.argmax(ctx.logits())))
            ctx.decode(wrong[-1:])
    assert off_greedy(model, prompt_b, wrong) != []
    assert off_greedy(model, prompt_a, alone(model, prompt_a[1:])) != []  # even without BOS


@pytest.mark.parametrize("n_seq_max", [1, 2], ids=["single-sequence", "batch-loop"])
def test_a_partly_shared_prompt_is_evaluated_again(model, prompt_a, prompt_b, n_seq_max):
    with context(model, n_seq_max) as ctx:
        first, _ = generate(ctx, model, prompt_a)
        assert off_greedy(model, prompt_a, first) == []
        assert ctx.cached_tokens(0)[:N_SHARED] == prompt_a[:N_SHARED]
        second, gen = generate(ctx, model, prompt_b)
        assert len(second) == N_TOKENS
        assert off_greedy(model, prompt_b, second) == []
        assert gen.n_reused_tokens == 0
        assert gen.n_prompt_tokens == len(prompt_b)


@pytest.mark.parametrize("n_seq_max", [1, 2], ids=["single-sequence", "batch-loop"])
def test_the_same_prompt_again_is_evaluated_again(model, prompt_a, n_seq_max):
    # Its last token is evaluated again for its logits, which a recurrent state cannot undo.
    with context(model, n_seq_max) as ctx:
        generate(ctx, model, prompt_a)
        again, gen = generate(ctx, model, prompt_a)
        assert len(again) == N_TOKENS
        assert off_greedy(model, prompt_a, again) == []
        assert gen.n_reused_tokens == 0


@pytest.mark.parametrize("n_seq_max", [1, 2], ids=["single-sequence", "batch-loop"])
def test_a_prompt_extending_what_the_sequence_holds(model, prompt_a, n_seq_max):
    with context(model, n_seq_max) as ctx:
        generate(ctx, model, prompt_a)
        held = ctx.cached_tokens(0)
        assert held[: len(prompt_a)] == prompt_a and -1 not in held
        follow_up = held + model.tokenize(MORE_TEXT, add_special=False)
        out, gen = generate(ctx, model, follow_up)
        assert len(out) == N_TOKENS
        assert off_greedy(model, follow_up, out) == []
        assert gen.n_reused_tokens in (0, len(held))


@pytest.mark.parametrize("n_seq_max", [1, 2], ids=["single-sequence", "batch-loop"])
def test_a_chat_turn_after_the_reply(model, prompt_a, n_seq_max):
    # The next turn holds the prompt, the whole reply (its last token never evaluated) and more.
    with context(model, n_seq_max) as ctx:
        reply, _ = generate(ctx, model, prompt_a)
        follow_up = prompt_a + reply + model.tokenize(MORE_TEXT, add_special=False)
        out, gen = generate(ctx, model, follow_up)
        assert len(out) == N_TOKENS
        assert off_greedy(model, follow_up, out) == []
        assert gen.n_reused_tokens <= len(prompt_a) + len(reply)


@pytest.mark.parametrize("n_seq_max", [1, 2], ids=["single-sequence", "batch-loop"])
def test_a_follow_up_after_a_generation_closed_early(model, prompt_a, n_seq_max):
    # Decode-ahead may have evaluated tokens never handed out; the state must not keep them.
    with context(model, n_seq_max) as ctx:
        gen = ctx.generate(prompt_a, greedy(model), max_tokens=N_TOKENS)
        handed_out = [next(gen)[0] for _ in range(4)]
        gen.close()
        follow_up = prompt_a + handed_out + model.tokenize(MORE_TEXT, add_special=False)
        out, _ = generate(ctx, model, follow_up)
        assert len(out) == N_TOKENS
        assert off_greedy(model, follow_up, out) == []


def test_two_concurrent_generations_after_earlier_ones_are_each_greedy(model, prompt_a, prompt_b):
    prompt_c = model.tokenize("Once upon a time in a small village", add_special=True)
    with context(model, n_seq_max=2) as ctx:
        # Each sequence holds something first, so both new prompts meet a state to handle.
        consume_all(
            [
                ctx.generate(prompt_a, greedy(model), max_tokens=N_TOKENS, seq_id=0),
                ctx.generate(prompt_c, greedy(model), max_tokens=N_TOKENS, seq_id=1),
            ]
        )
        held_c = ctx.cached_tokens(1)
        follow_up_c = held_c + model.tokenize(MORE_TEXT, add_special=False)
        gens = [
            ctx.generate(prompt_b, greedy(model), max_tokens=N_TOKENS, seq_id=0),
            ctx.generate(follow_up_c, greedy(model), max_tokens=N_TOKENS, seq_id=1),
        ]
        out = consume_all(gens)
        assert [len(o) for o in out] == [N_TOKENS, N_TOKENS]
        assert off_greedy(model, prompt_b, out[0]) == []
        assert off_greedy(model, follow_up_c, out[1]) == []
        assert gens[0].n_reused_tokens == 0
        assert [g.finish_reason for g in gens] == ["length", "length"]


def test_two_fresh_concurrent_generations_are_each_greedy(model, prompt_a, prompt_b):
    with context(model, n_seq_max=2) as ctx:
        gens = [
            ctx.generate(p, greedy(model), max_tokens=N_TOKENS, seq_id=i)
            for i, p in enumerate([prompt_a, prompt_b])
        ]
        out = consume_all(gens)
        assert [len(o) for o in out] == [N_TOKENS, N_TOKENS]
        assert off_greedy(model, prompt_a, out[0]) == []
        assert off_greedy(model, prompt_b, out[1]) == []
