import os

import numpy as np
import pytest
from isolated import run_cases
from llamabind import _native
from llamabind.errors import (
    ContextOverflowError,
    HandleClosedError,
    InvalidTextError,
    ModelLoadError,
    StateError,
)


@pytest.fixture
def ctx(smollm2):
    with _native.Context(smollm2, n_ctx=256, n_batch=64, n_threads=2) as context:
        yield context


def prompt(model, text="The capital of France is"):
    return model.tokenize(text, add_special=True)


def test_parameters_are_applied(ctx):
    assert ctx.n_ctx == 256
    assert ctx.n_batch == 64
    assert ctx.n_threads == 2
    assert ctx.n_vocab == 49152


def test_decode_and_logits(ctx, smollm2):
    tokens = prompt(smollm2)
    ctx.decode(tokens)
    logits = ctx.logits()
    assert isinstance(logits, np.ndarray) and logits.dtype == np.float32
    assert logits.shape == (smollm2.n_vocab,)
    assert np.isfinite(logits).all()
    assert ctx.memory_pos_max(0) == len(tokens) - 1
    assert ctx.cached_tokens(0) == tokens
    assert smollm2.token_to_piece(int(np.argmax(logits))) == b" Paris"


def test_decode_in_pieces_matches_one_piece(smollm2):
    tokens = prompt(smollm2, "one two three four five six seven eight nine ten " * 4)
    with _native.Context(smollm2, n_ctx=256, n_batch=256) as whole, _native.Context(smollm2, n_ctx=256, n_batch=8) as pieces:
        whole.decode(tokens)
        pieces.decode(tokens)
        np.testing.assert_allclose(whole.logits(), pieces.logits(), rtol=1e-3, atol=1e-3)


def test_all_logits(ctx, smollm2):
    tokens = prompt(smollm2)
    ctx.decode(tokens, logits="all")
    first = ctx.logits(0)
    last = ctx.logits(len(tokens) - 1)
    assert not np.allclose(first, last)
    with pytest.raises(ValueError):
        ctx.decode(tokens, logits="some")


def test_greedy_hand_loop_equals_generator(smollm2):
    tokens = prompt(smollm2)
    with _native.Context(smollm2, n_ctx=256) as ctx:
        sampler = _native.Sampler(smollm2, temperature=0)
        by_generator = [t for t, _ in ctx.generate(tokens, sampler, max_tokens=24)]
    with _native.Context(smollm2, n_ctx=256) as ctx:
        sampler = _native.Sampler(smollm2, temperature=0)
        by_hand = []
        ctx.decode(tokens)
        for _ in range(24):
            token = sampler.sample(ctx)
            if smollm2.is_eog(token):
                break
            by_hand.append(token)
            ctx.decode([token])
        argmax = []
        ctx.memory_clear()
        ctx.decode(tokens)
        for _ in range(len(by_hand)):
            argmax.append(int(np.argmax(ctx.logits())))
            ctx.decode([argmax[-1]])
    assert by_generator == by_hand == argmax
    assert len(by_generator) == 24


def test_memory_operations(smollm2):
    ctx = _native.Context(smollm2, n_ctx=256, n_seq_max=2, n_threads=2)
    tokens = prompt(smollm2)
    ctx.decode(tokens)
    ctx.memory_copy(0, 1)
    assert ctx.memory_pos_max(1) == len(tokens) - 1
    assert ctx.cached_tokens(1) == tokens
    assert ctx.memory_remove(1, 3, -1)
    assert ctx.memory_pos_max(1) == 2
    assert ctx.cached_tokens(1) == tokens[:3]
    ctx.memory_keep(0)
    assert ctx.memory_pos_max(1) == -1
    assert ctx.memory_can_shift
    ctx.memory_shift(0, 0, -1, 10)
    assert ctx.memory_pos_max(0) == len(tokens) - 1 + 10
    ctx.memory_clear()
    assert ctx.memory_pos_max(0) == -1
    assert ctx.cached_tokens(0) == []


def test_state_round_trip_bytes_and_file(smollm2, tmp_path):
    tokens = prompt(smollm2)
    with _native.Context(smollm2, n_ctx=256) as a, _native.Context(smollm2, n_ctx=256) as b:
        a.decode(tokens)
        state = a.state_bytes()
        assert len(state) > 1000
        b.load_state_bytes(state)
        assert b.memory_pos_max(0) == len(tokens) - 1
        a.decode([42])
        b.decode([42])
        np.testing.assert_allclose(b.logits(), a.logits(), rtol=1e-4, atol=1e-4)
        a.memory_remove(0, len(tokens), -1)

        path = tmp_path / "state.bin"
        a.save_state_file(str(path))
        b.memory_clear()
        b.load_state_file(str(path))
        assert b.cached_tokens(0) == tokens
        seq_state = a.state_bytes(0)
        b.memory_clear()
        b.load_state_bytes(seq_state, 0)
        assert b.memory_pos_max(0) == len(tokens) - 1
    with _native.Context(smollm2, n_ctx=256) as c:
        with pytest.raises(StateError, match="does not fit"):
            c.load_state_bytes(b"garbage" * 10)
        with pytest.raises(StateError, match="cannot read"):
            c.load_state_file(str(tmp_path / "missing.bin"))
        c.decode(tokens)  # still usable


