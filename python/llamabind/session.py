"""ChatSession: a conversation with history on top of a LlamaEngine.

The session renders its whole history for each turn; the engine's context keeps the KV cache
of the conversation, so a new turn evaluates only its new tokens. When a turn would not fit,
the oldest turns are dropped (the system prompt stays), by exact token counts.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from llamabind.engine import LlamaEngine
from llamabind.errors import ContextOverflowError, StateError, ToolHandlerError
from llamabind.options import ChatOptions, request_settings
from llamabind.params import GenerationParams
from llamabind.tools import ToolDefinition
from llamabind.types import (
    LlamaChatMessage,
    LlamaChatRole,
    LlamaCompletion,
    LlamaCompletionAccumulator,
    LlamaCompletionChunk,
    LlamaContentPart,
    LlamaToolCallContent,
    LlamaToolResultContent,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from llamabind.options import ChatSettings, ToolLoopSettings

logger = logging.getLogger("llamabind.session")

ToolLoopStopReason = Literal[
    "completed", "max_rounds", "unhandled_tool_calls", "context_exceeded", "cancelled"
]
MIN_REPLY_RESERVE = 128


@dataclass(frozen=True, slots=True)
class LlamaToolLoopResult:
    """How ``send_with_tools`` ended.

    Args:
        completion: The last completion (the answer when ``stop_reason`` is "completed").
        stop_reason: completed, max_rounds, unhandled_tool_calls, context_exceeded, cancelled.
        rounds: Completions made.
        pending_tool_calls: Calls left unanswered (no handler) for "unhandled_tool_calls".
        messages: The messages the loop added to history (or would have, if rolled back).
        rolled_back: Whether those messages were taken out of history again.
    """

    completion: LlamaCompletion | None
    stop_reason: ToolLoopStopReason
    rounds: int
    pending_tool_calls: tuple[LlamaToolCallContent, ...]
    messages: tuple[LlamaChatMessage, ...]
    rolled_back: bool

    @property
    def text(self) -> str:
        return self.completion.text if self.completion else ""


class ChatSession:
    """A conversation: history, streaming turns, context trimming and a tool loop.

    A session holds one conversation, so it runs one turn at a time: a second turn started
    while one runs (from another thread, or before a ``create`` stream ended) raises
    ``StateError``. A turn joins the history only when it completes; a turn that fails, is
    cancelled or is abandoned (the caller breaks out of its stream) leaves the history exactly
    as it was before (old turns dropped to fit the context come back too).

    Args:
        engine: The LlamaEngine that runs the model (a session does not own it); for an
            ``AsyncLlamaEngine`` use ``AsyncChatSession``.
        system_prompt: Sent first on every turn; never trimmed.
        max_context_tokens: Token budget for prompt plus reply; None uses the context size.

    Raises:
        TypeError: ``engine`` is not a LlamaEngine.
    """

    def __init__(
        self,
        engine: LlamaEngine,
        system_prompt: str | None = None,
        max_context_tokens: int | None = None,
    ) -> None:
        if not isinstance(engine, LlamaEngine):
            hint = (
                ": for an AsyncLlamaEngine use AsyncChatSession(engine)"
                if type(engine).__name__ == "AsyncLlamaEngine"
                else ""
            )
            raise TypeError(f"ChatSession runs on a LlamaEngine, got {type(engine).__name__}{hint}")
        if max_context_tokens is not None and max_context_tokens < 1:
            raise ValueError(f"max_context_tokens must be >= 1, got {max_context_tokens}")
        self.engine = engine
        self.system_prompt = system_prompt
        self.max_context_tokens = max_context_tokens
        self.last_request_fit_context = True
        self._history: list[LlamaChatMessage] = []
        self._busy = threading.Lock()
        self._cancelled = threading.Event()  # cancel() of the running turn or tool loop
        self._stream: Any = None  # the engine stream of the running turn
        self._n_dropped = 0  # messages trimmed so far (the tool loop finds its own by it)
        # How an awaitable returned by a tool handler is resolved (AsyncChatSession sets it).
        self.await_result: Callable[[Awaitable[Any]], Any] | None = None

    @property
    def history(self) -> list[LlamaChatMessage]:
        """The conversation without the system prompt (a copy)."""
        return list(self._history)

    def add_message(self, message: LlamaChatMessage | Mapping[str, Any]) -> None:
        """Appends a message (a LlamaChatMessage or an OpenAI-style dict) to the history."""
        self._history.append(LlamaChatMessage.from_openai(message))

    def reset(self, keep_system_prompt: bool = True) -> None:
        """Forgets the conversation (and the system prompt unless kept)."""
        self._history.clear()
        if not keep_system_prompt:
            self.system_prompt = None

    def messages(self) -> list[LlamaChatMessage]:
        """What the next request sends: system prompt, then history."""
        head = [LlamaChatMessage.system(self.system_prompt)] if self.system_prompt else []
        return head + self._history

    # --- turns -------------------------------------------------------------------------------

    def create(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> Iterator[LlamaCompletionChunk]:
        """Adds a user message and streams the reply, which joins the history at the end.

        Args:
            content: The user's text or content parts; None or empty continues the turn (after
                tool results) without a new user message.
            params: Sampling and stopping for this turn.
            options: Chat options (tools, tool_choice, response_format, ...).
            **settings: Any GenerationParams or ChatOptions field, overriding ``params`` and
                ``options`` (as ``LlamaEngine.create``).

        Wrong keywords raise at once; nothing else happens until the first ``next()``.

        Raises:
            StateError: another turn of this session is running.
            TypeError: a keyword that is not a GenerationParams or ChatOptions field.
        """
        params, options = request_settings(params, options, settings, "ChatSession.create()")
        return self._claimed(content, params, options)

    def send(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> LlamaCompletion:
        """Like ``create`` but returns the whole reply."""
        params, options = request_settings(params, options, settings, "ChatSession.send()")
        return _collect(self._claimed(content, params, options))

    def cancel(self) -> None:
        """Cancels this session's running turn (and the rest of its tool loop), from any thread.

        Other requests on the engine go on. The turn ends with finish reason "cancelled" and
        leaves the history as it was; does nothing when no turn runs.
        """
        if self._busy.locked():
            self._cancelled.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()

    @contextlib.contextmanager
    def _claim(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise StateError(
                "this ChatSession is running a turn already (in another thread, or "
                "a create() stream not finished or closed); a session holds one "
                "conversation: wait for that turn, or use one session per thread"
            )
        self._cancelled.clear()
        try:
            yield
        finally:
            self._busy.release()

    def _claimed(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        params: GenerationParams,
        options: ChatOptions,
    ) -> Iterator[LlamaCompletionChunk]:
        with self._claim():
            yield from self._turn(content, params, options)

    def _turn(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        params: GenerationParams,
        options: ChatOptions,
    ) -> Iterator[LlamaCompletionChunk]:
        before, n_dropped = list(self._history), self._n_dropped
        completed = False
        try:
            if content:
                self._history.append(LlamaChatMessage.user(content))
            self._fit(params, options)
            stream = self._stream = self.engine.create(self.messages(), params, options=options)
            if self._cancelled.is_set():
                stream.cancel()  # cancel() came between the turns of a tool loop
            accumulator = LlamaCompletionAccumulator()
            try:
                for chunk in stream:
                    accumulator.add(chunk)
                    yield chunk
            finally:
                self._stream = None
                stream.close()  # stops the native loop at once when the caller broke out
            completion = accumulator.build()
            if completion.finish_reason != "cancelled" and not self._cancelled.is_set():
                self._history.append(completion.message)
                completed = True
        finally:
            if not completed:
                self._history[:], self._n_dropped = before, n_dropped

    # --- context trimming ----------------------------------------------------------------------

    def _budget(self, params: GenerationParams) -> tuple[int, int]:
        limit = self.max_context_tokens or self.engine.get_context_size()
        wanted = params.max_tokens or 4096
        reserve = max(min(wanted, limit // 2), min(MIN_REPLY_RESERVE, limit // 2), 1)
        return limit, reserve

    def _count(self, messages: list[LlamaChatMessage], options: ChatOptions) -> int:
        return self.engine.chat_template(messages, options=options).token_count

    def _fit(self, params: GenerationParams, options: ChatOptions) -> None:
        """Drops the oldest turns until prompt + reply reserve fit the budget."""
        limit, reserve = self._budget(params)
        target = limit - reserve
        options = options.replace(response_format=None)  # the prompt's size, not its grammar
        self.last_request_fit_context = True
        if self._count(self.messages(), options) <= target:
            return
        starts = [i for i, m in enumerate(self._history) if m.role is LlamaChatRole.USER]
        head = [LlamaChatMessage.system(self.system_prompt)] if self.system_prompt else []
        # Binary search for the fewest dropped turns whose remainder fits.
        lo, hi = 1, len(starts) - 1
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._count(head + self._history[starts[mid] :], options) <= target:
                best, hi = mid, mid - 1
            else:
                lo = mid + 1
        if best is None:
            keep_from = starts[-1] if starts else 0
            self.last_request_fit_context = False
            logger.warning(
                "the current turn alone needs more than %d tokens (context %d, reply reserve %d)",
                target,
                limit,
                reserve,
            )
        else:
            keep_from = starts[best]
        del self._history[:keep_from]
        self._n_dropped += keep_from
        logger.debug("dropped %d old messages to fit the context", keep_from)

    # --- tool loop -----------------------------------------------------------------------------

    def send_with_tools(
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
        """Runs the tool loop: ask, call the tools the model asks for, answer, repeat.

        Args:
            content: The user's message.
            tools: ToolDefinitions (with handlers), typed functions, or OpenAI tool dicts.
            max_rounds: Most rounds of tool calls before giving up ("max_rounds").
            params: Sampling for every round.
            options: Chat options; its ``tool_choice`` applies to the first round only, later
                rounds are "auto". A round that only repeats calls already answered is dropped
                and asked again with "none", so the model answers instead of looping.
            on_tool_call: Answers calls of tools without a handler (or unknown names); without
                it such calls end the loop with "unhandled_tool_calls".
            on_tool_error: Turns a handler's exception into a result; the default result is
                ``{"error": "<message>"}``.
            **settings: Any GenerationParams or ChatOptions field but ``tools`` (e.g.
                ``tool_choice="required"``, ``max_tokens=80``).

        Every stop reason but completed and unhandled_tool_calls leaves the history as it was
        before the loop.

        Raises:
            StateError: another turn of this session is running.
        """
        if max_rounds < 0:
            raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
        params, options = request_settings(
            params, options, settings, "ChatSession.send_with_tools()"
        )
        options = options.replace(tools=tools)
        with self._claim():
            return _ToolLoop(self, options.tools, on_tool_call, on_tool_error).run(
                content, params, options, max_rounds
            )

    def _call_tool(
        self,
        tool: ToolDefinition | None,
        call: LlamaToolCallContent,
        on_tool_call: Callable[..., Any] | None,
        on_tool_error: Callable[..., Any] | None,
    ) -> Any:
        try:
            if tool is not None and tool.handler is not None:
                result = tool.invoke(call.arguments)
            elif on_tool_call is None:
                raise ToolHandlerError(f"no handler for tool {call.name!r}", tool_name=call.name)
            else:
                result = on_tool_call(call)
            return self._resolve(call, result)
        except Exception as exc:  # noqa: BLE001 - a tool's failure is an answer the model can read
            if on_tool_error is not None:
                return on_tool_error(call, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _resolve(self, call: LlamaToolCallContent, result: Any) -> Any:
        if not inspect.isawaitable(result):
            return result
        if self.await_result is None:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # a coroutine never awaited would warn
            raise TypeError(
                f"the handler of tool {call.name!r} is async: run the loop with "
                "AsyncChatSession.send_with_tools"
            )
        return self.await_result(result)


class _ToolLoop:
    """One ``send_with_tools`` call: rounds of completion and tool calls."""

    def __init__(
        self,
        session: ChatSession,
        tools: Sequence[ToolDefinition],
        on_tool_call: Callable[..., Any] | None,
        on_tool_error: Callable[..., Any] | None,
    ):
        self.session = session
        self.by_name = {tool.name: tool for tool in tools}
        self.on_tool_call, self.on_tool_error = on_tool_call, on_tool_error
        self.before = list(session._history)
        self.n_dropped = session._n_dropped

    def run(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        params: GenerationParams,
        options: ChatOptions,
        max_rounds: int,
    ) -> LlamaToolLoopResult:
        session = self.session
        completion: LlamaCompletion | None = None
        answered: set[tuple[str, str]] = set()
        nudged = False
        rounds = 0
        while True:
            try:
                completion = _collect(session._turn(content, params, options))
            except ContextOverflowError:
                return self.end(completion, "context_exceeded", rounds, ())
            rounds += 1
            content, options = None, options.replace(tool_choice=None)
            if completion.finish_reason == "cancelled" or session._cancelled.is_set():
                return self.end(completion, "cancelled", rounds, ())
            calls = completion.tool_calls
            if not calls:
                return self.end(completion, "completed", rounds, ())
            if not nudged and all(_call_key(c) in answered for c in calls):
                # The same calls again (small models loop): ask once for the answer instead.
                del session._history[-1]
                options, nudged = options.replace(tool_choice="none"), True
                continue
            if rounds > max_rounds:
                return self.end(completion, "max_rounds", rounds, calls)
            pending = [
                call
                for call in calls
                if self.on_tool_call is None
                and (self.by_name.get(call.name) is None or self.by_name[call.name].handler is None)
            ]
            if pending:
                return self.end(completion, "unhandled_tool_calls", rounds, pending)
            for call in calls:
                answered.add(_call_key(call))
                result = session._call_tool(
                    self.by_name.get(call.name), call, self.on_tool_call, self.on_tool_error
                )
                session._history.append(
                    LlamaChatMessage(
                        LlamaChatRole.TOOL, [LlamaToolResultContent(call.name, result, call.id)]
                    )
                )

    def end(
        self,
        completion: LlamaCompletion | None,
        reason: ToolLoopStopReason,
        rounds: int,
        pending: Sequence[LlamaToolCallContent],
    ) -> LlamaToolLoopResult:
        session = self.session
        # Trimming drops from the front only, so the loop's messages are the end of history.
        start = len(self.before) - (session._n_dropped - self.n_dropped)
        added = tuple(session._history[start:])
        rolled_back = reason not in ("completed", "unhandled_tool_calls")
        if rolled_back:
            session._history[:], session._n_dropped = self.before, self.n_dropped
        return LlamaToolLoopResult(completion, reason, rounds, tuple(pending), added, rolled_back)


def _collect(stream: Iterable[LlamaCompletionChunk]) -> LlamaCompletion:
    accumulator = LlamaCompletionAccumulator()
    for chunk in stream:
        accumulator.add(chunk)
    return accumulator.build()


def _call_key(call: LlamaToolCallContent) -> tuple[str, str]:
    return call.name, json.dumps(dict(call.arguments), sort_keys=True, default=str)
