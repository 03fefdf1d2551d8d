"""LlamaBackend: the seed's low-level API, integer handles over ``llamabind._native``.

For integrators who want llamadart's ``LlamaBackend`` shape: models and contexts are integer
handles, generation yields raw token bytes (or text, with ``text=True`` or ``decode_utf8``). A
freed (or unknown) handle raises ``HandleClosedError``. Python code that wants objects can use
``llamabind._native`` directly.
"""

from __future__ import annotations

import codecs
import itertools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, overload

from llamabind import _native
from llamabind.devices import device_label, gpu_memory
from llamabind.errors import HandleClosedError, StateError
from llamabind.logs import set_log_level
from llamabind.params import GenerationParams, ModelParams


def decode_utf8(pieces: Iterable[bytes]) -> Iterator[str]:
    """Token bytes → text, never splitting a character that spans tokens.

    The seed pipes ``LlamaBackend.generate`` through ``Utf8Decoder``; this is that decoder.
    Bytes that are not UTF-8 become U+FFFD; a character cut off at the end becomes U+FFFD too.

    Args:
        pieces: Byte strings, e.g. the pieces ``LlamaBackend.generate`` yields.

    Yields:
        Text as soon as it is whole (pieces that end mid-character yield nothing yet).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        for piece in pieces:
            text = decoder.decode(piece)
            if text:
                yield text
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # a caller that stops early stops the generation too
    rest = decoder.decode(b"", final=True)
    if rest:
        yield rest


class LlamaBackend:
    """Handles for models and contexts, and the raw generate loop.

    ``close()`` (or ``with``) frees everything still open; ``dispose()`` is the seed's name for
    it (an alias). Pass it to ``LlamaEngine`` as the seed does (``LlamaEngine(LlamaBackend())``)
    and the engine closes it when closed.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._models: dict[int, _native.Model] = {}
        self._contexts: dict[int, tuple[_native.Context, int, ModelParams]] = {}
        self._loras: dict[int, dict[str, tuple[_native.LoraAdapter, float]]] = {}
        self._generators: set[_native.Generator] = set()
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> LlamaBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_ready(self) -> bool:
        return not self._closed

    def _check(self) -> None:
        if self._closed:
            raise StateError("this LlamaBackend was closed")

    def _model(self, handle: int) -> _native.Model:
        self._check()
        try:
            return self._models[handle]
        except KeyError:
            raise HandleClosedError(
                f"model handle {handle} is not open (freed or never made)", handle=handle
            ) from None

    def _context(self, handle: int) -> tuple[_native.Context, int, ModelParams]:
        self._check()
        try:
            return self._contexts[handle]
        except KeyError:
            raise HandleClosedError(
                f"context handle {handle} is not open (freed or never made)", handle=handle
            ) from None

    # --- models and contexts -----------------------------------------------------------------

    def model_load(
        self,
        name_or_uri: str | os.PathLike[str],
        params: ModelParams | None = None,
        *,
        resolver: Any = None,
    ) -> int:
        """Loads a model; returns its model handle.

        Args:
            name_or_uri: What ``LlamaEngine.load_model`` takes: a path, a ``file://``,
                ``https://`` or ``hf://`` URI, or a name (through ``resolve_model``).
            params: Load parameters (the context fields are used by ``context_create``).
            resolver: Turns names and URIs into files; None uses the default chain.

        Raises:
            ModelNotFoundError: no resolver found the model.
            ModelLoadError: the file is missing, truncated, corrupt or not GGUF.
        """
        from llamabind.resolvers import resolve_model

        self._check()
        params = params or ModelParams()
        path = resolve_model(name_or_uri, resolver)
        model = _native.Model(os.fspath(path), **params.model_kwargs())
        with self._lock:
            handle = next(self._ids)
            self._models[handle] = model
        return handle

    def model_free(self, model: int) -> None:
        """Frees a model; contexts made from it are freed too."""
        native = self._model(model)
        for handle, (_, owner, _) in list(self._contexts.items()):
            if owner == model:
                self.context_free(handle)
        with self._lock:
            self._models.pop(model, None)
        native.close()

    def context_create(self, model: int, params: ModelParams | None = None) -> int:
        """Makes a context for a model; returns its handle (LoRAs in params are applied)."""
        native_model = self._model(model)
        params = params or ModelParams()
        context = _native.Context(native_model, **params.context_kwargs(native_model.n_ctx_train))
        with self._lock:
            handle = next(self._ids)
            self._contexts[handle] = (context, model, params)
            self._loras[handle] = {}
        for lora in params.loras:
            self.set_lora_adapter(handle, lora.path, lora.scale)
        return handle

    def context_free(self, context: int) -> None:
        native, _, _ = self._context(context)
        with self._lock:
            self._contexts.pop(context, None)
            adapters = self._loras.pop(context, {})
        native.close()
        for adapter, _ in adapters.values():
            adapter.close()

    def get_context_size(self, context: int) -> int:
        return self._context(context)[0].n_ctx

    # --- generation --------------------------------------------------------------------------

    @overload
    def generate(
        self,
        context: int,
        prompt: str,
        params: GenerationParams | None = None,
        *,
        text: Literal[False] = False,
    ) -> Iterator[bytes]: ...

    @overload
    def generate(
        self,
        context: int,
        prompt: str,
        params: GenerationParams | None = None,
        *,
        text: Literal[True],
    ) -> Iterator[str]: ...

    def generate(
        self,
        context: int,
        prompt: str,
        params: GenerationParams | None = None,
        *,
        text: bool = False,
    ) -> Iterator[bytes] | Iterator[str]:
        """Yields the bytes of each generated token, or text with ``text=True``.

        Token bytes may split a UTF-8 character; ``text=True`` (or ``decode_utf8``) decodes
        them incrementally. Stop strings are not applied here (that is text policy: see
        ``LlamaEngine``).
        """
        native_ctx, model_handle, model_params = self._context(context)
        model = self._model(model_handle)
        params = params or GenerationParams()
        tokens = model.tokenize(prompt, add_special=True, parse_special=True)
        sampler = _native.Sampler(model, **params.sampler_kwargs(model_params.seed))
        generator = native_ctx.generate(
            tokens,
            sampler,
            max_tokens=-1 if params.max_tokens is None else params.max_tokens,
            ignore_eog=params.ignore_eos,
        )
        pieces = self._drain(generator)
        return decode_utf8(pieces) if text else pieces

    def _drain(self, generator: _native.Generator) -> Iterator[bytes]:
        with self._lock:
            self._generators.add(generator)
        try:
            for _, piece in generator:
                yield piece
        finally:
            generator.close()
            with self._lock:
                self._generators.discard(generator)

    def cancel_generation(self) -> None:
        """Cancels every generation of this backend, from any thread."""
        with self._lock:
            running = list(self._generators)
        for generator in running:
            generator.cancel()

    # --- tokens and metadata -------------------------------------------------------------------

    def tokenize(self, model: int, text: str, add_special: bool = True) -> list[int]:
        return self._model(model).tokenize(text, add_special, False)

    def detokenize(self, model: int, tokens: Sequence[int], special: bool = False) -> str:
        data = self._model(model).detokenize(list(tokens), False, special)
        return data.decode("utf-8", errors="replace")

    def model_metadata(self, model: int) -> dict[str, str]:
        return dict(self._model(model).metadata)

    # --- LoRA ------------------------------------------------------------------------------

    def set_lora_adapter(
        self, context: int, path: str | os.PathLike[str], scale: float = 1.0
    ) -> None:
        """Adds an adapter to a context, or changes its scale."""
        native_ctx, model_handle, _ = self._context(context)
        adapters = self._loras[context]
        key = os.fspath(path)
        adapter = (
            adapters[key][0]
            if key in adapters
            else _native.LoraAdapter(self._model(model_handle), key)
        )
        adapters[key] = (adapter, float(scale))
        native_ctx.set_lora(list(adapters.values()))

    def remove_lora_adapter(self, context: int, path: str | os.PathLike[str]) -> None:
        native_ctx, _, _ = self._context(context)
        adapter, _ = self._loras[context].pop(os.fspath(path))
        native_ctx.set_lora(list(self._loras[context].values()))
        adapter.close()

    def clear_lora_adapters(self, context: int) -> None:
        for path in list(self._loras.get(context, {})):
            self.remove_lora_adapter(context, path)

    # --- devices ---------------------------------------------------------------------------

    def get_backend_name(self) -> str:
        """The compute devices: "CPU" or the GPU names, comma-separated (the seed's name)."""
        return device_label()

    def is_gpu_supported(self) -> bool:
        return _native.supports_gpu_offload()

    def get_vram_info(self) -> dict[str, int]:
        """{"total": bytes, "free": bytes} over GPU devices (zeros on a CPU-only build)."""
        total, free = gpu_memory()
        return {"total": total, "free": free}

    def set_log_level(self, level: int | str) -> None:
        """Same as ``llamabind.set_log_level``: llama.cpp records at or above ``level``."""
        set_log_level(level)

    def close(self) -> None:
        """Cancels generations and frees every context and model. Safe to call twice."""
        if self._closed:
            return
        self.cancel_generation()
        for handle in list(self._contexts):
            self.context_free(handle)
        for handle in list(self._models):
            self.model_free(handle)
        self._closed = True

    def dispose(self) -> None:
        """The seed's name for ``close()`` (an alias: the same call)."""
        self.close()
