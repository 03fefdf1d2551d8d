"""AsyncChatSession: ChatSession's behaviour (history, KV reuse, rollback, tool loop) with await."""

from __future__ import annotations

import asyncio

import pytest
from llamabind import (
    AsyncChatSession,
    AsyncLlamaEngine,
    GenerationParams,
    LlamaChatRole,
    LlamaEngine,
    ModelParams,
)

SHORT = GenerationParams(temperature=0, max_tokens=16)


async def get_weather(city: str) -> dict:
    """Gets the current weather of a city.

    Args:
        city: The city name.
    """
    await asyncio.sleep(0)  # an async handler runs on the session's event loop
    return {"city": city, "temperature_c": 21, "sky": "sunny"}


def test_turns_keep_history_and_reuse_the_cache(smollm2_path):
    async def main():
        async with AsyncLlamaEngine(smollm2_path, ModelParams(n_ctx=1024, n_threads=2)) as engine:
            session = AsyncChatSession(engine, system_prompt="You are brief.")
            first = await session.send("Hi! What is 2 + 2?", SHORT)
            chunks = [chunk async for chunk in session.create("And 3 + 3?", temperature=0,
                                                              max_tokens=16)]
            return session, first, chunks

    session, first, chunks = asyncio.run(main())
    assert first.text and chunks[-1].finish_reason in ("stop", "length")
    assert [m.role for m in session.history] == [LlamaChatRole.USER, LlamaChatRole.ASSISTANT] * 2
    assert session.history[1].text == first.text
    usage = chunks[-1].usage
    assert usage.cached_prompt_tokens >= first.usage.prompt_tokens  # the first turn was reused


def test_a_cancelled_task_leaves_history_as_before_and_the_tool_loop_runs(smollm2_path):
    async def main():
        async with AsyncLlamaEngine(smollm2_path, ModelParams(n_ctx=2048, n_threads=2)) as engine:
            session = AsyncChatSession(engine)
            started = asyncio.Event()

            async def consume():
                async for _ in session.create("Tell me a long story.", max_tokens=None,
                                              ignore_eos=True):
                    started.set()

            task = asyncio.create_task(consume())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after_cancel = session.history
            result = await session.send_with_tools(
                "What's the weather in Paris?", [get_weather], tool_choice="required",
                temperature=0, max_tokens=80)
            return after_cancel, result, session.history

    after_cancel, result, history = asyncio.run(main())
    assert after_cancel == []
    assert result.stop_reason == "completed"
    roles = [m.role for m in history]
    assert roles[:3] == [LlamaChatRole.USER, LlamaChatRole.ASSISTANT, LlamaChatRole.TOOL]
    assert history[2].tool_results[0].result == {"city": "Paris", "temperature_c": 21,
                                                  "sky": "sunny"}


def test_an_async_session_needs_the_async_engine(smollm2_path):
    with pytest.raises(TypeError, match="for a LlamaEngine use ChatSession"):
        AsyncChatSession(LlamaEngine(smollm2_path))


def test_cancelling_the_tool_loop_cancels_its_generation_and_keeps_history(smollm2_path):
    async def main():
        async with AsyncLlamaEngine(smollm2_path, ModelParams(n_ctx=1024, n_threads=2)) as engine:
            session = AsyncChatSession(engine)
            await session.send("Hi!", SHORT)
            before = session.history
            task = asyncio.create_task(session.send_with_tools(
                "Tell me a very long story.", [get_weather], tool_choice="none",
                max_tokens=None, ignore_eos=True))
            while not engine.engine.is_generating:  # wait until the loop's generation runs
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after = session.history
            reply = await session.send("Bye!", SHORT)  # the session and engine are usable
            return before, after, reply

    before, after, reply = asyncio.run(main())
    assert after == before and reply.text
