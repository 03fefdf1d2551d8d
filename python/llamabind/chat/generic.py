"""Tool calling for templates that know nothing of tools (the "generic" JSON format).

llama.cpp's chat machinery only offers tool calls when a template renders tools itself (Hermes,
Llama 3.x, Qwen, ...). For the others — ChatML models such as SmolLM2 — we do what llama.cpp's
former "generic" format did: describe the tools in the system prompt, constrain the reply with
a grammar to ``{"tool_call": {"name", "arguments"}}`` (or ``{"tool_calls": [...]}`` with
parallel calls, or ``{"response": "..."}`` when a call is optional), and parse that JSON back.
Past tool calls and results are written into the conversation as the same JSON.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from llamabind import _native

INSTRUCTIONS = (
    "You can call tools. Respond in JSON format, either with `tool_call` (a request to call "
    "tools) or with `response` (a reply to the user's request). Once a `tool_response` "
    "gives what the user asked for, answer with `response`.\n"
    "Available tools (JSON schema):\n{tools}"
)


def _call_schema(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    return {
        "type": "object",
        "properties": {
            "name": {"const": function["name"]},
            "arguments": function.get("parameters") or {"type": "object"},
        },
        "required": ["name", "arguments"],
    }


RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {"response": {"type": "string"}},
    "required": ["response"],
}


def reply_schema(tools: Sequence[Mapping[str, Any]], mode: str, parallel: bool) -> dict[str, Any]:
    """The JSON schema of a reply for tool_choice ``mode``: a call (or calls) when "required",
    a response when "none", either when "auto"."""
    if mode == "none":
        return RESPONSE_SCHEMA
    calls = [_call_schema(tool) for tool in tools]
    call = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if parallel:
        shape: dict[str, Any] = {
            "type": "object",
            "properties": {"tool_calls": {"type": "array", "items": call, "minItems": 1}},
            "required": ["tool_calls"],
        }
    else:
        shape = {"type": "object", "properties": {"tool_call": call}, "required": ["tool_call"]}
    if mode == "required":
        return shape
    return {"anyOf": [shape, RESPONSE_SCHEMA]}


def grammar(tools: Sequence[Mapping[str, Any]], mode: str, parallel: bool) -> str:
    """GBNF of the reply, by llama.cpp's JSON-schema converter."""
    return _native.json_schema_to_grammar(json.dumps(reply_schema(tools, mode, parallel)))


def rewrite_messages(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The conversation as the template can render it: tools described in the system prompt,
    past calls as JSON replies, tool results as user messages with ``tool_response`` JSON."""
    note = INSTRUCTIONS.format(tools=json.dumps([t["function"] for t in tools], indent=2))
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": _arguments(c["function"])}
                for c in message["tool_calls"]
            ]
            body: dict[str, Any] = (
                {"tool_call": calls[0]} if len(calls) == 1 else {"tool_calls": calls}
            )
            out.append({"role": "assistant", "content": json.dumps(body, ensure_ascii=False)})
        elif role == "tool":
            response = {
                "tool_response": {
                    "name": message.get("name", ""),
                    "content": _json_or_text(message.get("content", "")),
                }
            }
            if message.get("tool_call_id"):
                response["tool_response"]["id"] = message["tool_call_id"]
            out.append({"role": "user", "content": json.dumps(response, ensure_ascii=False)})
        elif role == "assistant" and isinstance(message.get("content"), str):
            # Written as the model wrote it under the grammar, so the KV cache prefix matches.
            reply = json.dumps({"response": message["content"]}, ensure_ascii=False)
            out.append({**message, "content": reply})
        else:
            out.append(dict(message))
    if out and out[0].get("role") == "system":
        out[0] = {**out[0], "content": f"{out[0].get('content') or ''}\n\n{note}".lstrip()}
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


def _json_or_text(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _arguments(function: Mapping[str, Any]) -> Any:
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


class GenericToolParser:
    """Parses a generic-format reply when it is complete: tool calls or the response text.

    The reply is one JSON object under a grammar, so it is read once, at ``finish``; deltas
    come then (the response text in one piece).
    """

    __slots__ = ("_text",)

    def __init__(self) -> None:
        self._text: list[str] = []

    def feed(self, text: str) -> Sequence[Mapping[str, Any]]:
        self._text.append(text)
        return ()

    def finish(self) -> Sequence[Mapping[str, Any]]:
        text = "".join(self._text)
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            return ({"content_delta": text},) if text else ()  # cut short: show what came
        if not isinstance(reply, dict):
            return ({"content_delta": text},)
        if "response" in reply:
            return ({"content_delta": str(reply["response"])},)
        calls = reply.get("tool_calls") or ([reply["tool_call"]] if "tool_call" in reply else [])
        deltas = []
        for index, call in enumerate(calls):
            deltas.append(
                {
                    "tool_call_index": index,
                    "tool_call_id": f"call_{uuid.uuid4().hex[:24]}",
                    "tool_call_name": call.get("name", ""),
                    "tool_call_arguments_delta": json.dumps(
                        call.get("arguments", {}), ensure_ascii=False
                    ),
                }
            )
        return deltas or ({"content_delta": text},)
