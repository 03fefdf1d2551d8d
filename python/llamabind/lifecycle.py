"""The load/close half of ``LlamaEngine``: which model is loaded, and freeing it.

``EngineLifecycle`` loads a model (through a resolver) into a ``LoadedModel`` (the native
Model and Context, the sequence slots, LoRA adapters and caches), swaps it atomically, loads
a lazily named one on first use and closes everything. Lifecycle calls are serialised; the
calls that run on a loaded model live in ``engine`` and ``engine_chat``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llamabind import _native
from llamabind.errors import StateError
from llamabind.params import ModelParams
from llamabind.slots import SequenceSlots

if TYPE_CHECKING:
    from llamabind.backend import LlamaBackend
    from llamabind.embeddings import Embedder

ProgressCallback = Callable[[float], "bool | None"]
_Engine = TypeVar("_Engine", bound="EngineLifecycle")


@dataclass(slots=True)
class LoadedModel:
    """What a successful load produced: the native handles and what belongs to them.

    An engine replaces it as a whole (``set_model``, ``unload_model``); ``close`` frees it.
    """

    name: str
    path: Path
    params: ModelParams
    model: _native.Model
    context: _native.Context
    slots: SequenceSlots
    loras: dict[str, tuple[_native.LoraAdapter, float]] = field(default_factory=dict)
    embedder: Embedder | None = None
    chat: dict[str, Any] = field(default_factory=dict)  # per-template caches of llamabind.chat

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()
        self.context.close()
        for adapter, _ in self.loras.values():
            adapter.close()
        self.model.close()


class EngineLifecycle:
    """Loading, replacing, unloading and closing the engine's model (see ``LlamaEngine``)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | LlamaBackend | None = None,
        params: ModelParams | None = None,
        *,
        resolver: Any = None,
    ) -> None:
        self.backend, model = _seed_backend(model)
        self.resolver = resolver
        self._lifecycle = threading.RLock()
        self._state = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._lazy: tuple[str | os.PathLike[str], ModelParams | None] | None = (
            (model, params) if model is not None else None
        )
        self._closed = False

    def __enter__(self: _Engine) -> _Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_ready(self) -> bool:
        """Whether a model is loaded (a lazily named one counts once loaded)."""
        return self._loaded is not None

    @property
    def is_closed(self) -> bool:
        """Whether ``close()`` was called (the engine cannot be used again)."""
        return self._closed

    @property
    def is_disposed(self) -> bool:
        """The seed's name for ``is_closed`` (an alias)."""
        return self._closed

    @property
    def model_name(self) -> str | None:
        """The name the loaded model was asked for, or None."""
        loaded = self._loaded
        return loaded.name if loaded else None

    @property
    def model_path(self) -> Path | None:
        loaded = self._loaded
        return loaded.path if loaded else None

    @property
    def params(self) -> ModelParams | None:
        loaded = self._loaded
        return loaded.params if loaded else None

    def load_model(
        self,
        name_or_uri: str | os.PathLike[str],
        params: ModelParams | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """Loads a model; the engine must have none (see ``set_model`` to replace one).

        Args:
            name_or_uri: A path, a ``file://``, ``http(s)://`` or ``hf://`` URI, or a name.
            params: How to load it and size its context; defaults when None.
            on_progress: Called with the load progress in [0, 1]; returning False cancels.

        Raises:
            StateError: a model is loaded already, or the engine was closed.
            ModelNotFoundError: no resolver found the model.
            ModelLoadError: the file is missing, truncated, corrupt or not GGUF.
            ContextError: the context could not be made (e.g. out of memory).
        """
        with self._lifecycle:
            self._check_open()
            if self._loaded is not None:
                raise StateError(
                    "a model is loaded already: call unload_model() first, "
                    "or set_model() to replace it"
                )
            self._lazy = None
            self._loaded = self._open(name_or_uri, params, on_progress)

    def set_model(
        self,
        name_or_uri: str | os.PathLike[str],
        params: ModelParams | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """Replaces the loaded model atomically: the old one serves until the new one loaded.

        A failed load leaves the old model in place. A generation running on the old model is
        cancelled when the swap happens.
        """
        with self._lifecycle:
            self._check_open()
            new = self._open(name_or_uri, params, on_progress)
            old = self._swap(new)
            if old is not None:
                old.close()

    def unload_model(self) -> None:
        """Cancels a running generation and frees the model and its context; no-op if none."""
        with self._lifecycle:
            self._lazy = None
            old = self._swap(None)
            if old is not None:
                old.close()

    def close(self) -> None:
        """Unloads the model; the engine cannot be used afterwards. Safe to call twice.

        Also closes the seed's ``LlamaBackend`` the engine was made with, if any.
        """
        with self._lifecycle:
            self.unload_model()
            self._closed = True
            if self.backend is not None:
                self.backend.close()

    def dispose(self) -> None:
        """The seed's name for ``close()`` (an alias: the same call)."""
        self.close()

    def _swap(self, new: LoadedModel | None) -> LoadedModel | None:
        old = self._loaded
        if old is not None:
            old.slots.cancel_all()
        self._loaded = new
        return old

    def _open(
        self,
        name_or_uri: str | os.PathLike[str],
        params: ModelParams | None,
        on_progress: ProgressCallback | None,
    ) -> LoadedModel:
        params = params if params is not None else ModelParams()
        if not isinstance(params, ModelParams):
            raise TypeError(f"params must be ModelParams, got {type(params).__name__}")
        path = self._resolve(name_or_uri)
        model = _native.Model(str(path), progress=on_progress, **params.model_kwargs())
        context = None
        loaded = None
        try:
            context = _native.Context(model, **params.context_kwargs(model.n_ctx_train))
            slots = SequenceSlots(params.n_parallel, params.n_queue, context.prefix_lengths)
            loaded = LoadedModel(os.fspath(name_or_uri), path, params, model, context, slots)
            for lora in params.loras:
                adapter = _native.LoraAdapter(model, lora.path)
                loaded.loras[lora.path] = (adapter, lora.scale)
            if loaded.loras:
                context.set_lora(list(loaded.loras.values()))
            return loaded
        except BaseException:
            if loaded is not None:
                loaded.close()
            else:
                if context is not None:
                    context.close()
                model.close()
            raise

    def _resolve(self, name_or_uri: str | os.PathLike[str]) -> Path:
        if not isinstance(name_or_uri, (str, os.PathLike)):
            raise TypeError(f"model must be a path, URI or name, got {name_or_uri!r}")
        try:
            from llamabind.resolvers import resolve_model
        except ImportError:  # pragma: no cover - resolvers are part of the package
            return Path(name_or_uri)
        return resolve_model(name_or_uri, self.resolver)

    def _check_open(self) -> None:
        if self._closed:
            raise StateError("this LlamaEngine was closed; make a new one")

    def _require(self) -> LoadedModel:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lifecycle:
            self._check_open()
            if self._loaded is None and self._lazy is not None:
                name, params = self._lazy
                self._loaded = self._open(name, params, None)
                self._lazy = None
            if self._loaded is None:
                raise StateError("no model loaded: call load_model() first")
            return self._loaded


def _seed_backend(
    model: str | os.PathLike[str] | LlamaBackend | None,
) -> tuple[LlamaBackend | None, str | os.PathLike[str] | None]:
    """Splits the seed's ``LlamaEngine(LlamaBackend())`` into (backend, no model)."""
    from llamabind.backend import LlamaBackend

    if isinstance(model, LlamaBackend):
        return model, None
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"LlamaEngine(model) takes a path, URI or model name (or the seed's "
            f"LlamaBackend()), got {type(model).__name__}"
        )
    return None, model
