"""Backend sampling: the chain runs inside the compute graph (csrc/generator.cpp, sampler.cpp).

On CPU builds the graph runs on the CPU backend; the same llama.cpp API is used as on a GPU.
"""

import threading

import pytest
from llamabind import _native

PROMPT = "Once upon a time"


def generate(model, sampler_kwargs, backend_sampling, *, max_tokens=24, n_seq_max=1, seq_id=0):
    with _native.Context(model, n_ctx=256, n_threads=2, n_seq_max=n_seq_max) as ctx:
        sampler = _native.Sampler(model, **sampler_kwargs)
        gen = ctx.generate(
            model.tokenize(PROMPT, add_special=True),
            sampler,
            max_tokens=max_tokens,
            seq_id=seq_id,
            backend_sampling=backend_sampling,
        )
        where = gen.sampling_backend
        ids = [t for t, _ in gen]
        # the path announced before the first token is the one every token took
        assert gen.sampling_backend == where
        n_sampled = len(ids) + (gen.finish_reason == "eog")
        assert gen.n_graph_sampled_tokens == (n_sampled if where == "backend" else 0)
        return ids, where, gen.finish_reason


def test_greedy_tokens_identical_on_both_paths_smollm2(smollm2):
    on_cpu, where_cpu, _ = generate(smollm2, {"temperature": 0}, False)
    in_graph, where_graph, reason = generate(smollm2, {"temperature": 0}, True)
    assert (where_cpu, where_graph) == ("cpu", "backend")
    assert reason == "length" and len(in_graph) == 24
    assert in_graph == on_cpu


def test_greedy_tokens_identical_on_both_paths_gemma3(gemma3_path):
    model = _native.Model(gemma3_path)
    try:
        on_cpu, _, _ = generate(model, {"temperature": 0}, False, max_tokens=16)
        in_graph, where, _ = generate(model, {"temperature": 0}, True, max_tokens=16)
        assert where == "backend"
        assert in_graph == on_cpu
    finally:
        model.close()


def test_seeded_sampling_in_graph_matches_cpu_after_top_k(smollm2):
    kwargs = {"seed": 1234, "temperature": 0.8}  # the default chain: top-k 40, top-p, min-p
    first, where, _ = generate(smollm2, kwargs, True)
    assert where == "backend"
    assert first == generate(smollm2, kwargs, True)[0]
    assert first == generate(smollm2, kwargs, False)[0]