def test_bad_parameters(smollm2):
    with pytest.raises(ValueError, match="n_ctx"):
        _native.Context(smollm2, n_ctx=-5)
    with pytest.raises(ValueError, match="n_ctx"):
        _native.Context(smollm2, n_ctx=10**12)
    with pytest.raises(ValueError, match="n_batch"):
        _native.Context(smollm2, n_ctx=128, n_batch=512)
    with pytest.raises(ValueError, match="n_ubatch"):
        _native.Context(smollm2, n_ctx=128, n_batch=64, n_ubatch=128)
    with pytest.raises(ValueError, match="n_threads"):
        _native.Context(smollm2, n_threads=0)
    with pytest.raises(ValueError, match="flash_attn"):
        _native.Context(smollm2, flash_attn=7)
    with pytest.raises(TypeError, match="n_ctxx"):
        _native.Context(smollm2, n_ctxx=5)
    with pytest.raises(TypeError, match="n_ctx"):
        _native.Context(smollm2, n_ctx="big")


def test_bad_tokens_and_overflow(ctx, smollm2):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ctx.decode([1, -3])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ctx.decode([smollm2.n_vocab])
    with pytest.raises(ValueError, match="no tokens"):
        ctx.decode([])
    with pytest.raises(ValueError, match="seq_id"):
        ctx.decode([1], seq_id=5)
    with pytest.raises(ContextOverflowError) as info:
        ctx.decode([1] * 300)
    assert info.value.n_ctx == 256 and info.value.n_tokens == 300
    ctx.decode(prompt(smollm2))  # still usable


def test_logits_before_decode_raise(ctx):
    with pytest.raises(ValueError, match="no logits"):
        ctx.logits(5)


def test_embeddings(smollm2):
    tokens = prompt(smollm2)
    with _native.Context(smollm2, n_ctx=128, embeddings=True, pooling_type=1) as ctx:
        ctx.decode(tokens, logits="all")
        pooled = ctx.sequence_embeddings(0)
        assert pooled.shape == (smollm2.n_embd,)
        assert np.isfinite(pooled).all()


def test_use_after_close(smollm2):
    ctx = _native.Context(smollm2, n_ctx=64)
    ctx.close()
    assert ctx.is_closed
    for call in (lambda: ctx.decode([1]), lambda: ctx.logits(), lambda: ctx.n_ctx, lambda: ctx.memory_clear()):
        with pytest.raises(HandleClosedError):
            call()
    ctx.close()


def test_context_keeps_model_alive(smollm2_path):
    model = _native.Model(smollm2_path)
    ctx = _native.Context(model, n_ctx=64)
    model.close()
    tokens = [1, 2, 3]
    ctx.decode(tokens)
    assert ctx.logits().shape == (49152,)
    ctx.close()


def test_perf_counters(ctx, smollm2):
    ctx.perf_reset()
    ctx.decode(prompt(smollm2))
    perf = ctx.perf()
    assert perf["n_prompt_eval"] >= 1
    assert set(perf) >= {"t_load_ms", "t_prompt_eval_ms", "t_eval_ms", "n_eval", "n_graph_reused"}


