"""One native generation seen from Python: text pieces, then finish reason and usage.

``GenerationRun`` leases a sequence slot of the engine's context (``slots.SlotLease``, waiting
in the engine's queue when all are busy), drives a native ``Generator`` on it (which releases
the GIL per token), decodes its bytes with ``TextStream`` and records counts and timings;
``cancel`` works from any thread. ``RequestStream`` is what the engine's streaming calls return:
the items of one request with its run beside them. ``TokenRun`` is the earlier name of
``GenerationRun``, kept as an alias.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llamabind import _native
from llamabind.errors import HandleClosedError
from llamabind.params import GenerationParams
from llamabind.slots import SlotLease
from llamabind.text_stream import TextStream
from llamabind.types import LlamaGeneratedLogprob, LlamaTokenLogprob, LlamaUsage

if TYPE_CHECKING:
    from llamabind.lifecycle import LoadedModel

T = TypeVar("T")


class RequestStream(Generic[T]):
    """The stream of one request (text pieces or chunks), cancellable from any thread.

    Iterate it; ``close()`` (or breaking out of a ``for``, or dropping it) stops the request from
    the consuming thread, ``cancel()`` from any thread: the stream then ends with finish reason
    "cancelled". Other requests on the engine go on.
    """

    def __init__(self, items: Iterator[T], run: GenerationRun) -> None:
        self._items = items
        self.run = run

    def __iter__(self) -> RequestStream[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def cancel(self) -> None:
        """Stops this request (waiting or generating) from any thread."""
        self.run.cancel()

    def close(self) -> None:
        """Stops the request and frees its sequence (call from the consuming thread)."""
        self.run.cancel()
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


class GenerationRun:
    """A running generation: its text pieces, then its finish reason and usage.

    Iterate it for text; after the loop ``finish_reason`` is "stop", "length" or "cancelled",
    ``usage`` holds counts and timings and ``sampling_backend`` says where the tokens were
    picked ("backend": inside llama.cpp's compute graph, "cpu": from the logits; the native
    ``Generator.sampling_backend``). Closing it (or breaking out of a ``for`` over the engine's
    iterators) stops the native loop at once. ``lease`` is its claim on a sequence slot.

    ``TokenRun`` is the earlier name of this class (an alias).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompt_tokens: Sequence[int],
        params: GenerationParams,
        *,
        stop: Sequence[str] = (),
        render_special_tokens: Sequence[int] = (),
        sampler_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._loaded = loaded
        self.lease = SlotLease()
        self._prompt_tokens = list(prompt_tokens)
        self._params = params
        self._stop = tuple(params.stop) + tuple(stop)
        self._render_special_tokens = tuple(render_special_tokens)
        self._sampler_kwargs = {
            **params.sampler_kwargs(loaded.params.seed),
            **(sampler_overrides or {}),
        }
        self.finish_reason: str | None = None
        self.usage: LlamaUsage | None = None
        self.token_ids: list[int] = []
        # One entry per generated token when params.logprobs is set (grows while iterating).
        self.logprobs: list[LlamaGeneratedLogprob] | None = None if params.logprobs is None else []
        self._n_logprobs_taken = 0
        self.sampling_backend: str | None = None
        self.started = time.perf_counter()

    def take_logprobs(self) -> tuple[LlamaGeneratedLogprob, ...] | None:
        """The log-probability entries added since the last call (for the tokens behind the
        text handed out since); None when the run was not asked for them."""
        if self.logprobs is None:
            return None
        entries = tuple(self.logprobs[self._n_logprobs_taken :])
        self._n_logprobs_taken = len(self.logprobs)
        return entries

    def cancel(self) -> None:
        """Stops this run from any thread (waiting or generating); it ends "cancelled"."""
        self.lease.cancel()

    def __iter__(self) -> Iterator[str]:
        loaded, params, lease = self._loaded, self._params, self.lease
        seq = loaded.slots.acquire(lease, self._prompt_tokens)
        if seq is None:  # cancelled while waiting for a sequence
            self.finish_reason = "cancelled"
            self.usage = LlamaUsage(
                prompt_tokens=len(self._prompt_tokens),
                completion_tokens=0,
                duration_ms=(time.perf_counter() - self.started) * 1000,
            )
            return
        native = None
        try:
            sampler = _native.Sampler(loaded.model, **self._sampler_kwargs)
            kwargs: dict[str, Any] = {
                "max_tokens": -1 if params.max_tokens is None else params.max_tokens,
                "ignore_eog": params.ignore_eos,
                "seq_id": seq,
            }
            if self._render_special_tokens:
                kwargs["render_special_tokens"] = self._render_special_tokens
            if params.logprobs is not None:
                kwargs["n_logprobs"] = params.logprobs
            native = loaded.context.generate(self._prompt_tokens, sampler, **kwargs)
            lease.attach(native)
            stream = TextStream(self._stop)
            first_token_at = None
            try:
                for token, piece in native:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                    if self.logprobs is not None:
                        self.logprobs.append(self._logprob(native, token, piece))
                    text = stream.feed(piece)
                    if text:
                        yield text
                    if stream.stopped:
                        break
            except HandleClosedError:
                if not lease.cancelled:  # the engine unloaded the model under us: a cancel
                    raise
            rest = stream.flush()
            if rest:
                yield rest
            self._finish(native, stream, lease, first_token_at)
        finally:
            if native is not None:
                native.close()
            loaded.slots.release(seq)

    def _logprob(
        self, native: _native.Generator, token: int, piece: bytes
    ) -> LlamaGeneratedLogprob:
        """The native generator's log-probabilities of the token it just handed out."""
        found = native.last_logprobs
        logprob, top = found if found is not None else (math.nan, [])
        model = self._loaded.model

        def entry(t: int, lp: float, raw: bytes | None = None) -> LlamaTokenLogprob:
            raw = model.token_to_piece(t, True) if raw is None else raw
            return LlamaTokenLogprob(t, raw.decode("utf-8", errors="replace"), lp, raw)

        return LlamaGeneratedLogprob(
            entry(token, logprob, piece), tuple(entry(t, lp) for t, lp in top)
        )

    def _finish(
        self,
        native: _native.Generator,
        stream: TextStream,
        lease: SlotLease,
        first_token_at: float | None,
    ) -> None:
        reason = native.finish_reason
        if stream.stopped or reason == "eog":
            self.finish_reason = "stop"
        elif lease.cancelled or reason == "cancelled":
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
            time_to_first_token_ms=(first_token_at - self.started) * 1000
            if first_token_at
            else None,
            prompt_tokens_per_s=(n_prompt - n_reused) / t_prompt * 1000 if t_prompt > 0 else None,
            generation_tokens_per_s=(n_generated - 1) / t_gen * 1000
            if t_gen > 0 and n_generated > 1
            else None,
            duration_ms=(now - self.started) * 1000,
        )


TokenRun = GenerationRun  # the earlier public name of GenerationRun, kept as an alias
