"""The batch loop of a context with several sequences (csrc/batch.cpp): one llama_decode per step
for every active generation, each sequence with its own sampler."""

import threading

import pytest

from llamabind import _native
from llamabind.errors import ContextOverflowError, HandleClosedError

PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "List three colors:"]
SCHEMA_GRAMMAR = 'root ::= "{" [a-z]+ "}"'


def greedy(model, **kwargs):
    return _native.Sampler(model, temperature=0, **kwargs)


def alone(model, text, max_tokens=16, **sampler):
    """The tokens of one generation on a context of its own (no batching)."""
    with _native.Context(model, n_ctx=512, n_threads=2) as ctx:
        gen = ctx.generate(model.tokenize(text, add_special=True), greedy(model, **sampler), max_tokens=max_tokens)
        return [t for t, _ in gen]


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
        t.join(120)
    return out


@pytest.fixture(scope="module")
def expected(smollm2):
    return [alone(smollm2, p) for p in PROMPTS]


def test_four_concurrent_greedy_generations_match_each_alone(smollm2, expected):
    with _native.Context(smollm2, n_ctx=2048, n_seq_max=4, n_threads=2) as ctx:
        gens = [ctx.generate(smollm2.tokenize(p, add_special=True), greedy(smollm2), max_tokens=16, seq_id=i)
                for i, p in enumerate(PROMPTS)]
        out = consume_all(gens)
        assert out == expected
        assert [g.finish_reason for g in gens] == ["length"] * 4
        assert all(g.n_generated_tokens == 16 and g.t_prompt_eval_ms > 0 for g in gens)
        for i, g in enumerate(gens):  # the cache of each sequence holds its prompt and tokens
            tokens = smollm2.tokenize(PROMPTS[i], add_special=True)
            assert ctx.cached_tokens(i)[: len(tokens) + 15] == tokens + out[i][:15]


def test_batch_stats_count_the_steps_and_their_fill(smollm2, expected):
    with _native.Context(smollm2, n_ctx=2048, n_seq_max=4, n_threads=2) as ctx:
        assert set(ctx.batch_stats().values()) == {0}
        gens = [ctx.generate(smollm2.tokenize(p, add_special=True), greedy(smollm2), max_tokens=16, seq_id=i)
                for i, p in enumerate(PROMPTS)]
        assert consume_all(gens) == expected
        stats = ctx.batch_stats()
        n_prompt = sum(len(smollm2.tokenize(p, add_special=True)) for p in PROMPTS)
        # every token after each prompt's first is sampled from a generating step ...
        assert stats["n_sampled"] == 4 * 15
        assert stats["n_tokens"] == n_prompt + 4 * 15
        # ... and the four shared their steps (one per step would take 60)
        assert stats["n_steps"] < 4 * 15


def test_cancel_is_per_generation_even_mid_decode(smollm2, expected):
    # a long prompt on sequence 1 is being evaluated when sequence 0 is cancelled
    long_text = "The history of the city, told in many words. " * 40
    with _native.Context(smollm2, n_ctx=4096, n_seq_max=2, n_threads=2) as ctx:
        victim = ctx.generate(smollm2.tokenize(long_text, add_special=True), greedy(smollm2), max_tokens=16)
        keeper = ctx.generate(smollm2.tokenize(PROMPTS[0], add_special=True), greedy(smollm2), max_tokens=16,
                              seq_id=1)
        threading.Timer(0.05, victim.cancel).start()
        out = consume_all([victim, keeper])
        assert victim.finish_reason == "cancelled" and len(out[0]) < 16
        assert keeper.finish_reason == "length" and out[1] == expected[0]


def test_cancelling_one_leaves_the_others_identical(smollm2, expected):
    with _native.Context(smollm2, n_ctx=2048, n_seq_max=4, n_threads=2) as ctx:
        gens = [ctx.generate(smollm2.tokenize(p, add_special=True), greedy(smollm2), max_tokens=16, seq_id=i)
                for i, p in enumerate(PROMPTS)]
        first = [next(g)[0] for g in gens]
        gens[1].cancel()
        rest = consume_all(gens)
        assert gens[1].finish_reason == "cancelled"
        for i in (0, 2, 3):
            assert [first[i]] + rest[i] == expected[i]
            assert gens[i].finish_reason == "length"


def test_a_grammar_request_beside_a_free_one(smollm2, expected):
    with _native.Context(smollm2, n_ctx=2048, n_seq_max=2, n_threads=2) as ctx:
        free = ctx.generate(smollm2.tokenize(PROMPTS[0], add_special=True), greedy(smollm2), max_tokens=16)
        bound = ctx.generate(smollm2.tokenize("Write a word in braces:", add_special=True),
                             greedy(smollm2, grammar=SCHEMA_GRAMMAR), max_tokens=12, seq_id=1)
        out = consume_all([free, bound])
        assert out[0] == expected[0]
        text = smollm2.detokenize(out[1]).decode()
        assert text.startswith("{") and text[1:].rstrip("}").isalpha()
        assert out[1] == alone(smollm2, "Write a word in braces:", max_tokens=12, grammar=SCHEMA_GRAMMAR)


