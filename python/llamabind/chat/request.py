"""One chat request made ready to run: prompt, stops, grammar, and the parser of the reply.

Each prompt is rendered once, by our sandboxed Jinja (``chat.template``), with the
conversation's data marked so that it is tokenized as text (``chat.marking``,
``chat.tokens``). llama.cpp's chat machinery (``_native.ChatTemplates``) supplies what depends
on the model's format, not the prompt: the tool-call grammar with its lazy triggers, the
preserved tokens, extra stop words and the streaming parser of content, reasoning and tool
calls. Those plans are cached per model (``format_plan``), so llama.cpp's renderer runs once
per kind of request, not per request. The prompt adjustments llama.cpp's format handlers
make (Gemma 4's reopened model turn, GPT-OSS's ``<|end|>``, the messages of Ministral,
LFM2, DeepSeek V4 and older Gemma 4) are made in Python (``chat.polyfills``), and the parity
tests check both renderers agree. Structured output (``response_format``) becomes a grammar
through llama.cpp's JSON-schema converter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llamabind import _native
from llamabind.chat import generic
from llamabind.chat.marking import unmark
from llamabind.chat.template import ChatTemplate
from llamabind.chat.tokens import ControlTexts, prompt_token_ids
from llamabind.errors import GrammarError, check_text
from llamabind.options import ChatOptions
from llamabind.params import GrammarTrigger
from llamabind.results import LlamaChatTemplateResult
from llamabind.tools import ToolDefinition

logger = logging.getLogger("llamabind.chat")
_MAX_PLANS = 64  # format plans kept per model (options x how a conversation ends)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What ``LlamaEngine.create`` needs to run one chat completion.

    Args:
        rendered: The prompt, its token count and the public part of its format's plan (what
            ``LlamaEngine.chat_template`` returns).
        token_ids: The prompt's tokens: the template's markers as control tokens, message data
            as text.
        preserved_token_ids: The ids of ``rendered.preserved_tokens`` (rendered as text by the
            generator).
        sampler_kwargs: The grammar as Sampler keyword arguments (triggers, prefill).
        schema: The JSON schema of ``response_format``, for validating the result.
        native: llama.cpp's ChatParams, from which the reply's parser is made.
        generic_tools: Tools go through our generic JSON format (the template has no tool
            syntax; see ``chat.generic``).
        reply_prefix: Text the prompt ends with that belongs to the reply (the tool-call
            opener of a required call); the parser reads it first.
        data_spans: ``(start, end)`` spans of message data in ``rendered.prompt``, tokenized
            as text.
    """

    rendered: LlamaChatTemplateResult
    token_ids: tuple[int, ...]
    preserved_token_ids: tuple[int, ...]
    sampler_kwargs: Mapping[str, Any]
    schema: Mapping[str, Any] | None
    native: Any
    generic_tools: bool = False
    reply_prefix: str = ""
    data_spans: tuple[tuple[int, int], ...] = ()

    def parser(self) -> Any:
        """A fresh streaming parser of the reply (``feed``/``finish`` → deltas)."""
        if self.generic_tools:
            return generic.GenericToolParser()
        parser = _native.ChatParser(self.native)
        return _PrefixedParser(parser, self.reply_prefix) if self.reply_prefix else parser


class _PrefixedParser:
    """A parser that reads ``prefix`` (already in the prompt) before the generated text."""

    __slots__ = ("_parser", "_prefix")

    def __init__(self, parser: Any, prefix: str) -> None:
        self._parser, self._prefix = parser, prefix

    def feed(self, text: str) -> Any:
        if self._prefix:
            text, self._prefix = self._prefix + text, ""
        return self._parser.feed(text)

    def finish(self) -> Any:
        if self._prefix:
            self.feed("")
        return self._parser.finish()


