"""LlamaEngine: one loaded model, raw and chat generation, tokens, embeddings, state.

The engine owns a native Model and Context (``llamabind._native``). Lifecycle calls are
serialised; one generation runs at a time (a second raises ``StateError``). Each generation
runs the native generate loop, which releases the GIL per token; Python only decodes text,
matches stop strings and shapes chunks.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llamabind import _native
from llamabind.chat.request import ChatRequest, build_chat_request, chat_templates
from llamabind.completions import stream_chunks
from llamabind.devices import device_label, gpu_memory
from llamabind.errors import StateError, StructuredOutputError
from llamabind.generation import GenerationRun, RequestStream
from llamabind.options import ChatOptions, chat_options, generation_params, request_settings
from llamabind.params import GenerationParams, ModelParams
from llamabind.slots import QueueInfo, SequenceSlots, SlotLease
from llamabind.types import (
    LlamaChatMessage,
    LlamaChatTemplateResult,
    LlamaCompletion,
    LlamaCompletionAccumulator,
    LlamaCompletionChunk,
    LlamaNextTokenScores,
    LlamaTokenLogprob,
    to_messages,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from llamabind.backend import LlamaBackend
    from llamabind.embeddings import Embedder
    from llamabind.options import ChatOptionSettings, ChatSettings, GenerationSettings

ProgressCallback = Callable[[float], "bool | None"]

_run_ids = itertools.count(1)


@dataclass(slots=True)
class _Loaded:
    """What a successful load produced; replaced as a whole by set_model/unload_model."""

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


@dataclass(frozen=True, slots=True)
class LlamaEngineCapabilities:
    """What the loaded model and this build can do.

    ``backend_name`` (the seed's name) is the compute devices the model runs on: "CPU" or the
    GPU names, comma-separated (see ``get_devices`` for each one).
    """

    has_chat_template: bool
    supports_embeddings: bool
    supports_tool_calling: bool
    supports_structured_output: bool
    supports_grammar: bool
    supports_lazy_grammar: bool
    supports_thinking: bool
    supports_vision: bool
    supports_audio: bool
    supports_gpu_offload: bool
    backend_name: str


class LlamaEngine:
    """Loads a GGUF model and runs it: raw text, chat completions, tokens, embeddings.

    Args:
        model: A model to load lazily on first use (a path, ``file://``, ``https://`` or
            ``hf://`` URI, or a name the resolver knows); None to call ``load_model`` later.
            A ``LlamaBackend`` (the seed's ``LlamaEngine(LlamaBackend())``) also means no
            model yet: the engine runs on the same in-process llama.cpp and closes that
            backend when it is closed.
        params: Its ModelParams (defaults when None).
        resolver: Turns names and URIs into local files; None uses llamabind's default chain.

    Use it as a context manager, or call ``close()`` when done.
    """

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
        self._loaded: _Loaded | None = None
        self._lazy: tuple[str | os.PathLike[str], ModelParams | None] | None = (
            (model, params) if model is not None else None
        )
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LlamaEngine:
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

    def _swap(self, new: _Loaded | None) -> _Loaded | None:
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
    ) -> _Loaded:
        params = params if params is not None else ModelParams()
        if not isinstance(params, ModelParams):
            raise TypeError(f"params must be ModelParams, got {type(params).__name__}")
        path = self._resolve(name_or_uri)
        model = _native.Model(str(path), progress=on_progress, **params.model_kwargs())
        context = None
        loaded = None
        try:
            context = _native.Context(model, **params.context_kwargs(model.n_ctx_train))
            slots = SequenceSlots(params.n_parallel, params.n_queue, context.cached_tokens)
            loaded = _Loaded(os.fspath(name_or_uri), path, params, model, context, slots)
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

    def _require(self) -> _Loaded:
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

    # --- generation ---------------------------------------------------------------------------

    @property
    def is_generating(self) -> bool:
        """Whether a request runs now."""
        loaded = self._loaded
        return loaded is not None and loaded.slots.n_active > 0

    def queue_info(self) -> QueueInfo:
        """How busy the engine is: requests running, waiting, and the limits of both.

        Before a model is loaded every count is 0 and the limits come from the lazy params.
        """
        loaded = self._loaded
        if loaded is not None:
            return loaded.slots.info()
        params = (self._lazy[1] if self._lazy else None) or ModelParams()
        return QueueInfo(params.n_parallel, 0, 0, params.n_queue)

    def cancel_generation(self) -> None:
        """Stops every running and waiting request from any thread, within one token.

        Their streams end normally, with finish reason "cancelled"; the engine stays usable.
        To stop one request only, close its stream (or call its ``cancel()``).
        """
        loaded = self._loaded
        if loaded is not None:
            loaded.slots.cancel_all()

    def generate(
        self,
        prompt: str,
        params: GenerationParams | None = None,
        **settings: Unpack[GenerationSettings],
    ) -> RequestStream[str]:
        """Streams a raw completion of ``prompt`` (no chat template) as text pieces.

        Pieces never split a UTF-8 character; stop strings end the stream and are not part of
        it. Breaking out of the loop stops the native generation.

        Args:
            prompt: The text to continue; special-token text (e.g. ``<|im_start|>``) is parsed.
            params: Sampling and stopping; defaults when None.
            **settings: Any GenerationParams field (``max_tokens=64``, ``temperature=0``,
                ...), overriding ``params``.

        Yields:
            Text pieces as they are generated.

        Raises:
            StateError: no model, or another generation is running.
            ContextOverflowError: the prompt does not fit the context.
            TypeError: a keyword that is not a GenerationParams field.
        """
        run = self.start_generation(
            prompt, generation_params(params, settings, "LlamaEngine.generate()")
        )
        return RequestStream(iter(run), run)

    def start_generation(
        self,
        prompt: str | Sequence[int],
        params: GenerationParams | None = None,
        **settings: Unpack[GenerationSettings],
    ) -> GenerationRun:
        """Like ``generate`` but returns the run, whose ``usage`` and ``finish_reason``
        are set once its iteration ends. ``prompt`` may also be token ids."""
        params = generation_params(params, settings, "LlamaEngine.start_generation()")
        loaded = self._require()
        if isinstance(prompt, str):
            tokens = loaded.model.tokenize(prompt, add_special=True, parse_special=True)
        else:
            tokens = [int(t) for t in prompt]
        if not tokens:
            raise ValueError("the prompt is empty")
        return GenerationRun(loaded, tokens, params)

    # --- chat completions ------------------------------------------------------------------

    def create(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> RequestStream[LlamaCompletionChunk]:
        """Streams a chat completion as OpenAI-shaped ``chat.completion.chunk`` values.

        The model's own chat template renders the conversation; tool calls, reasoning and
        content come back as separate deltas; the last chunk has ``finish_reason`` ("stop",
        "length", "tool_calls" or "cancelled") and ``usage``.

        Args:
            messages: The whole conversation (LlamaChatMessage values or OpenAI dicts).
            params: Sampling and stopping; defaults when None.
            options: Tools, tool choice, structured output, thinking and template variables
                (``ChatOptions``); defaults when None.
            **settings: Any GenerationParams or ChatOptions field (``max_tokens=64``,
                ``tools=[...]``, ``response_format={...}``, ...), overriding ``params`` and
                ``options``.

        Raises:
            StateError: no model, or another generation is running.
            TemplateError: the template failed to render.
            ContextOverflowError: the prompt does not fit the context.
            UnsupportedError: image or audio content.
            TypeError: a keyword that is not a GenerationParams or ChatOptions field.
        """
        params, options = request_settings(params, options, settings, "LlamaEngine.create()")
        run, parser = self._start_chat(messages, params, options)
        return RequestStream(stream_chunks(run, parser, self._model_label()), run)

    def complete(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> LlamaCompletion:
        """Like ``create`` but returns the whole completion (text, reasoning, tool calls, usage)."""
        params, options = request_settings(params, options, settings, "LlamaEngine.complete()")
        accumulator = LlamaCompletionAccumulator()
        for chunk in self.create(messages, params, options=options):
            accumulator.add(chunk)
        return accumulator.build()

    def create_structured_json(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        schema: Mapping[str, Any] | None = None,
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> Any:
        """A reply constrained to JSON (matching ``schema`` when given), parsed.

        Takes the same ``params``, ``options`` and keywords as ``create``, except
        ``response_format``, which ``schema`` sets.

        Raises:
            StructuredOutputError: the reply was cut short (max_tokens, context) or cancelled.
            GrammarError: the schema cannot become a grammar.
            ValueError: a response_format was given too.
        """
        params, options = request_settings(
            params, options, settings, "LlamaEngine.create_structured_json()"
        )
        if options.response_format is not None:
            raise ValueError(
                "create_structured_json() makes the response_format from schema; "
                "pass the schema, or call complete(response_format=...)"
            )
        response_format = (
            {"type": "json_schema", "json_schema": {"schema": dict(schema)}}
            if schema is not None
            else {"type": "json_object"}
        )
        completion = self.complete(
            messages, params, options=options.replace(response_format=response_format)
        )
        try:
            return json.loads(completion.text)
        except json.JSONDecodeError as exc:
            raise StructuredOutputError(
                f"the JSON reply did not parse (finish reason {completion.finish_reason}: "
                f"{exc}); raise max_tokens if it was cut short",
                text=completion.text,
                finish_reason=completion.finish_reason,
            ) from exc

    def chat_template(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatOptionSettings],
    ) -> LlamaChatTemplateResult:
        """Renders the conversation with the model's template, without generating.

        Args:
            messages: The conversation.
            add_generation_prompt: End where the assistant's reply begins.
            options: Chat options (tools, tool_choice, ...); defaults when None.
            **settings: Any ChatOptions field, overriding ``options``.

        Returns:
            The prompt, its token count, and the format's grammar, triggers and stops.
        """
        options = chat_options(options, settings, "LlamaEngine.chat_template()")
        loaded = self._require()
        return self._chat_request(loaded, messages, options, add_generation_prompt).rendered

    def _chat_request(
        self,
        loaded: _Loaded,
        messages: Iterable[Any],
        options: ChatOptions,
        add_generation_prompt: bool = True,
    ) -> ChatRequest:
        dicts = [m.to_openai() for m in to_messages(messages)]
        return build_chat_request(
            loaded.model,
            loaded.chat,
            dicts,
            options,
            template_override=loaded.params.chat_template,
            add_generation_prompt=add_generation_prompt,
        )

    def _start_chat(
        self, messages: Any, params: GenerationParams, options: ChatOptions
    ) -> tuple[GenerationRun, Any]:
        loaded = self._require()
        request = self._chat_request(loaded, messages, options)
        overrides: dict[str, Any] = {}
        if request.sampler_kwargs:
            if params.grammar is not None:
                raise ValueError(
                    "GenerationParams.grammar cannot be combined with tools or "
                    "response_format (they bring their own grammar)"
                )
            overrides = dict(request.sampler_kwargs)
        run = GenerationRun(
            loaded,
            request.token_ids,
            params,
            stop=request.rendered.stop,
            render_special_tokens=request.preserved_token_ids,
            sampler_overrides=overrides,
        )
        return run, request.parser()

    def _model_label(self) -> str:
        loaded = self._loaded
        return loaded.path.name if loaded else "llama_model"

    # --- tokens ----------------------------------------------------------------------------

    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = False
    ) -> list[int]:
        """Text → token ids (``add_special`` adds BOS/EOS as the model wants)."""
        return self._require().model.tokenize(text, add_special, parse_special)

    def detokenize(self, tokens: Iterable[int], special: bool = False) -> str:
        """Token ids → text; ``special`` renders control tokens as their text."""
        data = self._require().model.detokenize(list(tokens), False, special)
        return data.decode("utf-8", errors="replace")

    def get_token_count(self, text: str) -> int:
        """Tokens of ``text`` alone (no BOS/EOS added)."""
        return len(self._require().model.tokenize(text, False, False))

    # --- introspection ---------------------------------------------------------------------

    def get_metadata(self) -> dict[str, str]:
        """The model's GGUF key/value metadata as strings."""
        return dict(self._require().model.metadata)

    def get_context_size(self) -> int:
        """The context window in tokens (n_ctx) of the loaded model's context."""
        return self._require().context.n_ctx

    @property
    def model(self) -> _native.Model:
        """The native Model handle (for integrators; do not close it)."""
        return self._require().model

    @property
    def context(self) -> _native.Context:
        """The native Context handle (for integrators; do not close it)."""
        return self._require().context

    def get_capabilities(self) -> LlamaEngineCapabilities:
        loaded = self._require()
        has_template = loaded.params.chat_template is not None or bool(loaded.model.chat_template())
        return LlamaEngineCapabilities(
            has_chat_template=has_template,
            supports_embeddings=True,
            supports_tool_calling=True,
            supports_structured_output=True,
            supports_grammar=True,
            supports_lazy_grammar=True,
            supports_thinking=chat_templates(
                loaded.model, loaded.chat, loaded.params.chat_template
            ).supports_enable_thinking,
            supports_vision=False,
            supports_audio=False,
            supports_gpu_offload=_native.supports_gpu_offload(),
            backend_name=device_label(),
        )

    def get_devices(self) -> list[_native.DeviceInfo]:
        """The compute devices of this build, with free and total memory."""
        return list(_native.devices())

    def get_vram_info(self) -> tuple[int, int]:
        """(total, free) bytes over the GPU devices; (0, 0) on a CPU-only build."""
        return gpu_memory()

    def get_perf(self) -> dict[str, Any]:
        """llama.cpp's perf counters of the context (load/prompt/eval ms and token counts)."""
        return dict(self._require().context.perf())

    # --- embeddings, scoring, state ---------------------------------------------------------

    def embed(self, text: str, normalize: bool = True) -> np.ndarray:
        """The embedding of ``text`` (float32, n_embd), L2-normalised by default.

        Runs on an embeddings context made on first use (the chat cache is untouched).
        """
        return self._embedder().embed(text, normalize)

    def embed_batch(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        """Embeddings of several texts as a (len(texts), n_embd) float32 array."""
        return self._embedder().embed_batch(texts, normalize)

    def _embedder(self) -> Embedder:
        from llamabind.embeddings import Embedder

        loaded = self._require()
        with self._lifecycle:
            if loaded.embedder is None:
                n_ctx = min(loaded.context.n_ctx, loaded.model.n_ctx_train or loaded.context.n_ctx)
                loaded.embedder = Embedder(loaded.model, n_ctx, loaded.params.n_threads)
            return loaded.embedder

    def score_next_token(
        self, prompt: str, candidates: Sequence[int] = (), top_k: int = 0
    ) -> LlamaNextTokenScores:
        """Log-probabilities of the token after ``prompt`` (raw logits; no sampling settings).

        Args:
            prompt: The text before the token (a KV prefix already held is reused).
            candidates: Token ids to score.
            top_k: Also return the k most likely tokens.

        Raises:
            ValueError: an empty prompt, a token id outside the vocabulary, or neither
                candidates nor top_k given.
        """
        loaded = self._require()
        model = loaded.model
        if not candidates and top_k <= 0:
            raise ValueError("score_next_token needs candidates or top_k > 0")
        for token in candidates:
            if (
                isinstance(token, bool)
                or not isinstance(token, int)
                or not 0 <= token < model.n_vocab
            ):
                raise ValueError(f"candidate {token!r} is not a token id in [0, {model.n_vocab})")
        tokens = model.tokenize(prompt, add_special=True, parse_special=True) if prompt else []
        if not tokens:
            raise ValueError("score_next_token needs a non-empty prompt")
        seq = loaded.slots.acquire(SlotLease(), tokens)
        if seq is None:
            raise StateError("score_next_token was cancelled while it waited for a sequence")
        try:
            context = loaded.context
            cached = context.cached_tokens(seq)
            keep = 0
            for a, b in zip(cached, tokens[:-1]):
                if a != b:
                    break
                keep += 1
            if not context.memory_remove(seq, keep, -1):
                context.memory_remove(seq, -1, -1)
            if not context.cached_tokens(seq):
                keep = 0
            try:
                context.decode(tokens[keep:], seq, "last")
                logits = context.logits(-1).astype(np.float64)
            finally:
                _native.release_compute_threads()  # this thread may not compute again soon
        finally:
            loaded.slots.release(seq)
        logprobs = logits - (np.max(logits) + np.log(np.sum(np.exp(logits - np.max(logits)))))

        def entry(token: int) -> LlamaTokenLogprob:
            piece = model.token_to_piece(token, True).decode("utf-8", errors="replace")
            return LlamaTokenLogprob(token, piece, float(logprobs[token]))

        top: list[int] = [int(t) for t in np.argsort(-logprobs)[:top_k]] if top_k > 0 else []
        return LlamaNextTokenScores(
            tuple(entry(int(t)) for t in candidates), tuple(entry(int(t)) for t in top), len(tokens)
        )

    def save_state(self, path: str | os.PathLike[str]) -> None:
        """Writes the KV cache (and the tokens it holds) to a file."""
        with self._idle():
            self._require().context.save_state_file(os.fspath(path))

    def load_state(self, path: str | os.PathLike[str]) -> list[int]:
        """Restores a KV cache written by ``save_state``; returns the tokens it holds.

        The next generation whose prompt starts with those tokens reuses them.
        """
        with self._idle():
            context = self._require().context
            context.load_state_file(os.fspath(path))
            return context.cached_tokens(0)

    def reset_cache(self) -> None:
        """Empties the KV cache (the next prompt is evaluated in full)."""
        with self._idle():
            self._require().context.memory_clear()

    @contextlib.contextmanager
    def _idle(self) -> Iterator[None]:
        slots = self._require().slots
        slots.hold_all()
        try:
            yield
        finally:
            slots.release_all()

    # --- LoRA ------------------------------------------------------------------------------

    def set_lora(self, path: str | os.PathLike[str], scale: float = 1.0) -> None:
        """Applies a LoRA adapter, or changes the scale of one already applied."""
        loaded = self._require()
        key = os.fspath(path)
        with self._state:
            if loaded.slots.n_active:
                raise StateError("cannot change LoRA adapters while a generation runs")
            if key in loaded.loras:
                adapter = loaded.loras[key][0]
            else:
                adapter = _native.LoraAdapter(loaded.model, key)
            loaded.loras[key] = (adapter, float(scale))
            loaded.context.set_lora(list(loaded.loras.values()))

    def remove_lora(self, path: str | os.PathLike[str]) -> None:
        """Removes one adapter; a path that is not applied raises KeyError."""
        loaded = self._require()
        with self._state:
            if loaded.slots.n_active:
                raise StateError("cannot change LoRA adapters while a generation runs")
            adapter, _ = loaded.loras.pop(os.fspath(path))
            loaded.context.set_lora(list(loaded.loras.values()))
            adapter.close()

    def clear_loras(self) -> None:
        """Removes every adapter."""
        loaded = self._require()
        for path in list(loaded.loras):
            self.remove_lora(path)

    @property
    def loras(self) -> dict[str, float]:
        """Applied adapters: path → scale."""
        loaded = self._loaded
        return {path: scale for path, (_, scale) in loaded.loras.items()} if loaded else {}


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
