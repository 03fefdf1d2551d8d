"""What requests return: OpenAI-shaped chunks and completions, usage, token scores, prompts.

Values are frozen dataclasses; chunks and completions convert to OpenAI's JSON with
``to_dict``. Nothing here needs a model or compiled code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from llamabind.messages import (
    LlamaChatMessage,
    LlamaChatRole,
    LlamaContentPart,
    LlamaTextContent,
    LlamaThinkingContent,
    LlamaToolCallContent,
)
from llamabind.params import GrammarTrigger

FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


@dataclass(frozen=True, slots=True)
class LlamaUsage:
    """Token counts and timings of one completion.

    Args:
        prompt_tokens: Tokens of the prompt, cached ones included.
        completion_tokens: Tokens generated (stop-string tokens included, end-of-text not).
        cached_prompt_tokens: Prompt tokens found in the KV cache and not evaluated again.
        time_to_first_token_ms: From the start of the request to the first token.
        prompt_tokens_per_s: Evaluated (uncached) prompt tokens per second.
        generation_tokens_per_s: Tokens per second after the first.
        duration_ms: The whole request.
    """

    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0
    time_to_first_token_ms: float | None = None
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    duration_ms: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``usage`` object, plus ``timings`` as llama-server reports them."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_prompt_tokens},
            "timings": {
                "time_to_first_token_ms": self.time_to_first_token_ms,
                "prompt_tokens_per_s": self.prompt_tokens_per_s,
                "generation_tokens_per_s": self.generation_tokens_per_s,
                "duration_ms": self.duration_ms,
            },
        }


@dataclass(frozen=True, slots=True)
class LlamaChunkFunction:
    """Part of a streamed function call: its name (first delta) and a piece of its arguments."""

    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class LlamaChunkToolCall:
    """A streamed tool call delta; deltas with the same ``index`` belong to one call."""

    index: int
    id: str | None = None
    type: Literal["function"] = "function"
    function: LlamaChunkFunction = field(default_factory=LlamaChunkFunction)

    def to_dict(self) -> dict[str, Any]:
        function: dict[str, Any] = {"arguments": self.function.arguments}
        if self.function.name is not None:
            function["name"] = self.function.name
        out: dict[str, Any] = {"index": self.index, "type": self.type, "function": function}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True, slots=True)
class LlamaChunkDelta:
    """What one chunk adds to the assistant message."""

    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: tuple[LlamaChunkToolCall, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.role is not None:
            out["role"] = self.role
        if self.content is not None:
            out["content"] = self.content
        if self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        if self.tool_calls is not None:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return out


@dataclass(frozen=True, slots=True)
class LlamaChunkChoice:
    index: int
    delta: LlamaChunkDelta
    finish_reason: FinishReason | None = None
    logprobs: tuple[LlamaGeneratedLogprob, ...] | None = None  # the tokens behind this delta


@dataclass(frozen=True, slots=True)
class LlamaCompletionChunk:
    """One streamed piece of a chat completion, shaped like OpenAI's ``chat.completion.chunk``.

    The last chunk of a stream has ``finish_reason`` set and carries ``usage``.
    """

    id: str
    created: int
    model: str
    choices: tuple[LlamaChunkChoice, ...]
    usage: LlamaUsage | None = None
    object: str = "chat.completion.chunk"

    @property
    def delta(self) -> LlamaChunkDelta:
        return self.choices[0].delta

    @property
    def text(self) -> str:
        """The content this chunk adds ("" when none)."""
        return self.choices[0].delta.content or ""

    @property
    def finish_reason(self) -> FinishReason | None:
        return self.choices[0].finish_reason

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": c.index,
                    "delta": c.delta.to_dict(),
                    "logprobs": logprobs_dict(c.logprobs),
                    "finish_reason": c.finish_reason,
                }
                for c in self.choices
            ],
        }
        if self.usage is not None:
            out["usage"] = self.usage.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class LlamaCompletion:
    """A whole chat completion: the collected chunks of one ``create`` stream."""

    id: str
    created: int
    model: str
    text: str
    reasoning: str | None
    tool_calls: tuple[LlamaToolCallContent, ...]
    finish_reason: FinishReason | None
    usage: LlamaUsage | None
    logprobs: tuple[LlamaGeneratedLogprob, ...] | None = None

    @property
    def message(self) -> LlamaChatMessage:
        """The assistant message: thinking, text, tool calls, in that order."""
        parts: list[LlamaContentPart] = []
        if self.reasoning:
            parts.append(LlamaThinkingContent(self.reasoning))
        if self.text:
            parts.append(LlamaTextContent(self.text))
        parts.extend(self.tool_calls)
        return LlamaChatMessage(LlamaChatRole.ASSISTANT, parts)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``chat.completion`` object."""
        message = self.message.to_openai()
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs_dict(self.logprobs),
                    "finish_reason": self.finish_reason,
                }
            ],
        }
        if self.usage is not None:
            out["usage"] = self.usage.to_dict()
        return out