def response_schema(response_format: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The JSON schema a ``response_format`` asks for; None for free text.

    Raises:
        ValueError: an unknown type or a json_schema without a schema.
    """
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise TypeError(f"response_format must be a dict, got {response_format!r}")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return response_format.get("schema") or {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise ValueError('response_format json_schema needs {"json_schema": {"schema": {...}}}')
        return schema
    raise ValueError(f"response_format type must be text, json_object or json_schema, got {kind!r}")


def tool_choice_mode(
    tool_choice: Any, tools: Sequence[ToolDefinition]
) -> tuple[str, list[ToolDefinition]]:
    """llama.cpp's tool_choice ("auto", "none", "required") and the tools it applies to.

    A named function (``{"type": "function", "function": {"name": ...}}``) is "required" with
    only that tool, as llama-server does.
    """
    if tool_choice is None:
        return ("auto" if tools else "none"), list(tools)
    if isinstance(tool_choice, str):
        if tool_choice not in ("auto", "none", "required"):
            raise ValueError(
                f"tool_choice must be auto, none, required or a function, got {tool_choice!r}"
            )
        if tool_choice == "required" and not tools:
            raise ValueError("tool_choice='required' needs tools")
        return tool_choice, list(tools)
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        chosen = [tool for tool in tools if tool.name == name]
        if not chosen:
            raise ValueError(
                f"tool_choice names {name!r}, which is not among the tools "
                f"{[tool.name for tool in tools]}"
            )
        return "required", chosen
    raise TypeError(f"tool_choice must be a str or a dict, got {tool_choice!r}")


def build_chat_request(
    model: _native.Model,
    cache: dict[str, Any],
    messages: list[dict[str, Any]],
    options: ChatOptions | None = None,
    *,
    template_override: str | None = None,
    add_generation_prompt: bool = True,
) -> ChatRequest:
    """Renders and tokenizes the prompt and plans grammar, stops and parsing for one request.

    The prompt comes from our sandboxed renderer alone; the format's plan (grammar, triggers,
    preserved tokens, stops, parser) from llama.cpp, cached per model (see ``format_plan``).

    Args:
        model: The loaded model (its template, special tokens and vocabulary).
        cache: Per-model cache for the compiled templates and plans (kept by the engine).
        messages: OpenAI-style message dicts.
        options: Tools, tool choice, structured output, thinking and template variables;
            defaults when None.
        template_override: Jinja source used instead of the model's template.
        add_generation_prompt: End where the assistant's reply begins.

    Raises:
        TemplateError: the template fails to render or breaks the sandbox.
        GrammarError: the response schema cannot be turned into a grammar.
        InvalidTextError: text anywhere in the request holds lone surrogates.
        ValueError: bad tools, tool_choice or response_format.
    """
    options = options if options is not None else ChatOptions()
    # llama.cpp takes UTF-8: text with lone surrogates is refused here, naming where it is.
    check_text(messages, "messages")
    check_text(template_override, "template")
    check_text(options.response_format, "response_format")
    check_text(options.chat_template_kwargs, "chat_template_kwargs")
    mode, active_tools = tool_choice_mode(options.tool_choice, options.tools)
    schema = response_schema(options.response_format)
    if schema is not None and mode == "required":
        raise ValueError("response_format cannot be combined with a required tool call")
    template = chat_template(model, cache, template_override)
    # Tools stay visible to the template with tool_choice "none", as in llama-server.
    tools_json = [tool.to_openai() for tool in active_tools]
    check_text(tools_json, "tools")
    # With tools but no tool syntax in the template, our generic JSON format carries them (also
    # for tool_choice "none", so the conversation renders the same way every turn).
    use_generic = bool(tools_json) and not template.caps.supports_tool_calls
    plan_mode = mode
    if use_generic:
        messages, tools_json, plan_mode = _generic_tools(messages, tools_json, schema)
    kwargs = dict(options.chat_template_kwargs or {})
    prompt, data_spans = unmark(
        template.render(
            messages,
            tools=tools_json or None,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=options.enable_thinking,
            mark_data=True,
            **kwargs,
        )
    )
    source = _PlanSource(model, cache, template_override, messages)
    inputs = PlanInputs.of(tools_json, plan_mode, options, add_generation_prompt, schema)
    native = format_plan(model, cache, template_override, messages, inputs, prompt)
    sampler_kwargs = dict(native.sampler_kwargs(model))
    opener = _required_opener(source, inputs, prompt, native, sampler_kwargs)
    if use_generic:
        tools = [t.to_openai() for t in active_tools]
        sampler_kwargs = {"grammar": generic.grammar(tools, mode, options.parallel_tool_calls)}
    elif schema is not None and not sampler_kwargs:  # no format grammar: the schema's own
        sampler_kwargs = {"grammar": _schema_grammar(schema)}
    plan = _Plan(native, sampler_kwargs, schema, use_generic, opener)
    return _chat_request(source, template, prompt + opener, data_spans, plan)


def _generic_tools(
    messages: list[dict[str, Any]],
    tools_json: list[dict[str, Any]],
    schema: Mapping[str, Any] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The conversation rewritten for our generic tool format: messages, tools, plan mode.

    The template then sees no tools, and llama.cpp's plan is the one without tools ("none").
    """
    if schema is not None:
        raise ValueError(
            "response_format cannot be combined with tools on a template without tool support"
        )
    return generic.rewrite_messages(messages, tools_json), [], "none"


