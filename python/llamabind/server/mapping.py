"""From validated requests to the engine's arguments, and from its results to OpenAI's JSON.

No sampling, template or stop logic lives here: fields are renamed, checked against what this
server supports, and handed to ``GenerationParams`` and ``create()``.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from llamabind.options import ChatOptions
from llamabind.params import GenerationParams
from llamabind.server.errors import APIError, bad_request
from llamabind.server.wire import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from llamabind.server.wire import _Sampling as SamplingRequest
from llamabind.types import LlamaCompletionChunk, LlamaGeneratedLogprob, LlamaUsage

_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "repeat_penalty",
    "ignore_eos",
)
_PARAM_NAME = re.compile(r"GenerationParams\.(\w+)")


def generation_params(
    body: SamplingRequest, n_ctx: int, max_tokens: int | None = None
) -> GenerationParams:
    """The request's sampling and stopping, with ``max_tokens`` capped by the context.

    Fields the request leaves out keep the engine's defaults (llama.cpp's).
    """
    if body.n != 1:
        raise bad_request(
            f"n = {body.n} is not supported: this server returns one choice "
            "per request (send n = 1, or several requests)",
            "n",
        )
    fields: dict[str, Any] = {
        name: getattr(body, name) for name in _SAMPLING_FIELDS if getattr(body, name) is not None
    }
    fields["max_tokens"] = n_ctx if max_tokens is None else min(max_tokens, n_ctx)
    if body.stop is not None:
        fields["stop"] = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    if body.logit_bias:
        fields["logit_bias"] = _logit_bias(body.logit_bias)
    logprobs = _logprobs(body)
    if logprobs is not None:
        fields["logprobs"] = logprobs
    try:
        return GenerationParams(**fields)
    except ValueError as exc:
        found = _PARAM_NAME.search(str(exc))
        raise bad_request(str(exc), found.group(1) if found else None) from None


def _logprobs(body: SamplingRequest) -> int | None:
    """``GenerationParams.logprobs``: chat's ``logprobs`` + ``top_logprobs``, or the
    completions' ``logprobs`` count."""
    if isinstance(body, ChatCompletionRequest):
        if body.top_logprobs is not None and not body.logprobs:
            raise bad_request("top_logprobs needs logprobs: true", "top_logprobs")
        return (body.top_logprobs or 0) if body.logprobs else None
    if isinstance(body, CompletionRequest):
        return body.logprobs
    return None


def _logit_bias(raw: dict[str, float]) -> dict[int, float]:
    bias: dict[int, float] = {}
    for key, value in raw.items():
        if not key.strip().isdigit():
            raise bad_request(f"logit_bias keys must be token ids, got {key!r}", "logit_bias")
        if not -100.0 <= value <= 100.0:
            raise bad_request(
                f"logit_bias values must be in [-100, 100], got {value!r}", "logit_bias"
            )
        bias[int(key)] = float(value)
    return bias


def check_token_ids(token_ids: Sequence[int], n_vocab: int, param: str) -> None:
    """Raises a 400 about ``param`` for an id outside the vocabulary."""
    for token in token_ids:
        if not 0 <= token < n_vocab:
            raise bad_request(f"token id {token} is outside the vocabulary [0, {n_vocab})", param)


def chat_options(body: ChatCompletionRequest) -> ChatOptions:
    """The ``ChatOptions`` of ``LlamaEngine.create`` for this request."""
    options: dict[str, Any] = {"parallel_tool_calls": bool(body.parallel_tool_calls)}
    if body.tools:
        options["tools"] = [tool.model_dump(exclude_none=True) for tool in body.tools]
    if body.tool_choice is not None:
        choice = body.tool_choice
        options["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump()
    response_format = _response_format(body)
    if response_format is not None:
        options["response_format"] = response_format
    kwargs = dict(body.chat_template_kwargs or {})
    if body.reasoning_effort is not None:
        kwargs.setdefault("reasoning_effort", body.reasoning_effort)
    thinking = kwargs.get("enable_thinking")
    if isinstance(thinking, bool):
        options["enable_thinking"] = thinking
    elif body.reasoning_effort is not None:
        options["enable_thinking"] = body.reasoning_effort != "none"
    if kwargs:
        options["chat_template_kwargs"] = kwargs
    try:
        return ChatOptions(**options)
    except (TypeError, ValueError) as exc:  # a tool the engine cannot take
        raise bad_request(str(exc), "tools") from None


def _response_format(body: ChatCompletionRequest) -> dict[str, Any] | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    schema = fmt.schema_
    if fmt.type == "json_schema":
        schema = fmt.json_schema.schema_ if fmt.json_schema is not None else schema
        if schema is None:
            raise bad_request(
                "response_format of type json_schema needs json_schema.schema",
                "response_format.json_schema",
            )
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"schema": schema}}


