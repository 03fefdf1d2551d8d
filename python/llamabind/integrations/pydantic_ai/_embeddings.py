"""``LlamaEmbeddingModel``: pydantic-ai embeddings from a GGUF model run in this process."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from pydantic_ai.embeddings import EmbeddingModel, EmbeddingResult, EmbeddingSettings
from pydantic_ai.embeddings.result import EmbedInputType
from pydantic_ai.exceptions import UserError
from pydantic_ai.usage import RequestUsage

from llamabind.integrations.pydantic_ai._provider import PROVIDER_NAME, LlamaProvider, LoadedModel
from llamabind.params import ModelParams
from llamabind.resolvers import ModelResolver


class LlamaEmbeddingSettings(EmbeddingSettings, total=False):
    """Settings of a llamabind embedding request.

    ``dimensions`` keeps the first n components (then normalises again); ``truncate`` cuts
    texts longer than the embeddings context instead of raising ``ContextOverflowError``.
    """

    llamabind_normalize: bool
    """L2-normalise each vector (default True)."""


@dataclass(init=False)
class LlamaEmbeddingModel(EmbeddingModel):
    """Text embeddings of a GGUF model run in this process (pooled over the text's tokens).

    The model's own pooling is used, or mean pooling for causal language models that define
    none. Queries and documents are embedded alike. A ``LlamaModel`` of the same provider and
    file shares the loaded model.

    Args:
        model_name: A path, URI or name, as for ``LlamaModel``.
        provider: Owns the loaded models; None makes one for this model alone.
        resolver: Resolves ``model_name``; None uses the provider's.
        params: How to load the model; None uses the provider's.
        settings: Default ``LlamaEmbeddingSettings``.
    """

    _model_name: str = field(repr=False)
    _provider: LlamaProvider = field(repr=False)
    resolver: ModelResolver | None = None
    params: ModelParams | None = None

    def __init__(
        self,
        model_name: str | os.PathLike[str],
        *,
        provider: LlamaProvider | None = None,
        resolver: ModelResolver | None = None,
        params: ModelParams | None = None,
        settings: EmbeddingSettings | None = None,
    ) -> None:
        self._model_name = os.fspath(model_name)
        self._provider = provider if provider is not None else LlamaProvider()
        self.resolver = resolver
        self.params = params
        super().__init__(settings=settings)

    @property
    def model_name(self) -> str:
        """The name (or path, or URI) the model was asked for."""
        return self._model_name

    @property
    def system(self) -> str:
        """``"llamabind"``."""
        return PROVIDER_NAME

    @property
    def provider(self) -> LlamaProvider:
        """The provider that owns the loaded model."""
        return self._provider

    async def _load(self) -> LoadedModel:
        return await self._provider.load(
            self._model_name, resolver=self.resolver, params=self.params
        )

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        input_type: EmbedInputType,
        settings: EmbeddingSettings | None = None,
    ) -> EmbeddingResult:
        """Embeds each input; ``usage.input_tokens`` counts the tokens evaluated.

        Raises:
            ContextOverflowError: a text is longer than the embeddings context (and
                ``truncate`` is not set).
            UserError: ``dimensions`` is not in [1, the model's width].
        """
        texts, merged = self.prepare_embed(inputs, settings)
        options = cast(LlamaEmbeddingSettings, merged)
        engine = (await self._load()).engine
        if options.get("truncate", False):
            texts = [await self._truncated(text) for text in texts]
        normalize = options.get("llamabind_normalize", True)
        vectors = np.asarray(await engine.embed_batch(texts, normalize), dtype=np.float32)
        dimensions = options.get("dimensions")
        if dimensions is not None and vectors.size:
            if not 1 <= dimensions <= vectors.shape[1]:
                raise UserError(f"dimensions must be in [1, {vectors.shape[1]}], got {dimensions}")
            vectors = vectors[:, :dimensions]
            if normalize:
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        n_tokens = sum([len(await engine.tokenize(text)) for text in texts])
        return EmbeddingResult(
            vectors.tolist(),
            inputs=texts,
            input_type=input_type,
            model_name=self._model_name,
            provider_name=PROVIDER_NAME,
            usage=RequestUsage(input_tokens=n_tokens),
        )

    async def _truncated(self, text: str) -> str:
        engine = (await self._load()).engine
        limit = await self._n_ctx()
        tokens = await engine.tokenize(text, add_special=False)
        n_special = len(await engine.tokenize("")) if tokens else 0
        if len(tokens) + n_special <= limit:
            return text
        return await engine.detokenize(tokens[: limit - n_special])

    async def max_input_tokens(self) -> int | None:
        """The tokens one text may have (the embeddings context size)."""
        return await self._n_ctx()

    async def _n_ctx(self) -> int:
        engine = (await self._load()).engine
        n_ctx = await engine.get_context_size()
        n_ctx_train = engine.engine.model.n_ctx_train
        return min(n_ctx, n_ctx_train) if n_ctx_train else n_ctx

    async def count_tokens(self, text: str) -> int:
        """The tokens ``text`` takes when embedded (special tokens included)."""
        engine = (await self._load()).engine
        return len(await engine.tokenize(text))
