"""Where message data lies in a rendered prompt: data marked before rendering, found after.

Message text is data: a user who writes ``<|im_end|><|im_start|>system`` must not open a
system turn. To tell data from the template's own markers, the strings of the conversation
(content, reasoning, tool-call arguments, tool results) are wrapped in two Unicode
noncharacters (U+FDD0 … U+FDD1, reserved by Unicode for a program's internal use) before the
template runs; :func:`unmark` then removes the markers and returns the spans they enclosed.

Templates transform content (``trim``, ``split``, slicing, ``tojson``). So that the prompt is
the same as an unmarked render, whitespace at either end of a string stays outside its
markers (``trim`` still removes it), empty strings are not marked (tests of emptiness still
hold), the pieces of a ``split``/``partition`` of marked text are marked again each
(:func:`rebalance_call`, called by the sandbox), and a marker pair broken apart otherwise
(slicing) is dropped: that piece of text then counts as template text, as every prompt did
before marking. The tests show the vendored templates render the same prompt marked and
unmarked, and keep injected markers inside the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["DATA_CLOSE", "DATA_OPEN", "mark_messages", "unmark"]

DATA_OPEN = "\ufdd0"
DATA_CLOSE = "\ufdd1"
_MARKERS = re.compile(f"[{DATA_OPEN}{DATA_CLOSE}]")
_PAIR = re.compile(f"{DATA_OPEN}([^{DATA_OPEN}{DATA_CLOSE}]*){DATA_CLOSE}")
_TEXT_KEYS = ("content", "reasoning_content", "thinking", "text")


def mark_text(text: str) -> str:
    """``text`` with its non-blank core between the data markers (markers in it removed)."""
    text = _MARKERS.sub("", text)
    core = text.strip()
    if not core:
        return text
    start = text.index(core[0])
    return f"{text[:start]}{DATA_OPEN}{core}{DATA_CLOSE}{text[start + len(core) :]}"


def _mark_value(value: Any) -> Any:
    """Strings marked inside nested data (mapping keys are names, not data: left as they are)."""
    if isinstance(value, str):
        return mark_text(value)
    if isinstance(value, dict):
        return {key: _mark_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mark_value(item) for item in value]
    return value


def mark_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of canonical messages with their data marked.

    Marked: the text of ``content`` (a string, text parts, Ministral's content blocks),
    ``reasoning_content`` / ``thinking``, tool-call ``arguments`` (JSON text, or the string
    values of a mapping) and tool results (also Gemma 4's ``tool_responses``). Not marked:
    roles, names, ids and mapping keys, which templates compare and look up.
    """
    marked = []
    for message in messages:
        copy = dict(message)
        for key in _TEXT_KEYS:
            if key in copy:
                copy[key] = _mark_content(copy[key])
        if "tool_calls" in copy:
            copy["tool_calls"] = [_mark_call(call) for call in copy["tool_calls"]]
        if "tool_responses" in copy:
            copy["tool_responses"] = [
                {**response, "response": _mark_value(response.get("response"))}
                for response in copy["tool_responses"]
            ]
        marked.append(copy)
    return marked


def _mark_content(content: Any) -> Any:
    if isinstance(content, str):
        return mark_text(content)
    if isinstance(content, list):  # text parts or content blocks: mark their text fields
        return [
            {
                key: (mark_text(item) if key in _TEXT_KEYS and isinstance(item, str) else item)
                for key, item in part.items()
            }
            if isinstance(part, dict)
            else part
            for part in content
        ]
    return content


def _mark_call(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    if "arguments" in function:
        function["arguments"] = _mark_value(function["arguments"])
    return {**call, "function": function}


def unmark(text: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The rendered text without markers, and the ``(start, end)`` spans of data in it.

    Only a marker pair with no other marker between them encloses data; stray markers (a pair
    broken by a template's transformation) are removed and their text counts as template text.
    """
    if DATA_OPEN not in text and DATA_CLOSE not in text:
        return text, ()
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    at = 0
    for match in _PAIR.finditer(text):
        between = _MARKERS.sub("", text[at : match.start()])
        pieces.append(between)
        length += len(between)
        data = match.group(1)
        pieces.append(data)
        spans.append((length, length + len(data)))
        length += len(data)
        at = match.end()
    pieces.append(_MARKERS.sub("", text[at:]))
    return "".join(pieces), tuple(spans)


def _remark(piece: str, inside: bool) -> str:
    """``piece`` of a marked string, re-marked on its own; ``inside``: it starts within data."""
    runs: list[tuple[bool, str]] = []
    start = 0
    for match in _MARKERS.finditer(piece):
        runs.append((inside, piece[start : match.start()]))
        inside = match.group() == DATA_OPEN
        start = match.end()
    runs.append((inside, piece[start:]))
    return "".join(mark_text(text) if is_data else text for is_data, text in runs if text)


def rebalance(source: str, pieces: list[str], separator: str) -> list[str]:
    """Pieces of a marked ``source`` (``pieces`` joined by ``separator`` give it back), each
    with its data marked on its own, so that a split keeps the data of every piece findable.
    """
    result = []
    at = 0
    for piece in pieces:
        before = source.rfind(DATA_OPEN, 0, at), source.rfind(DATA_CLOSE, 0, at)
        result.append(_remark(piece, before[0] > before[1]))
        at += len(piece) + len(separator)
    return result


def rebalance_call(
    method: str, source: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> Any:
    """The result of ``source.<method>(*args, **kwargs)`` with its pieces re-marked.

    Handles ``split``/``rsplit`` with a separator, ``partition``/``rpartition`` and
    ``replace`` (what replaces is template text, so it goes between the pieces, outside the
    data); any other result is returned as it is.
    """
    if DATA_OPEN not in source and DATA_CLOSE not in source:
        return result
    if (
        method == "replace"
        and len(args) >= 2
        and isinstance(args[0], str)
        and args[0]
        and isinstance(args[1], str)
    ):
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        return args[1].join(rebalance(source, source.split(args[0], count), args[0]))
    if method in ("split", "rsplit"):
        separator = args[0] if args else kwargs.get("sep")
        if isinstance(separator, str) and separator:
            return rebalance(source, result, separator)
    elif method in ("partition", "rpartition"):
        return tuple(rebalance(source, list(result), ""))
    return result
