"""ChatSession on SmolLM2: history, KV-cache reuse across turns, trimming, rollback, tool loop."""

from __future__ import annotations

import itertools
import threading

import pytest
from llamabind import (
    AsyncLlamaEngine,
    ChatSession,
    GenerationParams,
    LlamaChatRole,
    LlamaEngine,
    ModelParams,
    StateError,
    TemplateError,
)

SHORT = GenerationParams(temperature=0, max_tokens=24)


@pytest.fixture(scope="module")
def engine(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=2048, n_threads=2)) as engine:
        yield engine


def get_weather(city: str) -> dict:
    """Gets the current weather of a city.

    Args:
        city: The city name.
    """
    return {"city": city, "temperature_c": 21, "sky": "sunny"}


def test_history_grows_and_reset(engine):
    session = ChatSession(engine, system_prompt="You are brief.")
    first = session.send("Hi! What is 2 + 2?", SHORT)
    assert first.text and first.finish_reason in ("stop", "length")
    assert [m.role for m in session.history] == [LlamaChatRole.USER, LlamaChatRole.ASSISTANT]
    assert session.history[1].text == first.text
    assert session.messages()[0].role is LlamaChatRole.SYSTEM
    session.add_message({"role": "user", "content": "noted"})
    assert len(session.history) == 3
    session.reset()
    assert session.history == [] and session.system_prompt == "You are brief."
    session.reset(keep_system_prompt=False)
    assert session.system_prompt is None


def test_each_turn_evaluates_only_its_new_tokens(engine):
    session = ChatSession(engine, system_prompt="You are a helpful assistant.")
    usages = []
    for i in range(8):
        chunks = list(session.create(f"Tell me one fact about the number {i}.", SHORT))
        usages.append(chunks[-1].usage)
    for before, after in itertools.pairwise(usages):
        # Everything up to the previous reply is reused from the KV cache.
        assert after.cached_prompt_tokens >= before.prompt_tokens
        assert after.prompt_tokens - after.cached_prompt_tokens < 40
    # Turn 8 evaluates about as many tokens as turn 2, although its history is much longer.
    new_2 = usages[1].prompt_tokens - usages[1].cached_prompt_tokens
    new_8 = usages[7].prompt_tokens - usages[7].cached_prompt_tokens
    assert usages[7].prompt_tokens > 3 * usages[1].prompt_tokens / 2
    assert new_8 <= new_2 + 10


def test_oldest_turns_are_dropped_when_the_context_would_overflow(engine):
    session = ChatSession(engine, system_prompt="You are brief.", max_context_tokens=200)
    for i in range(6):
        session.send(f"Question number {i}: name a color.", GenerationParams(temperature=0, max_tokens=16))
        prompt_tokens = engine.chat_template(session.messages()).token_count
        assert prompt_tokens <= 200
    users = [m.text for m in session.history if m.role is LlamaChatRole.USER]
    assert users[-1].startswith("Question number 5") and "Question number 0" not in " ".join(users)
    assert session.system_prompt == "You are brief." and session.last_request_fit_context


def test_a_failing_turn_is_rolled_back(engine):
    session = ChatSession(engine)
    session.send("Hello", SHORT)
    before = session.history
    with pytest.raises(ValueError):
        list(session.create("again", SHORT, response_format={"type": "nonsense"}))
    assert session.history == before


def test_a_cancelled_or_abandoned_turn_leaves_history_as_before(engine):
    session = ChatSession(engine)
    stream = session.create("Tell me a story.", SHORT)
    stream.close()  # never started: nothing generated
    assert session.history == []
    session.send("Hello", SHORT)
    before = session.history
    stream = session.create("Tell me a long story.", GenerationParams(max_tokens=None, ignore_eos=True))
    for n, _ in enumerate(stream):
        if n == 3:
            break
    stream.close()  # the caller stopped after some chunks: the turn is taken back out
    assert session.history == before
    chunks = []
    for chunk in session.create("Tell me a long story.", max_tokens=None, ignore_eos=True):
        chunks.append(chunk)
        if len(chunks) == 3:
            engine.cancel_generation()
    assert chunks[-1].finish_reason == "cancelled"
    assert session.history == before


def test_a_failed_turn_brings_back_the_turns_trimmed_for_it(engine):
    session = ChatSession(engine, system_prompt="You are brief.", max_context_tokens=160)
    for i in range(8):
        session.add_message({"role": "user", "content": f"Question {i}: what is {i} + {i}?"})
        session.add_message({"role": "assistant", "content": f"It is {2 * i}, as you can see."})
    before = session.history
    with pytest.raises(ValueError, match="response_format"):
        session.send("And 9 + 9?", SHORT, response_format={"type": "nonsense"})
    assert session.history == before  # trimming had dropped the first turns; they are back


def test_turns_take_request_keywords(engine):
    session = ChatSession(engine)
    reply = session.send("Hi!", temperature=0, max_tokens=5)
    assert reply.usage.completion_tokens <= 5 and len(session.history) == 2
    with pytest.raises(TypeError, match=r"ChatSession.send\(\) .*'maxTokens'; did you mean max_tokens"):
        session.send("Hi!", maxTokens=5)
    with pytest.raises(TypeError, match="multiple values for argument 'tools'"):
        session.send_with_tools("Hi", [get_weather], tools=[get_weather])
    assert len(session.history) == 2


