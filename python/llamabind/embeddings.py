"""Text embeddings from a dedicated embeddings context of the loaded model.

The context is made on first use, beside the generation context (so the chat KV cache is not
disturbed), with the model's pooling, or mean pooling for models that define none (causal
language models).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from llamabind import _native
from llamabind.errors import ContextOverflowError

POOLING_NONE, POOLING_MEAN = 0, 1
DEFAULT_EMBEDDING_CTX = 2048


class Embedder:
    """Embeds texts with its own context of ``model``.

    Args:
        model: The loaded model (shared with the generation context).
        n_ctx: Most tokens per text; every text is evaluated in one batch.
        n_threads: CPU threads; None lets llama.cpp choose.
    """

    def __init__(
        self, model: _native.Model, n_ctx: int = DEFAULT_EMBEDDING_CTX, n_threads: int | None = None
    ) -> None:
        kwargs: dict[str, Any] = {
            "n_ctx": n_ctx,
            "n_batch": n_ctx,
            "n_ubatch": n_ctx,
            "embeddings": True,
            "n_threads": n_threads,
            "n_threads_batch": n_threads,
        }
        context = _native.Context(model, **kwargs)
        if context.pooling_type == POOLING_NONE:
            context.close()
            context = _native.Context(model, pooling_type=POOLING_MEAN, **kwargs)
        self._model = model
        self._context = context
        self._lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        return self._context.n_ctx

    @property
    def n_embd(self) -> int:
        return self._context.n_embd

    def embed(self, text: str, normalize: bool = True) -> np.ndarray:
        """One text's pooled embedding (float32, n_embd), L2-normalised when asked."""
        if not isinstance(text, str):
            raise TypeError(f"embed takes a str, got {type(text).__name__}")
        tokens = self._model.tokenize(text, add_special=True, parse_special=False)
        if not tokens:
            raise ValueError("cannot embed empty text")
        if len(tokens) > self._context.n_ctx:
            raise ContextOverflowError(
                f"[embed] text needs {len(tokens)} tokens, the embeddings context holds "
                f"{self._context.n_ctx}",
                n_tokens=len(tokens),
                n_ctx=self._context.n_ctx,
            )
        with self._lock:
            self._context.memory_clear()
            try:
                self._context.decode(tokens, 0, "all")
            finally:
                _native.release_compute_threads()  # this thread may not compute again soon
            vector = self._context.sequence_embeddings(0)
        if normalize:
            norm = float(np.linalg.norm(vector))
            if norm > 0:
                vector = vector / norm
        return vector.astype(np.float32, copy=False)

    def embed_batch(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        """Embeddings of several texts, one row each (float32, len(texts) × n_embd)."""
        if isinstance(texts, str):
            raise TypeError("embed_batch takes a list of str; use embed for one text")
        rows = [self.embed(text, normalize) for text in texts]
        if not rows:
            return np.zeros((0, self.n_embd), dtype=np.float32)
        return np.stack(rows)

    def close(self) -> None:
        self._context.close()
