"""ChatTemplate: a model's Jinja chat template rendered in a sandbox, as llama.cpp renders it."""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from jinja2 import Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError

from ..errors import TemplateError
from .caps import TemplateCaps, detect_caps
from .limits import LimitExceeded, RenderLimits, render_state
from .marking import mark_messages
from .polyfills import (
    adapt_for_family,
    apply_caps,
    finish_prompt,
    parse_messages,
    parse_tools,
    patch_source,
)
from .sandbox import TemplateEnvironment, TemplateRaised

__all__ = ["CHATML_TEMPLATE", "ChatTemplate", "MissingChatTemplateWarning"]

#: The template used when a model has none: ChatML, character for character llama.cpp's
#: default (``CHATML_TEMPLATE_SRC`` in ``common/chat.cpp``), so both render the same prompt.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\n' -}}\n"
    "{%- endif -%}"
)

#: Where a ChatML turn ends; generation stops there when ChatML stands in for a missing template.
CHATML_END_OF_TURN = "<|im_end|>"
#: The name ``from_model`` gives the ChatML template it uses for a model without one.
FALLBACK_NAME = "chatml"

_ENVIRONMENT = TemplateEnvironment()
logger = logging.getLogger("llamabind.chat")
_T = TypeVar("_T")


class MissingChatTemplateWarning(UserWarning):
    """A model has no chat template, so the ChatML default is used."""


