"""``LlamaModel``: a pydantic-ai chat model run in this process by llamabind's engine."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import anyio
from pydantic_ai._run_context import RunContext
from pydantic_ai._utils import now_utc
from pydantic_ai.exceptions import UnexpectedModelBehavior, UserError
from pydantic_ai.messages import FinishReason, ModelMessage, ModelResponse, ModelResponseStreamEvent
from pydantic_ai.models import (
    Model,
    ModelRequestParameters,
    StreamedResponse,
    check_allow_model_requests,
)
from pydantic_ai.models._tool_choice import resolve_tool_choice  # as pydantic-ai's adapters
from pydantic_ai.profiles import ModelProfile, ModelProfileSpec
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from llamabind.integrations.pydantic_ai._messages import map_messages, map_tool, response_format
from llamabind.integrations.pydantic_ai._provider import PROVIDER_NAME, LlamaProvider, LoadedModel
from llamabind.integrations.pydantic_ai._settings import PREFIX, generation_params
from llamabind.options import ChatOptions
from llamabind.params import GenerationParams, ModelParams
from llamabind.resolvers import ModelResolver
from llamabind.tools import normalize_tools
from llamabind.types import LlamaCompletionChunk, LlamaUsage

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_call",
}


@dataclass(frozen=True, slots=True)
class EngineCall:
    """One request as the engine takes it: messages, sampling and chat options."""

    messages: list[dict[str, Any]]
    params: GenerationParams
    options: ChatOptions


@dataclass(init=False)
class LlamaModel(Model[LlamaProvider]):
    """A GGUF chat model run in this process: tools, structured output, thinking, streaming.

    The model's own chat template renders the conversation and llama.cpp's parser reads tool
    calls and reasoning out of the reply. Native structured output (the default for a
    structured ``output_type``) is a JSON-schema grammar, so the output always validates.
    Generation runs in a worker thread; closing or cancelling a stream cancels the generation.

    Args:
        model_name: A path, a ``file://``, ``https://`` or ``hf://`` URI, ``package:...``, or a
            name for the resolver chain (``"SmolLM2-135M-Instruct.Q4_1.gguf"``). The model
            loads on the first request.
        provider: Owns the loaded models; model objects of one provider naming the same file
            share one. None makes a provider for this model alone.
        resolver: Resolves ``model_name`` for this model; None uses the provider's.
        params: How to load the model; None uses the provider's.
        settings: Default ``LlamaModelSettings`` of every request.
        profile: Overrides of the model profile.
    """

    _unsupported_file_inputs = frozenset({"image", "document", "audio", "video"})
    unsupported_settings = frozenset(
        {"timeout", "max_retries", "extra_headers", "extra_body", "service_tier", "citations"}
    )

    _model_name: str = field(repr=False)
    _provider: LlamaProvider = field(repr=False)
    resolver: ModelResolver | None = None
    params: ModelParams | None = None

    def __init__(
        self,
        model_name: str | os.PathLike[str],
        *,
        provider: LlamaProvider | None = None,
        resolver: ModelResolver | None = None,
        params: ModelParams | None = None,
        settings: ModelSettings | None = None,
        profile: ModelProfileSpec | None = None,
    ) -> None:
        self._model_name = os.fspath(model_name)
        self._provider = provider if provider is not None else LlamaProvider()
        self.resolver = resolver
        self.params = params
        super().__init__(settings=settings, profile=profile)

    @property
    def model_name(self) -> str:
        """The name (or path, or URI) the model was asked for."""
        return self._model_name

    @property
    def system(self) -> str:
        """``"llamabind"``."""
        return PROVIDER_NAME

    def _instance_profile_defaults(self, profile: ModelProfile) -> ModelProfile:
        n_ctx = (self.params or self._provider.params or ModelParams()).n_ctx
        return {**profile, "context_window": n_ctx} if n_ctx else profile

    async def load(self) -> LoadedModel:
        """Loads the model now (requests load it when needed); returns it.

        Raises:
            ModelNotFoundError: no resolver found the model (it lists every place searched).
        """
        return await self._provider.load(
            self._model_name, resolver=self.resolver, params=self.params
        )

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Runs one request to the end (through the same stream ``request_stream`` gives)."""
        async with self.request_stream(
            messages, model_settings, model_request_parameters
        ) as streamed:
            async for _ in streamed:
                pass
        return streamed.get()

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        """Streams one request; leaving the context (or ``cancel()``) cancels the generation."""
        check_allow_model_requests()
        loaded = await self.load()
        settings, parameters = self._prepare(model_settings, model_request_parameters)
        call = self.engine_call(messages, settings, parameters, loaded)
        chunks = cast(
            AsyncGenerator[LlamaCompletionChunk],
            loaded.engine.create(call.messages, call.params, options=call.options),
        )
        try:
            try:  # the first chunk brings template, context and grammar errors
                first = await anext(chunks)
            except StopAsyncIteration:
                raise UnexpectedModelBehavior("the engine's stream ended without a chunk") from None
            yield LlamaStreamedResponse(
                model_request_parameters=parameters,
                _model_name=self._model_name,
                _chunks=chunks,
                _first=first,
                _ignore_leading_whitespace=self.profile.get(
                    "ignore_streamed_leading_whitespace", False
                ),
            )
        finally:
            with anyio.CancelScope(shield=True):
                await chunks.aclose()

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        """The prompt tokens of this request, rendered exactly as ``request`` would send it."""
        loaded = await self.load()
        settings, parameters = self._prepare(model_settings, model_request_parameters)
        call = self.engine_call(messages, settings, parameters, loaded)
        rendered = await loaded.engine.chat_template(call.messages, options=call.options)
        return RequestUsage(input_tokens=rendered.token_count)

    def prepare_request(
        self,
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> tuple[ModelSettings | None, ModelRequestParameters]:
        """pydantic-ai's preparation, with one default of llamabind's own.

        A structured ``output_type`` that names no mode is native output (a JSON-schema
        grammar), except beside function tools: there it is an output tool, because templates
        without their own tool syntax cannot offer tools and a JSON-schema grammar together.
        """
        if model_request_parameters.function_tools:
            model_request_parameters = model_request_parameters.with_default_output_mode("tool")
        return super().prepare_request(model_settings, model_request_parameters)

    def _prepare(
        self,
        model_settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> tuple[dict[str, Any], ModelRequestParameters]:
        settings, parameters = self.prepare_request(model_settings, parameters)
        return dict(settings or {}), parameters

    def engine_call(
        self,
        messages: list[ModelMessage],
        settings: Mapping[str, Any],
        parameters: ModelRequestParameters,
        loaded: LoadedModel,
    ) -> EngineCall:
        """What ``request`` sends to the engine for these prepared settings and parameters.

        Raises:
            UserError: native output together with tools on a template that cannot combine them.
        """
        tools, tool_choice = _tools_and_choice(settings, parameters)
        output_format = response_format(parameters, bool(tools))
        if output_format is not None and tools and not loaded.combines_tools_and_schema:
            raise UserError(
                f"{loaded.path.name}'s chat template has no tool syntax, so tools and native "
                "structured output cannot be offered in one request: use ToolOutput(...) for "
                "the output_type, or leave its mode unset"
            )
        options = ChatOptions(
            tools=tuple(normalize_tools(tools)),
            tool_choice=tool_choice,
            parallel_tool_calls=bool(settings.get("parallel_tool_calls", False)),
            enable_thinking=parameters.thinking is not False,
            response_format=output_format,
            chat_template_kwargs=settings.get(f"{PREFIX}chat_template_kwargs"),
        )
        mapped = map_messages(messages, self._get_instruction_parts(messages, parameters))
        return EngineCall(mapped, generation_params(settings), options)


def _tools_and_choice(
    settings: Mapping[str, Any],
    parameters: ModelRequestParameters,
) -> tuple[list[dict[str, Any]], Any]:
    resolved = resolve_tool_choice(cast(ModelSettings, settings), parameters)
    tools = dict(parameters.declared_tool_defs)
    choice: Any = resolved
    if isinstance(resolved, tuple):
        mode, names = resolved
        tools = {name: tool for name, tool in tools.items() if name in names}
        choice = mode
        if mode == "required" and len(tools) == 1:
            choice = {"type": "function", "function": {"name": next(iter(tools))}}
    if not tools:
        return [], None
    return [map_tool(tool) for tool in tools.values()], choice


def map_usage(usage: LlamaUsage) -> RequestUsage:
    """llamabind's counts of one request as pydantic-ai's ``RequestUsage``."""
    return RequestUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=usage.cached_prompt_tokens,
    )


@dataclass
class LlamaStreamedResponse(StreamedResponse):
    """The stream of one llamabind request: text, thinking and tool-call deltas as they come.

    Usage and the finish reason arrive with the last chunk. ``cancel()`` (and leaving the
    ``request_stream`` context early) cancels the native generation.
    """

    _model_name: str
    _chunks: AsyncGenerator[LlamaCompletionChunk]
    _first: LlamaCompletionChunk
    _ignore_leading_whitespace: bool = False
    _timestamp: datetime = field(default_factory=now_utc)
    _usage_received: bool | None = field(default=False, init=False)

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        for event in self._map_chunk(self._first):
            yield event
        async for chunk in self._chunks:
            for event in self._map_chunk(chunk):
                yield event

    def _map_chunk(self, chunk: LlamaCompletionChunk) -> Iterator[ModelResponseStreamEvent]:
        self.provider_response_id = chunk.id
        delta = chunk.delta
        if delta.reasoning_content:
            yield from self._parts_manager.handle_thinking_delta(
                vendor_part_id="reasoning",
                content=delta.reasoning_content,
                provider_name=PROVIDER_NAME,
            )
        if delta.content:
            yield from self._parts_manager.handle_text_delta(
                vendor_part_id="content",
                content=delta.content,
                ignore_leading_whitespace=self._ignore_leading_whitespace,
            )
        for call in delta.tool_calls or ():
            yield from self._parts_manager.handle_tool_call_delta_events(
                vendor_part_id=("tool_call", call.index),
                tool_name=call.function.name,
                args=call.function.arguments or None,
                tool_call_id=call.id,
            )
        if chunk.finish_reason is not None:
            self.finish_reason = _FINISH_REASONS.get(chunk.finish_reason)
            self.provider_details = {"finish_reason": chunk.finish_reason}
        if chunk.usage is not None:
            self._add_usage(map_usage(chunk.usage), reported=True)
            self.provider_details = {**(self.provider_details or {}), **_timings(chunk.usage)}

    async def close_stream(self) -> None:
        """Cancels the generation and waits for its worker thread to finish."""
        await self._chunks.aclose()

    @property
    def model_name(self) -> str:
        """The name the model was asked for."""
        return self._model_name

    @property
    def provider_name(self) -> str:
        """``"llamabind"``."""
        return PROVIDER_NAME

    @property
    def provider_url(self) -> None:
        """None: the model runs in this process."""
        return None

    @property
    def timestamp(self) -> datetime:
        """When the stream was opened."""
        return self._timestamp


def _timings(usage: LlamaUsage) -> dict[str, float]:
    values = {
        "time_to_first_token_ms": usage.time_to_first_token_ms,
        "prompt_tokens_per_s": usage.prompt_tokens_per_s,
        "generation_tokens_per_s": usage.generation_tokens_per_s,
        "duration_ms": usage.duration_ms,
    }
    return {key: value for key, value in values.items() if value is not None}
