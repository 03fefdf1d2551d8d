"""Chat messages and their content parts: the conversation given to ``create``.

Values are frozen dataclasses that convert to and from OpenAI's chat format (``to_openai`` /
``from_openai``). Nothing here needs a model or compiled code.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llamabind.errors import UnsupportedError


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


__all__ = [
    "LlamaAudioContent",
    "LlamaChatMessage",
    "LlamaChatRole",
    "LlamaContentPart",
    "LlamaImageContent",
    "LlamaTextContent",
    "LlamaThinkingContent",
    "LlamaToolCallContent",
    "LlamaToolResultContent",
    "to_messages",
]