@dataclass(frozen=True, slots=True)
class _PlanSource:
    """Where a request's plans come from: the model, its cache, the template, the messages."""

    model: _native.Model
    cache: dict[str, Any]
    template_override: str | None
    messages: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Plan:
    """How the reply is constrained and parsed, besides what the rendered prompt says."""

    native: Any
    sampler_kwargs: dict[str, Any]
    schema: Mapping[str, Any] | None
    generic_tools: bool
    reply_prefix: str


def _required_opener(
    source: _PlanSource,
    inputs: PlanInputs,
    prompt: str,
    native: Any,
    sampler_kwargs: dict[str, Any],
) -> str:
    """The tool-call marker a required call's reply opens with ("" if none is needed).

    llama.cpp's "required" grammar lets text come before the call; the reply is opened with
    the format's tool-call marker (the trigger word of its "auto" plan) so the call starts at
    once, and the grammar is told it was already written.
    """
    if inputs.tool_choice != "required" or not sampler_kwargs or sampler_kwargs.get("grammar_lazy"):
        return ""
    auto = format_plan(
        source.model,
        source.cache,
        source.template_override,
        source.messages,
        dataclasses.replace(inputs, tool_choice="auto"),
        prompt,
    )
    opener: str = next((value for kind, value, _ in auto.grammar_triggers if kind == "word"), "")
    if opener:
        sampler_kwargs["grammar_prefill"] = native.generation_prompt + opener
    return opener


def _chat_request(
    source: _PlanSource,
    template: ChatTemplate,
    prompt: str,
    data_spans: tuple[tuple[int, int], ...],
    plan: _Plan,
) -> ChatRequest:
    model, cache, native = source.model, source.cache, plan.native
    triggers = tuple(
        GrammarTrigger(kind, value, token if kind == "token" else None)
        for kind, value, token in native.grammar_triggers
    )
    stop, preserved_ids = _end_of_turn(
        model, template, tuple(native.additional_stops), tuple(native.preserved_token_ids(model))
    )
    controls = cache.get("control_texts")
    if controls is None:
        controls = cache["control_texts"] = ControlTexts.of_model(model)
    token_ids = tuple(prompt_token_ids(model, prompt, data_spans, controls))
    rendered = LlamaChatTemplateResult(
        prompt=prompt,
        token_count=len(token_ids),
        format=native.format,
        stop=stop,
        grammar=plan.sampler_kwargs.get("grammar"),
        grammar_lazy=bool(plan.sampler_kwargs.get("grammar_lazy")),
        grammar_triggers=triggers,
        preserved_tokens=tuple(native.preserved_tokens),
    )
    return ChatRequest(
        rendered=rendered,
        token_ids=token_ids,
        preserved_token_ids=preserved_ids,
        sampler_kwargs=plan.sampler_kwargs,
        schema=plan.schema,
        native=native,
        generic_tools=plan.generic_tools,
        reply_prefix=plan.reply_prefix,
        data_spans=data_spans,
    )


