"""Chat messages, their content parts, and the OpenAI-shaped results of ``create``.

Values are frozen dataclasses. Messages convert to and from OpenAI's chat format
(``to_openai`` / ``from_openai``); chunks and completions convert to OpenAI's JSON with
``to_dict``. Nothing here needs a model or compiled code.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llamabind.errors import UnsupportedError

FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


class LlamaChatRole(str, enum.Enum):
    """Who wrote a message.

    A str enum: each member equals its value ("user", ...). The seed's lower-case spellings
    (``LlamaChatRole.user``) are aliases of the same members, and ``LlamaChatRole("User")``
    accepts any case.
    """

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    system = "system"  # noqa: PIE796 - the seed's spellings, aliases of the members above
    user = "user"  # noqa: PIE796
    assistant = "assistant"  # noqa: PIE796
    tool = "tool"  # noqa: PIE796

    @classmethod
    def _missing_(cls, value: object) -> LlamaChatRole | None:
        if isinstance(value, str) and value.lower() != value:
            return cls(value.lower())
        return None


# --- content parts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LlamaTextContent:
    """Plain text."""

    text: str


@dataclass(frozen=True, slots=True)
class LlamaThinkingContent:
    """The model's reasoning, kept apart from its answer (``reasoning_content``)."""

    thinking: str


@dataclass(frozen=True, slots=True)
class LlamaToolCallContent:
    """A call the model asked for.

    Args:
        name: The function's name.
        arguments: The decoded arguments; an empty dict when ``raw_json`` is not a JSON object.
        id: The call id that the tool result refers back to.
        raw_json: The arguments exactly as the model wrote them.
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    raw_json: str = ""

    @classmethod
    def from_json(cls, name: str, raw_json: str, id: str | None = None) -> LlamaToolCallContent:
        """A call from its JSON argument text (kept verbatim in ``raw_json``)."""
        try:
            decoded = json.loads(raw_json) if raw_json else {}
        except json.JSONDecodeError:
            decoded = {}
        return cls(name, decoded if isinstance(decoded, dict) else {}, id, raw_json)

    @property
    def arguments_json(self) -> str:
        """The arguments as JSON text (``raw_json`` when the model wrote it)."""
        return self.raw_json or json.dumps(dict(self.arguments), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class LlamaToolResultContent:
    """A tool's answer to a call; a non-string result is shown to the model as JSON text."""

    name: str
    result: Any
    id: str | None = None

    @property
    def text(self) -> str:
        """The result as the model sees it."""
        if isinstance(self.result, str):
            return self.result
        return json.dumps(self.result, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class LlamaImageContent:
    """An image (a file, bytes or URL). Needs a multimodal projector, which is not built yet."""

    path: str | None = None
    data: bytes | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class LlamaAudioContent:
    """Audio (a file or bytes). Needs a multimodal projector, which is not built yet."""

    path: str | None = None
    data: bytes | None = None


LlamaContentPart = (
    LlamaTextContent
    | LlamaThinkingContent
    | LlamaToolCallContent
    | LlamaToolResultContent
    | LlamaImageContent
    | LlamaAudioContent
)
_PART_TYPES = (
    LlamaTextContent,
    LlamaThinkingContent,
    LlamaToolCallContent,
    LlamaToolResultContent,
    LlamaImageContent,
    LlamaAudioContent,
)


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class LlamaChatMessage:
    """One message of a conversation.

    Args:
        role: A ``LlamaChatRole`` or its name ("system", "user", "assistant", "tool").
        content: Text, or a sequence of content parts.
    """

    role: LlamaChatRole
    parts: tuple[LlamaContentPart, ...]

    def __init__(self, role: LlamaChatRole | str, content: str | Iterable[LlamaContentPart] = ""):
        try:
            role = LlamaChatRole(role)
        except ValueError:
            raise ValueError(
                f"LlamaChatMessage.role must be one of system, user, assistant, tool; got {role!r}"
            ) from None
        if isinstance(content, str):
            parts: tuple[LlamaContentPart, ...] = (LlamaTextContent(content),) if content else ()
        else:
            parts = tuple(content)
            for part in parts:
                if not isinstance(part, _PART_TYPES):
                    raise TypeError(f"LlamaChatMessage content part of unknown type: {part!r}")
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "parts", parts)

    @classmethod
    def from_text(cls, role: LlamaChatRole | str, text: str) -> LlamaChatMessage:
        """A message of one text part (the seed's ``LlamaChatMessage.fromText``)."""
        if not isinstance(text, str):
            raise TypeError(f"LlamaChatMessage.from_text needs text as a str, got {text!r}")
        return cls(role, text)

    @classmethod
    def with_content(
        cls, role: LlamaChatRole | str, content: Iterable[LlamaContentPart]
    ) -> LlamaChatMessage:
        """A message of content parts (the seed's ``LlamaChatMessage.withContent``)."""
        if isinstance(content, str):
            raise TypeError(
                "LlamaChatMessage.with_content takes content parts; use from_text for a str"
            )
        return cls(role, content)

    @classmethod
    def system(cls, text: str) -> LlamaChatMessage:
        return cls(LlamaChatRole.SYSTEM, text)

    @classmethod
    def user(cls, content: str | Iterable[LlamaContentPart]) -> LlamaChatMessage:
        return cls(LlamaChatRole.USER, content)

    @classmethod
    def assistant(cls, content: str | Iterable[LlamaContentPart]) -> LlamaChatMessage:
        return cls(LlamaChatRole.ASSISTANT, content)

    @classmethod
    def tool_result(cls, name: str, result: Any, id: str | None = None) -> LlamaChatMessage:
        return cls(LlamaChatRole.TOOL, [LlamaToolResultContent(name, result, id)])

    @property
    def text(self) -> str:
        """The text parts joined (no reasoning, no tool calls)."""
        return "".join(p.text for p in self.parts if isinstance(p, LlamaTextContent))

    @property
    def reasoning(self) -> str | None:
        """The thinking parts joined, or None when there are none."""
        thoughts = [p.thinking for p in self.parts if isinstance(p, LlamaThinkingContent)]
        return "".join(thoughts) if thoughts else None

    @property
    def tool_calls(self) -> list[LlamaToolCallContent]:
        return [p for p in self.parts if isinstance(p, LlamaToolCallContent)]

    @property
    def tool_results(self) -> list[LlamaToolResultContent]:
        return [p for p in self.parts if isinstance(p, LlamaToolResultContent)]

    def check_supported(self) -> None:
        """Raises UnsupportedError for image or audio parts (no multimodal projector yet)."""
        for part in self.parts:
            if isinstance(part, (LlamaImageContent, LlamaAudioContent)):
                kind = "image" if isinstance(part, LlamaImageContent) else "audio"
                raise UnsupportedError(
                    f"{kind} input needs a multimodal projector, which llamabind does not load "
                    "yet; send text only",
                    part=kind,
                )

    def to_openai(self) -> dict[str, Any]:
        """The message in OpenAI's chat format (what chat templates are given)."""
        self.check_supported()
        results = self.tool_results
        if self.role is LlamaChatRole.TOOL and results:
            first = results[0]
            message: dict[str, Any] = {"role": "tool", "content": "".join(r.text for r in results)}
            if first.id is not None:
                message["tool_call_id"] = first.id
            message["name"] = first.name
            return message
        message = {"role": self.role.value, "content": self.text}
        calls = self.tool_calls
        if calls:
            message["content"] = self.text or None
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for i, call in enumerate(calls)
            ]
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        return message

    @classmethod
    def from_openai(cls, message: Mapping[str, Any] | LlamaChatMessage) -> LlamaChatMessage:
        """A message from OpenAI's chat format (a dict with role, content, tool_calls, ...)."""
        if isinstance(message, LlamaChatMessage):
            return message
        if not isinstance(message, Mapping):
            raise TypeError(f"a chat message must be a dict or LlamaChatMessage, got {message!r}")
        if "role" not in message:
            raise ValueError(f"chat message without a role: {dict(message)!r}")
        role = message["role"]
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        content = message.get("content")
        if role == "tool":
            name = message.get("name") or ""
            return cls(
                role,
                [LlamaToolResultContent(name, _content_text(content), message.get("tool_call_id"))],
            )
        parts: list[LlamaContentPart] = []
        if message.get("reasoning_content"):
            parts.append(LlamaThinkingContent(str(message["reasoning_content"])))
        parts.extend(_content_parts(content))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            arguments = function.get("arguments", "")
            if isinstance(arguments, Mapping):
                arguments = json.dumps(dict(arguments), ensure_ascii=False)
            parts.append(
                LlamaToolCallContent.from_json(function.get("name", ""), arguments, call.get("id"))
            )
        return cls(role, parts)


