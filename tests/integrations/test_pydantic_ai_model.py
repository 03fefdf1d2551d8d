"""LlamaModel under real pydantic-ai Agent runs on SmolLM2 and Gemma 3 (no test doubles)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from llamabind import GenerationParams, ModelParams
from llamabind.integrations.pydantic_ai import LlamaModel
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.direct import model_request_stream
from pydantic_ai.exceptions import UsageLimitExceeded, UserError
from pydantic_ai.messages import (
    ModelRequest,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.usage import UsageLimits

QUESTION = "What is the capital of France? Answer in one sentence."
QWEN3_TEMPLATE = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / \
    "templates" / "Qwen-Qwen3-0.6B.jinja"


def run(agent: Agent, *args, **kwargs):
    """One agent run on a fresh event loop (closed afterwards, unlike ``run_sync``'s)."""
    return asyncio.run(agent.run(*args, **kwargs))


class City(BaseModel):
    name: str
    country: str


def test_plain_text_run(smol):
    result = run(Agent(smol), QUESTION)
    assert "Paris" in result.output
    response = result.response
    assert response.finish_reason == "stop"
    assert response.provider_name == "llamabind"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.provider_details["finish_reason"] == "stop"


def test_settings_reach_the_sampler_and_the_stop_strings(smol):
    full = run(Agent(smol), QUESTION).output
    assert "Paris" in full
    cut = run(Agent(smol), QUESTION, model_settings={"stop_sequences": ["Paris"]})
    assert cut.output == full[:full.index("Paris")]
    assert cut.response.finish_reason == "stop"
    short = run(Agent(smol), QUESTION, model_settings={"max_tokens": 3, "llamabind_min_p": 0.1})
    assert short.response.usage.output_tokens == 3
    assert short.response.finish_reason == "length"


def test_usage_equals_llamabind_counts_for_the_same_request(smol):
    agent = Agent(smol)
    first = run(agent, QUESTION).response
    engine = asyncio.run(smol.load()).engine.engine
    params = GenerationParams(temperature=0.0, max_tokens=48)
    own = engine.complete([{"role": "user", "content": QUESTION}], params)
    assert own.text == first.text
    assert (first.usage.input_tokens, first.usage.output_tokens) == \
        (own.usage.prompt_tokens, own.usage.completion_tokens)
    # after an identical request, both reuse the same KV prefix
    again = run(agent, QUESTION).response
    assert again.usage.cache_read_tokens == own.usage.cached_prompt_tokens > 0


def test_count_tokens_matches_the_request_and_limits_use_it(smol):
    messages = [ModelRequest(parts=[UserPromptPart(QUESTION)])]
    counted = asyncio.run(smol.count_tokens(messages, None, ModelRequestParameters()))
    sent = run(Agent(smol), QUESTION).response.usage
    assert counted.input_tokens == sent.input_tokens
    limits = UsageLimits(input_tokens_limit=counted.input_tokens - 1,
                         count_tokens_before_request=True)
    with pytest.raises(UsageLimitExceeded):
        run(Agent(smol), QUESTION, usage_limits=limits)


def test_run_stream_delivers_deltas_before_the_end(smol):
    async def main():
        async with Agent(smol).run_stream("Write two sentences about the sea.") as run:
            deltas = [delta async for delta in run.stream_text(delta=True)]
            return deltas, await run.get_output()

    deltas, output = asyncio.run(main())
    assert len(deltas) > 3
    assert "".join(deltas) == output


def test_stream_events_come_before_usage_and_finish_reason(smol):
    async def main():
        messages = [ModelRequest(parts=[UserPromptPart("Count from one to ten in words.")])]
        seen = []
        async with model_request_stream(smol, messages) as stream:
            async for event in stream:
                if isinstance(event, (PartStartEvent, PartDeltaEvent)):
                    seen.append((stream.usage.output_tokens, stream.finish_reason))
            return seen, stream.get()

    seen, response = asyncio.run(main())
    assert len(seen) > 3
    assert seen[0] == (0, None)  # the first text arrived while the model was still generating
    assert response.usage.output_tokens > 0 and response.finish_reason in ("stop", "length")


def _force_tool_then_answer(ctx):
    # The first request must call a tool; the next ones answer in text.
    return {"tool_choice": "required"} if ctx.run_step <= 1 else {"tool_choice": "none"}


@pytest.mark.parametrize("model_name", ["smol", "gemma"])
def test_a_tool_is_called_its_result_fed_back_and_answered(model_name, request):
    model = request.getfixturevalue(model_name)
    cities = []
    agent = Agent(model, model_settings=_force_tool_then_answer)

    @agent.tool_plain
    def get_temperature(city: str) -> str:
        """The current temperature of a city."""
        cities.append(city)
        return f"It is 21 degrees Celsius in {city}."

    result = run(agent, "What is the temperature in Paris?")
    assert cities == ["Paris"]
    messages = result.all_messages()
    call = next(p for m in messages for p in m.parts if isinstance(p, ToolCallPart))
    returned = next(p for m in messages for p in m.parts if isinstance(p, ToolReturnPart))
    assert call.tool_name == "get_temperature" and call.args_as_dict() == {"city": "Paris"}
    assert returned.tool_call_id == call.tool_call_id
    assert messages[1].finish_reason == "tool_call"
    assert "21" in result.output


@pytest.mark.parametrize("model_name", ["smol", "gemma"])
def test_native_structured_output_validates(model_name, request):
    model = request.getfixturevalue(model_name)
    result = run(Agent(model, output_type=City), 
        "Paris is a city in France. Give the city and its country.")
    assert isinstance(result.output, City)
    assert result.output.name == "Paris"
    text = next(p.content for p in result.response.parts if isinstance(p, TextPart))
    assert City.model_validate(json.loads(text)) == result.output  # the grammar made it JSON


def test_structured_output_beside_tools_uses_an_output_tool(smol):
    # Templates without tool syntax (SmolLM2's) cannot offer tools and a JSON-schema grammar in
    # one request, so beside function tools an output_type without a mode is an output tool.
    agent = Agent(smol, output_type=City)

    @agent.tool_plain
    def country_of(city: str) -> str:
        """The country a city is in."""
        return "France"

    # the 135M model would call country_of again and again: name the output tool
    result = run(agent, "Paris is a city in France. Give the city and its country.",
                 model_settings={"tool_choice": ["final_result"], "max_tokens": 128},
                 usage_limits=UsageLimits(request_limit=2))
    assert isinstance(result.output, City)
    assert any(isinstance(p, ToolCallPart) and p.tool_name == "final_result"
               for p in result.response.parts)


def test_native_output_beside_tools_on_a_template_without_tool_syntax_is_refused(smol):
    agent = Agent(smol, output_type=NativeOutput(City))

    @agent.tool_plain
    def country_of(city: str) -> str:
        """The country a city is in."""
        return "France"

    with pytest.raises(UserError, match="no tool syntax"):
        run(agent, "Paris is a city in France.")


def test_reasoning_comes_back_as_thinking_parts_from_llama_cpps_parser(smollm2_path):
    # SmolLM2 with Qwen3's template (a reasoning format llama.cpp parses); the grammar makes
    # the small model write the <think> block a reasoning model would.
    grammar = 'root ::= "<think>\\nThe user greets me.\\n</think>\\n\\nHello!"'
    params = ModelParams(n_ctx=2048, chat_template=QWEN3_TEMPLATE.read_text())
    model = LlamaModel(smollm2_path, params=params,
                       settings={"temperature": 0.0, "max_tokens": 32, "llamabind_grammar": grammar})
    result = run(Agent(model), "hi")
    thinking, text = result.response.parts
    assert isinstance(thinking, ThinkingPart) and thinking.content.strip() == "The user greets me."
    assert isinstance(text, TextPart) and text.content == "Hello!"
    # the unified thinking setting reaches the template's switch (Qwen3 then writes an empty
    # <think></think> block into the prompt)
    messages = [ModelRequest(parts=[UserPromptPart("hi")])]
    default = asyncio.run(model.count_tokens(messages, None, ModelRequestParameters()))
    off = asyncio.run(model.count_tokens(messages, {"thinking": False}, ModelRequestParameters()))
    assert off.input_tokens > default.input_tokens
    model.provider.close()


def test_multi_turn_message_history_reuses_the_cached_prefix(smol):
    agent = Agent(smol, instructions="You are a helpful assistant.")
    first = run(agent, "Remember this word: banana.")
    second = run(agent, "Which word did I ask you to remember?",
                 message_history=first.all_messages())
    assert second.response.usage.input_tokens > first.response.usage.input_tokens + \
        first.response.usage.output_tokens
    # the earlier turns were rendered exactly as before, so their KV cache is reused
    assert second.response.usage.cache_read_tokens >= first.response.usage.input_tokens
    assert "banana" in second.output


def test_closing_a_stream_early_cancels_the_generation(smol):
    async def main():
        loaded = await smol.load()
        messages = [ModelRequest(parts=[UserPromptPart("Tell a very long story about a dragon.")])]
        settings = {"max_tokens": 400}
        async with model_request_stream(smol, messages, model_settings=settings) as stream:
            async for event in stream:
                if isinstance(event, PartDeltaEvent):
                    break
            await stream.cancel()
            response = stream.get()
        assert not loaded.engine.engine.is_generating
        after = await Agent(smol).run(QUESTION)  # the engine is free again
        return response, after

    response, after = asyncio.run(main())
    assert response.state == "interrupted"
    assert response.usage.output_tokens == 0  # no final chunk: the run never finished
    assert "Paris" in after.output


def test_cancelling_the_consuming_task_cancels_the_generation(smol):
    async def main():
        loaded = await smol.load()
        started = asyncio.Event()

        async def consume():
            settings = {"max_tokens": 400}
            async with Agent(smol).run_stream("Tell a very long story.",
                                              model_settings=settings) as run:
                async for _ in run.stream_text(delta=True):
                    started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not loaded.engine.engine.is_generating
        return await Agent(smol).run(QUESTION)

    assert "Paris" in asyncio.run(main()).output


def test_two_agents_run_concurrently_on_one_loaded_model(smol, provider, smollm2_path):
    async def main():
        one, two = Agent(smol), Agent(smol, instructions="Answer briefly.")
        return await asyncio.gather(one.run(QUESTION), two.run("Name a colour."))

    first, second = asyncio.run(main())
    assert "Paris" in first.output and second.output
    assert provider.loaded_models.count(Path(smollm2_path)) == 1
