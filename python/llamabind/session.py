"""ChatSession: a conversation with history on top of a LlamaEngine.

The session renders its whole history for each turn; the engine's context keeps the KV cache
of the conversation, so a new turn evaluates only its new tokens. When a turn would not fit,
the oldest turns are dropped (the system prompt stays), by exact token counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llamabind.engine import LlamaEngine
from llamabind.errors import ContextOverflowError
from llamabind.params import GenerationParams
from llamabind.tools import ToolDefinition, normalize_tools
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

logger = logging.getLogger("llamabind.session")

ToolLoopStopReason = Literal["completed", "max_rounds", "unhandled_tool_calls",
                             "context_exceeded", "cancelled"]
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

    Args:
        engine: The engine that runs the model (a session does not own it).
        system_prompt: Sent first on every turn; never trimmed.
        max_context_tokens: Token budget for prompt plus reply; None uses the context size.
    """

    def __init__(self, engine: LlamaEngine, system_prompt: str | None = None,
                 max_context_tokens: int | None = None) -> None:
        if max_context_tokens is not None and max_context_tokens < 1:
            raise ValueError(f"max_context_tokens must be >= 1, got {max_context_tokens}")
        self.engine = engine
        self.system_prompt = system_prompt
        self.max_context_tokens = max_context_tokens
        self.last_request_fit_context = True
        self._history: list[LlamaChatMessage] = []

    @property
    def history(self) -> list[LlamaChatMessage]:
        """The conversation without the system prompt (a copy)."""
        return list(self._history)

    def add_message(self, message: LlamaChatMessage | Mapping[str, Any]) -> None:
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

    def create(self, content: str | Iterable[LlamaContentPart] | None,
               params: GenerationParams | None = None, **options: Any) -> Iterator[LlamaCompletionChunk]:
        """Adds a user message and streams the reply, which joins the history at the end.

        Args:
            content: The user's text or content parts; None or empty continues the turn (after
                tool results) without a new user message.
            params: Sampling and stopping for this turn.
            **options: As ``LlamaEngine.create`` (tools, tool_choice, response_format, ...).

        A turn that fails, or is cancelled before its first chunk, is taken out of history; a
        turn stopped later keeps its partial reply. Nothing happens until the first ``next()``.
        """
        return self._turn(content, params, options)

    def _turn(self, content: str | Iterable[LlamaContentPart] | None,
              params: GenerationParams | None, options: Mapping[str, Any]) -> Iterator[LlamaCompletionChunk]:
        mark = len(self._history)
        if content:
            self._history.append(LlamaChatMessage.user(content))
        try:
            self._fit(params, options)
            stream = self.engine.create(self.messages(), params, **options)
        except BaseException:
            del self._history[mark:]
            raise
        yield from self._record(stream, mark)

    def _record(self, stream: Iterator[LlamaCompletionChunk], mark: int) -> Iterator[LlamaCompletionChunk]:
        accumulator = LlamaCompletionAccumulator()
        produced = False
        try:
            for chunk in stream:
                accumulator.add(chunk)
                if chunk.delta.content or chunk.delta.reasoning_content or chunk.delta.tool_calls:
                    produced = True
                yield chunk
        except BaseException:
            if not produced:
                del self._history[mark:]
            else:  # keep what the user saw
                self._history.append(accumulator.build().message)
            raise
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # stops the native loop at once when the caller broke out
        completion = accumulator.build()
        if completion.finish_reason == "cancelled" and not produced:
            del self._history[mark:]
            return
        self._history.append(completion.message)

    def send(self, content: str | Iterable[LlamaContentPart] | None,
             params: GenerationParams | None = None, **options: Any) -> LlamaCompletion:
        """Like ``create`` but returns the whole reply."""
        accumulator = LlamaCompletionAccumulator()
        for chunk in self.create(content, params, **options):
            accumulator.add(chunk)
        return accumulator.build()

    # --- context trimming ----------------------------------------------------------------------

    def _budget(self, params: GenerationParams | None) -> tuple[int, int]:
        limit = self.max_context_tokens or self.engine.get_context_size()
        wanted = params.max_tokens if params and params.max_tokens else 4096
        reserve = max(min(wanted, limit // 2), min(MIN_REPLY_RESERVE, limit // 2), 1)
        return limit, reserve

    def _count(self, messages: list[LlamaChatMessage], options: Mapping[str, Any]) -> int:
        keys = ("tools", "tool_choice", "enable_thinking", "chat_template_kwargs")
        return self.engine.chat_template(messages, **{k: options[k] for k in keys if k in options}).token_count

    def _fit(self, params: GenerationParams | None, options: Mapping[str, Any]) -> None:
        """Drops the oldest turns until prompt + reply reserve fit the budget."""
        limit, reserve = self._budget(params)
        target = limit - reserve
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
            if self._count(head + self._history[starts[mid]:], options) <= target:
                best, hi = mid, mid - 1
            else:
                lo = mid + 1
        if best is None:
            keep_from = starts[-1] if starts else 0
            self.last_request_fit_context = False
            logger.warning("the current turn alone needs more than %d tokens (context %d, "
                           "reply reserve %d)", target, limit, reserve)
        else:
            keep_from = starts[best]
        dropped = self._history[:keep_from]
        del self._history[:keep_from]
        logger.debug("dropped %d old messages to fit the context", len(dropped))

    # --- tool loop -----------------------------------------------------------------------------

    def send_with_tools(
        self,
        content: str | Iterable[LlamaContentPart] | None,
        tools: Sequence[ToolDefinition | Callable[..., Any] | Mapping[str, Any]],
        *,
        max_rounds: int = 5,
        params: GenerationParams | None = None,
        tool_choice: Any = None,
        on_tool_call: Callable[[LlamaToolCallContent], Any] | None = None,
        on_tool_error: Callable[[LlamaToolCallContent, BaseException], Any] | None = None,
        **options: Any,
    ) -> LlamaToolLoopResult:
        """Runs the tool loop: ask, call the tools the model asks for, answer, repeat.

        Args:
            content: The user's message.
            tools: ToolDefinitions (with handlers), typed functions, or OpenAI tool dicts.
            max_rounds: Most rounds of tool calls before giving up ("max_rounds").
            params: Sampling for every round.
            tool_choice: Applies to the first round only; later rounds are "auto". A round
                that only repeats calls already answered is dropped and asked again with
                "none", so the model answers instead of looping.
            on_tool_call: Answers calls of tools without a handler (or unknown names); without
                it such calls end the loop with "unhandled_tool_calls".
            on_tool_error: Turns a handler's exception into a result; the default result is
                ``{"error": "<message>"}``.

        Every stop reason but completed and unhandled_tool_calls takes the loop's messages
        back out of history.
        """
        if max_rounds < 0:
            raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
        definitions = normalize_tools(tools)
        by_name = {tool.name: tool for tool in definitions}
        mark = len(self._history)
        completion: LlamaCompletion | None = None
        answered: set[tuple[str, str]] = set()
        nudged = False
        rounds = 0
        next_content = content
        choice = tool_choice
        while True:
            try:
                completion = self.send(next_content, params, tools=definitions, tool_choice=choice,
                                       **options)
            except ContextOverflowError:
                return self._loop_end(completion, "context_exceeded", rounds, (), mark)
            rounds += 1
            next_content, choice = None, None
            if completion.finish_reason == "cancelled":
                return self._loop_end(completion, "cancelled", rounds, (), mark)
            calls = completion.tool_calls
            if not calls:
                return self._loop_end(completion, "completed", rounds, (), mark)
            if not nudged and all(_call_key(c) in answered for c in calls):
                # The same calls again (small models loop): ask once for the answer instead.
                del self._history[-1]
                choice, nudged = "none", True
                continue
            if rounds > max_rounds:
                return self._loop_end(completion, "max_rounds", rounds, calls, mark)
            pending = []
            for call in calls:
                tool = by_name.get(call.name)
                if (tool is None or tool.handler is None) and on_tool_call is None:
                    pending.append(call)
            if pending:
                return self._loop_end(completion, "unhandled_tool_calls", rounds, tuple(pending), mark)
            for call in calls:
                answered.add(_call_key(call))
                result = self._call_tool(by_name.get(call.name), call, on_tool_call, on_tool_error)
                self._history.append(LlamaChatMessage(
                    LlamaChatRole.TOOL, [LlamaToolResultContent(call.name, result, call.id)]))

    @staticmethod
    def _call_tool(tool: ToolDefinition | None, call: LlamaToolCallContent,
                   on_tool_call: Callable[..., Any] | None,
                   on_tool_error: Callable[..., Any] | None) -> Any:
        try:
            if tool is not None and tool.handler is not None:
                return tool.invoke(call.arguments)
            if on_tool_call is None:
                raise LookupError(f"no handler for tool {call.name!r}")
            return on_tool_call(call)
        except Exception as exc:  # a tool's failure is an answer the model can read
            if on_tool_error is not None:
                return on_tool_error(call, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _loop_end(self, completion: LlamaCompletion | None, reason: ToolLoopStopReason,
                  rounds: int, pending: Sequence[LlamaToolCallContent], mark: int) -> LlamaToolLoopResult:
        added = tuple(self._history[mark:])
        rolled_back = reason not in ("completed", "unhandled_tool_calls")
        if rolled_back:
            del self._history[mark:]
        return LlamaToolLoopResult(completion, reason, rounds, tuple(pending), added, rolled_back)


def _call_key(call: LlamaToolCallContent) -> tuple[str, str]:
    return call.name, json.dumps(dict(call.arguments), sort_keys=True, default=str)
