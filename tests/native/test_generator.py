import gc
import os
import threading
import time

import pytest

from llamabind import _native
from llamabind.errors import ContextOverflowError, HandleClosedError

PROMPT = "Once upon a time"


def greedy(model):
    return _native.Sampler(model, temperature=0)


def run(model, n_ctx=256, max_tokens=16, n_threads=2, text=PROMPT):
    with _native.Context(model, n_ctx=n_ctx, n_threads=n_threads) as ctx:
        gen = ctx.generate(model.tokenize(text, add_special=True), greedy(model), max_tokens=max_tokens)
        return [t for t, _ in gen], gen.finish_reason


def test_tokens_and_pieces_and_counters(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        gen = ctx.generate(tokens, greedy(smollm2), max_tokens=10)
        assert gen.finish_reason is None
        items = list(gen)
        assert len(items) == 10
        assert all(isinstance(t, int) and isinstance(p, bytes) for t, p in items)
        assert gen.finish_reason == "length"
        assert gen.n_prompt_tokens == len(tokens)
        assert gen.n_generated_tokens == 10
        assert gen.token_ids == [t for t, _ in items]
        assert gen.t_prompt_eval_ms > 0 and gen.t_generation_ms > 0
        assert b"".join(p for _, p in items) == smollm2.detokenize(gen.token_ids)


def test_greedy_is_deterministic(smollm2):
    assert run(smollm2) == run(smollm2)


def test_stops_at_end_of_generation(smollm2):
    text = "<|im_start|>user\nSay OK.<|im_end|>\n<|im_start|>assistant\n"
    with _native.Context(smollm2, n_ctx=512) as ctx:
        gen = ctx.generate(smollm2.tokenize(text, parse_special=True), greedy(smollm2), max_tokens=200)
        list(gen)
        assert gen.finish_reason == "eog"
        assert gen.n_generated_tokens < 200


def test_ignore_eog_runs_to_max_tokens(smollm2):
    text = "<|im_start|>user\nSay OK.<|im_end|>\n<|im_start|>assistant\n"
    with _native.Context(smollm2, n_ctx=512) as ctx:
        gen = ctx.generate(smollm2.tokenize(text, parse_special=True), greedy(smollm2), max_tokens=60,
                           ignore_eog=True, render_special=True)
        pieces = b"".join(p for _, p in gen)
        assert gen.finish_reason == "length"
        assert b"<|im_end|>" in pieces


def test_stops_when_the_context_is_full(smollm2):
    tokens, reason = run(smollm2, n_ctx=32, max_tokens=-1)
    assert reason == "context"
    assert len(tokens) + len(smollm2.tokenize(PROMPT, add_special=True)) >= 32


def test_prompt_longer_than_context(smollm2):
    with _native.Context(smollm2, n_ctx=32) as ctx:
        n_ctx = ctx.n_ctx  # llama.cpp rounds small contexts up
        with pytest.raises(ContextOverflowError) as info:
            ctx.generate(list(range(100, 110 + n_ctx)), greedy(smollm2))
        assert info.value.n_tokens == n_ctx + 10
        assert info.value.n_ctx == n_ctx
        assert ctx.generate([1, 2, 3], greedy(smollm2), max_tokens=2)  # still usable


def test_bad_prompt_tokens(smollm2):
    with _native.Context(smollm2, n_ctx=64) as ctx:
        with pytest.raises(ValueError, match="outside the vocabulary"):
            ctx.generate([1, 99999999], greedy(smollm2))
        with pytest.raises(ValueError, match="no tokens"):
            ctx.generate([], greedy(smollm2))


def test_prefix_reuse(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        first = ctx.generate(tokens, greedy(smollm2), max_tokens=8)
        out = [t for t, _ in first]
        assert first.n_reused_tokens == 0
        follow = tokens + out
        second = ctx.generate(follow, greedy(smollm2), max_tokens=8)
        continued = [t for t, _ in second]
        # all but the last token was decoded by the first run
        assert second.n_reused_tokens == len(follow) - 1
        same = ctx.generate(tokens, greedy(smollm2), max_tokens=8)
        assert [t for t, _ in same] == out
        assert same.n_reused_tokens == len(tokens) - 1
    fresh_tokens, _ = run(smollm2, max_tokens=16)
    assert out + continued == fresh_tokens


def test_cancel_from_another_thread(smollm2):
    with _native.Context(smollm2, n_ctx=512) as ctx:
        gen = ctx.generate(smollm2.tokenize(PROMPT, add_special=True), greedy(smollm2), max_tokens=400)
        got = []

        def consume():
            for token, _ in gen:
                got.append(token)

        worker = threading.Thread(target=consume)
        worker.start()
        while len(got) < 3:
            time.sleep(0.001)
        gen.cancel()
        worker.join(timeout=10)
        assert not worker.is_alive()
        assert gen.finish_reason == "cancelled"
        assert len(got) < 400
        # the context stays usable
        again = ctx.generate(smollm2.tokenize(PROMPT, add_special=True), greedy(smollm2), max_tokens=4)
        assert len(list(again)) == 4


def test_cancel_during_prompt_evaluation(smollm2):
    with _native.Context(smollm2, n_ctx=2048, n_batch=64) as ctx:
        tokens = smollm2.tokenize("word " * 1500, add_special=True)
        gen = ctx.generate(tokens, greedy(smollm2), max_tokens=4)
        timer = threading.Timer(0.05, gen.cancel)
        timer.start()
        assert list(gen) == []
        timer.join()
        assert gen.finish_reason == "cancelled"
        assert len(list(ctx.generate([1, 2, 3], greedy(smollm2), max_tokens=2))) == 2


def test_close_and_break_stop_generation(smollm2):
    with _native.Context(smollm2, n_ctx=256) as ctx:
        gen = ctx.generate(smollm2.tokenize(PROMPT, add_special=True), greedy(smollm2), max_tokens=50)
        for i, _ in enumerate(gen):
            if i == 2:
                break
        gen.close()
        assert gen.finish_reason == "cancelled"
        assert list(gen) == []


def test_generator_keeps_its_context_alive(smollm2):
    ctx = _native.Context(smollm2, n_ctx=128)
    gen = ctx.generate(smollm2.tokenize(PROMPT, add_special=True), greedy(smollm2), max_tokens=5)
    del ctx
    gc.collect()
    assert len(list(gen)) == 5


def test_closed_context_stops_generator(smollm2):
    ctx = _native.Context(smollm2, n_ctx=128)
    gen = ctx.generate(smollm2.tokenize(PROMPT, add_special=True), greedy(smollm2), max_tokens=5)
    next(gen)
    ctx.close()
    with pytest.raises(HandleClosedError):
        next(gen)


def test_two_threads_two_contexts_match_single_threaded_runs(smollm2):
    texts = ["Once upon a time", "The recipe for bread"]
    expected = [run(smollm2, text=t, n_threads=1, max_tokens=24)[0] for t in texts]
    results = [None, None]

    def work(i):
        results[i] = run(smollm2, text=texts[i], n_threads=1, max_tokens=24)[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == expected


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc")
def test_load_generate_close_cycles_do_not_grow_rss(smollm2_path):
    def cycle():
        with _native.Model(smollm2_path) as model, _native.Context(model, n_ctx=64, n_threads=1) as ctx:
            list(ctx.generate([1, 2, 3], _native.Sampler(model, temperature=0), max_tokens=2))

    for _ in range(20):
        cycle()
    gc.collect()
    start = rss_bytes()
    for _ in range(200):
        cycle()
    gc.collect()
    grown = rss_bytes() - start
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB over 200 cycles"


def _thread_count():
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0


def _ids(ctx, model, sampler, *, decode_ahead, max_tokens=24, seq_id=0, text=PROMPT):
    gen = ctx.generate(model.tokenize(text, add_special=True), sampler, max_tokens=max_tokens,
                       seq_id=seq_id, decode_ahead=decode_ahead)
    return [t for t, _ in gen], gen


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"seed": 11, "temperature": 0.9},
                                    {"seed": 5, "repeat_penalty": 1.3}])