def test_a_lone_generation_on_a_batching_context(smollm2, expected):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=2, n_threads=2) as ctx:
        gen = ctx.generate(smollm2.tokenize(PROMPTS[2], add_special=True), greedy(smollm2), max_tokens=16, seq_id=1)
        assert [t for t, _ in gen] == expected[2]
        assert gen.finish_reason == "length" and gen.sampling_backend == "cpu"


def test_a_prefix_held_by_another_sequence_is_copied_not_evaluated(smollm2):
    system = "You are a helpful assistant who answers questions about geography. " * 8
    first = smollm2.tokenize(system + "What is the capital of Spain?", add_special=True)
    second = smollm2.tokenize(system + "What is the capital of Italy?", add_special=True)
    common = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
    assert common > 80
    with _native.Context(smollm2, n_ctx=2048, n_seq_max=2, n_threads=2) as ctx:
        gen = ctx.generate(first, greedy(smollm2), max_tokens=4, seq_id=0)
        list(gen)
        assert gen.n_reused_tokens == 0
        other = ctx.generate(second, greedy(smollm2), max_tokens=8, seq_id=1)
        tokens = [t for t, _ in other]
        assert other.n_reused_tokens == common
        assert ctx.cached_tokens(0)[: len(first)] == first  # the donor keeps its own
    with _native.Context(smollm2, n_ctx=1024, n_threads=2) as solo:
        assert tokens == [t for t, _ in solo.generate(second, greedy(smollm2), max_tokens=8)]


def test_a_sequence_that_fills_its_share_stops_with_context(smollm2):
    with _native.Context(smollm2, n_ctx=512, n_seq_max=2, n_threads=2) as ctx:
        per_seq = 512 // 2
        long = ctx.generate(smollm2.tokenize(PROMPTS[1], add_special=True), greedy(smollm2), max_tokens=-1,
                            ignore_eog=True, seq_id=0)
        short = ctx.generate(smollm2.tokenize(PROMPTS[0], add_special=True), greedy(smollm2), max_tokens=8,
                             seq_id=1)
        out = consume_all([long, short])
        assert long.finish_reason == "context"
        assert len(out[0]) + len(smollm2.tokenize(PROMPTS[1], add_special=True)) >= per_seq - 1
        assert short.finish_reason == "length" and len(out[1]) == 8


def test_with_kv_unified_a_sequence_still_gets_only_its_share(smollm2):
    """One shared cache: llama.cpp would let a sequence fill all of it, and its neighbours'
    next decode would fail; each sequence stops at n_ctx / n_seq_max instead."""
    with _native.Context(smollm2, n_ctx=512, n_seq_max=2, n_threads=2, kv_unified=True) as ctx:
        assert ctx.n_ctx_seq == 256
        prompt = smollm2.tokenize(PROMPTS[1], add_special=True)
        long = ctx.generate(prompt, greedy(smollm2), max_tokens=-1, ignore_eog=True, seq_id=0)
        short = ctx.generate(smollm2.tokenize(PROMPTS[0], add_special=True), greedy(smollm2), max_tokens=8,
                             seq_id=1)
        out = consume_all([long, short])
        assert long.finish_reason == "context"
        assert 255 <= len(prompt) + len(out[0]) - 1 <= 256  # the last token is sampled, never decoded
        assert len(ctx.cached_tokens(0)) <= 256
        assert short.finish_reason == "length" and len(out[1]) == 8
        with pytest.raises(ContextOverflowError, match="holds 256"):
            ctx.generate(list(range(300)), greedy(smollm2), seq_id=1)


def test_n_ctx_seq_is_the_share_of_each_sequence(smollm2):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=4, n_threads=2) as ctx:
        assert ctx.n_ctx_seq == 256
    with _native.Context(smollm2, n_ctx=1024, n_threads=2) as ctx:
        assert ctx.n_ctx_seq == 1024


def test_sequences_arriving_out_of_order_match_each_alone(smollm2, expected):
    """The loop puts each step's tokens in sequence-id order (llama.cpp splits a batch of
    separate cache streams at every break in the ids); the outputs still go to their owners."""
    with _native.Context(smollm2, n_ctx=2048, n_seq_max=4, n_threads=2) as ctx:
        order = [3, 1, 2, 0]
        gens = [ctx.generate(smollm2.tokenize(PROMPTS[i], add_special=True), greedy(smollm2), max_tokens=16,
                             seq_id=seq) for i, seq in enumerate(order)]
        assert consume_all(gens) == expected