def _content_text(content: Any) -> str:
    return "".join(p.text for p in _content_parts(content) if isinstance(p, LlamaTextContent))


def _content_parts(content: Any) -> list[LlamaContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [LlamaTextContent(content)] if content else []
    if not isinstance(content, Sequence):
        raise TypeError(f"message content must be a str or a list of parts, got {content!r}")
    parts: list[LlamaContentPart] = []
    for item in content:
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            parts.append(LlamaTextContent(str(item.get("text", ""))))
        elif kind in ("image_url", "image"):
            url = item.get("image_url")
            parts.append(LlamaImageContent(url=url.get("url") if isinstance(url, Mapping) else url))
        elif kind in ("input_audio", "audio"):
            parts.append(LlamaAudioContent())
        else:
            raise ValueError(f"unknown message content part: {item!r}")
    return parts


def to_messages(messages: Iterable[LlamaChatMessage | Mapping[str, Any]]) -> list[LlamaChatMessage]:
    """Messages from LlamaChatMessage values or OpenAI-style dicts."""
    if isinstance(messages, (str, bytes, Mapping)):
        raise TypeError("messages must be a list of chat messages")
    return [LlamaChatMessage.from_openai(m) for m in messages]


# --- results -------------------------------------------------------------------------------


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
                {"index": c.index, "delta": c.delta.to_dict(), "finish_reason": c.finish_reason}
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
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
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
        )


@dataclass(frozen=True, slots=True)
class LlamaTokenLogprob:
    """A token with its log-probability after a prompt."""

    token: int
    text: str
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True, slots=True)
class LlamaNextTokenScores:
    """``score_next_token``'s answer: the asked candidates and the top-k, most likely first."""

    candidates: tuple[LlamaTokenLogprob, ...]
    top: tuple[LlamaTokenLogprob, ...]
    prompt_tokens: int


__all__ = [
    "FinishReason",
    "LlamaAudioContent",
    "LlamaChatMessage",
    "LlamaChatRole",
    "LlamaChunkChoice",
    "LlamaChunkDelta",
    "LlamaChunkFunction",
    "LlamaChunkToolCall",
    "LlamaCompletion",
    "LlamaCompletionAccumulator",
    "LlamaCompletionChunk",
    "LlamaContentPart",
    "LlamaImageContent",
    "LlamaNextTokenScores",
    "LlamaTextContent",
    "LlamaThinkingContent",
    "LlamaTokenLogprob",
    "LlamaToolCallContent",
    "LlamaToolResultContent",
    "LlamaUsage",
]
