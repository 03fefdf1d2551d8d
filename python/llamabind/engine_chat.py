"""The chat calls of ``LlamaEngine``: chat completions, structured JSON, rendered prompts.

Each call renders the conversation once (``chat.request``), runs it as a ``GenerationRun``
and maps the reply to OpenAI-shaped chunks (``completions``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from llamabind.chat.request import ChatRequest, build_chat_request
from llamabind.completions import stream_chunks
from llamabind.errors import StructuredOutputError
from llamabind.generation import GenerationRun, RequestStream
from llamabind.lifecycle import EngineLifecycle, LoadedModel
from llamabind.options import ChatOptions, chat_options, request_settings
from llamabind.params import GenerationParams
from llamabind.types import (
    LlamaChatMessage,
    LlamaChatTemplateResult,
    LlamaCompletion,
    LlamaCompletionAccumulator,
    LlamaCompletionChunk,
    to_messages,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from llamabind.options import ChatOptionSettings, ChatSettings


class ChatCompletions(EngineLifecycle):
    """Chat completions on the loaded model (see ``LlamaEngine``)."""

    def create(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> RequestStream[LlamaCompletionChunk]:
        """Streams a chat completion as OpenAI-shaped ``chat.completion.chunk`` values.

        The model's own chat template renders the conversation; tool calls, reasoning and
        content come back as separate deltas; the last chunk has ``finish_reason`` ("stop",
        "length", "tool_calls" or "cancelled") and ``usage``.

        Args:
            messages: The whole conversation (LlamaChatMessage values or OpenAI dicts).
            params: Sampling and stopping; defaults when None.
            options: Tools, tool choice, structured output, thinking and template variables
                (``ChatOptions``); defaults when None.
            **settings: Any GenerationParams or ChatOptions field (``max_tokens=64``,
                ``tools=[...]``, ``response_format={...}``, ...), overriding ``params`` and
                ``options``.

        Raises:
            StateError: no model, or another generation is running.
            TemplateError: the template failed to render.
            ContextOverflowError: the prompt does not fit the context.
            UnsupportedError: image or audio content.
            TypeError: a keyword that is not a GenerationParams or ChatOptions field.
        """
        params, options = request_settings(params, options, settings, "LlamaEngine.create()")
        run, parser = self._start_chat(messages, params, options)
        return RequestStream(stream_chunks(run, parser, self._model_label()), run)

    def complete(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> LlamaCompletion:
        """Like ``create`` but returns the whole completion (text, reasoning, tool calls, usage)."""
        params, options = request_settings(params, options, settings, "LlamaEngine.complete()")
        accumulator = LlamaCompletionAccumulator()
        for chunk in self.create(messages, params, options=options):
            accumulator.add(chunk)
        return accumulator.build()

    def create_structured_json(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        schema: Mapping[str, Any] | None = None,
        params: GenerationParams | None = None,
        *,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatSettings],
    ) -> Any:
        """A reply constrained to JSON (matching ``schema`` when given), parsed.

        Takes the same ``params``, ``options`` and keywords as ``create``, except
        ``response_format``, which ``schema`` sets.

        Raises:
            StructuredOutputError: the reply was cut short (max_tokens, context) or cancelled.
            GrammarError: the schema cannot become a grammar.
            ValueError: a response_format was given too.
        """
        params, options = request_settings(
            params, options, settings, "LlamaEngine.create_structured_json()"
        )
        if options.response_format is not None:
            raise ValueError(
                "create_structured_json() makes the response_format from schema; "
                "pass the schema, or call complete(response_format=...)"
            )
        response_format = (
            {"type": "json_schema", "json_schema": {"schema": dict(schema)}}
            if schema is not None
            else {"type": "json_object"}
        )
        completion = self.complete(
            messages, params, options=options.replace(response_format=response_format)
        )
        try:
            return json.loads(completion.text)
        except json.JSONDecodeError as exc:
            raise StructuredOutputError(
                f"the JSON reply did not parse (finish reason {completion.finish_reason}: "
                f"{exc}); raise max_tokens if it was cut short",
                text=completion.text,
                finish_reason=completion.finish_reason,
            ) from exc

    def chat_template(
        self,
        messages: Iterable[LlamaChatMessage | Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        options: ChatOptions | None = None,
        **settings: Unpack[ChatOptionSettings],
    ) -> LlamaChatTemplateResult:
        """Renders the conversation with the model's template, without generating.

        Args:
            messages: The conversation.
            add_generation_prompt: End where the assistant's reply begins.
            options: Chat options (tools, tool_choice, ...); defaults when None.
            **settings: Any ChatOptions field, overriding ``options``.

        Returns:
            The prompt, its token count, and the format's grammar, triggers and stops.
        """
        options = chat_options(options, settings, "LlamaEngine.chat_template()")
        loaded = self._require()
        return self._chat_request(loaded, messages, options, add_generation_prompt).rendered

    def _chat_request(
        self,
        loaded: LoadedModel,
        messages: Iterable[Any],
        options: ChatOptions,
        add_generation_prompt: bool = True,
    ) -> ChatRequest:
        dicts = [m.to_openai() for m in to_messages(messages)]
        return build_chat_request(
            loaded.model,
            loaded.chat,
            dicts,
            options,
            template_override=loaded.params.chat_template,
            add_generation_prompt=add_generation_prompt,
        )

    def _start_chat(
        self, messages: Any, params: GenerationParams, options: ChatOptions
    ) -> tuple[GenerationRun, Any]:
        loaded = self._require()
        request = self._chat_request(loaded, messages, options)
        overrides: dict[str, Any] = {}
        if request.sampler_kwargs:
            if params.grammar is not None:
                raise ValueError(
                    "GenerationParams.grammar cannot be combined with tools or "
                    "response_format (they bring their own grammar)"
                )
            overrides = dict(request.sampler_kwargs)
        run = GenerationRun(
            loaded,
            request.token_ids,
            params,
            stop=request.rendered.stop,
            render_special_tokens=request.preserved_token_ids,
            sampler_overrides=overrides,
        )
        return run, request.parser()

    def _model_label(self) -> str:
        loaded = self._loaded
        return loaded.path.name if loaded else "llama_model"