class ChatTemplate:
    """A chat template, compiled once, that renders OpenAI-style conversations to a prompt.

    Rendering follows llama.cpp (what llama-server sends the model): messages and tools are
    made canonical and adapted to what the template can render (see
    :mod:`llamabind.chat.polyfills`), then the template runs in jinja2's sandbox with the
    conventions of transformers' ``apply_chat_template`` (see :mod:`llamabind.chat.sandbox`).
    Templates are untrusted: one that reaches for Python internals or goes past its
    :class:`RenderLimits` fails with :class:`~llamabind.errors.TemplateError`.

    Args:
        source: The Jinja template text.
        bos_token: What ``bos_token`` renders as (the model's BOS token text).
        eos_token: What ``eos_token`` renders as.
        name: A name for messages (e.g. ``"default"``, ``"tool_use"``, a file name).
        add_bos: The tokenizer adds BOS itself, so a BOS the template writes at the start is
            removed (no double BOS). ``from_model`` takes it from the model.
        add_eos: The same for an EOS the template writes at the end.
        tool_use: A second template used when tools are given (GGUF ``tool_use`` template).
        limits: Limits of each render (default :class:`RenderLimits`).
        end_of_turn: Text that ends the assistant's turn where the model's own end-of-generation
            token may not (the ChatML fallback's ``<|im_end|>``); generation stops there.

    Raises:
        TemplateError: The template does not compile.
    """

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        name: str | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
        tool_use: ChatTemplate | None = None,
        limits: RenderLimits | None = None,
        end_of_turn: str | None = None,
    ) -> None:
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, not {type(source).__name__}")
        self.source = source
        self.name = name
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.add_bos = add_bos
        self.add_eos = add_eos
        self.tool_use = tool_use
        self.limits = limits or RenderLimits()
        self.end_of_turn = end_of_turn
        self._patched_source = patch_source(source)
        self._caps: TemplateCaps | None = None
        self._caps_lock = threading.Lock()
        try:
            self._template: Template = _ENVIRONMENT.from_string(self._patched_source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"[ChatTemplate] {self._label} does not compile: line {exc.lineno}: {exc.message}",
                name=name,
                lineno=exc.lineno,
                kind="syntax",
            ) from exc

    @property
    def _label(self) -> str:
        return f"template {self.name!r}" if self.name else "the chat template"

    @classmethod
    def from_model(
        cls, model: Any, name: str | None = None, source: str | None = None
    ) -> ChatTemplate:
        """The chat template stored in a model's GGUF file, with its BOS/EOS token texts.

        Without ``name``, the default template is used, and the model's ``tool_use`` template
        (if any) for requests with tools. A model with no template gets :data:`CHATML_TEMPLATE`
        and a :class:`MissingChatTemplateWarning`, as llama.cpp falls back to ChatML.

        Args:
            model: A loaded ``llamabind._native.Model``.
            name: A named template of the model (see ``model.chat_templates``).

        Returns:
            The template.

        Raises:
            ValueError: The model has no template called ``name``.
            TemplateError: The model's template does not compile.
        """
        special = model.special_tokens
        tokens = {key: _token_text(model, special.get(key, -1)) for key in ("bos", "eos")}
        common: dict[str, Any] = {
            "bos_token": tokens["bos"],
            "eos_token": tokens["eos"],
            "add_bos": bool(model.add_bos),
            "add_eos": bool(model.add_eos),
        }
        if source is not None:  # an override, with the model's BOS/EOS
            return cls(source, name=name or "override", **common)
        if name is not None:
            # model.chat_templates calls the main template "default"; GGUF files store it unnamed
            source = model.chat_template(None if name == "default" else name)
            if source is None:
                known = ", ".join(sorted(model.chat_templates)) or "none"
                raise ValueError(f"the model has no chat template {name!r} (it has: {known})")
            return cls(source, name=name, **common)
        default = model.chat_template(None)
        tool_use_source = model.chat_template("tool_use")
        tool_use = cls(tool_use_source, name="tool_use", **common) if tool_use_source else None
        if default:
            return cls(default, name="default", tool_use=tool_use, **common)
        if tool_use is not None:
            return tool_use
        warnings.warn(
            f"{model.path}: the model has no chat template; using ChatML "
            "(llamabind.chat.CHATML_TEMPLATE). Pass a template if the model expects another "
            "format.",
            MissingChatTemplateWarning,
            stacklevel=2,
        )
        logger.info(
            "%s has no chat template: using the ChatML fallback "
            "(llamabind.chat.CHATML_TEMPLATE), which ends turns with %s",
            model.path,
            CHATML_END_OF_TURN,
        )
        return cls(CHATML_TEMPLATE, name=FALLBACK_NAME, end_of_turn=CHATML_END_OF_TURN, **common)

    @property
    def caps(self) -> TemplateCaps:
        """What the template can render, found on first use by llama.cpp's probes.

        Raises:
            TemplateError: A probe render tried an unsafe operation or went past the limits.
        """
        if self._caps is None:
            with self._caps_lock:
                if self._caps is None:
                    self._caps = self._guarded(lambda: detect_caps(self._template, self.limits))
        return self._caps

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        enable_thinking: bool = True,
        documents: Sequence[Mapping[str, Any]] | None = None,
        now: datetime | None = None,
        mark_data: bool = False,
        **template_kwargs: Any,
    ) -> str:
        """Renders a conversation to the prompt text.

        Args:
            messages: OpenAI-style messages: ``role`` (system, user, assistant, tool,
                developer), ``content`` (a string, None, or ``[{"type": "text", "text"}]``),
                and as needed ``tool_calls`` (``[{"id", "type": "function", "function":
                {"name", "arguments"}}]``, arguments as JSON text or a mapping),
                ``tool_call_id``, ``name``, ``reasoning_content``.
            tools: OpenAI-style tool definitions offered to the model.
            add_generation_prompt: End with the opening of the assistant's turn.
            enable_thinking: The ``enable_thinking`` variable of reasoning templates.
            documents: The ``documents`` variable (retrieval templates such as Command R).
            now: The time ``strftime_now``, ``datetime`` and ``date_string`` show (default:
                the local time now, as llama.cpp does).
            mark_data: Wrap the conversation's data (content, reasoning, tool-call arguments,
                tool results) in markers that :func:`llamabind.chat.marking.unmark` finds and
                removes, so that data can be tokenized as text (see that module).
            **template_kwargs: More template variables (llama-server's
                ``chat_template_kwargs``); they override the ones above.
                ``preserve_reasoning=bool`` and ``reasoning_effort=str`` also set the aliases
                llama.cpp sets (``preserve_thinking``, ``clear_thinking``, ...;
                ``reasoning_strength``).

        Returns:
            The prompt. When ``add_bos``, a leading BOS text is left out.

        Raises:
            TypeError: ``messages`` or ``tools`` have the wrong shape.
            ValueError: A message or tool is invalid (missing role, unsupported part type...).
            TemplateError: The template raised an exception, failed, tried an unsafe
                operation or went past its limits.
        """
        canonical = parse_messages(messages)
        canonical_tools = parse_tools(tools)
        template = self.tool_use if canonical_tools and self.tool_use is not None else self
        return template._render(
            canonical,
            canonical_tools,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
            documents=documents,
            now=now or datetime.now(),
            mark_data=mark_data,
            template_kwargs=template_kwargs,
        )

    def _render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        add_generation_prompt: bool,
        enable_thinking: bool,
        documents: Any,
        now: datetime,
        mark_data: bool,
        template_kwargs: dict[str, Any],
    ) -> str:
        source = self._patched_source
        apply_caps(messages, self.caps, source)
        messages, family_vars = adapt_for_family(messages, source)
        if mark_data:
            messages = mark_messages(messages)
        context: dict[str, Any] = {
            "messages": messages,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "enable_thinking": bool(enable_thinking),
        }
        if tools:
            context["tools"] = tools
        context["datetime"] = now.strftime("%b %d %Y")
        context["date_string"] = now.strftime("%d %b %Y")
        if documents is not None:
            context["documents"] = copy.deepcopy(documents)
        context.update(_reasoning_aliases(template_kwargs))
        context.update(copy.deepcopy(template_kwargs))
        context.update(family_vars)
        if add_generation_prompt:
            context["add_generation_prompt"] = True
        prompt = self._run(context, now)
        if self.add_bos and self.bos_token and prompt.startswith(self.bos_token):
            prompt = prompt[len(self.bos_token) :]
        if self.add_eos and self.eos_token and prompt.endswith(self.eos_token):
            prompt = prompt[: -len(self.eos_token)]
        return finish_prompt(prompt, source, add_generation_prompt)

    def _run(self, context: dict[str, Any], now: datetime) -> str:
        limits = self.limits

        def run() -> str:
            with render_state(limits, now):
                total = 0
                pieces = []
                for piece in self._template.generate(context):
                    total += len(piece)
                    if total > limits.max_output_chars:
                        raise LimitExceeded(
                            f"the prompt would be longer than {limits.max_output_chars} characters"
                        )
                    pieces.append(piece)
                return "".join(pieces)

        return self._guarded(run)

    def _guarded(self, run: Callable[[], _T]) -> _T:
        """Runs template code, turning whatever it raises into TemplateError."""
        try:
            return run()
        except TemplateRaised as exc:
            raise self._error(exc, "raised", f"raised an exception: {exc}") from exc
        except LimitExceeded as exc:
            raise self._error(exc, "limit", f"went past its limits: {exc}") from exc
        except SecurityError as exc:
            raise self._error(exc, "security", f"tried an unsafe operation: {exc}") from exc
        except RecursionError as exc:
            raise self._error(exc, "limit", "recursed too deeply") from exc
        except Exception as exc:  # any failure of untrusted template code
            raise self._error(exc, "runtime", f"failed: {type(exc).__name__}: {exc}") from exc

    def _error(self, exc: BaseException, kind: str, what: str) -> TemplateError:
        lineno = _template_line(exc.__traceback__)
        where = f" (line {lineno})" if lineno else ""
        message = f"[ChatTemplate.render] {self._label}{where} {what}"
        template_message = str(exc) if kind == "raised" else None
        return TemplateError(
            message, name=self.name, lineno=lineno, kind=kind, template_message=template_message
        )

    def __repr__(self) -> str:
        return f"ChatTemplate(name={self.name!r}, {len(self.source)} characters)"


def _reasoning_aliases(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The variables llama.cpp sets from ``preserve_reasoning`` and ``reasoning_effort``."""
    aliases: dict[str, Any] = {}
    preserve = kwargs.get("preserve_reasoning")
    if isinstance(preserve, bool):
        aliases.update(
            preserve_thinking=preserve,
            clear_thinking=not preserve,
            truncate_history_thinking=not preserve,
            drop_thinking=not preserve,
        )
    effort = kwargs.get("reasoning_effort")
    if isinstance(effort, str) and effort:
        aliases.update(reasoning_effort=effort, reasoning_strength=effort)
    return aliases


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame of a traceback."""
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _token_text(model: Any, token: int) -> str:
    if token is None or token < 0:
        return ""
    piece: bytes = model.token_to_piece(token, special=True)
    return piece.decode("utf-8", errors="replace")
