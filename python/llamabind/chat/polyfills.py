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
3. Family fixes llama.cpp applies to templates it recognises by their source (see
   :func:`adapt_for_family` and :func:`finish_prompt`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .caps import TemplateCaps

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


# ----------------------------------------------------------------------------- model families


def patch_source(source: str) -> str:
    """The template source with the two patches llama.cpp applies when it loads a template.

    GPT-OSS templates refuse content that contains channel markers, and Mistral templates
    refuse an assistant message without content or tool calls; llama.cpp disables both checks.
    """
    if "<|channel|>" in source and "in message.content or" in source:
        source = source.replace(
            '{%- if "<|channel|>analysis<|message|>" in message.content or '
            '"<|channel|>final<|message|>" in message.content %}',
            "{%- if false %}",
        )
    if "[TOOL_CALLS]" in source and "if (message['content'] is none or" in source:
        source = source.replace(
            "{%- if (message['content'] is none or message['content'] == '' or "
            "message['content']|length == 0) and (message['tool_calls'] is not defined or "
            "message['tool_calls'] is none or message['tool_calls']|length == 0) %}",
            "{%- if false %}",
        )
    return source


def _is_ministral_3(source: str) -> bool:
    return all(m in source for m in ("[SYSTEM_PROMPT]", "[TOOL_CALLS]", "[ARGS]")) and (
        "[CALL_ID]" not in source
    )


def _is_lfm2(source: str) -> bool:
    tool_list = "<|tool_list_start|>" in source and "<|tool_list_end|>" in source
    lfm25 = "List of tools: [" in source and "<|tool_list_start|>" not in source
    return tool_list or lfm25


def _is_deepseek_v4(source: str) -> bool:
    return (
        "dsml_token" in source
        and "DSML" in source
        and "tool_calls" in source
        and "function_calls" not in source
    )


def _is_gemma4(source: str) -> bool:
    return "'<|tool_call>call:'" in source


def _family(source: str) -> str | None:
    """The family whose messages or prompt llama.cpp adjusts, in llama.cpp's order of checks."""
    if _is_ministral_3(source):
        return "ministral-3"
    if "<|channel|>" in source:
        return "gpt-oss"
    if "<atem:function_calls>" in source and "<|eom|>" in source:
        return None  # Muse Glimmer: rendered as is
    if ">>>all" in source and ">>>${recipient}" in source:
        return None  # Functionary v3.2
    if "<|tool_calls_section_begin|>" in source and "<|tool_call_begin|>" in source:
        return None  # Kimi K2
    if all(m in source for m in ("<|open|>", "<|close|>", "<|end_of_msg|>")):
        return None  # Kimi K3
    if "<role>ASSISTANT</role>" in source and "<arg_key>" in source:
        return None  # Ling 3
    if "<|START_TEXT|>" in source and "<|START_ACTION|>" in source:
        return None  # Cohere2 MoE
    if _is_lfm2(source):
        return "lfm2"
    if (
        "<|role_sep|>" in source
        and "<|message_sep|>" in source
        and "<|function_call|>" not in source
    ):
        return None  # GigaChat v3
    if all(m in source for m in ("]<]minimax[>[", "<tool_call>", "<invoke name=")):
        return None  # MiniMax M3
    if (
        "dsml_token" in source
        and "DSML" in source
        and ("function_calls" in source or "tool_calls" in source)
    ):
        return "deepseek-v4" if _is_deepseek_v4(source) else None
    if _is_gemma4(source):
        return "gemma4" if "{#- OpenAI Chat Completions:" in source else "gemma4-legacy"
    return None


def _reasoning_as_thinking(messages: list[dict[str, Any]], drop_content_with_calls: bool) -> None:
    for message in messages:
        if isinstance(message.get("reasoning_content"), str):
            message["thinking"] = message["reasoning_content"]
            if drop_content_with_calls and message.get("tool_calls"):
                message.pop("content", None)


def _ministral_blocks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for message in messages:
        if message["role"] not in ("system", "assistant"):
            result.append(message)
            continue
        blocks: list[dict[str, Any]] = []
        if isinstance(message.get("reasoning_content"), str):
            blocks.append({"type": "thinking", "thinking": message["reasoning_content"]})
        content = message.get("content")
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            blocks.extend(content)
        adjusted = dict(message)
        adjusted["content"] = blocks
        adjusted.pop("reasoning_content", None)
        result.append(adjusted)
    return result


def _deepseek_v4_sort_tool_results(messages: list[dict[str, Any]]) -> None:
    call_order: dict[str, int] = {}
    i = 0
    while i < len(messages):
        role = messages[i]["role"]
        if role == "assistant" and messages[i].get("tool_calls"):
            call_order = {
                c["id"]: k for k, c in enumerate(messages[i]["tool_calls"]) if c.get("id")
            }
            i += 1
            continue
        if role not in ("user", "tool"):
            i += 1
            continue
        end = i
        while end < len(messages) and messages[end]["role"] in ("user", "tool"):
            end += 1
        positions = [p for p in range(i, end) if messages[p]["role"] == "tool"]
        if len(positions) > 1 and call_order:
            results = sorted(
                (messages[p] for p in positions),
                key=lambda m: call_order.get(m.get("tool_call_id", ""), 0),
            )
            for p, message in zip(positions, results):
                messages[p] = message
        i = end


def _gemma4_tool_responses(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Older Gemma 4 templates want tool results inside the assistant turn."""
    result: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        if message["role"] != "assistant" or not message.get("tool_calls"):
            result.append(message)
            i += 1
            continue
        calls = list(message["tool_calls"])
        responses: list[dict[str, Any]] = []
        i += 1
        while i < len(messages) and messages[i]["role"] == "tool":
            tool = messages[i]
            content = tool.get("content")
            response: Any = content
            if isinstance(content, str):
                try:
                    response = json.loads(content)
                except json.JSONDecodeError:
                    response = content
            name = ""
            if len(responses) < len(calls):
                name = calls[len(responses)]["function"].get("name", "")
            responses.append({"name": name or tool.get("tool_call_id", ""), "response": response})
            i += 1
        turn: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
        if responses:
            turn["tool_responses"] = responses
        if i < len(messages) and messages[i]["role"] == "assistant":
            following = messages[i]
            if not following.get("tool_calls") and following.get("content"):
                turn["content"] = following["content"]
                i += 1
        if isinstance(message.get("reasoning_content"), str):
            turn["reasoning_content"] = message["reasoning_content"]
        result.append(turn)
    return result


def adapt_for_family(
    messages: list[dict[str, Any]], source: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages (and extra template variables) llama.cpp passes to a recognised family.

    GPT-OSS and LFM2 read reasoning from ``thinking``; Ministral 3 wants reasoning and text
    as content blocks; DeepSeek V4 renders tool results in the order of the calls; older
    Gemma 4 templates want tool results inside the assistant turn.

    Args:
        messages: Messages after :func:`apply_caps`.
        source: The template source.

    Returns:
        The messages to render and extra variables (none at present).
    """
    family = _family(source)
    if family == "gpt-oss":
        _reasoning_as_thinking(messages, drop_content_with_calls=True)
    elif family == "lfm2":
        _reasoning_as_thinking(messages, drop_content_with_calls=False)
    elif family == "ministral-3":
        messages = _ministral_blocks(messages)
    elif family == "deepseek-v4":
        _deepseek_v4_sort_tool_results(messages)
    elif family == "gemma4-legacy":
        messages = _gemma4_tool_responses(messages)
    return messages, {}


def finish_prompt(prompt: str, source: str, add_generation_prompt: bool) -> str:
    """The rendered prompt with llama.cpp's per-family corrections.

    GPT-OSS: without a generation prompt the last ``<|return|>`` becomes ``<|end|>`` (the
    conversation goes on). Gemma 4: when the template ends a turn after a tool call and a
    generation prompt is wanted, ``<|turn>model\\n`` is added.
    """
    family = _family(source)
    if family == "gpt-oss" and not add_generation_prompt:
        at = prompt.rfind("<|return|>")
        if at >= 0:
            prompt = prompt[:at] + "<|end|>" + prompt[at + len("<|return|>") :]
    elif family in ("gemma4", "gemma4-legacy") and add_generation_prompt:
        # the template ended a turn after a tool call: open the model's next turn
        prompt += "<|turn>model\n" if prompt.endswith("<turn|>\n") else ""
    return prompt
