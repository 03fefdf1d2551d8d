"""One native generation seen from Python: text pieces, then finish reason and usage.

``TokenRun`` drives a native ``Generator`` (which releases the GIL per token), decodes its
bytes with ``TextStream`` and records counts and timings; ``RunHandle`` lets another thread
cancel it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llamabind import _native
from llamabind.errors import HandleClosedError
from llamabind.params import GenerationParams
from llamabind.text_stream import TextStream
from llamabind.types import LlamaUsage

if TYPE_CHECKING:
    from llamabind.engine import LlamaEngine, _Loaded


class RunHandle:
    """One generation in flight; ``cancel`` may be called from any thread."""

    __slots__ = ("native", "cancelled", "_lock")

    def __init__(self) -> None:
        self.native: _native.Generator | None = None
        self.cancelled = False
        self._lock = threading.Lock()

    def attach(self, native: _native.Generator) -> None:
        with self._lock:
            self.native = native
            if self.cancelled:
                native.cancel()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self.native is not None:
                self.native.cancel()


class TokenRun:
    """The text pieces of one native generation, then its finish reason and usage.

    Iterate it for text; after the loop ``finish_reason`` is "stop", "length" or "cancelled"
    and ``usage`` holds counts and timings; ``sampling_backend`` says where the tokens were picked
    ("backend": inside llama.cpp's compute graph, "cpu": from the logits). Closing it (or breaking out of a ``for`` over the
    engine's iterators) stops the native loop at once.
    """

    def __init__(self, engine: LlamaEngine, loaded: _Loaded, prompt_tokens: Sequence[int],
                 params: GenerationParams, *, stop: Sequence[str] = (),
                 render_special_tokens: Sequence[int] = (),
                 sampler_overrides: Mapping[str, Any] | None = None) -> None:
        self._engine = engine
        self._loaded = loaded
        self._prompt_tokens = list(prompt_tokens)
        self._params = params
        self._stop = tuple(params.stop) + tuple(stop)
        self._render_special_tokens = tuple(render_special_tokens)
        self._sampler_kwargs = {**params.sampler_kwargs(loaded.params.seed), **(sampler_overrides or {})}
        self.finish_reason: str | None = None
        self.usage: LlamaUsage | None = None
        self.token_ids: list[int] = []
        self.sampling_backend: str | None = None
        self.started = time.perf_counter()

    def __iter__(self) -> Iterator[str]:
        engine, loaded, params = self._engine, self._loaded, self._params
        run = engine._begin_run()
        native = None
        try:
            sampler = _native.Sampler(loaded.model, **self._sampler_kwargs)
            kwargs: dict[str, Any] = {
                "max_tokens": -1 if params.max_tokens is None else params.max_tokens,
                "ignore_eog": params.ignore_eos,
            }
            if self._render_special_tokens:
                kwargs["render_special_tokens"] = self._render_special_tokens
            native = loaded.context.generate(self._prompt_tokens, sampler, **kwargs)
            run.attach(native)
            stream = TextStream(self._stop)
            first_token_at = None
            try:
                for _, piece in native:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                    text = stream.feed(piece)
                    if text:
                        yield text
                    if stream.stopped:
                        break
            except HandleClosedError:
                if not run.cancelled:  # the engine unloaded the model under us: a cancel
                    raise
            rest = stream.flush()
            if rest:
                yield rest
            self._finish(native, stream, run, first_token_at)
        finally:
            if native is not None:
                native.close()
            engine._end_run(run)

    def _finish(self, native: _native.Generator, stream: TextStream, run: RunHandle,
                first_token_at: float | None) -> None:
        reason = native.finish_reason
        if stream.stopped or reason == "eog":
            self.finish_reason = "stop"
        elif run.cancelled or reason == "cancelled":
            self.finish_reason = "cancelled"
        else:
            self.finish_reason = "length"
        self.token_ids = native.token_ids
        try:
            self.sampling_backend = native.sampling_backend
        except HandleClosedError:  # unloaded before the first token
            self.sampling_backend = None
        n_prompt, n_reused = native.n_prompt_tokens, native.n_reused_tokens
        n_generated = native.n_generated_tokens
        t_prompt, t_gen = native.t_prompt_eval_ms, native.t_generation_ms
        now = time.perf_counter()
        self.usage = LlamaUsage(
            prompt_tokens=n_prompt,
            completion_tokens=n_generated,
            cached_prompt_tokens=n_reused,
            time_to_first_token_ms=(first_token_at - self.started) * 1000 if first_token_at else None,
            prompt_tokens_per_s=(n_prompt - n_reused) / t_prompt * 1000 if t_prompt > 0 else None,
            generation_tokens_per_s=(n_generated - 1) / t_gen * 1000
            if t_gen > 0 and n_generated > 1 else None,
            duration_ms=(now - self.started) * 1000,
        )