def test_lora_missing_file(smollm2, tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        _native.LoraAdapter(smollm2, str(tmp_path / "x.gguf"))
    with _native.Context(smollm2, n_ctx=64) as ctx:
        ctx.set_lora([])  # removing none is fine


CTRL_C_DURING_DECODE = """
import os, signal, sys, threading
from llamabind import _native
model = _native.Model(sys.argv[1])
ctx = _native.Context(model, n_ctx=4096, n_batch=32, n_threads=1)
tokens = model.tokenize("word " * 3000, add_special=True)
threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    ctx.decode(tokens)
    print("finished")
except KeyboardInterrupt:
    held = ctx.memory_pos_max(0) + 1
    ctx.decode([1, 2, 3])  # still usable
    print("interrupted", held < len(tokens))
"""


def test_ctrl_c_stops_a_long_decode_between_pieces(smollm2_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", CTRL_C_DURING_DECODE, smollm2_path],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "interrupted True"


SEQUENCE_ID_CASES = """
model = _native.Model(sys.argv[1])
ctx = _native.Context(model, n_ctx=256, n_seq_max=2, n_threads=2)
tokens = model.tokenize("Hello there", add_special=True)
ctx.decode(tokens)
state = ctx.state_bytes(0)
path = sys.argv[2]
ctx.save_state_file(path, 0)
case("memory_pos_max", lambda: ctx.memory_pos_max(-5))
case("memory_pos_min", lambda: ctx.memory_pos_min(2))
case("memory_remove", lambda: ctx.memory_remove(300))
case("memory_remove_negative", lambda: ctx.memory_remove(-2))
case("memory_copy_dst", lambda: ctx.memory_copy(0, 999))
case("memory_copy_src", lambda: ctx.memory_copy(999, 0))
case("memory_keep", lambda: ctx.memory_keep(7))
case("memory_shift", lambda: ctx.memory_shift(9, 0, -1, 1))
case("state_bytes", lambda: ctx.state_bytes(999))
case("load_state_bytes", lambda: ctx.load_state_bytes(state, 999))
case("save_state_file", lambda: ctx.save_state_file(path, 5))
case("load_state_file", lambda: ctx.load_state_file(path, -1))
case("sequence_embeddings", lambda: ctx.sequence_embeddings(5))
case("cached_tokens", lambda: ctx.cached_tokens(2))
case("decode", lambda: ctx.decode([1], seq_id=2))
case("partial_copy", lambda: ctx.memory_copy(0, 1, 2, 4))
case("still_usable", lambda: ctx.memory_pos_max(0))
"""


def test_sequence_ids_are_checked_in_every_call(smollm2_path, tmp_path):
    outcomes = run_cases(SEQUENCE_ID_CASES, smollm2_path, tmp_path / "state.bin")
    assert outcomes.pop("still_usable") == (None, "1")
    cls, message = outcomes.pop("partial_copy")
    assert cls == "ValueError" and "kv_unified=True" in message
    assert len(outcomes) == 15
    for name, (cls, message) in outcomes.items():
        assert cls == "ValueError", (name, cls, message)
        assert "seq_id" in message and "outside 0..1" in message and "n_seq_max=2" in message, (name, message)
    assert "-1 for every sequence" in outcomes["memory_remove"][1]


def test_memory_remove_all_sequences_and_keep_with_separate_buffers(smollm2):
    tokens = prompt(smollm2)
    with _native.Context(smollm2, n_ctx=256, n_seq_max=3, n_threads=2) as ctx:
        for seq in range(3):
            ctx.decode(tokens, seq_id=seq)
        ctx.memory_keep(1)
        assert [ctx.memory_pos_max(s) for s in range(3)] == [-1, len(tokens) - 1, -1]
        assert ctx.memory_remove(-1)
        assert ctx.memory_pos_max(1) == -1


def test_partial_copy_between_sequences_with_a_unified_cache(smollm2):
    tokens = prompt(smollm2)
    with _native.Context(smollm2, n_ctx=256, n_seq_max=2, kv_unified=True, n_threads=2) as ctx:
        ctx.decode(tokens)
        ctx.memory_copy(0, 1, 0, 3)
        assert ctx.memory_pos_max(1) == 2


KV_TYPE_CASES = """
model = _native.Model(sys.argv[1])
for name, kwargs in [("removed_type", dict(type_k=4)), ("no_kernels", dict(type_v=12)),
                     ("past_the_end", dict(type_k=10**6)), ("negative", dict(type_v=-1))]:
    case(name, lambda: _native.Context(model, n_ctx=128, n_threads=2, **kwargs))
case("supported", lambda: _native.Context(model, n_ctx=128, n_threads=2, type_k=8, flash_attn=True, type_v=8).n_ctx)
"""


def test_kv_cache_types_are_limited_to_what_ggml_supports(smollm2_path):
    outcomes = run_cases(KV_TYPE_CASES, smollm2_path)
    assert outcomes.pop("supported") == (None, "256")
    for name, (cls, message) in outcomes.items():
        assert cls == "ValueError" and "is not a KV cache type" in message, (name, cls, message)


def test_thread_counts_are_capped(smollm2):
    cap = 4 * os.cpu_count()
    with pytest.raises(ValueError, match=rf"n_threads = 10000 is outside 1..{cap}"):
        _native.Context(smollm2, n_threads=10000)
    with pytest.raises(ValueError, match="n_threads_batch"):
        _native.Context(smollm2, n_threads_batch=cap + 1)
    with _native.Context(smollm2, n_ctx=128, n_threads=cap) as ctx, pytest.raises(ValueError, match="n_threads_batch"):
        ctx.set_n_threads(2, 10000)


def test_non_finite_and_out_of_range_parameters(smollm2):
    for name in ["rope_freq_base", "rope_freq_scale", "yarn_ext_factor", "yarn_beta_fast"]:
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            _native.Context(smollm2, **{name: float("nan")})
    with pytest.raises(ValueError, match=r"\[Context\] n_ctx = 1180591620717411303424 is out of range"):
        _native.Context(smollm2, n_ctx=2**70)
    with pytest.raises(ValueError, match=r"\[Context\] n_threads = 4294967296 is out of range"):
        _native.Context(smollm2, n_threads=2**32)


def test_token_ids_are_checked_at_the_boundary(ctx):
    for not_ids in [b"abc", bytearray(b"abc"), memoryview(b"abc"), "abc"]:
        with pytest.raises(TypeError, match="must be token ids"):
            ctx.decode(not_ids)
    with pytest.raises(ValueError, match=r"\[Context.decode\] tokens\[1\] = 2147483648 is out of range"):
        ctx.decode([1, 2**31])
    with pytest.raises(ValueError, match="out of range"):
        ctx.decode([2**70])
    with pytest.raises(TypeError, match=r"tokens\[0\] is float, not int"):
        ctx.decode([1.0])
    ctx.decode(np.array([1, 2, 3], dtype=np.int64))  # NumPy ids are ids
    assert ctx.memory_pos_max(0) == 2


def test_text_and_paths_with_lone_surrogates_are_invalid_text(ctx, smollm2):
    with pytest.raises(InvalidTextError, match=r"\[Context.decode\] logits"):
        ctx.decode(prompt(smollm2), logits="\ud800")
    for method in (ctx.save_state_file, ctx.load_state_file):
        with pytest.raises(InvalidTextError, match=r"state_file\] path"):
            method("state\ud800.bin")
    with pytest.raises(InvalidTextError, match=r"\[LoraAdapter\] path"):
        _native.LoraAdapter(smollm2, "lora\udfff.gguf")


def test_a_copied_sequence_keeps_what_it_was_given_when_its_source_is_loaded_over(smollm2):
    """Without a unified KV cache llama.cpp copies one sequence's buffer into another only at the
    next decode; loading a state into the source before then must not change the copy."""
    tokens = prompt(smollm2)
    other = smollm2.tokenize("Numbers are fun to count: one, two, three, four, five", add_special=True)
    with _native.Context(smollm2, n_ctx=256, n_seq_max=2, n_threads=2) as ctx:
        ctx.decode(other)
        other_state = ctx.state_bytes(0)
        ctx.memory_clear()
        ctx.decode(tokens[:-1])
        ctx.memory_copy(0, 1)
        ctx.load_state_bytes(other_state, 0)  # overwrites what sequence 0 held
        assert ctx.state_bytes(1) != other_state
        ctx.decode(tokens[-1:], seq_id=1)
        copied = ctx.logits()
    with _native.Context(smollm2, n_ctx=256, n_threads=2) as ctx:
        ctx.decode(tokens)
        np.testing.assert_allclose(copied, ctx.logits(), atol=1e-3)


def test_a_sequence_copied_right_after_a_shift_is_shifted_too(smollm2):
    """llama.cpp applies a shift (rotating the keys) at the next decode; a copy made before then
    must carry the pending shift, not the keys as they were."""
    tokens = prompt(smollm2)
    with _native.Context(smollm2, n_ctx=256, n_seq_max=2, n_threads=2) as ctx:
        ctx.decode(tokens[:-1])
        ctx.memory_shift(0, 0, -1, 10)
        ctx.memory_copy(0, 1)
        ctx.decode(tokens[-1:], seq_id=1)
        copied = ctx.logits()
    with _native.Context(smollm2, n_ctx=256, n_seq_max=2, n_threads=2) as ctx:
        ctx.decode(tokens[:-1])
        ctx.memory_shift(0, 0, -1, 10)
        ctx.decode(tokens[-1:])
        np.testing.assert_allclose(copied, ctx.logits(), atol=1e-3)


def test_saving_a_state_waits_for_the_decode_that_applies_a_shift(smollm2, tmp_path):
    """A state saved between memory_shift and the next decode would hold the keys unturned
    under the new positions: refused with a clear error until a decode (or a clear)."""
    tokens = prompt(smollm2)
    with _native.Context(smollm2, n_ctx=256, n_threads=2) as ctx:
        ctx.decode(tokens[:-1])
        ctx.memory_shift(0, 0, -1, 10)
        with pytest.raises(StateError, match="decode first"):
            ctx.state_bytes(0)
        with pytest.raises(StateError, match="decode first"):
            ctx.save_state_file(str(tmp_path / "state.bin"))
        assert not (tmp_path / "state.bin").exists()
        ctx.decode(tokens[-1:])
        saved = ctx.state_bytes(0)
    with _native.Context(smollm2, n_ctx=256, n_threads=2) as ctx:
        ctx.load_state_bytes(saved, 0)
        assert ctx.memory_pos_max(0) == len(tokens) - 1 + 10
        ctx.memory_clear()
        ctx.state_bytes()  # nothing pending after a clear
