"""The messages a template sees: OpenAI messages made canonical and adapted to the template.

This is what llama.cpp (``common/chat.cpp``, as llama-server uses it) does to a conversation
before it renders a Jinja template, done the same way so that both render the same prompt:

1. OpenAI-style messages and tools are checked and made canonical: ``content`` is a string,
   ``""`` when missing or None, or a list of ``{"type": "text", "text"}`` parts;
   ``reasoning_content``, ``name`` and ``tool_call_id`` appear only when not empty; tool calls
   become ``{"type", "function": {"name", "arguments"}, "id"}`` with ``arguments`` as JSON
   text; tools become ``{"type": "function", "function": {"name", "description",
   "parameters"}}``.
2. Polyfills from the template's capabilities (:class:`~llamabind.chat.caps.TemplateCaps`):
   content parts joined with newlines for string-only templates (or a string wrapped in one
   part for parts-only templates); the ``developer`` role renamed ``system`` (except for
   GPT-OSS, whose template knows it); a system message the template ignores merged into the
   next message with a newline; tool-call arguments parsed into mappings for templates that
   want them so.
3. Family fixes llama.cpp applies to templates it recognises by their source (in
   :mod:`llamabind.chat.families`, re-exported here: :func:`adapt_for_family`,
   :func:`finish_prompt`, :func:`patch_source`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .caps import TemplateCaps
from .families import adapt_for_family, finish_prompt, patch_source

__all__ = [
    "adapt_for_family",
    "apply_caps",
    "finish_prompt",
    "parse_messages",
    "parse_tools",
    "patch_source",
]

_C_WHITESPACE = " \t\n\v\f\r"
_STEPFUN_MARKER = "You have access to the following functions in JSONSchema format"


def _fail(where: str, problem: str) -> ValueError:
    return ValueError(f"[ChatTemplate.render] {where}: {problem}")


# ----------------------------------------------------------------------------- canonical shapes


def _parse_content(where: str, content: Any) -> str | list[dict[str, str]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, Mapping) or "type" not in part:
                raise _fail(f"{where}.content[{i}]", "a content part needs a 'type'")
            if part["type"] != "text":
                raise _fail(
                    f"{where}.content[{i}]",
                    f"content part type {part['type']!r} is not supported (only 'text')",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise _fail(f"{where}.content[{i}]", "a text part needs 'text' as a string")
            parts.append({"type": "text", "text": text})
        return parts if parts else ""
    raise TypeError(
        f"[ChatTemplate.render] {where}.content must be a string, a list of parts or None, "
        f"not {type(content).__name__}"
    )


def _parse_tool_call(where: str, call: Any) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise TypeError(f"[ChatTemplate.render] {where} must be a mapping")
    if call.get("type", "function") != "function":
        raise _fail(where, f"tool call type {call.get('type')!r} is not supported")
    function = call.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _fail(where, "a tool call needs 'function' with a 'name'")
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    result: dict[str, Any] = {
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }
    if call.get("id"):
        result["id"] = str(call["id"])
    return result


def _optional_text(where: str, message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"[ChatTemplate.render] {where}.{key} must be a string")
    return value


def parse_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checks OpenAI-style messages and returns them in llama.cpp's canonical shape.

    Args:
        messages: Dicts with ``role`` and ``content`` and, as needed, ``tool_calls``,
            ``tool_call_id``, ``name``, ``reasoning_content``.

    Returns:
        New dicts (the input is not changed), keys in the order llama.cpp writes them.

    Raises:
        TypeError: ``messages`` or a field has the wrong type.
        ValueError: A message lacks its role, or both content and tool calls, or has a
            content part or tool call of an unsupported type.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("[ChatTemplate.render] messages must be a list of dicts")
    result = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise TypeError(f"[ChatTemplate.render] {where} must be a dict, not {message!r:.80}")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise _fail(where, "a message needs a 'role'")
        if "content" not in message and "tool_calls" not in message:
            raise _fail(where, "a message needs 'content' or 'tool_calls'")
        canonical: dict[str, Any] = {
            "role": role,
            "content": _parse_content(where, message.get("content")),
        }
        for key in ("reasoning_content", "name", "tool_call_id"):
            value = _optional_text(where, message, key)
            if value:
                canonical[key] = value
        calls = message.get("tool_calls") or []
        if not isinstance(calls, Sequence) or isinstance(calls, str):
            raise TypeError(f"[ChatTemplate.render] {where}.tool_calls must be a list")
        if calls:
            canonical["tool_calls"] = [
                _parse_tool_call(f"{where}.tool_calls[{j}]", call) for j, call in enumerate(calls)
            ]
        result.append(canonical)
    return result


def parse_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Checks OpenAI-style tool definitions and returns them in llama.cpp's canonical shape.

    Args:
        tools: ``[{"type": "function", "function": {"name", "description", "parameters"}}]``.

    Returns:
        New dicts with exactly ``type`` and ``function`` (``name``, ``description`` — ``""``
        when missing — and ``parameters`` — ``{}`` when missing), or None for no tools.

    Raises:
        TypeError: ``tools`` is not a list of dicts.
        ValueError: A tool is not a function or has no name.
    """
    if tools is None:
        return None
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence):
        raise TypeError("[ChatTemplate.render] tools must be a list of dicts")
    result = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise TypeError(f"[ChatTemplate.render] {where} must be a dict")
        if tool.get("type") != "function":
            raise _fail(where, f"tool type {tool.get('type')!r} is not supported ('function')")
        function = tool.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _fail(where, "a tool needs 'function' with a 'name'")
        parameters = function.get("parameters")
        result.append(
            {
                "type": "function",
                "function": {
                    "name": function["name"],
                    "description": function.get("description") or "",
                    "parameters": copy.deepcopy(parameters) if parameters is not None else {},
                },
            }
        )
    return result or None


