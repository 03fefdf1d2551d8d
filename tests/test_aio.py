"""AsyncLlamaEngine: awaitable calls and async streams that never block the event loop."""

from __future__ import annotations

import asyncio

import pytest

from llamabind import AsyncLlamaEngine, GenerationParams, ModelParams, StateError

GREEDY = GenerationParams(temperature=0, max_tokens=16)


def test_async_generate_matches_sync_and_the_loop_keeps_running(smollm2_path):
    async def main():
        async with AsyncLlamaEngine(smollm2_path, ModelParams(n_ctx=512)) as engine:
            ticks = 0
            done = asyncio.Event()

            async def ticker():
                nonlocal ticks
                while not done.is_set():
                    ticks += 1
                    await asyncio.sleep(0.001)

            task = asyncio.create_task(ticker())
            pieces = [piece async for piece in engine.generate("The capital of France is", GREEDY)]
            done.set()
            await task
            expected = "".join(engine.engine.generate("The capital of France is", GREEDY))
            return pieces, ticks, expected, await engine.tokenize("hi"), await engine.get_context_size()

    pieces, ticks, expected, tokens, n_ctx = asyncio.run(main())
    assert "".join(pieces) == expected and "Paris" in expected
    assert ticks >= 5  # the other task made progress while tokens were generated
    assert tokens and n_ctx == 512


def test_task_cancellation_cancels_the_generation(smollm2_path):
    async def main():
        engine = AsyncLlamaEngine(smollm2_path, ModelParams(n_ctx=512))
        seen = []

        async def consume():
            async for piece in engine.generate("Once upon a time",
                                               GenerationParams(max_tokens=None, ignore_eos=True)):
                seen.append(piece)

        task = asyncio.create_task(consume())
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not engine.engine.is_generating
        after = [p async for p in engine.generate("The capital of France is", GREEDY)]
        await engine.aclose()
        return seen, after

    seen, after = asyncio.run(main())
    assert len(seen) >= 3 and "Paris" in "".join(after)


def test_aclose_of_the_stream_and_errors_travel_through_it(smollm2_path):
    async def main():
        async with AsyncLlamaEngine(smollm2_path, ModelParams(n_ctx=256)) as engine:
            stream = engine.generate("Once upon a time", GenerationParams(max_tokens=None, ignore_eos=True))
            await stream.__anext__()
            await stream.aclose()
            assert not engine.engine.is_generating
            with pytest.raises(ValueError, match="empty"):
                async for _ in engine.generate("", GREEDY):
                    pass
            completion = await engine.complete([{"role": "user", "content": "Say hi"}],
                                               GenerationParams(temperature=0, max_tokens=8))
            return completion

    completion = asyncio.run(main())
    assert completion.usage.completion_tokens <= 8


def test_closed_async_engine_raises():
    async def main():
        engine = AsyncLlamaEngine()
        await engine.aclose()
        with pytest.raises(StateError):
            await engine.tokenize("x")

    asyncio.run(main())
