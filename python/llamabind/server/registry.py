"""The models a server serves, loaded once at start and selected by the request's ``model``.

A request can only pick among these ids; nothing a request says is ever resolved, downloaded or
opened as a path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamabind.aio import AsyncLlamaEngine
from llamabind.engine import LlamaEngine
from llamabind.errors import LlamaError
from llamabind.resolvers import resolve_model
from llamabind.server.config import ModelSpec
from llamabind.server.errors import APIError

logger = logging.getLogger("llamabind.server")


@dataclass(slots=True)
class ServedModel:
    """One loaded model: its id, where it came from, its engine, and facts read at load.

    The facts are read once because the context's own accessors wait for a running decode,
    and the event loop must never wait on one.
    """

    id: str
    spec: ModelSpec
    path: Path
    engine: AsyncLlamaEngine
    created: int
    facts: dict[str, int] = field(default_factory=dict)

    def read_facts(self) -> None:
        """Reads the sizes of the loaded model (call once, after loading)."""
        model = self.engine.engine.model
        self.facts = {
            # The window of one request: ModelParams.n_ctx is per sequence when the engine
            # runs several requests at once (its context then holds n_parallel of them).
            "n_ctx": self.spec.params.n_ctx or model.n_ctx_train,
            "n_ctx_train": model.n_ctx_train,
            "n_params": model.n_params,
            "n_embd": model.n_embd,
            "n_vocab": model.n_vocab,
            "size_bytes": model.size_bytes,
        }

    @property
    def n_ctx(self) -> int:
        """The context window of one request, in tokens."""
        return self.facts["n_ctx"]

    @property
    def n_vocab(self) -> int:
        """Tokens in the model's vocabulary."""
        return self.facts["n_vocab"]

    @property
    def n_embd(self) -> int:
        """Size of the model's embeddings."""
        return self.facts["n_embd"]

    def queue_info(self) -> Any:
        """The engine's request queue (n_parallel, n_active, n_waiting, n_queue), if it has one."""
        info = getattr(self.engine.engine, "queue_info", None)
        return info() if info is not None else None

    def batch_stats(self) -> dict[str, int]:
        """The batch loop's counters (``Context.batch_stats``: decode steps, tokens decoded and
        sampled, the prompt cache); empty when the model is not loaded. Never waits for a decode."""
        try:
            return dict(self.engine.engine.context.batch_stats())
        except LlamaError:  # not loaded, or closed
            return {}

    def describe(self) -> dict[str, Any]:
        """The ``model`` object of ``/v1/models``."""
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": "llamabind",
            "meta": dict(self.facts),
        }


def model_id(spec: ModelSpec, path: Path) -> str:
    """The id a model is served as: its alias, else its file name without ``.gguf``."""
    if spec.alias:
        return spec.alias
    return path.name[:-5] if path.name.lower().endswith(".gguf") else path.name


class ModelRegistry:
    """The served models, by id.

    Args:
        specs: What to serve, in order; the first answers requests that name no model.
    """

    def __init__(self, specs: tuple[ModelSpec, ...]) -> None:
        self._specs = specs
        self._models: dict[str, ServedModel] = {}

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    def load(self) -> None:
        """Resolves and loads every model (blocking); a failure closes what was loaded."""
        try:
            for spec in self._specs:
                path = resolve_model(spec.ref)
                served_id = model_id(spec, path)
                if served_id in self._models:
                    raise ValueError(
                        f"two models are served as {served_id!r}: give one an alias with --alias"
                    )
                engine = LlamaEngine(params=spec.params)
                self._models[served_id] = ServedModel(
                    served_id, spec, path, AsyncLlamaEngine(engine=engine), int(time.time())
                )
                engine.load_model(path, spec.params)
                self._models[served_id].read_facts()
                logger.info("serving %s as %r", path, served_id)
        except BaseException:
            self.close()
            raise

    async def aload(self) -> None:
        """``load`` in a worker thread."""
        await asyncio.to_thread(self.load)

    def get(self, name: str | None) -> ServedModel:
        """The model a request selects.

        Raises:
            APIError: 404 when no served model has that id.
        """
        if name is None:
            return next(iter(self._models.values()))
        served = self._models.get(name)
        if served is None:
            known = ", ".join(repr(k) for k in self._models)
            raise APIError(
                404,
                f"model {name!r} is not served here; the models are: {known}",
                type="not_found_error",
                param="model",
                code="model_not_found",
            )
        return served

    def close(self) -> None:
        """Cancels what runs and frees every model."""
        for served in self._models.values():
            served.engine.engine.close()
        self._models.clear()
