"""Many requests on one LlamaEngine at once (python/llamabind/slots.py over the native batch
loop): concurrent results equal lone ones, per-request cancellation, the FIFO queue and its
limit, prefix reuse across requests, sequence affinity, and the async engine."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from llamabind import AsyncLlamaEngine, ChatSession, GenerationParams, LlamaEngine, ModelParams
from llamabind.errors import QueueFullError

GREEDY = GenerationParams(temperature=0, max_tokens=16)
QUESTIONS = ["What is the capital of France?", "Name three colors.", "Write a haiku about rain.",
             "What is 2 + 2?"]


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def in_threads(function, args):
    """Runs function(arg) for every arg on threads of their own; returns the results in order."""
    results: list = [None] * len(args)
    errors: list = []

    def work(i):
        try:
            results[i] = function(args[i])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    if errors:
        raise errors[0]
    return results


@pytest.fixture(scope="module")
def alone(smollm2_path):
    """Each question's greedy reply from an engine that runs one request at a time."""
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=1024, n_threads=2)) as engine:
        return [engine.complete(chat(q), GREEDY).text for q in QUESTIONS]


@pytest.fixture(scope="module")
def engine(smollm2_path):
    params = ModelParams(n_ctx=1024, n_threads=2, n_parallel=4, n_queue=32)
    with LlamaEngine(smollm2_path, params) as engine:
        yield engine


def test_four_concurrent_requests_equal_each_alone(engine, alone):
    replies = in_threads(lambda q: engine.complete(chat(q), GREEDY), QUESTIONS)
    assert [r.text for r in replies] == alone
    assert all(r.finish_reason in ("stop", "length") for r in replies)
    assert engine.queue_info().n_active == 0


def test_requests_started_from_threads_share_the_decode_steps(engine):
    """A generation started while others run gets in at once: the loop lets waiters take the
    context between its steps (it once took the lock back at once, and four requests ran one
    after another: about one sampled token per step)."""
    before = engine.context.batch_stats()
    params = GREEDY.replace(max_tokens=48, ignore_eos=True)
    replies = in_threads(lambda q: engine.complete(chat(q), params), QUESTIONS)
    assert [r.usage.completion_tokens for r in replies] == [48] * 4
    after = engine.context.batch_stats()
    steps = after["n_steps"] - before["n_steps"]
    sampled = after["n_sampled"] - before["n_sampled"]
    # four generating sequences per step but at the starts and ends (3.6-3.8 here; 1.0-2.6
    # while the loop starved the others)
    assert sampled > 2.8 * steps, (sampled, steps)


def test_cancelling_one_stream_leaves_the_others_identical(engine, alone):
    streams = [engine.create(chat(q), GREEDY) for q in QUESTIONS]
    first = [next(s) for s in streams]  # all four run now
    assert engine.queue_info().n_active == 4
    streams[2].cancel()

    def rest(i):
        chunks = first[i:i + 1] + list(streams[i])
        return "".join(c.text for c in chunks), chunks[-1].finish_reason

    out = in_threads(rest, [0, 1, 2, 3])
    assert out[2][1] == "cancelled"
    for i in (0, 1, 3):
        assert out[i][0] == alone[i]


def test_sixteen_requests_through_four_sequences_all_finish(engine, alone):
    seen_waiting = []

    def watch():
        for _ in range(200):
            info = engine.queue_info()
            seen_waiting.append(info.n_waiting)
            assert info.n_active <= 4
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    replies = in_threads(lambda i: engine.complete(chat(QUESTIONS[i % 4]), GREEDY), list(range(16)))
    watcher.join()
    assert [r.text for r in replies] == alone * 4
    assert max(seen_waiting) > 0  # some really waited in the queue


