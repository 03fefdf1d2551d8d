"""LlamaEngine: one loaded model, raw and chat generation, tokens, embeddings, state.

The engine owns a native Model and Context (``llamabind._native``). Up to
``ModelParams.n_parallel`` requests run at once, each on its own sequence of the context; more
wait in a queue. Each generation runs the native generate loop, which releases the GIL per
token; Python only decodes text, matches stop strings and shapes chunks.

The class is assembled from its parts: ``lifecycle.EngineLifecycle`` (load, swap, close),
``engine_chat.ChatCompletions`` (create, complete, chat_template) and, here, raw generation,
tokens, introspection, embeddings, scoring, state and LoRA.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llamabind import _native
from llamabind.chat.request import chat_templates
from llamabind.devices import device_label, gpu_memory
from llamabind.engine_chat import ChatCompletions
from llamabind.errors import StateError
from llamabind.generation import GenerationRun, RequestStream
from llamabind.lifecycle import ProgressCallback
from llamabind.options import generation_params
from llamabind.params import GenerationParams, ModelParams
from llamabind.scoring import score_next_token
from llamabind.slots import QueueInfo
from llamabind.types import LlamaNextTokenScores

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from llamabind.embeddings import Embedder
    from llamabind.options import GenerationSettings


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


class LlamaEngine(ChatCompletions):
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
        return score_next_token(self._require(), prompt, candidates, top_k)

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


__all__ = ["LlamaEngine", "LlamaEngineCapabilities", "ProgressCallback"]