def test_seeded_sampling_over_the_whole_vocabulary_is_deterministic(smollm2):
    # Without top-k the graph's float cumulative sum over 49k candidates differs from the CPU's
    # in the last bits, so the two paths may pick neighbouring tokens: each is reproducible.
    kwargs = {"seed": 7, "temperature": 1.5, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    first, where, _ = generate(smollm2, kwargs, True)
    assert where == "backend"
    assert first == generate(smollm2, kwargs, True)[0]
    assert generate(smollm2, kwargs, False)[0] == generate(smollm2, kwargs, False)[0]


def test_automatic_choice(smollm2):
    # in the graph where the logits are on a GPU; on the CPU the CPU sampler is as fast or
    # faster (benchmarks/RESULTS.md), so a CPU-only build samples there by default
    graph = "backend" if smollm2.output_on_gpu else "cpu"
    assert smollm2.output_on_gpu == (
        _native.supports_gpu_offload() and any(d.type in ("gpu", "igpu") for d in _native.devices())
    )
    assert generate(smollm2, {"temperature": 0}, None, max_tokens=2)[1] == graph
    assert generate(smollm2, {"seed": 1}, None, max_tokens=2)[1] == graph
    assert (
        generate(smollm2, {"temperature": 0, "logit_bias": {0: -1.0}}, None, max_tokens=2)[1]
        == graph
    )
    for kwargs in (
        {"temperature": 0, "grammar": 'root ::= "yes" | "no"'},
        {"repeat_penalty": 1.1},
        {"dry_multiplier": 0.8},
        {"mirostat": 2},
        {"typical_p": 0.9},
    ):
        assert not _native.Sampler(smollm2, **kwargs).can_run_in_graph
        assert generate(smollm2, kwargs, None, max_tokens=2)[1] == "cpu", kwargs


def test_forcing_an_unsupported_chain_raises(smollm2):
    with _native.Context(smollm2, n_ctx=128) as ctx:
        sampler = _native.Sampler(smollm2, repeat_penalty=1.2)
        with pytest.raises(ValueError, match="penalties"):
            ctx.generate(smollm2.tokenize(PROMPT), sampler, backend_sampling=True)
        grammar = _native.Sampler(smollm2, temperature=0, grammar='root ::= "a"')
        with pytest.raises(ValueError, match="cannot run in the compute graph"):
            ctx.generate(smollm2.tokenize(PROMPT), grammar, backend_sampling=True)


def test_grammar_still_constrains_on_the_automatic_path(smollm2):
    with _native.Context(smollm2, n_ctx=128) as ctx:
        sampler = _native.Sampler(smollm2, temperature=0, grammar='root ::= "yes" | "no"')
        gen = ctx.generate(smollm2.tokenize(PROMPT), sampler, max_tokens=8)
        assert gen.sampling_backend == "cpu"
        assert smollm2.detokenize([t for t, _ in gen]) in (b"yes", b"no")


def test_second_sequence(smollm2):
    on_seq0, _, _ = generate(smollm2, {"temperature": 0}, False)
    on_seq1, where, _ = generate(smollm2, {"temperature": 0}, True, n_seq_max=2, seq_id=1)
    assert where == "backend"
    assert on_seq1 == on_seq0


def test_two_sequences_each_with_its_own_chain(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256, n_seq_max=2) as ctx:
        greedy = ctx.generate(
            tokens, _native.Sampler(smollm2, temperature=0), max_tokens=8, seq_id=0,
            backend_sampling=True,
        )
        seeded = ctx.generate(
            tokens, _native.Sampler(smollm2, seed=3), max_tokens=8, seq_id=1, backend_sampling=True
        )
        assert greedy.sampling_backend == seeded.sampling_backend == "backend"
        interleaved = [(next(greedy)[0], next(seeded)[0]) for _ in range(8)]
    assert [a for a, _ in interleaved] == generate(
        smollm2, {"temperature": 0}, False, max_tokens=8
    )[0]
    assert [b for _, b in interleaved] == generate(smollm2, {"seed": 3}, False, max_tokens=8)[0]


def test_prefix_reuse_on_the_backend_path(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        first = ctx.generate(
            tokens, _native.Sampler(smollm2, temperature=0), max_tokens=6, backend_sampling=True
        )
        ids = [t for t, _ in first]
        # finished: the sequence gives plain logits again, the generator keeps its record
        assert first.sampling_backend == "backend" and first.n_graph_sampled_tokens == 6
        follow = tokens + ids
        second = ctx.generate(
            follow, _native.Sampler(smollm2, temperature=0), max_tokens=6, backend_sampling=True
        )
        more = [t for t, _ in second]
        assert second.n_reused_tokens >= len(follow) - 2
        # plain decode and logits work after a backend generation
        ctx.decode(smollm2.tokenize(" and"))
        assert len(ctx.logits(-1)) == smollm2.n_vocab
    expected, _, _ = generate(smollm2, {"temperature": 0}, False, max_tokens=12)
    assert ids + more == expected


def test_cancel_on_the_backend_path(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=512) as ctx:
        gen = ctx.generate(
            tokens, _native.Sampler(smollm2, temperature=0), ignore_eog=True, backend_sampling=True
        )
        assert gen.sampling_backend == "backend"
        next(gen)
        threading.Timer(0.2, gen.cancel).start()
        n = sum(1 for _ in gen)
        assert gen.finish_reason == "cancelled"
        assert n < 400
        again = ctx.generate(tokens, _native.Sampler(smollm2, temperature=0), max_tokens=4)
        assert len(list(again)) == 4


def test_abandoned_backend_generator_yields_to_a_cpu_one(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        old = ctx.generate(
            tokens, _native.Sampler(smollm2, temperature=0), max_tokens=8, backend_sampling=True
        )
        next(old)
        new = ctx.generate(
            tokens, _native.Sampler(smollm2, temperature=0), max_tokens=8, backend_sampling=False
        )
        assert old.n_graph_sampled_tokens == 1 and new.sampling_backend == "cpu"
        ids = [t for t, _ in new]
        assert new.n_graph_sampled_tokens == 0
    assert ids == generate(smollm2, {"temperature": 0}, True, max_tokens=8)[0]
