"""LlamaBackend (the seed's low-level API): integer handles over the native layer."""

from __future__ import annotations

import threading

import pytest
from llamabind import (
    GenerationParams,
    HandleClosedError,
    LlamaBackend,
    LlamaEngine,
    ModelNotFoundError,
    ModelParams,
    StateError,
    decode_utf8,
)


def test_handles_generate_tokenize_metadata_and_free(smollm2_path):
    with LlamaBackend() as backend:
        model = backend.model_load(smollm2_path, ModelParams(n_ctx=512))
        context = backend.context_create(model, ModelParams(n_ctx=512))
        assert backend.get_context_size(context) == 512
        pieces = list(backend.generate(context, "The capital of France is",
                                       GenerationParams(temperature=0, max_tokens=8)))
        assert len(pieces) == 8 and all(isinstance(p, bytes) for p in pieces)
        assert "Paris" in b"".join(pieces).decode()
        tokens = backend.tokenize(model, "Hello world")
        assert backend.detokenize(model, tokens) == "Hello world"
        assert backend.model_metadata(model)["general.architecture"] == "llama"
        assert backend.get_backend_name() == "CPU" and not backend.is_gpu_supported()
        assert set(backend.get_vram_info()) == {"total", "free"}
        backend.context_free(context)
        with pytest.raises(HandleClosedError, match="context handle"):
            backend.get_context_size(context)
        backend.model_free(model)
        with pytest.raises(HandleClosedError, match="model handle"):
            backend.tokenize(model, "x")
        with pytest.raises(HandleClosedError):
            backend.model_free(model)
    assert not backend.is_ready
    with pytest.raises(StateError):
        backend.model_load(smollm2_path)


def test_freeing_a_model_frees_its_contexts_and_dispose_frees_all(smollm2_path):
    backend = LlamaBackend()
    model = backend.model_load(smollm2_path)
    contexts = [backend.context_create(model, ModelParams(n_ctx=256)) for _ in range(2)]
    backend.model_free(model)
    for context in contexts:
        with pytest.raises(HandleClosedError):
            backend.get_context_size(context)
    model = backend.model_load(smollm2_path)
    backend.context_create(model, ModelParams(n_ctx=256))
    backend.dispose()  # the seed's name for close()
    backend.close()


def test_cancel_generation_from_another_thread(smollm2_path):
    with LlamaBackend() as backend:
        model = backend.model_load(smollm2_path)
        context = backend.context_create(model, ModelParams(n_ctx=512))
        stream = backend.generate(context, "Once upon a time",
                                  GenerationParams(max_tokens=None, ignore_eos=True, seed=3))
        count = 0
        for _ in stream:
            count += 1
            if count == 3:
                threading.Thread(target=backend.cancel_generation).start()
            assert count < 100
        assert count < 10


def test_decode_utf8_keeps_characters_split_across_pieces():
    text = "héllo 👋 wörld"
    data = text.encode()
    one_byte_pieces = [data[i:i + 1] for i in range(len(data))]
    decoded = list(decode_utf8(one_byte_pieces))
    assert "".join(decoded) == text
    assert all("\ufffd" not in piece for piece in decoded)
    # Bytes that are not UTF-8, and a character cut off at the end, show as U+FFFD.
    assert "".join(decode_utf8([b"ok\xff", "é".encode()[:1]])) == "ok\ufffd\ufffd"


def test_model_load_takes_names_like_the_engine_and_generates_text(smollm2_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("LLAMABIND_MODELS_PATH", str(Path(smollm2_path).parent))
    with LlamaBackend() as backend:
        model = backend.model_load(Path(smollm2_path).name, ModelParams(n_ctx=256))
        context = backend.context_create(model, ModelParams(n_ctx=256))
        params = GenerationParams(temperature=0, max_tokens=8)
        as_text = list(backend.generate(context, "The capital of France is", params, text=True))
        as_bytes = list(backend.generate(context, "The capital of France is", params))
        assert all(isinstance(piece, str) for piece in as_text)
        assert "".join(as_text) == b"".join(as_bytes).decode()
        with pytest.raises(ModelNotFoundError):
            backend.model_load("no-such-model-anywhere.gguf")


def test_the_seeds_engine_constructor_takes_a_backend(smollm2_path):
    backend = LlamaBackend()
    engine = LlamaEngine(backend)
    assert engine.backend is backend and not engine.is_ready
    engine.load_model(smollm2_path, ModelParams(n_ctx=256))
    assert engine.get_context_size() == 256
    engine.close()
    assert not backend.is_ready  # disposed with the engine, as in the seed
    with pytest.raises(TypeError, match="takes a path, URI or model name"):
        LlamaEngine(42)
