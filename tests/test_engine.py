"""LlamaEngine on SmolLM2 for real: lifecycle, raw generation, cancellation, tokens, embeddings,
scoring, state, LoRA, and every bad argument."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from llamabind import (
    ContextOverflowError,
    GenerationParams,
    InvalidTextError,
    LlamaEngine,
    ModelLoadError,
    ModelParams,
    StateError,
    _native,
)

GREEDY = GenerationParams(temperature=0, max_tokens=24)
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def engine(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=1024, n_threads=2)) as engine:
        yield engine


def test_lazy_load_on_first_use_and_context_manager(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=512)) as engine:
        assert not engine.is_ready
        assert engine.get_token_count("hello world") == 2
        assert engine.is_ready and engine.get_context_size() == 512
    assert engine.is_closed and engine.is_disposed and not engine.is_ready
    with pytest.raises(StateError, match="closed"):
        engine.tokenize("x")


def test_the_seeds_names_are_aliases():
    import llamabind
    from llamabind import generation, slots

    engine = LlamaEngine()
    engine.dispose()  # the seed's name for close()
    assert engine.is_closed and engine.is_disposed
    engine.close()  # safe twice
    assert llamabind.TokenRun is generation.TokenRun is llamabind.GenerationRun
    assert slots.RunHandle is slots.SlotLease


def test_generate_streams_text_equal_to_the_native_generator(engine, smollm2_path):
    pieces = list(engine.generate(PROMPT, GREEDY))
    assert len(pieces) > 3
    model = engine.model
    tokens = model.tokenize(PROMPT, add_special=True, parse_special=True)
    with _native.Context(model, n_ctx=512) as ctx:
        generator = ctx.generate(tokens, _native.Sampler(model, **GREEDY.sampler_kwargs()), max_tokens=24)
        expected = b"".join(piece for _, piece in generator).decode()
    assert "".join(pieces) == expected
    assert "Paris" in expected


def test_usage_counts_equal_the_tokenizer(engine):
    run = engine.start_generation(PROMPT, GREEDY)
    text = "".join(run)
    assert run.finish_reason == "length"
    usage = run.usage
    assert usage.prompt_tokens == len(engine.tokenize(PROMPT))
    assert usage.completion_tokens == len(run.token_ids) == 24
    assert usage.total_tokens == usage.prompt_tokens + 24
    assert engine.detokenize(run.token_ids) == text
    assert usage.time_to_first_token_ms > 0 and usage.generation_tokens_per_s > 0
    # The same prompt again: all but the last prompt token come from the KV cache.
    again = engine.start_generation(PROMPT, GREEDY)
    assert "".join(again) == text
    assert again.usage.cached_prompt_tokens == usage.prompt_tokens - 1


def test_the_run_tells_where_tokens_were_sampled(engine):
    # the seed's default repeat_penalty (1.1) needs the CPU; without penalties greedy is picked
    # inside the graph where the logits are on a GPU, with the same tokens as on the CPU
    with_penalty = engine.start_generation(PROMPT, GREEDY.replace(repeat_penalty=1.1))
    assert with_penalty.sampling_backend is None
    "".join(with_penalty)
    assert with_penalty.sampling_backend == "cpu"
    in_graph = engine.start_generation(PROMPT, GREEDY.replace(repeat_penalty=1.0))
    "".join(in_graph)
    model = engine.model
    assert in_graph.sampling_backend == ("backend" if model.output_on_gpu else "cpu")
    tokens = model.tokenize(PROMPT, add_special=True, parse_special=True)
    with _native.Context(model, n_ctx=512) as ctx:
        sampler = _native.Sampler(model, temperature=0)
        on_cpu = ctx.generate(tokens, sampler, max_tokens=24, backend_sampling=False)
        assert [t for t, _ in on_cpu] == in_graph.token_ids


def test_stop_strings_spanning_tokens_end_the_stream_and_are_not_emitted(engine):
    run = engine.start_generation(PROMPT, GREEDY)
    full = "".join(run)
    pieces = [engine.detokenize([t]) for t in run.token_ids]
    # A stop string made of the end of one token and the start of the next.
    i = next(k for k in range(2, len(pieces) - 1) if len(pieces[k]) >= 2 and len(pieces[k + 1]) >= 2)
    stop = pieces[i][-2:] + pieces[i + 1][:2]
    cut = full.index(stop)
    stopped = engine.start_generation(PROMPT, GREEDY.replace(stop=("never-appears", stop)))
    assert "".join(stopped) == full[:cut]
    assert stopped.finish_reason == "stop"
    assert stop not in "".join(engine.generate(PROMPT, GREEDY.replace(stop=(stop,))))


def test_multibyte_output_with_tokens_split_inside_characters(engine):
    text = "Voilà: 日本語 🙂🎉 naïve"
    forced = GenerationParams(temperature=0, max_tokens=60, grammar=f'root ::= "{text}"')
    run = engine.start_generation("Say something:", forced)
    pieces = list(run)
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    partial = [t for t in run.token_ids if not _is_utf8(engine.model.token_to_piece(t))]
    assert partial, "the forced text should include tokens that end inside a character"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_cancel_from_another_thread_stops_within_a_token(engine):
    endless = GenerationParams(temperature=0.8, seed=1, max_tokens=None, ignore_eos=True)
    run = engine.start_generation("Once upon a time", endless)
    n = 0
    for _ in run:
        n += 1
        if n == 5:
            threading.Thread(target=engine.cancel_generation).start()
        if n > 200:
            break
    assert run.finish_reason == "cancelled"
    assert n < 10
    assert not engine.is_generating
    assert "Paris" in "".join(engine.generate(PROMPT, GREEDY))  # still usable


def test_breaking_out_of_the_loop_stops_the_native_generation(engine):
    stream = engine.generate("Once upon a time", GenerationParams(max_tokens=None, ignore_eos=True))
    for n, _ in enumerate(stream):
        if n == 3:
            break
    stream.close()
    assert not engine.is_generating
    assert len(list(engine.generate(PROMPT, GREEDY))) > 0


def test_a_second_generation_in_the_same_thread_is_a_state_error(engine):
    # n_parallel=1: another thread would wait its turn; this thread would wait for itself
    first = engine.generate(PROMPT, GREEDY)
    next(first)
    with pytest.raises(StateError, match="already runs every generation"):
        next(engine.generate(PROMPT, GREEDY))
    first.close()
    assert next(engine.generate(PROMPT, GREEDY))


def test_cancel_when_idle_does_nothing(engine):
    engine.cancel_generation()
    assert "".join(engine.generate(PROMPT, GREEDY))


def test_tokens_round_trip(engine):
    tokens = engine.tokenize("Hello, world!")
    assert tokens and engine.detokenize(tokens) == "Hello, world!"
    assert engine.get_token_count("Hello, world!") == len(engine.tokenize("Hello, world!", add_special=False))
    im_start = engine.tokenize("<|im_start|>", add_special=False, parse_special=True)
    assert len(im_start) == 1 and engine.detokenize(im_start, special=True) == "<|im_start|>"
    assert engine.detokenize(im_start) == ""


def test_embeddings_are_normalised_and_meaningful(engine):
    cat = engine.embed("The cat sat on the mat.")
    kitten = engine.embed("A kitten is sitting on the rug.")
    tax = engine.embed("Quarterly tax filings are due in April.")
    assert cat.shape == (engine.model.n_embd,) and cat.dtype == np.float32
    assert abs(float(np.linalg.norm(cat)) - 1) < 1e-5
    assert float(cat @ kitten) > float(cat @ tax)
    raw = engine.embed("The cat sat on the mat.", normalize=False)
    assert np.allclose(raw / np.linalg.norm(raw), cat, atol=1e-5)
    batch = engine.embed_batch(["The cat sat on the mat.", "Quarterly tax filings are due in April."])
    assert batch.shape == (2, engine.model.n_embd)
    assert np.allclose(batch[0], cat, atol=1e-5)
    assert engine.embed_batch([]).shape == (0, engine.model.n_embd)
    with pytest.raises(ValueError):
        engine.embed("")
    with pytest.raises(TypeError):
        engine.embed_batch("not a list")


def test_embeddings_do_not_disturb_the_chat_cache(engine):
    "".join(engine.generate(PROMPT, GREEDY))
    engine.embed("something else entirely")
    again = engine.start_generation(PROMPT, GREEDY)
    "".join(again)
    assert again.usage.cached_prompt_tokens > 0


def test_score_next_token(engine):
    paris = engine.tokenize(" Paris", add_special=False)[0]
    london = engine.tokenize(" London", add_special=False)[0]
    scores = engine.score_next_token(PROMPT, candidates=[paris, london], top_k=5)
    assert [c.token for c in scores.candidates] == [paris, london]
    assert scores.candidates[0].logprob > scores.candidates[1].logprob
    assert scores.top[0].token == paris and scores.top[0].text == " Paris"
    assert all(c.logprob <= 0 for c in scores.top)
    assert sum(c.probability for c in scores.top) <= 1.0 + 1e-6
    assert scores.prompt_tokens == len(engine.tokenize(PROMPT))
    # A second call reuses the cached prefix and agrees.
    assert engine.score_next_token(PROMPT, candidates=[paris]).candidates[0].logprob == pytest.approx(
        scores.candidates[0].logprob, abs=1e-4)
    with pytest.raises(ValueError, match="candidates or top_k"):
        engine.score_next_token(PROMPT)
    with pytest.raises(ValueError, match="not a token id"):
        engine.score_next_token(PROMPT, candidates=[10**9])
    with pytest.raises(ValueError, match="non-empty prompt"):
        engine.score_next_token("", top_k=1)


def test_generated_tokens_carry_their_logprobs(engine):
    stream = engine.generate(PROMPT, GREEDY.replace(max_tokens=4, logprobs=3))
    text = "".join(stream)
    entries = stream.run.logprobs
    assert [e.token.token for e in entries] == stream.run.token_ids
    assert "".join(e.token.text for e in entries) == text
    first = engine.score_next_token(PROMPT, candidates=[entries[0].token.token], top_k=3)
    assert entries[0].token.logprob == pytest.approx(first.candidates[0].logprob, abs=1e-3)
    assert [t.token for t in entries[0].top] == [t.token for t in first.top]
    assert engine.generate(PROMPT, GREEDY.replace(max_tokens=2)).run.logprobs is None
    with pytest.raises(ValueError, match="logprobs"):
        GREEDY.replace(logprobs=21)


def test_state_save_and_load(engine, tmp_path):
    "".join(engine.generate(PROMPT, GREEDY))
    held = engine.context.cached_tokens(0)
    path = tmp_path / "state.bin"
    engine.save_state(path)
    engine.reset_cache()
    assert engine.context.cached_tokens(0) == []
    assert engine.load_state(path) == held
    run = engine.start_generation(PROMPT, GREEDY)
    "".join(run)
    assert run.usage.cached_prompt_tokens == len(engine.tokenize(PROMPT)) - 1


def test_metadata_capabilities_devices(engine):
    meta = engine.get_metadata()
    assert meta["general.architecture"] == "llama"
    caps = engine.get_capabilities()
    assert caps.has_chat_template and caps.supports_embeddings and not caps.supports_vision
    assert engine.get_devices() and engine.get_devices()[0].type == "cpu"
    total, free = engine.get_vram_info()
    assert total >= free >= 0
    assert "n_eval" in engine.get_perf() or engine.get_perf()


def test_too_long_prompt_raises_and_leaves_the_engine_usable(engine):
    with pytest.raises(ContextOverflowError):
        list(engine.generate("word " * 2000, GREEDY))
    assert not engine.is_generating
    assert "".join(engine.generate(PROMPT, GREEDY))


def test_bad_arguments(engine):
    with pytest.raises(TypeError, match="GenerationParams"):
        engine.generate(PROMPT, {"temperature": 0})
    with pytest.raises(ValueError, match="empty"):
        engine.generate("", GREEDY)
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(temperature=-1)
    with pytest.raises(TypeError, match="ModelParams"):
        LlamaEngine().load_model("x.gguf", {"n_ctx": 5})


def test_failed_loads_leave_the_engine_as_it_was(smollm2_path, tmp_path):
    bad = tmp_path / "truncated.gguf"
    with open(smollm2_path, "rb") as source:
        bad.write_bytes(source.read(4096))
    engine = LlamaEngine()
    with pytest.raises(ModelLoadError):
        engine.load_model(str(bad))
    assert not engine.is_ready
    with pytest.raises(StateError, match="no model loaded"):
        engine.tokenize("x")
    engine.load_model(smollm2_path, ModelParams(n_ctx=256))
    with pytest.raises(StateError, match="loaded already"):
        engine.load_model(smollm2_path)
    with pytest.raises(ModelLoadError):
        engine.set_model(str(bad))
    assert engine.is_ready and engine.get_context_size() == 256
    engine.set_model(smollm2_path, ModelParams(n_ctx=512))
    assert engine.get_context_size() == 512
    engine.unload_model()
    assert not engine.is_ready
    engine.unload_model()  # no-op
    engine.close()
    engine.close()
    with pytest.raises(StateError):
        engine.load_model(smollm2_path)


def test_unload_while_generating_ends_the_stream_as_cancelled(smollm2_path):
    engine = LlamaEngine(smollm2_path, ModelParams(n_ctx=512))
    run = engine.start_generation("Once upon a time",
                                  GenerationParams(max_tokens=None, ignore_eos=True))
    stream = iter(run)
    next(stream)
    engine.unload_model()
    rest = list(stream)
    assert run.finish_reason == "cancelled" and len(rest) <= 2
    engine.close()


def test_progress_callback_and_cancelled_load(smollm2_path):
    seen = []
    with LlamaEngine() as engine:
        engine.load_model(smollm2_path, ModelParams(n_ctx=256), on_progress=seen.append)
        assert seen and seen[-1] == pytest.approx(1.0)
    with LlamaEngine() as engine:
        with pytest.raises(ModelLoadError, match="cancel"):
            engine.load_model(smollm2_path, on_progress=lambda p: False)
        assert not engine.is_ready


def test_generation_parallel_on_two_engines(smollm2_path):
    results = {}

    def work(key):
        with LlamaEngine(smollm2_path, ModelParams(n_ctx=256, n_threads=1)) as engine:
            results[key] = "".join(engine.generate(PROMPT, GREEDY))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert time.perf_counter() - start < 60
    assert results[0] == results[1] and "Paris" in results[0]


def test_text_with_lone_surrogates_raises_invalid_text(engine):
    text = "The capital \ud800 of France"
    with pytest.raises(InvalidTextError, match="surrogates") as caught:
        engine.tokenize(text)
    assert caught.value.field == "text"
    with pytest.raises(InvalidTextError):
        engine.get_token_count(text)
    with pytest.raises(InvalidTextError):
        list(engine.generate(text, GREEDY))
    with pytest.raises(InvalidTextError):
        engine.embed(text)
    with pytest.raises(InvalidTextError, match="grammar"):
        list(engine.generate("x", GenerationParams(max_tokens=2, grammar='root ::= "\udcff"')))
    assert engine.get_token_count("fine") > 0  # and the engine goes on
