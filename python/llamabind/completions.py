"""Chat completion streams: text of a native run → parsed deltas → OpenAI-shaped chunks.

A parser (llama.cpp's own chat parser from ``_native``, or ``PlainParser`` when the model
writes plain text) turns the growing text into deltas of content, reasoning and tool calls;
this module wraps them as ``LlamaCompletionChunk`` values and ends the stream with the finish
reason and usage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from llamabind.types import (
    LlamaChunkChoice,
    LlamaChunkDelta,
    LlamaChunkFunction,
    LlamaChunkToolCall,
    LlamaCompletionChunk,
)


class ChatStreamParser(Protocol):
    """Turns generated text into OpenAI-style deltas as it grows."""

    def feed(self, text: str) -> Sequence[Mapping[str, Any]]:
        """Adds text; returns the deltas it completes."""
        ...

    def finish(self) -> Sequence[Mapping[str, Any]]:
        """Ends the text; returns the remaining deltas."""
        ...


class PlainParser:
    """Every piece of text is content."""

    __slots__ = ()

    def feed(self, text: str) -> Sequence[Mapping[str, Any]]:
        return ({"content_delta": text},)

    def finish(self) -> Sequence[Mapping[str, Any]]:
        return ()


def _delta(raw: Mapping[str, Any], role: str | None) -> LlamaChunkDelta:
    calls = None
    if "tool_call_index" in raw:
        calls = (
            LlamaChunkToolCall(
                index=int(raw["tool_call_index"]),
                id=raw.get("tool_call_id") or None,
                function=LlamaChunkFunction(
                    raw.get("tool_call_name") or None, raw.get("tool_call_arguments_delta", "")
                ),
            ),
        )
    return LlamaChunkDelta(
        role=role,
        content=raw.get("content_delta") or None,
        reasoning_content=raw.get("reasoning_content_delta") or None,
        tool_calls=calls,
    )


def stream_chunks(
    run: Any,
    parser: ChatStreamParser,
    model_name: str,
    on_finish: Callable[[Any], None] | None = None,
) -> Iterator[LlamaCompletionChunk]:
    """Chunks of one chat completion.

    Args:
        run: A ``generation.GenerationRun``: iterating it yields text; afterwards it has
            ``finish_reason`` and ``usage``.
        parser: Splits the text into content, reasoning and tool-call deltas.
        model_name: The ``model`` field of every chunk.
        on_finish: Called with the run after the last chunk was built (e.g. to record history).

    Yields:
        Chunks with deltas, then one final chunk with ``finish_reason`` and ``usage``.
    """
    chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    role: str | None = "assistant"
    has_tool_calls = False

    def make(delta: LlamaChunkDelta, finish: Any = None, usage: Any = None) -> LlamaCompletionChunk:
        # the log-probabilities of the tokens since the last chunk go on this one
        choice = LlamaChunkChoice(0, delta, finish, run.take_logprobs())
        return LlamaCompletionChunk(chunk_id, created, model_name, (choice,), usage)

    for text in run:
        for raw in parser.feed(text):
            if "tool_call_index" in raw:
                has_tool_calls = True
            yield make(_delta(raw, role))
            role = None
    for raw in parser.finish():
        if "tool_call_index" in raw:
            has_tool_calls = True
        yield make(_delta(raw, role))
        role = None
    finish = run.finish_reason
    if finish == "stop" and has_tool_calls:
        finish = "tool_calls"
    if on_finish is not None:
        on_finish(run)
    yield make(LlamaChunkDelta(role=role), finish, run.usage)
