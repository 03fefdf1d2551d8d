"""The routes. Each handler validates its body, calls the engine, and maps the result.

A generation's lifetime is in ``_Generation``: the engine call (admission to its queue happens
there: a full queue is a 429), the first token awaited while watching the client, then either
the SSE stream or the collected answer, with metrics recorded on the way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from llamabind.aio import stream_in_thread
from llamabind.server import mapping
from llamabind.server.config import ServerConfig
from llamabind.server.errors import APIError, from_engine
from llamabind.server.metrics import Metrics
from llamabind.server.registry import ModelRegistry, ServedModel
from llamabind.server.sse import DONE, ClientGone, EventStreamResponse, event, unless_disconnected
from llamabind.server.wire import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    TokenizeRequest,
)
from llamabind.types import LlamaCompletionAccumulator, LlamaCompletionChunk

router = APIRouter()


@dataclass(slots=True)
class ServerState:
    """What every handler shares: the configuration, the models, the counters."""

    config: ServerConfig
    registry: ModelRegistry
    metrics: Metrics


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.llamabind
    return state


class _Shaper(Protocol):
    """Turns the engine's items into the route's JSON (stream events, or one answer)."""

    def events(self, item: Any) -> list[dict[str, Any]]: ...
    def add(self, item: Any) -> None: ...
    def usage(self, item: Any) -> Any: ...
    def result(self) -> dict[str, Any]: ...


class _ChatShaper:
    def __init__(self, model_id: str, include_usage: bool) -> None:
        self.model_id = model_id
        self.include_usage = include_usage
        self.accumulator = LlamaCompletionAccumulator()

    def events(self, chunk: LlamaCompletionChunk) -> list[dict[str, Any]]:
        out = [mapping.chunk_dict(chunk, self.model_id)]
        if chunk.usage is not None and self.include_usage:
            out.append(mapping.usage_chunk(chunk, self.model_id, chunk.usage))
        return out

    def add(self, chunk: LlamaCompletionChunk) -> None:
        self.accumulator.add(chunk)

    def usage(self, chunk: LlamaCompletionChunk) -> Any:
        return chunk.usage

    def result(self) -> dict[str, Any]:
        out = self.accumulator.build().to_dict()
        out["model"] = self.model_id
        return out


class _TextShaper:
    """Items are ``(text, run, logprobs)``: pieces with ``run`` None, then ``("", run, ...)``
    once it ended; ``logprobs`` holds the entries of the tokens behind the piece (or None)."""

    def __init__(self, model_id: str, include_usage: bool, echo: str) -> None:
        self.model_id = model_id
        self.include_usage = include_usage
        self.id, self.created = mapping.new_completion_id()
        self.pieces = [echo]
        self.echo_pending = echo
        self.run: Any = None
        self.logprobs: list[Any] | None = None
        self.offset = len(echo)  # where the next streamed token's text starts

    def events(self, item: tuple[str, Any, Any]) -> list[dict[str, Any]]:
        text, run, entries = item
        logprobs = mapping.text_logprobs(entries, self.offset)
        if entries:
            self.offset += sum(len(e.token.text) for e in entries)
        out = []
        if self.echo_pending:  # the first streamed event repeats the prompt
            out.append(
                mapping.text_completion(
                    self.id, self.created, self.model_id, self.echo_pending, None
                )
            )
            self.echo_pending = ""
        if run is None:
            out.append(
                mapping.text_completion(
                    self.id, self.created, self.model_id, text, None, logprobs=logprobs
                )
            )
            return out
        out.append(
            mapping.text_completion(
                self.id, self.created, self.model_id, "", run.finish_reason, logprobs=logprobs
            )
        )
        if self.include_usage and run.usage is not None:
            out.append(
                {
                    **mapping.text_completion(self.id, self.created, self.model_id, "", None),
                    "choices": [],
                    "usage": run.usage.to_dict(),
                }
            )
        return out

    def add(self, item: tuple[str, Any, Any]) -> None:
        text, run, entries = item
        self.pieces.append(text)
        if entries is not None:
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.extend(entries)
        if run is not None:
            self.run = run

    def usage(self, item: tuple[str, Any, Any]) -> Any:
        return item[1].usage if item[1] is not None else None

    def result(self) -> dict[str, Any]:
        run = self.run
        return mapping.text_completion(
            self.id,
            self.created,
            self.model_id,
            "".join(self.pieces),
            run.finish_reason if run else None,
            run.usage if run else None,
            mapping.text_logprobs(self.logprobs, len(self.pieces[0])),
        )


class _Generation:
    """One generation request from the engine call to the last byte, with its metrics.

    Args:
        request: The HTTP request (watched for the client's disconnect).
        served: The model that runs it.
        shaper: Turns the engine's items into the route's JSON.
        param: The request field that input errors are attributed to.
    """

    def __init__(self, request: Request, served: ServedModel, shaper: _Shaper, param: str) -> None:
        self.request = request
        self.state = _state(request)
        self.served = served
        self.shaper = shaper
        self.param = param

    def _error(self, exc: BaseException) -> APIError:
        return from_engine(exc, self.state.config.retry_after_s, self.param)

    def _record(self, item: Any) -> None:
        usage = self.shaper.usage(item)
        if usage is not None:
            self.state.metrics.generation_done(self.served.id, usage)

    async def respond(
        self, open_stream: Callable[[], AsyncIterator[Any]], is_streamed: bool
    ) -> Response:
        """Starts the engine's stream, waits for its first item (a refusal by the engine's
        queue, or bad input it finds, is an HTTP error here), then streams or collects it."""
        started = time.perf_counter()
        try:
            stream = open_stream()
            first = await unless_disconnected(self.request, anext(stream))
        except ClientGone:
            self.state.metrics.client_gone()
            return Response(status_code=499)
        except Exception as exc:
            raise self._error(exc) from exc
        self.state.metrics.first_token(time.perf_counter() - started)
        self._record(first)
        if is_streamed:
            return EventStreamResponse(self._events(first, stream))
        return await self._collect(first, stream)

    async def _collect(self, first: Any, stream: AsyncIterator[Any]) -> Response:
        self.shaper.add(first)

        async def rest() -> None:
            async for item in stream:
                self._record(item)
                self.shaper.add(item)

        try:
            await unless_disconnected(self.request, rest())
        except ClientGone:
            self.state.metrics.client_gone()
            return Response(status_code=499)
        except Exception as exc:
            raise self._error(exc) from exc
        return JSONResponse(self.shaper.result())

    async def _events(self, first: Any, stream: AsyncIterator[Any]) -> AsyncIterator[bytes]:
        # Starlette cancels this iteration when the client disconnects, which cancels the
        # engine's request through the stream's clean-up.
        try:
            for data in self.shaper.events(first):
                yield event(data)
            async for item in stream:
                self._record(item)
                for data in self.shaper.events(item):
                    yield event(data)
            yield DONE
        except asyncio.CancelledError:
            self.state.metrics.client_gone()
            raise
        except Exception as exc:  # noqa: BLE001 - after the headers, errors go in the stream
            yield event(self._error(exc).body())
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    served = _state(request).registry.get(body.model)
    max_tokens = (
        body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    )
    params = mapping.generation_params(body, served.n_ctx, max_tokens)
    options = mapping.chat_options(body)
    messages = mapping.chat_messages(body)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    generation = _Generation(request, served, _ChatShaper(served.id, include_usage), "messages")
    return await generation.respond(
        lambda: served.engine.create(messages, params, options=options), body.stream
    )


class _RunPieces:
    """A raw run's text as ``(piece, None, logprobs)`` items, then ``("", run, logprobs)`` once
    it ended; ``logprobs``: the entries of the tokens since the last item (None: not asked for).

    Cancellable from any thread (``cancel``), so that a client that leaves stops this request
    only.
    """

    def __init__(self, run: Any) -> None:
        self.run = run
        self._items = self._pieces()

    def _pieces(self) -> Generator[tuple[str, Any, Any], None, None]:
        iterator = iter(self.run)
        try:
            for piece in iterator:
                yield piece, None, self.run.take_logprobs()
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        yield "", self.run, self.run.take_logprobs()

    def __iter__(self) -> _RunPieces:
        return self

    def __next__(self) -> tuple[str, Any, Any]:
        return next(self._items)

    def cancel(self) -> None:
        """Stops the run from any thread."""
        cancel = getattr(self.run, "cancel", None)
        if cancel is not None:
            cancel()

    def close(self) -> None:
        """Stops the run from the consuming thread."""
        self.cancel()
        self._items.close()


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request) -> Response:
    """``POST /v1/completions``: a raw completion of a text or token-id prompt."""
    served = _state(request).registry.get(body.model)
    params = mapping.generation_params(body, served.n_ctx, body.max_tokens)
    prompt = mapping.completion_prompt(body)
    engine = served.engine.engine
    if isinstance(prompt, list):
        mapping.check_token_ids(prompt, served.n_vocab, "prompt")
    echo = ""
    if body.echo:
        echo = (
            prompt
            if isinstance(prompt, str)
            else await asyncio.to_thread(engine.detokenize, prompt)
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    shaper = _TextShaper(served.id, include_usage, echo)
    generation = _Generation(request, served, shaper, "prompt")
    return await generation.respond(
        lambda: stream_in_thread(
            lambda: _RunPieces(engine.start_generation(prompt, params)), engine
        ),
        body.stream,
    )


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> JSONResponse:
    """``POST /v1/embeddings``."""
    state = _state(request)
    served = state.registry.get(body.model)
    texts = mapping.embedding_texts(body, served.n_embd)
    try:
        vectors = await served.engine.embed_batch(texts)
        n_tokens = 0
        for text in texts:
            n_tokens += len(await served.engine.tokenize(text))
    except Exception as exc:
        raise from_engine(exc, state.config.retry_after_s, "input") from exc
    return JSONResponse(mapping.embedding_list(vectors, served.id, body.encoding_format, n_tokens))


@router.get("/v1/models")
async def list_models(request: Request) -> JSONResponse:
    """``GET /v1/models``: the served models."""
    return JSONResponse(
        {"object": "list", "data": [served.describe() for served in _state(request).registry]}
    )


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> JSONResponse:
    """``GET /v1/models/{id}``."""
    return JSONResponse(_state(request).registry.get(model_id).describe())


@router.get("/health")
async def health() -> JSONResponse:
    """``GET /health``: open to all (no key), for load balancers."""
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def metrics(request: Request) -> PlainTextResponse:
    """``GET /metrics``: Prometheus text."""
    state = _state(request)
    return PlainTextResponse(
        state.metrics.render(state.registry), media_type="text/plain; version=0.0.4"
    )


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, request: Request) -> JSONResponse:
    """``POST /tokenize`` as llama-server has it."""
    engine = _state(request).registry.get(body.model).engine.engine

    def run() -> list[Any]:
        token_ids = engine.tokenize(body.content, body.add_special, body.parse_special)
        if not body.with_pieces:
            return token_ids
        model = engine.model
        return [
            {"id": t, "piece": model.token_to_piece(t, True).decode("utf-8", errors="replace")}
            for t in token_ids
        ]

    return JSONResponse({"tokens": await asyncio.to_thread(run)})


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, request: Request) -> JSONResponse:
    """``POST /detokenize`` as llama-server has it."""
    served = _state(request).registry.get(body.model)
    engine = served.engine.engine
    mapping.check_token_ids(body.tokens, served.n_vocab, "tokens")
    text = await asyncio.to_thread(engine.detokenize, body.tokens)
    return JSONResponse({"content": text})
