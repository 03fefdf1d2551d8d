"""What a chat template can render, found the way llama.cpp finds it (``common/jinja/caps.cpp``).

The template is rendered a few times with small probe conversations whose values record what
the template does with them (read, test with ``is string``, iterate, index). From that:
whether it reads the system message, takes content as a string or as a list of parts, renders
tools and tool calls (and parallel ones), wants tool-call arguments as a mapping, keeps
reasoning in the history and reads ``reasoning_effort``. The renderer then adapts the
messages (see ``polyfills``) exactly as llama.cpp does, so that both render the same prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from jinja2 import Template
from jinja2.exceptions import SecurityError

from .limits import RenderLimits, render_state
from .tracking import TrackedStr, stats, track

__all__ = ["TemplateCaps", "detect_caps"]

_CONTENT_MARKER = "STRING_MARKER"
_REASONING_MARKER = "<REASONING_CONTENT_PLACEHOLDER>"


@dataclass(frozen=True, slots=True)
class TemplateCaps:
    """Capabilities of a chat template (the fields of llama.cpp's ``jinja::caps``).

    Attributes:
        supports_tools: Renders the tool definitions it is given.
        supports_tool_calls: Renders the tool calls of assistant messages.
        supports_system_role: Renders a system message (if not, it is merged into the next).
        supports_parallel_tool_calls: Renders more than one tool call per message.
        supports_preserve_reasoning: Keeps ``reasoning_content`` of earlier turns.
        supports_reasoning_effort: Reads ``reasoning_effort``.
        supports_string_content: Takes ``content`` as a string.
        supports_typed_content: Takes ``content`` as a list of ``{"type", "text"}`` parts.
        supports_object_arguments: Wants tool-call ``arguments`` as a mapping, not JSON text.
    """

    supports_tools: bool = True
    supports_tool_calls: bool = True
    supports_system_role: bool = True
    supports_parallel_tool_calls: bool = True
    supports_preserve_reasoning: bool = False
    supports_reasoning_effort: bool = False
    supports_string_content: bool = True
    supports_typed_content: bool = False
    supports_object_arguments: bool = False

    def to_dict(self) -> dict[str, bool]:
        """The capabilities by name, as llama.cpp's ``caps::to_map`` reports them."""
        return asdict(self)


_PROBE_TOOLS = [
    {
        "name": "tool",
        "type": "function",
        "function": {
            "name": "tool1",
            "description": "Tool description",
            "parameters": {
                "type": "object",
                "properties": {"arg": {"type": "string", "description": "Arg description"}},
                "required": ["arg"],
            },
        },
    }
]


def _tool_conversation(arguments: Any, n_calls: int = 1) -> list[dict[str, Any]]:
    calls = [
        {
            "id": f"call0000{i + 1}",
            "type": "function",
            "function": {"name": "tool1", "arguments": arguments},
        }
        for i in range(n_calls)
    ]
    return [
        {"role": "user", "content": "User message"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "Tool response", "tool_call_id": "call00001"},
        {"role": "assistant", "content": "The tool response was 'tool response'"},
        {"role": "user", "content": "User message"},
    ]


class _Probe:
    """One probe render: its tracked inputs, whether it rendered, and what it wrote."""

    def __init__(
        self,
        template: Template,
        limits: RenderLimits,
        deadline: float,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.messages = track(messages)
        self.tools = track(tools if tools is not None else [])
        self.extra = {k: track(v) for k, v in (extra or {}).items()}
        context = {
            "messages": self.messages,
            "tools": self.tools,
            "bos_token": "",
            "eos_token": "",
            "add_generation_prompt": True,
            **self.extra,
        }
        self.output = ""
        self.success = False
        try:
            with render_state(limits, datetime.now(), tracking=True, deadline=deadline):
                self.output = "".join(template.generate(context))
            self.success = True
        except SecurityError:  # unsafe or past its limits on a tiny conversation: hostile
            raise
        except Exception:  # noqa: BLE001 - a probe that fails is a finding, as in llama.cpp
            self.output = ""


def _reasoning_context(effort: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"enable_thinking": True}
    if effort is None:
        context.update(
            preserve_thinking=True,
            clear_thinking=False,
            truncate_history_thinking=False,
            drop_thinking=False,
        )
    else:
        shared = TrackedStr(effort)  # one value under both names, as llama.cpp binds it
        context.update(reasoning_effort=shared, reasoning_strength=shared)
    return context


def detect_caps(template: Template, limits: RenderLimits | None = None) -> TemplateCaps:
    """Finds what ``template`` can render, with llama.cpp's probes and rules.

    Args:
        template: A template compiled by ``sandbox.TemplateEnvironment``.
        limits: The limits of each probe render (default :class:`RenderLimits`); the probes
            share one ``max_seconds``.

    Returns:
        The template's capabilities.

    Raises:
        jinja2.sandbox.SecurityError: A probe tried an unsafe operation or went past its
            limits (a probe failing otherwise is a finding, as in llama.cpp).
    """
    limits = limits or RenderLimits()
    deadline = time.monotonic() + limits.max_seconds  # for all probes together
    found: dict[str, bool] = {}

    def probe(*args: Any, **kwargs: Any) -> _Probe:
        return _Probe(template, limits, deadline, *args, **kwargs)

    # llama.cpp's probes, in its order (they share one deadline)
    _probe_content(probe, found)
    _probe_system_role(probe, found)
    _probe_tools(probe, found)
    _probe_parallel_tool_calls(probe, found)
    _probe_reasoning(probe, found)
    return TemplateCaps(**found)


_ProbeRun = Callable[..., "_Probe"]


def _probe_content(probe: _ProbeRun, found: dict[str, bool]) -> None:
    """Content as a string, or as a list of parts."""
    run = probe([{"role": "user", "content": _CONTENT_MARKER}])
    content = stats(run.messages[0]["content"])
    checks_for_string = "test_is_string" in content.ops
    used_as_array = bool(content.ops & {"selectattr", "array_access"})
    if used_as_array:
        found["supports_typed_content"] = True
    if not run.success or (used_as_array and _CONTENT_MARKER not in run.output):
        found["supports_string_content"] = False
    if checks_for_string:
        run = probe([{"role": "user", "content": []}])
        content = stats(run.messages[0]["content"])
        if run.success and content.ops & {"selectattr", "array_access"}:
            found["supports_typed_content"] = True


def _probe_system_role(probe: _ProbeRun, found: dict[str, bool]) -> None:
    run = probe(
        [
            {"role": "system", "content": "System message"},
            {"role": "user", "content": "User message"},
        ]
    )
    if not stats(run.messages[0]["content"]).used:
        found["supports_system_role"] = False


def _probe_tools(probe: _ProbeRun, found: dict[str, bool]) -> None:
    """Tools and tool calls, with the arguments as an object first, then as JSON text."""
    run = probe(_tool_conversation({"arg": "value"}), _PROBE_TOOLS)
    if run.success:
        if not stats(run.tools[0]["function"]["name"]).used:
            found["supports_tools"] = False
        tool_calls = run.messages[1]["tool_calls"]
        if not stats(tool_calls).used:
            found["supports_tool_calls"] = False
        elif stats(tool_calls[0]["function"]["arguments"]["arg"]).used:
            found["supports_object_arguments"] = True
    if found.get("supports_object_arguments", False):
        return
    run = probe(_tool_conversation('{"arg": "value"}'), _PROBE_TOOLS)
    if not run.success:
        found["supports_tool_calls"] = False
        found["supports_tools"] = False
    else:
        if not stats(run.tools[0]["function"]["name"]).used:
            found["supports_tools"] = False
        if not stats(run.messages[1]["tool_calls"]).used:
            found["supports_tool_calls"] = False


def _probe_parallel_tool_calls(probe: _ProbeRun, found: dict[str, bool]) -> None:
    object_arguments = found.get("supports_object_arguments", False)
    arguments: Any = {"arg": "value"} if object_arguments else '{"arg": "value"}'
    run = probe(_tool_conversation(arguments, n_calls=2), _PROBE_TOOLS)
    if not run.success or not stats(run.messages[1]["tool_calls"][1]["function"]).used:
        found["supports_parallel_tool_calls"] = False


def _probe_reasoning(probe: _ProbeRun, found: dict[str, bool]) -> None:
    """Reasoning kept in the history, and the reasoning effort variable."""
    run = probe(
        [
            {"role": "user", "content": "User message"},
            {
                "role": "assistant",
                "content": "Assistant message",
                "reasoning_content": _REASONING_MARKER,
            },
            {"role": "user", "content": "User message"},
            {
                "role": "assistant",
                "content": "Assistant message",
                "reasoning_content": "Reasoning content",
            },
            {"role": "user", "content": "User message"},
        ],
        extra=_reasoning_context(),
    )
    if _REASONING_MARKER in run.output:
        found["supports_preserve_reasoning"] = True
    run = probe([{"role": "user", "content": "User message"}], extra=_reasoning_context("low"))
    found["supports_reasoning_effort"] = stats(run.extra["reasoning_effort"]).used
