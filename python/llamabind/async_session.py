"""AsyncChatSession: ``ChatSession`` for asyncio code, on an ``AsyncLlamaEngine``.

It is a ``ChatSession`` (same history, KV-cache reuse, trimming, rollback and tool loop) whose
turns run in a worker thread, as ``AsyncLlamaEngine`` runs its calls: the event loop never
blocks. Tool handlers may be ``async def`` functions; they run on the session's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llamabind.aio import AsyncLlamaEngine, stream_in_thread
from llamabind.options import ChatOptions, request_settings
from llamabind.params import GenerationParams
from llamabind.session import ChatSession, LlamaToolLoopResult
from llamabind.types import (
    LlamaChatMessage,
    LlamaCompletion,
    LlamaCompletionAccumulator,
    LlamaCompletionChunk,
    LlamaContentPart,
    LlamaToolCallContent,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from llamabind.options import ChatSettings, ToolLoopSettings
    from llamabind.tools import ToolDefinition


class AsyncChatSession:
    """A conversation on an ``AsyncLlamaEngine``: ``ChatSession`` with ``await``/``async for``.

    Args:
        engine: The AsyncLlamaEngine that runs the model (the session does not own it).
        system_prompt: Sent first on every turn; never trimmed.
        max_context_tokens: Token budget for prompt plus reply; None uses the context size.

    Raises:
        TypeError: ``engine`` is not an AsyncLlamaEngine.
    """

    def __init__(
        self,
        engine: AsyncLlamaEngine,
        system_prompt: str | None = None,
        max_context_tokens: int | None = None,
    ) -> None:
        if not isinstance(engine, AsyncLlamaEngine):
            hint = (
                ": for a LlamaEngine use ChatSession(engine)"
                if type(engine).__name__ == "LlamaEngine"
                else ""
            )
            raise TypeError(
                f"AsyncChatSession runs on an AsyncLlamaEngine, got {type(engine).__name__}{hint}"
            )
        self.engine = engine
        self.session = ChatSession(engine.engine, system_prompt, max_context_tokens)

    @property
    def system_prompt(self) -> str | None:
        """Sent first on every turn."""
        return self.session.system_prompt

    @system_prompt.setter
    def system_prompt(self, value: str | None) -> None:
        self.session.system_prompt = value

    @property
    def history(self) -> list[LlamaChatMessage]:
        """The conversation without the system prompt (a copy)."""
        return self.session.history

    @property
    def last_request_fit_context(self) -> bool:
        """Whether the last turn fit the context without cutting into its own messages."""
        return self.session.last_request_fit_context

    def add_message(self, message: LlamaChatMessage | Mapping[str, Any]) -> None:
        """Appends a message to the history."""
        self.session.add_message(message)

    def reset(self, keep_system_prompt: bool = True) -> None:
        """Forgets the conversation (and the system prompt unless kept)."""
        self.session.reset(keep_system_prompt)

    def messages(self) -> list[LlamaChatMessage]:
        """What the next request sends: system prompt, then history."""
        return self.session.messages()

    def cancel(self) -> None:
        """Cancels this session's running turn or tool loop (other requests go on)."""
        self.session.cancel()

    def create(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> AsyncIterator[LlamaCompletionChunk]:
        """``async for`` over the reply's chunks; see ``ChatSession.create``.

        Cancelling the consuming task (or ``aclose()`` on the stream) cancels the generation;
        the turn then leaves the history as it was.
        """
        params, options = request_settings(params, options, settings, "AsyncChatSession.create()")
        if content is not None and not isinstance(content, str):
            content = list(content)
        return stream_in_thread(
            lambda: self.session.create(content, params, options=options), self.engine.engine
        )

    async def send(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> LlamaCompletion:
        """The whole reply; see ``ChatSession.send``."""
        params, options = request_settings(params, options, settings, "AsyncChatSession.send()")
        accumulator = LlamaCompletionAccumulator()
        async for chunk in self.create(content, params, options=options):
            accumulator.add(chunk)
        return accumulator.build()

    async def send_with_tools(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        tools: Sequence[ToolDefinition | Callable[..., Any] | Mapping[str, Any]],
        *,
        max_rounds: int = 5,
        params: GenerationParams | None = None,
        options: ChatOptions | None = None,
        on_tool_call: Callable[[LlamaToolCallContent], Any] | None = None,
        on_tool_error: Callable[[LlamaToolCallContent, BaseException], Any] | None = None,
        **settings: Unpack[ToolLoopSettings],
    ) -> LlamaToolLoopResult:
        """The tool loop; see ``ChatSession.send_with_tools``. Handlers may be async.

        Cancelling the awaiting task cancels the running generation; the loop then ends with
        "cancelled" and leaves the history as it was.
        """
        loop = asyncio.get_running_loop()

        def await_on_loop(awaitable: Awaitable[Any]) -> Any:
            return asyncio.run_coroutine_threadsafe(_coroutine(awaitable), loop).result()

        def run() -> LlamaToolLoopResult:
            self.session.await_result = await_on_loop
            try:
                return self.session.send_with_tools(
                    content,
                    tools,
                    max_rounds=max_rounds,
                    params=params,
                    options=options,
                    on_tool_call=on_tool_call,
                    on_tool_error=on_tool_error,
                    **settings,
                )
            finally:
                self.session.await_result = None

        task = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.session.cancel()
            await asyncio.wait([task])  # the loop ends at once; its history is restored
            raise


async def _coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


__all__ = ["AsyncChatSession"]
