"""Requests to engine arguments, without a model: field mapping, caps, refusals, config."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from llamabind.server.config import API_KEY_VARIABLE, ModelSpec, ServerConfig
from llamabind.server.errors import APIError
from llamabind.server.mapping import (
    chat_options,
    completion_prompt,
    embedding_list,
    embedding_texts,
    generation_params,
)
from llamabind.server.wire import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

USER = [{"role": "user", "content": "hi"}]


def chat(**fields):
    return ChatCompletionRequest(messages=USER, **fields)


def test_sampling_fields_map_and_unset_ones_keep_engine_defaults():
    params = generation_params(
        chat(temperature=0.2, top_p=0.5, seed=7, stop="END", presence_penalty=1.0, top_k=5),
        n_ctx=512,
        max_tokens=100,
    )
    assert (params.temperature, params.top_p, params.seed, params.stop) == (0.2, 0.5, 7, ("END",))
    assert (params.presence_penalty, params.top_k, params.max_tokens) == (1.0, 5, 100)
    default = generation_params(chat(), n_ctx=512)
    from llamabind.params import GenerationParams

    engine_default = GenerationParams()
    assert default.temperature == engine_default.temperature
    assert default.repeat_penalty == engine_default.repeat_penalty


def test_max_tokens_is_capped_by_the_context():
    assert generation_params(chat(), n_ctx=512, max_tokens=10_000).max_tokens == 512
    assert generation_params(chat(), n_ctx=512).max_tokens == 512


def test_logit_bias_keys_are_token_ids():
    params = generation_params(chat(logit_bias={"15": -100, "7": 2.5}), n_ctx=64)
    assert dict(params.logit_bias) == {15: -100.0, 7: 2.5}
    with pytest.raises(APIError) as info:
        generation_params(chat(logit_bias={"15": 101}), n_ctx=64)
    assert info.value.param == "logit_bias"


def test_refusals_name_the_field():
    for request, param in [
        (chat(n=2), "n"),
        (chat(top_logprobs=3), "top_logprobs"),
        (chat(stop=["ok", ""]), "stop"),
    ]:
        with pytest.raises(APIError) as info:
            generation_params(request, n_ctx=64)
            chat_options(request)
        assert (info.value.status, info.value.param) == (400, param)


def test_logprobs_map_to_generation_params():
    assert generation_params(chat(), n_ctx=64).logprobs is None
    assert generation_params(chat(logprobs=True), n_ctx=64).logprobs == 0
    assert generation_params(chat(logprobs=True, top_logprobs=5), n_ctx=64).logprobs == 5
    assert generation_params(CompletionRequest(prompt="a", logprobs=3), n_ctx=64).logprobs == 3
    with pytest.raises(APIError) as info:  # beyond what the engine gives
        generation_params(CompletionRequest(prompt="a", logprobs=50), n_ctx=64)
    assert info.value.param == "logprobs"


def test_response_formats():
    assert chat_options(chat(response_format={"type": "text"})).response_format is None
    assert chat_options(chat(response_format={"type": "json_object"})).response_format == {
        "type": "json_object"
    }
    schema = {"type": "object"}
    wrapped = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    expected = {"type": "json_schema", "json_schema": {"schema": schema}}
    assert chat_options(chat(response_format=wrapped)).response_format == expected
    llama_server_form = {"type": "json_object", "schema": schema}
    assert chat_options(chat(response_format=llama_server_form)).response_format == expected


def test_reasoning_effort_and_template_kwargs():
    off = chat_options(chat(reasoning_effort="none"))
    assert off.enable_thinking is False
    assert off.chat_template_kwargs == {"reasoning_effort": "none"}
    assert chat_options(chat(reasoning_effort="high")).enable_thinking is True
    explicit = chat_options(chat(chat_template_kwargs={"enable_thinking": False, "x": 1}))
    assert explicit.enable_thinking is False and explicit.chat_template_kwargs["x"] == 1


def test_tools_and_choice_pass_through():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    options = chat_options(
        chat(
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "f"}},
            parallel_tool_calls=True,
        )
    )
    assert [t.name for t in options.tools] == ["f"]
    assert options.tools[0].parameters == {"type": "object"}
    assert options.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert options.parallel_tool_calls is True


def test_completion_prompt_forms():
    assert completion_prompt(CompletionRequest(prompt="abc")) == "abc"
    assert completion_prompt(CompletionRequest(prompt=["abc"])) == "abc"
    assert completion_prompt(CompletionRequest(prompt=[1, 2, 3])) == [1, 2, 3]
    assert completion_prompt(CompletionRequest(prompt=[[4, 5]])) == [4, 5]
    for prompt in (["a", "b"], "", []):
        with pytest.raises(APIError):
            completion_prompt(CompletionRequest(prompt=prompt))


def test_embedding_encodings_round_trip():
    vectors = np.array([[0.25, -1.5, 3.0]], dtype=np.float32)
    floats = embedding_list(vectors, "m", "float", 4)
    assert floats["data"][0]["embedding"] == [0.25, -1.5, 3.0]
    assert floats["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    encoded = embedding_list(vectors, "m", "base64", 4)["data"][0]["embedding"]
    assert np.frombuffer(base64.b64decode(encoded), dtype="<f4").tolist() == [0.25, -1.5, 3.0]
    assert embedding_texts(EmbeddingRequest(input="x"), 3) == ["x"]
    with pytest.raises(APIError):
        embedding_texts(EmbeddingRequest(input=["x", ""]), 3)


def test_config_defaults_are_safe(monkeypatch):
    config = ServerConfig(models=(ModelSpec("m.gguf"),))
    assert config.host == "127.0.0.1" and config.cors_origins == ()
    monkeypatch.delenv(API_KEY_VARIABLE, raising=False)
    assert config.resolved_api_key() is None
    monkeypatch.setenv(API_KEY_VARIABLE, "secret")
    assert config.resolved_api_key() == "secret"
    assert ServerConfig(models=(ModelSpec("m.gguf"),), api_key="").resolved_api_key() is None
    with pytest.raises(ValueError):
        ServerConfig(models=())
    with pytest.raises(ValueError):
        ServerConfig(models=(ModelSpec("m.gguf"),), port=70000)
