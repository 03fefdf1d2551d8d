"""LlamaProvider (shared, lazily loaded models; release) and LlamaEmbeddingModel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from llamabind import ContextOverflowError, ModelNotFoundError, ModelParams
from llamabind.integrations.pydantic_ai import (
    LlamaEmbeddingModel,
    LlamaModel,
    LlamaProvider,
)
from llamabind.resolvers import FileModelResolver
from pydantic_ai import Agent
from pydantic_ai.embeddings import Embedder

GREEDY = {"temperature": 0.0, "max_tokens": 16}


def test_model_objects_share_one_loaded_model_that_loads_lazily(smollm2_path):
    async def main():
        provider = LlamaProvider(params=ModelParams(n_ctx=512))
        by_path = LlamaModel(smollm2_path, provider=provider)
        by_name = LlamaModel(Path(smollm2_path).name, provider=provider,
                             resolver=FileModelResolver(Path(smollm2_path).parent))
        embedder = LlamaEmbeddingModel(smollm2_path, provider=provider)
        assert provider.loaded_models == []  # nothing loads before the first request
        async with provider:
            loaded = await by_path.load()
            assert (await by_name.load()).engine is loaded.engine
            await embedder.embed("hello", input_type="query")
            assert provider.loaded_models == [Path(smollm2_path)]
            assert loaded.engine.is_ready
        assert provider.loaded_models == [] and not loaded.engine.is_ready
        reply = await Agent(by_path, model_settings=GREEDY).run("Say hi.")  # loads again
        assert reply.output and provider.loaded_models == [Path(smollm2_path)]
        await provider.aclose()
        assert provider.loaded_models == []

    asyncio.run(main())


def test_agent_context_manager_releases_the_model(smollm2_path):
    async def main():
        model = LlamaModel(smollm2_path, params=ModelParams(n_ctx=512), settings=GREEDY)
        agent = Agent(model)
        async with agent:
            result = await agent.run("Say hi.")
            assert model.provider.loaded_models == [Path(smollm2_path)]
        assert model.provider.loaded_models == []
        return result

    assert asyncio.run(main()).output


def test_missing_model_raises_model_not_found_with_every_location(tmp_path):
    resolver = FileModelResolver(tmp_path)
    model = LlamaModel("no-such-model.gguf", resolver=resolver)
    with pytest.raises(ModelNotFoundError) as info:
        asyncio.run(Agent(model).run("hello"))
    assert any(str(tmp_path) in location for location in info.value.locations)
    by_provider = LlamaModel("no-such-model.gguf", provider=LlamaProvider(resolver=resolver))
    with pytest.raises(ModelNotFoundError) as info:
        asyncio.run(Agent(by_provider).run("hello"))
    assert any(str(tmp_path) in location for location in info.value.locations)
    default = LlamaModel("no-such-model.gguf")  # the default chain names all its places
    with pytest.raises(ModelNotFoundError) as info:
        asyncio.run(Agent(default).run("hello"))
    assert len(info.value.locations) >= 2
    assert "no-such-model.gguf" in str(info.value)


def test_embeddings_are_normalised_vectors_of_the_model_width(provider, smollm2_path, smollm2):
    model = LlamaEmbeddingModel(smollm2_path, provider=provider)
    texts = ["The cat sat on the mat.", "Stock markets fell sharply today."]

    async def main():
        embedder = Embedder(model)
        return (await embedder.embed_documents(texts), await embedder.embed_query(texts[0]),
                await model.max_input_tokens(), await model.count_tokens(texts[0]))

    documents, query, max_tokens, n_tokens = asyncio.run(main())
    vectors = np.asarray(documents.embeddings)
    assert vectors.shape == (2, smollm2.n_embd)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert np.allclose(query.embeddings[0], vectors[0], atol=1e-5)  # queries embed alike
    assert documents.provider_name == "llamabind"
    expected_tokens = sum(len(smollm2.tokenize(text, True, False)) for text in texts)
    assert documents.usage.input_tokens == expected_tokens
    assert n_tokens == len(smollm2.tokenize(texts[0], True, False))
    assert max_tokens == min(2048, smollm2.n_ctx_train)


def test_embedding_dimensions_and_truncation(smollm2_path):
    provider = LlamaProvider(params=ModelParams(n_ctx=256))  # a short context to overflow
    model = LlamaEmbeddingModel(smollm2_path, provider=provider)

    async def main():
        short = await model.embed("hello world", input_type="document",
                                  settings={"dimensions": 64})
        limit = await model.max_input_tokens()
        long_text = "word " * (limit + 100)
        cut = await model.embed(long_text, input_type="document", settings={"truncate": True})
        with pytest.raises(ContextOverflowError):
            await model.embed(long_text, input_type="document")
        await provider.aclose()
        return short, cut, limit

    short, cut, limit = asyncio.run(main())
    vector = np.asarray(short.embeddings[0])
    assert vector.shape == (64,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    assert limit == 256
    assert limit - 2 <= cut.usage.input_tokens <= limit