def test_a_full_queue_raises_at_once(smollm2_path):
    params = ModelParams(n_ctx=512, n_threads=2, n_parallel=1, n_queue=1)
    with LlamaEngine(smollm2_path, params) as engine:
        running = engine.generate("Once upon a time", max_tokens=200, ignore_eos=True)
        next(running)
        waiting = threading.Thread(target=lambda: list(engine.generate("Hello", max_tokens=2)))
        waiting.start()
        for _ in range(500):
            if engine.queue_info().n_waiting == 1:
                break
            time.sleep(0.01)
        with pytest.raises(QueueFullError, match="retry later") as info:
            in_threads(lambda _: list(engine.generate("Hi", max_tokens=2)), [0])
        assert info.value.n_parallel == 1 and info.value.n_queue == 1
        running.close()
        waiting.join(60)
        assert not waiting.is_alive() and engine.queue_info().n_waiting == 0


def test_with_one_sequence_another_thread_waits_its_turn(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=512, n_threads=2)) as engine:
        first = engine.generate("Once upon a time", GREEDY)
        next(first)
        second = []
        waiter = threading.Thread(target=lambda: second.append("".join(engine.generate("Hello", GREEDY))))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and engine.queue_info().n_waiting == 1
        rest = "".join(first)
        waiter.join(60)
        assert rest and second and second[0]


def test_a_waiting_request_can_be_cancelled(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=512, n_threads=2)) as engine:
        first = engine.generate("Once upon a time", max_tokens=100, ignore_eos=True)
        next(first)
        stream = engine.create(chat("Hi"), GREEDY)
        out = []
        waiter = threading.Thread(target=lambda: out.extend(stream))
        waiter.start()
        for _ in range(500):
            if engine.queue_info().n_waiting == 1:
                break
            time.sleep(0.01)
        stream.cancel()
        waiter.join(30)
        assert not waiter.is_alive()
        assert out[-1].finish_reason == "cancelled" and engine.queue_info().n_waiting == 0
        first.close()


def test_a_common_system_prompt_is_evaluated_once(engine):
    system = ("You are a meticulous assistant for a geography quiz. Answer with the name of the "
              "place only, no explanation, and never more than three words. ") * 7
    assert engine.get_token_count(system) >= 200
    first = engine.complete([{"role": "system", "content": system}, *chat("Capital of Spain?")],
                            GREEDY)
    # while the first request's sequence is busy, the prefix is copied into another sequence
    hold = engine.generate("Unrelated text that keeps a sequence busy", max_tokens=200, ignore_eos=True)
    next(hold)
    second = engine.complete([{"role": "system", "content": system}, *chat("Capital of Italy?")],
                             GREEDY)
    hold.close()
    assert first.usage.prompt_tokens - first.usage.cached_prompt_tokens >= 200  # evaluated once
    assert second.usage.cached_prompt_tokens >= engine.get_token_count(system)


def test_chat_sessions_of_two_users_keep_their_sequences(engine):
    a, b = ChatSession(engine, system_prompt="You are brief."), ChatSession(engine)
    a.send("Tell me about cats.", GREEDY)
    b.send("Tell me about the sea.", GREEDY)
    second_a = a.send("And dogs?", GREEDY)
    second_b = b.send("And rivers?", GREEDY)
    # each new turn reuses its own conversation's cache: only the new tokens are evaluated
    for reply in (second_a, second_b):
        assert reply.usage.cached_prompt_tokens >= reply.usage.prompt_tokens - 30


def test_eight_async_tasks_interleave_and_the_loop_keeps_ticking(smollm2_path, alone):
    async def main():
        params = ModelParams(n_ctx=1024, n_threads=2, n_parallel=4)
        async with AsyncLlamaEngine(smollm2_path, params) as engine:
            ticks = 0
            done = asyncio.Event()

            async def ticker():
                nonlocal ticks
                while not done.is_set():
                    ticks += 1
                    await asyncio.sleep(0.001)

            async def ask(question):
                return "".join([c.text async for c in engine.create(chat(question), GREEDY)])

            tick_task = asyncio.create_task(ticker())
            replies = await asyncio.gather(*(ask(QUESTIONS[i % 4]) for i in range(8)))
            done.set()
            await tick_task
            return replies, ticks

    replies, ticks = asyncio.run(main())
    assert replies == alone * 2
    assert ticks > 50