def test_decode_ahead_gives_the_same_tokens(smollm2, kwargs):
    with _native.Context(smollm2, n_ctx=256) as ctx:
        ahead, gen = _ids(ctx, smollm2, _native.Sampler(smollm2, **kwargs), decode_ahead=True)
        assert gen.finish_reason in ("length", "eog") and gen.token_ids == ahead
        ctx.memory_clear()
        inline, _ = _ids(ctx, smollm2, _native.Sampler(smollm2, **kwargs), decode_ahead=False)
    assert ahead == inline and len(ahead) > 3


def test_decode_ahead_keeps_every_handed_out_token_in_the_cache(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        gen = ctx.generate(tokens, greedy(smollm2), max_tokens=40)
        handed = [next(gen)[0] for _ in range(5)]
        gen.close()  # stops the decode ahead (of the fifth token) wherever it is
        cached = ctx.cached_tokens(0)
        # the prompt and the first four are decoded; the fifth may or may not be
        assert cached[: len(tokens) + 4] == tokens + handed[:4]
        assert len(cached) in (len(tokens) + 4, len(tokens) + 5)
        assert ctx.memory_pos_max(0) == len(cached) - 1
        # a follow-up prompt reuses all of it and continues as one long run would
        follow = ctx.generate(tokens + handed, greedy(smollm2), max_tokens=5)
        more = [t for t, _ in follow]
        assert follow.n_reused_tokens >= len(tokens) + 4
    assert handed + more == run(smollm2, max_tokens=10)[0]


def test_a_newer_generator_on_the_sequence_supersedes_the_old(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        old = ctx.generate(tokens, greedy(smollm2), max_tokens=30)
        next(old)  # its worker now decodes ahead
        new = ctx.generate(smollm2.tokenize("The recipe for bread", add_special=True),
                           greedy(smollm2), max_tokens=12)
        ids = [t for t, _ in new]
        assert list(old) == [] and old.finish_reason == "cancelled"
    assert ids == run(smollm2, text="The recipe for bread", max_tokens=12)[0]


def test_closing_while_the_worker_decodes(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=512) as ctx:
        for _ in range(20):  # close at every moment of the step cycle
            gen = ctx.generate(tokens, greedy(smollm2), max_tokens=100, ignore_eog=True)
            for _ in range(3):
                next(gen)
            gen.close()
            assert gen.finish_reason == "cancelled" and list(gen) == []
        assert [t for t, _ in ctx.generate(tokens, greedy(smollm2), max_tokens=6)] == run(
            smollm2, max_tokens=6)[0]


def test_generators_dropped_mid_run_are_freed(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        counts = []
        for _ in range(10):
            gen = ctx.generate(tokens, greedy(smollm2), max_tokens=50)
            next(gen)
            next(gen)
            del gen  # no close: the destructor waits for the worker and joins it
            gc.collect()
            counts.append(_thread_count())
        assert counts[-1] <= counts[0]  # worker threads (and their OpenMP teams) do not pile up
        assert [t for t, _ in ctx.generate(tokens, greedy(smollm2), max_tokens=6)] == run(
            smollm2, max_tokens=6)[0]


@pytest.mark.parametrize("backend_sampling", [False, None])
def test_two_threads_on_two_sequences_of_one_context(smollm2, backend_sampling):
    # each step decodes and samples in one hold of the context lock: no thread samples from
    # the other sequence's outputs
    texts = ["Once upon a time", "The recipe for bread"]
    expected = [run(smollm2, text=t, max_tokens=20)[0] for t in texts]
    results = [None, None]
    with _native.Context(smollm2, n_ctx=512, n_seq_max=2) as ctx:
        def worker(i):
            gen = ctx.generate(smollm2.tokenize(texts[i], add_special=True), greedy(smollm2),
                               max_tokens=20, seq_id=i, backend_sampling=backend_sampling)
            results[i] = [t for t, _ in gen]

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == expected


def reference_logprobs(model, tokens):
    """log-softmax of the raw logits after `tokens`, computed in numpy on a fresh context."""
    np = pytest.importorskip("numpy")
    with _native.Context(model, n_ctx=256, n_threads=2) as ctx:
        ctx.decode(tokens, 0, "last")
        logits = ctx.logits(-1).astype(np.float64)
    return logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))


@pytest.mark.parametrize("n_seq_max", [1, 2])
def test_logprobs_of_each_generated_token(smollm2, n_seq_max):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256 * n_seq_max, n_threads=2, n_seq_max=n_seq_max) as ctx:
        gen = ctx.generate(tokens, greedy(smollm2), max_tokens=3, n_logprobs=5, seq_id=n_seq_max - 1)
        assert gen.last_logprobs is None  # nothing generated yet
        seen = []
        for token, _ in gen:
            logprob, top = gen.last_logprobs
            seen.append((token, logprob, top))
    context = list(tokens)
    for token, logprob, top in seen:
        expected = reference_logprobs(smollm2, context)
        assert logprob == pytest.approx(expected[token], abs=1e-3)
        assert [t for t, _ in top] == [int(t) for t in (-expected).argsort(kind="stable")[:5]]
        assert [lp for _, lp in top] == pytest.approx([expected[t] for t, _ in top], abs=1e-3)
        assert top[0][0] == token  # greedy picks the most likely
        context.append(token)


def test_logprobs_off_by_default_and_checked(smollm2):
    tokens = smollm2.tokenize(PROMPT, add_special=True)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        gen = ctx.generate(tokens, greedy(smollm2), max_tokens=2)
        list(gen)
        assert gen.last_logprobs is None
        gen = ctx.generate(tokens, greedy(smollm2), max_tokens=2, n_logprobs=0)
        list(gen)
        assert gen.last_logprobs[1] == []
        for bad in (-2, 101):
            with pytest.raises(ValueError, match="n_logprobs"):
                ctx.generate(tokens, greedy(smollm2), n_logprobs=bad)
        with pytest.raises(ValueError, match="log-probabilities"):
            ctx.generate(tokens, greedy(smollm2), n_logprobs=1, backend_sampling=True)