def chat_messages(body: ChatCompletionRequest) -> list[dict[str, Any]]:
    """The conversation as OpenAI-style dicts, for ``LlamaEngine.create``."""
    return [message.model_dump(exclude_none=True) for message in body.messages]


def chunk_dict(chunk: LlamaCompletionChunk, model_id: str) -> dict[str, Any]:
    """A streamed ``chat.completion.chunk`` (its usage goes in a chunk of its own)."""
    out = chunk.to_dict()
    out["model"] = model_id
    out.pop("usage", None)
    return out


def usage_chunk(chunk: LlamaCompletionChunk, model_id: str, usage: LlamaUsage) -> dict[str, Any]:
    """The extra last chunk of ``stream_options.include_usage``: no choices, the usage."""
    return {
        "id": chunk.id,
        "object": chunk.object,
        "created": chunk.created,
        "model": model_id,
        "choices": [],
        "usage": usage.to_dict(),
    }


def completion_prompt(body: CompletionRequest) -> str | list[int]:
    """The one prompt of a text completion request, text or token ids."""
    if body.suffix is not None:
        raise bad_request("suffix (fill-in-the-middle) is not supported by this server", "suffix")
    if body.best_of not in (None, 1):
        raise bad_request("best_of > 1 is not supported by this server", "best_of")
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise bad_request(
                f"{len(prompt)} prompts in one request are not supported: send "
                "one prompt per request",
                "prompt",
            )
        prompt = prompt[0]
    if not prompt:
        raise bad_request("the prompt is empty", "prompt")
    return cast("str | list[int]", prompt)


def text_logprobs(
    entries: Sequence[LlamaGeneratedLogprob] | None, text_offset: int
) -> dict[str, Any] | None:
    """The legacy completions ``logprobs`` object of these tokens (None when not asked for);
    ``text_offset`` is where the first token's text starts in the whole completion."""
    if entries is None:
        return None
    offsets = []
    for entry in entries:
        offsets.append(text_offset)
        text_offset += len(entry.token.text)
    return {
        "tokens": [e.token.text for e in entries],
        "token_logprobs": [e.token.logprob for e in entries],
        "top_logprobs": [{t.text: t.logprob for t in e.top} for e in entries],
        "text_offset": offsets,
    }


def text_completion(
    completion_id: str,
    created: int,
    model_id: str,
    text: str,
    finish_reason: str | None,
    usage: LlamaUsage | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``text_completion`` object (a whole one, or one streamed piece)."""
    choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason}
    out: dict[str, Any] = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model_id,
        "choices": [choice],
    }
    if usage is not None:
        out["usage"] = usage.to_dict()
    return out


def new_completion_id() -> tuple[str, int]:
    """A fresh ``cmpl-`` id and the creation time in seconds."""
    return f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())


def embedding_texts(body: EmbeddingRequest, n_embd: int) -> list[str]:
    """The texts to embed; token-id input is refused (this server embeds text)."""
    if body.dimensions is not None and body.dimensions != n_embd:
        raise bad_request(
            f"dimensions = {body.dimensions} is not supported: this model's "
            f"embeddings have {n_embd}",
            "dimensions",
        )
    data = body.input
    texts = [data] if isinstance(data, str) else data
    if not texts:
        raise bad_request("input is empty", "input")
    if not all(isinstance(text, str) for text in texts):
        raise bad_request("token ids as embedding input are not supported: send text", "input")
    if any(not text for text in texts):
        raise bad_request("input holds an empty string", "input")
    return list(texts)  # type: ignore[arg-type]


def embedding_list(
    vectors: np.ndarray, model_id: str, encoding: str, n_prompt_tokens: int
) -> dict[str, Any]:
    """OpenAI's embedding ``list``: floats, or base64 of little-endian float32."""
    data = []
    for i, vector in enumerate(vectors):
        array = np.asarray(vector, dtype="<f4")
        value: Any = (
            base64.b64encode(array.tobytes()).decode("ascii")
            if encoding == "base64"
            else array.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": n_prompt_tokens, "total_tokens": n_prompt_tokens},
    }


def not_found(what: str) -> APIError:
    """A 404 answer."""
    return APIError(404, what, type="not_found_error", code="not_found")