def test_cancelling_one_async_task_leaves_the_others(smollm2_path, alone):
    async def main():
        params = ModelParams(n_ctx=1024, n_threads=2, n_parallel=2)
        async with AsyncLlamaEngine(smollm2_path, params) as engine:
            async def ask(question):
                return "".join([c.text async for c in engine.create(chat(question), GREEDY)])

            victim = asyncio.create_task(ask(QUESTIONS[1]))
            keeper = asyncio.create_task(ask(QUESTIONS[0]))
            await asyncio.sleep(0.3)
            victim.cancel()
            victim.cancel()  # twice: the engine stays ready
            result = await keeper
            with pytest.raises(asyncio.CancelledError):
                await victim
            after = await ask(QUESTIONS[3])
            return result, after, engine.queue_info()

    result, after, info = asyncio.run(main())
    assert result == alone[0] and after == alone[3]
    assert info.n_active == 0 and info.n_waiting == 0


def test_a_unified_cache_serves_concurrent_requests_and_shares_a_prefix(smollm2_path):
    """kv_unified=True: one cache buffer for every sequence (one graph run per step whatever
    sequences take part); each request still gets n_ctx tokens, and a common system prompt is
    shared between sequences rather than copied."""
    params = ModelParams(n_ctx=512, n_threads=2, n_parallel=4, kv_unified=True)
    with LlamaEngine(smollm2_path, params) as engine:
        assert engine.context.n_ctx_seq == 512
        system = "You answer in one short sentence about geography and nothing else. " * 4
        many = GREEDY.replace(max_tokens=24, ignore_eos=True)
        first = engine.complete([{"role": "system", "content": system}, *chat("Capital of Peru?")],
                                GREEDY)
        replies = in_threads(
            lambda q: engine.complete([{"role": "system", "content": system}, *chat(q)], many),
            QUESTIONS,
        )
        assert [r.usage.completion_tokens for r in replies] == [24] * 4
        n_system = engine.get_token_count(system)
        assert all(r.usage.cached_prompt_tokens >= n_system for r in replies)
        assert first.usage.cached_prompt_tokens < n_system
        # a request that fills its share ends with "length", the others are untouched
        long = engine.complete(chat("Count upwards."), GREEDY.replace(max_tokens=None, ignore_eos=True))
        assert long.finish_reason == "length"
        assert long.usage.prompt_tokens + long.usage.completion_tokens <= 513


@pytest.mark.parametrize("prompt_cache_mib", [64, 0])
def test_the_prompt_cache_keeps_a_conversation_other_requests_pushed_out(smollm2_path,
                                                                         prompt_cache_mib):
    """Two sequences, three users: the first user's prompt leaves the sequences, and comes
    back from host memory instead of being evaluated again (unless the cache is off)."""
    params = ModelParams(n_ctx=1024, n_threads=2, n_parallel=2, prompt_cache_mib=prompt_cache_mib)
    with LlamaEngine(smollm2_path, params) as engine:
        users = [chat("Tell me a short story about a lighthouse keeper and his old dog."),
                 chat("What is the boiling point of water at sea level, in Celsius?"),
                 chat("List some fruits that are red and sweet, and say why.")]  # fmt: skip
        first = engine.complete(users[0], GREEDY)
        for messages in users[1:]:
            engine.complete(messages, GREEDY)
        again = engine.complete(users[0], GREEDY)
        assert again.text == first.text
        restored = engine.context.batch_stats()["prompt_cache_restored"]
        if prompt_cache_mib:
            assert again.usage.cached_prompt_tokens == again.usage.prompt_tokens - 1
            assert restored == 1
        else:
            assert again.usage.cached_prompt_tokens < again.usage.prompt_tokens - 10
            assert restored == 0
