"""Chat options (``ChatOptions``) and request settings given as keywords.

A chat request has two kinds of settings: sampling and stopping (``GenerationParams``) and how
the conversation is shaped into a prompt (``ChatOptions``: tools, tool choice, structured
output, thinking, template variables). Every public request method takes both objects
(``params=`` and ``options=``) and also each of their fields as a keyword, which overrides the
object's value:

    engine.create(messages, max_tokens=64, temperature=0, tools=[get_weather])

``request_settings`` turns those keywords into the two objects once, at the public boundary;
everything below passes the objects. A chat option is added in one place: a ``ChatOptions``
field (and its key in ``ChatOptionSettings``, which a test keeps in step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from llamabind.params import GenerationParams, GrammarTrigger, check_names, unknown_name_error
from llamabind.tools import ToolDefinition, normalize_tools

if TYPE_CHECKING:
    ToolLike = ToolDefinition | Callable[..., Any] | Mapping[str, Any]


@check_names
@dataclass(frozen=True, slots=True)
class ChatOptions:
    """How a conversation becomes a prompt, beyond the messages themselves.

    Args:
        tools: ToolDefinitions, typed functions or OpenAI tool dicts the model may call
            (kept as ToolDefinitions).
        tool_choice: "auto" (the default with tools), "none", "required", or
            ``{"type": "function", "function": {"name": ...}}`` to force one tool.
        parallel_tool_calls: Allow several calls in one reply.
        enable_thinking: Let reasoning models think (templates that support it).
        response_format: ``{"type": "json_object"}`` or ``{"type": "json_schema",
            "json_schema": {"schema": {...}}}`` constrains the reply to JSON.
        chat_template_kwargs: Extra variables for the chat template.
    """

    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool = False
    enable_thinking: bool = True
    response_format: Mapping[str, Any] | None = None
    chat_template_kwargs: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tools", tuple(normalize_tools(self.tools)))
        choice = self.tool_choice
        if choice is not None and not isinstance(choice, (str, Mapping)):
            raise TypeError(f"ChatOptions.tool_choice must be a str or a dict, got {choice!r}")
        for name in ("parallel_tool_calls", "enable_thinking"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"ChatOptions.{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("response_format", "chat_template_kwargs"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(f"ChatOptions.{name} must be a dict, got {value!r}")

    def replace(self, **changes: Any) -> ChatOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


class GenerationSettings(TypedDict, total=False):
    """``GenerationParams`` fields given as keywords (see ``GenerationParams``)."""

    max_tokens: int | None
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    typical_p: float
    top_n_sigma: float
    repeat_penalty: float
    penalty_last_n: int
    presence_penalty: float
    frequency_penalty: float
    dry_multiplier: float
    dry_base: float
    dry_allowed_length: int
    dry_penalty_last_n: int
    xtc_probability: float
    xtc_threshold: float
    mirostat: int
    mirostat_tau: float
    mirostat_eta: float
    seed: int | None
    stop: Sequence[str] | str
    grammar: str | None
    grammar_root: str
    grammar_lazy: bool
    grammar_triggers: Sequence[GrammarTrigger]
    logit_bias: Mapping[int, float]
    ignore_eos: bool
    logprobs: int | None


class ToolLoopOptionSettings(TypedDict, total=False):
    """``ChatOptions`` fields but ``tools`` as keywords (``send_with_tools`` takes the tools)."""

    tool_choice: str | Mapping[str, Any] | None
    parallel_tool_calls: bool
    enable_thinking: bool
    response_format: Mapping[str, Any] | None
    chat_template_kwargs: Mapping[str, Any] | None


class ChatOptionSettings(ToolLoopOptionSettings, total=False):
    """``ChatOptions`` fields given as keywords (see ``ChatOptions``)."""

    tools: Sequence[ToolLike] | None


class ChatSettings(GenerationSettings, ChatOptionSettings, total=False):
    """Every keyword a chat request takes: sampling, stopping and chat options."""


class ToolLoopSettings(GenerationSettings, ToolLoopOptionSettings, total=False):
    """Every keyword of a tool loop: sampling, stopping and chat options but ``tools``."""


GENERATION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(GenerationParams))
CHAT_OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ChatOptions))


def generation_params(
    params: GenerationParams | None, settings: Mapping[str, Any], where: str
) -> GenerationParams:
    """``params`` (defaults when None) with the keyword ``settings`` applied over it.

    Args:
        params: The request's GenerationParams, or None.
        settings: Keywords naming GenerationParams fields.
        where: The public call, for error messages (e.g. ``"LlamaEngine.generate()"``).

    Raises:
        TypeError: ``params`` is not GenerationParams, or a keyword is not a field (the
            message names the field it most likely meant).
        ValueError: a value is out of range.
    """
    if params is None:
        params = GenerationParams()
    elif not isinstance(params, GenerationParams):
        raise TypeError(f"{where}: params must be GenerationParams, got {type(params).__name__}")
    for key in settings:
        if key in CHAT_OPTION_NAMES:
            raise TypeError(
                f"{where} takes no chat option {key!r}: chat options belong to "
                "chat requests (create, complete, ChatSession)"
            )
        if key not in GENERATION_NAMES:
            raise unknown_name_error(where, key, GENERATION_NAMES)
    return params.replace(**settings) if settings else params


def chat_options(
    options: ChatOptions | None, settings: Mapping[str, Any], where: str
) -> ChatOptions:
    """``options`` (defaults when None) with the keyword ``settings`` applied over it.

    Raises:
        TypeError: ``options`` is not ChatOptions, or a keyword is not one of its fields.
    """
    if options is None:
        options = ChatOptions()
    elif not isinstance(options, ChatOptions):
        raise TypeError(f"{where}: options must be ChatOptions, got {type(options).__name__}")
    for key in settings:
        if key not in CHAT_OPTION_NAMES:
            raise unknown_name_error(where, key, CHAT_OPTION_NAMES)
    return options.replace(**settings) if settings else options


def request_settings(
    params: GenerationParams | None,
    options: ChatOptions | None,
    settings: Mapping[str, Any],
    where: str,
) -> tuple[GenerationParams, ChatOptions]:
    """Splits a chat request's keywords into its GenerationParams and ChatOptions.

    Keywords override the fields of ``params`` and ``options``; an unknown keyword raises
    ``TypeError`` naming ``where``, the name it most likely meant and every name taken.
    """
    generation = {k: v for k, v in settings.items() if k not in CHAT_OPTION_NAMES}
    chat = {k: v for k, v in settings.items() if k in CHAT_OPTION_NAMES}
    for key in generation:
        if key not in GENERATION_NAMES:
            raise unknown_name_error(where, key, GENERATION_NAMES + CHAT_OPTION_NAMES)
    return generation_params(params, generation, where), chat_options(options, chat, where)


__all__ = [
    "ChatOptionSettings",
    "ChatOptions",
    "ChatSettings",
    "GenerationSettings",
    "ToolLoopSettings",
    "chat_options",
    "generation_params",
    "request_settings",
]