def test_generations_made_one_after_another_start_in_the_same_step(smollm2):
    """Context.generate hands the request to the loop without waiting for the context lock, so
    prompts made back to back are evaluated together (each call used to wait for the step in
    flight, and eight prompts took about eight steps)."""
    with _native.Context(smollm2, n_ctx=8 * 64, n_seq_max=8, n_threads=2) as ctx:
        prompts = [smollm2.tokenize(f"{PROMPTS[i % 4]} (request {i})", add_special=True) for i in range(8)]
        gens = [ctx.generate(p, greedy(smollm2), max_tokens=1, seq_id=i) for i, p in enumerate(prompts)]
        assert all(len(t) == 1 for t in consume_all(gens))
        assert ctx.batch_stats()["n_steps"] <= 3


LONG_PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle on the shore.",
    "Explain in simple words why the sky looks blue during the day and red in the evening.",
]


def test_the_prompt_cache_brings_back_a_prompt_another_request_overwrote(smollm2):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=2, n_threads=2, prompt_cache_mib=64) as ctx:
        first, other = (smollm2.tokenize(p, add_special=True) for p in LONG_PROMPTS)
        before = [t for t, _ in ctx.generate(first, greedy(smollm2), max_tokens=8, seq_id=0)]
        list(ctx.generate(other, greedy(smollm2), max_tokens=8, seq_id=0))  # overwrites sequence 0
        stats = ctx.batch_stats()
        assert stats["prompt_cache_entries"] == 1 and stats["prompt_cache_saved"] == 1
        assert stats["prompt_cache_bytes"] > 0
        again = ctx.generate(first, greedy(smollm2), max_tokens=8, seq_id=1)  # an empty sequence
        assert [t for t, _ in again] == before
        assert again.n_reused_tokens == len(first) - 1  # the last prompt token is evaluated again
        assert ctx.batch_stats()["prompt_cache_restored"] == 1
        assert ctx.cached_tokens(1)[: len(first)] == first
        ctx.set_control_vector(None)  # the kept caches were computed without it: dropped
        assert ctx.batch_stats()["prompt_cache_entries"] == 0
        list(ctx.generate(other, greedy(smollm2), max_tokens=8, seq_id=1))  # keeps `first` again
        assert ctx.batch_stats()["prompt_cache_entries"] == 1
        ctx.close()  # frees the kept caches at once
        assert ctx.batch_stats()["prompt_cache_bytes"] == 0


def test_without_a_prompt_cache_an_overwritten_prompt_is_evaluated_again(smollm2):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=2, n_threads=2) as ctx:
        first, other = (smollm2.tokenize(p, add_special=True) for p in LONG_PROMPTS)
        list(ctx.generate(first, greedy(smollm2), max_tokens=8, seq_id=0))
        list(ctx.generate(other, greedy(smollm2), max_tokens=8, seq_id=0))
        again = ctx.generate(first, greedy(smollm2), max_tokens=8, seq_id=1)
        list(again)
        assert again.n_reused_tokens < 8
        assert ctx.batch_stats()["prompt_cache_saved"] == 0
    with pytest.raises(ValueError, match="prompt_cache_mib"):
        _native.Context(smollm2, n_ctx=256, n_seq_max=2, prompt_cache_mib=-1)


def test_closing_the_context_ends_every_generation(smollm2):
    ctx = _native.Context(smollm2, n_ctx=1024, n_seq_max=2, n_threads=2)
    gens = [ctx.generate(smollm2.tokenize(p, add_special=True), greedy(smollm2), max_tokens=200, ignore_eog=True,
                         seq_id=i) for i, p in enumerate(PROMPTS[:2])]
    next(gens[0])
    ctx.close()
    for g in gens:
        list(g)
        assert g.finish_reason == "cancelled"
    with pytest.raises(HandleClosedError):
        ctx.generate([1, 2, 3], greedy(smollm2))


def test_dropped_generators_free_their_sequence(smollm2, expected):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=2, n_threads=2) as ctx:
        for _ in range(5):
            gen = ctx.generate(smollm2.tokenize(PROMPTS[1], add_special=True), greedy(smollm2), max_tokens=50,
                               seq_id=0)
            next(gen)
            del gen  # the loop drops it before its next decode
        gen = ctx.generate(smollm2.tokenize(PROMPTS[0], add_special=True), greedy(smollm2), max_tokens=16, seq_id=0)
        assert [t for t, _ in gen] == expected[0]


