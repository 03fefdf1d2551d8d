"""LlamaBackend (the seed's low-level API): integer handles over the native layer."""

from __future__ import annotations

import threading

import pytest

from llamabind import GenerationParams, HandleClosedError, LlamaBackend, ModelParams, StateError


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
    backend.dispose()
    backend.dispose()


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
