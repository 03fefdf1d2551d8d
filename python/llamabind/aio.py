"""AsyncLlamaEngine: the engine for asyncio code — ``await`` and ``async for``.

Every call runs in a worker thread (native steps release the GIL), so the event loop never
blocks. A stream is produced by one worker thread that runs the engine's iterator and hands
items to the loop; cancelling the consuming task, or ``aclose()`` on the stream, cancels the
native generation and waits for the worker to finish.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llamabind.engine import LlamaEngine
from llamabind.options import ChatOptions, chat_options, generation_params, request_settings
from llamabind.params import GenerationParams, ModelParams
from llamabind.slots import QueueInfo
from llamabind.types import LlamaChatMessage, LlamaCompletion, LlamaCompletionChunk

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from llamabind.options import ChatOptionSettings, ChatSettings, GenerationSettings
    from llamabind.results import LlamaChatTemplateResult

T = TypeVar("T")
_DONE = object()


async def _in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(functools.partial(function, *args, **kwargs))


async def stream_in_thread(
    factory: Callable[[], Iterator[T]], engine: LlamaEngine
) -> AsyncIterator[T]:
    """Runs ``factory()`` and its iteration in a worker thread; yields items on the loop.

    Args:
        factory: Makes the iterator (called in the worker: it may load a model lazily).
        engine: Whose generations are all cancelled when the consumer stops early and the
            iterator has no ``cancel()`` of its own (streams of the engine have one).
    """
    worker = _Worker(factory, engine, asyncio.get_running_loop())
    thread = threading.Thread(target=worker.produce, name="llamabind-stream", daemon=True)
    thread.start()
    try:
        while True:
            item, error = await worker.queue.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        if thread.is_alive():
            worker.cancel_request()
            await asyncio.shield(asyncio.to_thread(thread.join))


class _Worker(Generic[T]):
    """The worker thread's side of ``stream_in_thread``: makes the iterator, posts its items."""

    def __init__(
        self,
        factory: Callable[[], Iterator[T]],
        engine: LlamaEngine,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.factory, self.engine, self.loop = factory, engine, loop
        self.queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()
        self.stop = threading.Event()
        self.made: list[Iterator[T]] = []  # the iterator, once the worker made it
        self.made_lock = threading.Lock()

    def cancel_request(self) -> None:
        """Cancels this stream's request only, when it can tell which one that is."""
        with self.made_lock:
            self.stop.set()
            iterator = self.made[0] if self.made else None
        cancel = getattr(iterator, "cancel", None)
        if cancel is not None:
            cancel()
        elif iterator is not None:
            self.engine.cancel_generation()  # a stream that cannot cancel itself

    def post(self, item: Any, error: BaseException | None = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (item, error))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.stop.set()

    def produce(self) -> None:
        try:
            iterator = self.factory()
            with self.made_lock:
                self.made.append(iterator)
                stopped = self.stop.is_set()
            if stopped:  # the consumer left while the request was being made
                cancel = getattr(iterator, "cancel", None)
                if cancel is not None:
                    cancel()
            try:
                for item in iterator:
                    if self.stop.is_set():
                        break
                    self.post(item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # noqa: BLE001 - delivered through the stream, never swallowed
            self.post(_DONE, exc)
            return
        self.post(_DONE)


class AsyncLlamaEngine:
    """``LlamaEngine`` for asyncio: the same methods, awaitable; streams are async iterators.

    Args:
        model: A model to load lazily on first use (path, URI or name); None to load later.
        params: Its ModelParams.
        resolver: Turns names and URIs into local files.
        engine: Wrap an existing LlamaEngine instead of making one.
    """

    def __init__(
        self,
        model: str | None = None,
        params: ModelParams | None = None,
        *,
        resolver: Any = None,
        engine: LlamaEngine | None = None,
    ) -> None:
        self.engine = (
            engine if engine is not None else LlamaEngine(model, params, resolver=resolver)
        )

    async def __aenter__(self) -> AsyncLlamaEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def is_ready(self) -> bool:
        return self.engine.is_ready

    def queue_info(self) -> QueueInfo:
        """Requests running and waiting; see ``LlamaEngine.queue_info``."""
        return self.engine.queue_info()

    async def load_model(
        self,
        name_or_uri: str,
        params: ModelParams | None = None,
        on_progress: Callable[[float], Any] | None = None,
    ) -> None:
        await _in_thread(self.engine.load_model, name_or_uri, params, on_progress)

    async def set_model(
        self,
        name_or_uri: str,
        params: ModelParams | None = None,
        on_progress: Callable[[float], Any] | None = None,
    ) -> None:
        await _in_thread(self.engine.set_model, name_or_uri, params, on_progress)

    async def unload_model(self) -> None:
        self.engine.cancel_generation()
        await _in_thread(self.engine.unload_model)

    async def aclose(self) -> None:
        """Cancels a running generation and closes the engine."""
        self.engine.cancel_generation()
        await _in_thread(self.engine.close)

    def cancel_generation(self) -> None:
        self.engine.cancel_generation()

    def generate(
        self,
        prompt: str,
        params: GenerationParams | None = None,
        **settings: Unpack[GenerationSettings],
    ) -> AsyncIterator[str]:
        """``async for`` over text pieces; see ``LlamaEngine.generate``."""
        params = generation_params(params, settings, "AsyncLlamaEngine.generate()")
        return stream_in_thread(lambda: self.engine.generate(prompt, params), self.engine)

    def create(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> AsyncIterator[LlamaCompletionChunk]:
        """``async for`` over completion chunks; see ``LlamaEngine.create``."""
        params, options = request_settings(params, options, settings, "AsyncLlamaEngine.create()")
        messages = list(messages)
        return stream_in_thread(
            lambda: self.engine.create(messages, params, options=options), self.engine
        )

    async def complete(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> LlamaCompletion:
        """The whole completion; see ``LlamaEngine.complete``."""
        from llamabind.types import LlamaCompletionAccumulator

        params, options = request_settings(params, options, settings, "AsyncLlamaEngine.complete()")
        accumulator = LlamaCompletionAccumulator()
        async for chunk in self.create(messages, params, options=options):
            accumulator.add(chunk)
        return accumulator.build()

    async def create_structured_json(
        self,
        messages: Iterable[Any],
        schema: Mapping[str, Any] | None = None,
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> Any:
        """A parsed JSON reply; see ``LlamaEngine.create_structured_json``."""
        params, options = request_settings(
            params, options, settings, "AsyncLlamaEngine.create_structured_json()"
        )
        return await _in_thread(
            self.engine.create_structured_json, list(messages), schema, params, options=options
        )

    async def chat_template(
        self,
        messages: Iterable[Any],
        *,
        add_generation_prompt: bool = True,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatOptionSettings],
    ) -> LlamaChatTemplateResult:
        """The rendered prompt; see ``LlamaEngine.chat_template``."""
        options = chat_options(options, settings, "AsyncLlamaEngine.chat_template()")
        return await _in_thread(
            self.engine.chat_template,
            list(messages),
            add_generation_prompt=add_generation_prompt,
            options=options,
        )

    async def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = False
    ) -> list[int]:
        return await _in_thread(self.engine.tokenize, text, add_special, parse_special)

    async def detokenize(self, tokens: Sequence[int], special: bool = False) -> str:
        return await _in_thread(self.engine.detokenize, list(tokens), special)

    async def get_token_count(self, text: str) -> int:
        return await _in_thread(self.engine.get_token_count, text)

    async def embed(self, text: str, normalize: bool = True) -> Any:
        return await _in_thread(self.engine.embed, text, normalize)

    async def embed_batch(self, texts: Sequence[str], normalize: bool = True) -> Any:
        return await _in_thread(self.engine.embed_batch, list(texts), normalize)

    async def score_next_token(
        self, prompt: str, candidates: Sequence[int] = (), top_k: int = 0
    ) -> Any:
        return await _in_thread(self.engine.score_next_token, prompt, list(candidates), top_k)

    async def get_metadata(self) -> dict[str, str]:
        return await _in_thread(self.engine.get_metadata)

    async def get_context_size(self) -> int:
        return await _in_thread(self.engine.get_context_size)