@pytest.mark.parametrize("n_seq_max", [1, 2])
def test_one_generator_iterated_from_several_threads(smollm2, n_seq_max):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=n_seq_max, n_threads=2) as ctx:
        gen = ctx.generate(smollm2.tokenize(PROMPTS[1], add_special=True), greedy(smollm2), max_tokens=30)
        seen = []
        lock = threading.Lock()

        def pull():
            for token, _ in gen:
                with lock:
                    seen.append(token)

        threads = [threading.Thread(target=pull) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(seen) == sorted(gen.token_ids) and len(seen) == 30  # each token handed out once
        assert gen.token_ids == alone(smollm2, PROMPTS[1], max_tokens=30)


@pytest.fixture(scope="module")
def gemma3(gemma3_path):
    with _native.Model(gemma3_path) as model:
        yield model


def test_gemma3_sliding_window_model_batched(gemma3):
    texts = ["The capital of France is", "Once upon a time"]
    expected = []
    for text in texts:
        with _native.Context(gemma3, n_ctx=512, n_threads=2) as solo:
            gen = solo.generate(gemma3.tokenize(text, add_special=True), greedy(gemma3), max_tokens=12)
            expected.append([t for t, _ in gen])
    with _native.Context(gemma3, n_ctx=1024, n_seq_max=2, n_threads=2) as ctx:
        gens = [ctx.generate(gemma3.tokenize(t, add_special=True), greedy(gemma3), max_tokens=12, seq_id=i)
                for i, t in enumerate(texts)]
        assert consume_all(gens) == expected


def test_a_consumer_that_stops_reading_pauses_only_its_own_sequence(smollm2, expected):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=2, n_threads=2) as ctx:
        idle_prompt = smollm2.tokenize(PROMPTS[1], add_special=True)
        idle = ctx.generate(idle_prompt, greedy(smollm2), max_tokens=100, seq_id=1)
        assert next(idle)  # started, then never read again
        busy = ctx.generate(smollm2.tokenize(PROMPTS[0], add_special=True), greedy(smollm2),
                            max_tokens=16, seq_id=0)
        assert [t for t, _ in busy] == expected[0]  # it ran to its end beside the idle one
        # the idle one ran ahead of its reader by at most 8 tokens (+1 decoded for the next)
        n_ahead = len(ctx.cached_tokens(1)) - len(idle_prompt)
        assert 1 <= n_ahead <= 1 + 8 + 1
        assert [t for t, _ in idle][:15] == expected[1][1:16]


def test_prefix_lengths_of_every_sequence_in_one_call(smollm2):
    with _native.Context(smollm2, n_ctx=1024, n_seq_max=3, n_threads=2) as ctx:
        a = smollm2.tokenize("The capital of France is", add_special=True)
        b = smollm2.tokenize("The capital of Spain is", add_special=True)
        ctx.decode(a, 0)
        ctx.decode(b, 2)
        assert ctx.prefix_lengths(a) == [len(a), 0, 3]  # "The capital of"
        assert ctx.prefix_lengths(a) == [
            next((i for i, (x, y) in enumerate(zip(ctx.cached_tokens(s), a)) if x != y),
                 min(len(ctx.cached_tokens(s)), len(a)))
            for s in range(3)
        ]
        assert ctx.prefix_lengths([]) == [0, 0, 0]


def test_a_prefix_borrowed_in_the_step_its_donor_restores_another_prompt(smollm2):
    """Sequence 0 borrows a prompt from sequence 1 while, in the same step, sequence 1 restores
    another prompt from the prompt cache. Without a unified KV cache llama.cpp copies between
    sequences only at the next decode; the copy must not pick up what the restore wrote."""
    first, other = (smollm2.tokenize(p, add_special=True) for p in LONG_PROMPTS)
    first_more = first + smollm2.tokenize(" Make it a sad one.", add_special=False)
    other_more = other + smollm2.tokenize(" Use the words of a child.", add_special=False)
    want = []
    for prompt in (first_more, other_more):
        with _native.Context(smollm2, n_ctx=512, n_threads=2) as ctx:
            want.append([t for t, _ in ctx.generate(prompt, greedy(smollm2), max_tokens=12, ignore_eog=True)])
    with _native.Context(smollm2, n_ctx=2048, n_seq_max=4, n_threads=2, prompt_cache_mib=64) as ctx:
        list(ctx.generate(other, greedy(smollm2), max_tokens=8, seq_id=1))
        list(ctx.generate(first, greedy(smollm2), max_tokens=8, seq_id=1))  # `other` goes to the cache
        busy = ctx.generate(first[:4], greedy(smollm2), max_tokens=400, ignore_eog=True, seq_id=3)
        next(busy)  # the loop is stepping: the next two start in one step
        gens = [ctx.generate(first_more, greedy(smollm2), max_tokens=12, ignore_eog=True, seq_id=0),
                ctx.generate(other_more, greedy(smollm2), max_tokens=12, ignore_eog=True, seq_id=1)]
        out = consume_all(gens)
        busy.cancel()
        assert gens[0].n_reused_tokens >= len(first) - 1 and gens[1].n_reused_tokens >= len(other) - 1
        assert out == want