def _end_of_turn(
    model: _native.Model,
    template: ChatTemplate,
    stop: tuple[str, ...],
    preserved_ids: tuple[int, ...],
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Stops and rendered tokens with the end of turn of a stand-in template (ChatML).

    A model without a template does not end its turns with ChatML's ``<|im_end|>`` on its own:
    it becomes a stop string, and where the vocabulary has it as one token that does not end
    generation, that token is rendered as text so the stop string sees it.
    """
    end = template.end_of_turn
    if not end:
        return stop, preserved_ids
    if end not in stop:
        stop += (end,)
    token_ids = model.tokenize(end, add_special=False, parse_special=True)
    if len(token_ids) == 1 and not model.is_eog(token_ids[0]) and token_ids[0] not in preserved_ids:
        preserved_ids = tuple(sorted(preserved_ids + (token_ids[0],)))
    return stop, preserved_ids


def _schema_grammar(schema: Mapping[str, Any]) -> str:
    try:
        return _native.json_schema_to_grammar(json.dumps(schema))
    except GrammarError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise GrammarError(f"response_format schema cannot become a grammar: {exc}") from exc


def chat_template(
    model: _native.Model, cache: dict[str, Any], template_override: str | None = None
) -> ChatTemplate:
    """The model's template (or the override) for our renderer, compiled once per cache."""
    template = cache.get("template")
    if template is None:
        template = cache["template"] = ChatTemplate.from_model(model, source=template_override)
    return template


def chat_templates(
    model: _native.Model, cache: dict[str, Any], template_override: str | None = None
) -> Any:
    """llama.cpp's parsed chat templates of the model (or of the override), made once per cache.

    llama.cpp's renderer has no step limit, so it only sees a template after our sandbox has
    run the same capability probes within its limits (a runaway template fails there first).
    """
    native = cache.get("native")
    if native is None:
        _ = chat_template(model, cache, template_override).caps
        native = cache["native"] = _native.ChatTemplates(model, template=template_override)
    return native


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What a format's plan depends on besides the conversation (JSON as text)."""

    tools_json: str | None
    tool_choice: str
    parallel_tool_calls: bool
    add_generation_prompt: bool
    enable_thinking: bool
    json_schema: str | None
    chat_template_kwargs_json: str | None

    @classmethod
    def of(
        cls,
        tools_json: list[dict[str, Any]],
        tool_choice: str,
        options: ChatOptions,
        add_generation_prompt: bool,
        schema: Mapping[str, Any] | None,
    ) -> PlanInputs:
        """The inputs of a request with these tools (OpenAI dicts), mode and options."""
        kwargs = options.chat_template_kwargs
        return cls(
            json.dumps(tools_json) if tools_json else None,
            tool_choice,
            options.parallel_tool_calls,
            add_generation_prompt,
            options.enable_thinking,
            json.dumps(schema) if schema is not None else None,
            json.dumps(dict(kwargs)) if kwargs else None,
        )


def format_plan(
    model: _native.Model,
    cache: dict[str, Any],
    template_override: str | None,
    messages: list[dict[str, Any]],
    inputs: PlanInputs,
    prompt: str,
) -> Any:
    """llama.cpp's ChatParams for a request: grammar, triggers, stops, parser; not its prompt.

    A plan depends on the options and, through the generation prompt the parser starts from,
    on how the conversation ends (the last role; llama.cpp's format handlers read nothing else
    of the messages). So plans are cached by the options and the last message's shape, and a
    cached plan is used only while ``prompt`` (ours, already rendered) ends with its
    generation prompt. On a miss llama.cpp renders this conversation, which our sandbox has
    just rendered within its limits; its prompt is not used.
    """
    last = messages[-1] if messages else {}
    key = (inputs, last.get("role"), bool(last.get("tool_calls")))
    plans: dict[Any, Any] = cache.setdefault("plans", {})
    lock = cache.setdefault("plans_lock", threading.Lock())  # requests may run concurrently
    with lock:
        plan = plans.get(key)
    if plan is not None and _plan_fits(plan, inputs, prompt):
        return plan
    native = chat_templates(model, cache, template_override)
    plan = native.apply(json.dumps(messages, ensure_ascii=False), **dataclasses.asdict(inputs))
    if plan.prompt != prompt:
        # The parity tests (tests/chat) list where and why llama.cpp's rendering differs.
        logger.debug("llama.cpp renders this %s prompt differently; ours is used", plan.format)
    if _plan_fits(plan, inputs, prompt):
        with lock:
            if len(plans) >= _MAX_PLANS:
                plans.pop(next(iter(plans)))
            plans[key] = plan
    return plan


def _plan_fits(plan: Any, inputs: PlanInputs, prompt: str) -> bool:
    return not inputs.add_generation_prompt or prompt.endswith(plan.generation_prompt)
