"""LoRA adapters and control vectors, with a small adapter written here by the gguf package."""

from pathlib import Path

import gguf
import numpy as np
import pytest
from llamabind import _native
from llamabind.errors import HandleClosedError, ModelLoadError

RANK = 4


def write_lora(path, n_embd: int, layers=(0, 1, 2), seed=0, architecture="llama"):
    """A rank-4 LoRA on attn_q of a few layers, in the layout convert_lora_to_gguf.py writes."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(RANK))
    for layer in layers:
        # numpy shapes are ggml's ne reversed: lora_a ne = [n_in, r], lora_b ne = [r, n_out]
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_a", rng.normal(0, 0.5, (RANK, n_embd)).astype(np.float32))
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_b", rng.normal(0, 0.5, (n_embd, RANK)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def last_logits(ctx, tokens):
    ctx.memory_clear()
    ctx.decode(tokens)
    return ctx.logits()


def test_lora_changes_logits_with_scale_and_can_be_removed(smollm2, tmp_path):
    adapter = _native.LoraAdapter(smollm2, write_lora(tmp_path / "lora.gguf", smollm2.n_embd))
    assert adapter.metadata["adapter.type"] == "lora"
    tokens = smollm2.tokenize("The capital of France is", add_special=True)
    with _native.Context(smollm2, n_ctx=128) as ctx:
        base = last_logits(ctx, tokens)
        ctx.set_lora([(adapter, 0.0)])
        np.testing.assert_allclose(last_logits(ctx, tokens), base, atol=1e-3)
        ctx.set_lora([(adapter, 1.0)])
        changed = last_logits(ctx, tokens)
        assert np.abs(changed - base).max() > 0.1
        ctx.set_lora([])
        np.testing.assert_allclose(last_logits(ctx, tokens), base, atol=1e-3)
        # a closed adapter cannot be set, but the context keeps the weights it uses
        ctx.set_lora([(adapter, 1.0)])
        adapter.close()
        with pytest.raises(HandleClosedError):
            ctx.set_lora([(adapter, 1.0)])
        np.testing.assert_allclose(last_logits(ctx, tokens), changed, atol=1e-3)


def test_lora_for_another_shape_is_rejected(smollm2, tmp_path):
    with pytest.raises(ModelLoadError):
        _native.LoraAdapter(smollm2, write_lora(tmp_path / "bad.gguf", smollm2.n_embd + 8))
    with pytest.raises(ModelLoadError):
        _native.LoraAdapter(smollm2, write_lora(tmp_path / "arch.gguf", smollm2.n_embd, architecture="gemma3"))


def test_control_vector_changes_logits_and_clears(smollm2):
    tokens = smollm2.tokenize("The capital of France is", add_special=True)
    with _native.Context(smollm2, n_ctx=128) as ctx:
        base = last_logits(ctx, tokens)
        vector = np.zeros(smollm2.n_embd * smollm2.n_layer, dtype=np.float32)
        vector[: smollm2.n_embd] = 2.0  # layer 1
        ctx.set_control_vector(vector.tolist(), 1, smollm2.n_layer)
        assert np.abs(last_logits(ctx, tokens) - base).max() > 0.1
        ctx.set_control_vector(None)
        np.testing.assert_allclose(last_logits(ctx, tokens), base, atol=1e-3)


def test_set_lora_refuses_none_and_adapters_of_another_model(smollm2_path, tmp_path):
    from isolated import run_cases

    outcomes = run_cases(
        """
        sys.path.insert(0, sys.argv[2])
        from test_lora import write_lora
        model, other = _native.Model(sys.argv[1]), _native.Model(sys.argv[1])
        adapter = _native.LoraAdapter(other, write_lora(sys.argv[3], other.n_embd))
        ctx = _native.Context(model, n_ctx=128, n_threads=2)
        tokens = model.tokenize("Hello", add_special=True)
        case("none", lambda: ctx.set_lora([(None, 1.0)]))
        case("other_model", lambda: ctx.set_lora([(adapter, 1.0)]))
        case("still_usable", lambda: ctx.decode(tokens))
        """,
        smollm2_path, Path(__file__).parent, tmp_path / "lora.gguf",
    )
    assert outcomes["none"][0] == "ValueError" and "adapter 0 is None" in outcomes["none"][1]
    assert outcomes["other_model"][0] == "ValueError" and "another model" in outcomes["other_model"][1]
    assert outcomes["still_usable"] == (None, "None")


def test_lora_scale_must_be_finite(smollm2, tmp_path):
    adapter = _native.LoraAdapter(smollm2, write_lora(tmp_path / "lora.gguf", smollm2.n_embd))
    with _native.Context(smollm2, n_ctx=128) as ctx, pytest.raises(ValueError, match="not finite"):
        ctx.set_lora([(adapter, float("nan"))])
