"""Fixes llama.cpp applies to the templates of model families it recognises by their source.

When llama.cpp (``common/chat.cpp``) loads a template it patches two checks out of its source
(:func:`patch_source`); before rendering it adjusts the messages of some families
(:func:`adapt_for_family`: Ministral 3, GPT-OSS, LFM2, DeepSeek V4, Gemma 4), and after
rendering the prompt of some (:func:`finish_prompt`). These do the same, so that our renderer
and llama.cpp's render the same prompt. Step 3 of :mod:`llamabind.chat.polyfills`.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["adapt_for_family", "finish_prompt", "patch_source"]


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