class LlamaCompletionAccumulator:
    """Collects the chunks of a stream into a ``LlamaCompletion``."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list[Any]] = {}
        self._first: LlamaCompletionChunk | None = None
        self._finish: FinishReason | None = None
        self._usage: LlamaUsage | None = None
        self._logprobs: list[LlamaGeneratedLogprob] | None = None

    def add(self, chunk: LlamaCompletionChunk) -> None:
        if self._first is None:
            self._first = chunk
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            self._text.append(delta.content)
        if delta.reasoning_content:
            self._reasoning.append(delta.reasoning_content)
        for call in delta.tool_calls or ():
            entry = self._calls.setdefault(call.index, [None, None, []])
            if call.id is not None:
                entry[0] = call.id
            if call.function.name is not None:
                entry[1] = call.function.name
            entry[2].append(call.function.arguments)
        if choice.logprobs is not None:
            if self._logprobs is None:
                self._logprobs = []
            self._logprobs.extend(choice.logprobs)
        if choice.finish_reason is not None:
            self._finish = choice.finish_reason
        if chunk.usage is not None:
            self._usage = chunk.usage

    def build(self) -> LlamaCompletion:
        first = self._first
        calls = tuple(
            LlamaToolCallContent.from_json(name or "", "".join(args), id)
            for _, (id, name, args) in sorted(self._calls.items())
        )
        return LlamaCompletion(
            id=first.id if first else "",
            created=first.created if first else 0,
            model=first.model if first else "",
            text="".join(self._text),
            reasoning="".join(self._reasoning) if self._reasoning else None,
            tool_calls=calls,
            finish_reason=self._finish,
            usage=self._usage,
            logprobs=tuple(self._logprobs) if self._logprobs is not None else None,
        )


@dataclass(frozen=True, slots=True)
class LlamaTokenLogprob:
    """A token with its log-probability after a prompt.

    ``piece`` holds the token's bytes (``text`` is them decoded; a character may span tokens).
    """

    token: int
    text: str
    logprob: float
    piece: bytes = b""

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's ``{"token", "logprob", "bytes"}``."""
        return {"token": self.text, "logprob": self.logprob, "bytes": list(self.piece)}


@dataclass(frozen=True, slots=True)
class LlamaGeneratedLogprob:
    """A generated token's log-probability under the model (its raw logits, before sampling)
    and the most likely tokens at that step, most likely first (``GenerationParams.logprobs``).
    """

    token: LlamaTokenLogprob
    top: tuple[LlamaTokenLogprob, ...] = ()

    def to_openai(self) -> dict[str, Any]:
        """An entry of OpenAI's ``logprobs.content``."""
        return {**self.token.to_openai(), "top_logprobs": [t.to_openai() for t in self.top]}


def logprobs_dict(entries: tuple[LlamaGeneratedLogprob, ...] | None) -> dict[str, Any] | None:
    """OpenAI's ``logprobs`` object of a choice (None when none were asked for)."""
    return None if entries is None else {"content": [e.to_openai() for e in entries]}


@dataclass(frozen=True, slots=True)
class LlamaNextTokenScores:
    """``score_next_token``'s answer: the asked candidates and the top-k, most likely first."""

    candidates: tuple[LlamaTokenLogprob, ...]
    top: tuple[LlamaTokenLogprob, ...]
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class LlamaChatTemplateResult:
    """A rendered conversation (``LlamaEngine.chat_template``): the prompt and its format's plan.

    Args:
        prompt: The prompt, as the model is given it.
        token_count: Its tokens (the template's markers as control tokens, data as text).
        format: llama.cpp's name of the chat format ("Content-only", "Hermes 2 Pro", ...).
        stop: Stop strings the format adds.
        grammar: GBNF constraining the reply (tools or response_format), or None.
        grammar_lazy: The grammar waits for one of ``grammar_triggers``.
        grammar_triggers: What wakes a lazy grammar.
        preserved_tokens: Special tokens the parser must see as text (e.g. ``<tool_call>``).
    """

    prompt: str
    token_count: int
    format: str
    stop: tuple[str, ...]
    grammar: str | None
    grammar_lazy: bool
    grammar_triggers: tuple[GrammarTrigger, ...]
    preserved_tokens: tuple[str, ...]


__all__ = [
    "FinishReason",
    "LlamaChatTemplateResult",
    "LlamaChunkChoice",
    "LlamaChunkDelta",
    "LlamaChunkFunction",
    "LlamaChunkToolCall",
    "LlamaCompletion",
    "LlamaCompletionAccumulator",
    "LlamaCompletionChunk",
    "LlamaGeneratedLogprob",
    "LlamaNextTokenScores",
    "LlamaTokenLogprob",
    "LlamaUsage",
]