# ----------------------------------------------------------------------------- polyfills


def _join_parts(parts: list[dict[str, str]]) -> str:
    """Parts joined as llama.cpp joins them: a newline before each part after text."""
    text = ""
    for part in parts:
        text += ("\n" if text else "") + part["text"]
    return text


def _trim_all(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            message["content"] = content.strip(_C_WHITESPACE)
        else:
            for part in content:
                part["text"] = part["text"].strip(_C_WHITESPACE)
        if "reasoning_content" in message:
            reasoning = message["reasoning_content"].strip(_C_WHITESPACE)
            if reasoning:
                message["reasoning_content"] = reasoning
            else:
                del message["reasoning_content"]


def apply_caps(messages: list[dict[str, Any]], caps: TemplateCaps, source: str) -> None:
    """Adapts canonical messages, in place, to what the template can render.

    Args:
        messages: Output of :func:`parse_messages` (changed in place).
        caps: The template's capabilities.
        source: The template source (GPT-OSS keeps the ``developer`` role; StepFun's template
            gets trimmed contents).

    Raises:
        ValueError: A tool call's arguments are not valid JSON where the template needs a
            mapping, or a system message with content parts must be merged.
    """
    if _STEPFUN_MARKER in source:  # leftover whitespace sends StepFun into reasoning loops
        _trim_all(messages)
    only_string = caps.supports_string_content and not caps.supports_typed_content
    only_typed = caps.supports_typed_content and not caps.supports_string_content
    for message in messages:
        content = message["content"]
        if only_string and isinstance(content, list):
            message["content"] = _join_parts(content)
        elif only_typed and isinstance(content, str):
            message["content"] = [{"type": "text", "text": content}]
    if "<|channel|>" not in source:
        for message in messages:
            if message["role"] == "developer":
                message["role"] = "system"
    if not caps.supports_system_role and messages and messages[0]["role"] == "system":
        system = messages.pop(0)
        if messages:
            first, second = system["content"], messages[0]["content"]
            if not isinstance(first, str) or not isinstance(second, str):
                raise _fail("messages[0]", "a system message to merge must have string content")
            messages[0]["content"] = first + "\n" + second
    if caps.supports_object_arguments:
        for i, message in enumerate(messages):
            for j, call in enumerate(message.get("tool_calls", ())):
                function = call["function"]
                if isinstance(function["arguments"], str):
                    try:
                        function["arguments"] = json.loads(function["arguments"])
                    except json.JSONDecodeError as exc:
                        raise _fail(
                            f"messages[{i}].tool_calls[{j}]",
                            f"arguments are not valid JSON ({exc}); this template needs them "
                            "as an object",
                        ) from exc