def test_one_turn_at_a_time(engine):
    session = ChatSession(engine)
    stream = session.create("Count to ten.", SHORT)
    next(stream)  # the turn is running
    errors = []

    def other_thread():
        try:
            session.send("Hello from another thread", SHORT)
        except StateError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=120)
    assert len(errors) == 1 and "running a turn already" in str(errors[0])
    with pytest.raises(StateError, match="running a turn already"):
        session.send("Hello again", SHORT)
    list(stream)
    assert [m.role for m in session.history] == [LlamaChatRole.USER, LlamaChatRole.ASSISTANT]
    session.send("Now it is my turn.", SHORT)  # the finished turn freed the session
    assert len(session.history) == 4


def test_a_chat_session_needs_the_sync_engine(smollm2_path):
    engine = AsyncLlamaEngine(smollm2_path)
    with pytest.raises(TypeError, match=r"got AsyncLlamaEngine: for an AsyncLlamaEngine use "
                                        r"AsyncChatSession\(engine\)"):
        ChatSession(engine)
    with pytest.raises(TypeError, match="ChatSession runs on a LlamaEngine"):
        ChatSession("model.gguf")


def test_a_broken_template_raises_and_keeps_history(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=512, chat_template="{{ raise_exception('no') }}")) as engine:
        session = ChatSession(engine)
        with pytest.raises(TemplateError):
            session.send("hi", SHORT)
        assert session.history == []


def test_two_step_tool_loop(engine):
    session = ChatSession(engine)
    result = session.send_with_tools("What's the weather in Paris?", [get_weather],
                                     tool_choice="required", params=GenerationParams(temperature=0, max_tokens=80))
    assert result.stop_reason == "completed" and not result.rolled_back
    roles = [m.role for m in session.history]
    assert roles[:3] == [LlamaChatRole.USER, LlamaChatRole.ASSISTANT, LlamaChatRole.TOOL]
    assert roles[-1] is LlamaChatRole.ASSISTANT
    call = session.history[1].tool_calls[0]
    assert call.name == "get_weather" and call.arguments == {"city": "Paris"}
    assert session.history[2].tool_results[0].id == call.id
    assert "21" in result.text or "sunny" in result.text.lower()  # it read the tool result
    # The history (tool call and result included) renders back for the next turn.
    follow_up = session.send("Thanks!", SHORT, tools=[get_weather], tool_choice="none")
    assert follow_up.finish_reason in ("stop", "length")


def test_tool_loop_stop_reasons(engine):
    params = GenerationParams(temperature=0, max_tokens=80)
    no_handler = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    session = ChatSession(engine)
    result = session.send_with_tools("Weather in Rome?", [no_handler], tool_choice="required", params=params)
    assert result.stop_reason == "unhandled_tool_calls" and result.pending_tool_calls[0].name == "get_weather"
    assert session.history[-1].tool_calls  # kept, for the caller to answer

    session = ChatSession(engine)
    result = session.send_with_tools("Weather in Rome?", [get_weather], tool_choice="required",
                                     params=params, max_rounds=0)
    assert result.stop_reason == "max_rounds" and result.rolled_back and session.history == []

    session = ChatSession(engine)
    seen = []
    result = session.send_with_tools("Weather in Rome?", [no_handler], tool_choice="required", params=params,
                                     on_tool_call=lambda call: seen.append(call.name) or {"temperature_c": 9})
    assert seen == ["get_weather"] and result.stop_reason == "completed"

    def broken(city: str) -> str:
        raise RuntimeError("service down")

    session = ChatSession(engine)
    result = session.send_with_tools("Weather in Rome?", [broken], tool_choice="required", params=params)
    assert "service down" in session.history[2].tool_results[0].text
    with pytest.raises(ValueError):
        session.send_with_tools("x", [get_weather], max_rounds=-1)


def test_an_async_tool_handler_needs_the_async_session(engine):
    async def get_weather_async(city: str) -> dict:
        """Gets the current weather of a city.

        Args:
            city: The city name.
        """
        return {"city": city}

    session = ChatSession(engine)
    result = session.send_with_tools("What's the weather in Paris?", [get_weather_async],
                                     tool_choice="required", temperature=0, max_tokens=80)
    answer = session.history[2].tool_results[0].result
    assert result.rounds >= 2 and "AsyncChatSession.send_with_tools" in answer["error"]


def test_cancel_stops_this_sessions_turn_only(engine):
    session = ChatSession(engine)
    session.cancel()  # no turn: nothing happens
    assert session.send("Hi!", SHORT).finish_reason in ("stop", "length")
    before = session.history
    chunks = []
    for chunk in session.create("Tell me a long story.", max_tokens=None, ignore_eos=True):
        chunks.append(chunk)
        if len(chunks) == 2:
            session.cancel()
    assert chunks[-1].finish_reason == "cancelled" and session.history == before

    calls = []

    def slow_weather(city: str) -> dict:
        """Gets the current weather of a city.

        Args:
            city: The city name.
        """
        calls.append(city)
        session.cancel()  # cancelled between the rounds of the tool loop
        return {"city": city}

    result = session.send_with_tools("What's the weather in Paris?", [slow_weather],
                                     tool_choice="required", temperature=0, max_tokens=80)
    assert calls and result.stop_reason == "cancelled" and result.rolled_back
    assert session.history == before
    assert session.send("Bye!", SHORT).text  # the next turn runs normally
