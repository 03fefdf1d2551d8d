"""Time to first token per turn over a 10-turn ChatSession: flat when the KV cache is reused.

    python benchmarks/chat_turns.py               # SmolLM2-135M-Instruct (a ChatML template)
    python benchmarks/chat_turns.py -m gemma3     # no template in its GGUF: ChatML fallback

Each round is a new conversation of 10 user turns (greedy replies of at most ``--max-tokens``
tokens). Per turn: the time to the first chunk as the caller sees it (``ChatSession.create``:
history rendered with the chat template, tokens counted for the context budget, prompt
evaluated), the engine's own time to first token (from the request to the first token), and
the prompt tokens evaluated against those found in the cache. After the last turn the
turn-10 prompt is evaluated again from an empty cache, to show what the reuse saves.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import harness
from llamabind import ChatSession, GenerationParams, LlamaEngine, ModelParams

SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."
QUESTIONS = [
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "How many legs does a spider have?",
    "What does a lighthouse do?",
    "Give me a word that rhymes with cat.",
    "What is two plus five?",
    "Which planet is closest to the sun?",
    "What do bees make?",
    "Name a fruit that is yellow.",
    "What season comes after winter?",
]


def conversation(engine: LlamaEngine, params: GenerationParams) -> tuple[list[dict[str, float]], float]:
    """One 10-turn conversation; per-turn timings, and turn 10 again with an empty cache."""
    engine.reset_cache()
    session = ChatSession(engine, system_prompt=SYSTEM_PROMPT)
    turns = []
    for question in QUESTIONS:
        start = time.perf_counter()
        first = None
        last = None
        for chunk in session.create(question, params):
            if first is None:
                first = time.perf_counter()
            last = chunk
        usage = last.usage
        turns.append({"ttft_ms": (first - start) * 1000,
                      "engine_ttft_ms": usage.time_to_first_token_ms,
                      "prompt_tokens": usage.prompt_tokens,
                      "cached_tokens": usage.cached_prompt_tokens,
                      "evaluated_tokens": usage.prompt_tokens - usage.cached_prompt_tokens,
                      "completion_tokens": usage.completion_tokens})
    last_prompt = session.messages()[:-1]  # turn 10's request, without its reply
    engine.reset_cache()
    start = time.perf_counter()
    stream = engine.create(last_prompt, params.replace(max_tokens=1))
    next(stream)
    cold_ms = (time.perf_counter() - start) * 1000
    for _ in stream:
        pass
    return turns, cold_ms


def measure_model(label: str, path: Path, args: Any) -> dict[str, Any]:
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.0, repeat_penalty=1.0)
    model_params = ModelParams(n_ctx=args.n_ctx, n_threads=args.threads,
                               n_threads_batch=args.threads, n_gpu_layers=args.n_gpu_layers,
                               flash_attn=args.flash_attn)
    per_turn: list[dict[str, list[float]]] = [{} for _ in QUESTIONS]
    cold: list[float] = []
    with LlamaEngine(path, model_params) as engine, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing-template notice, once is enough
        conversation(engine, params.replace(max_tokens=4))  # warm-up
        for round_no in range(args.repetitions):
            turns, cold_ms = conversation(engine, params)
            for slot, turn in zip(per_turn, turns):
                for key, value in turn.items():
                    slot.setdefault(key, []).append(value)
            cold.append(cold_ms)
            print(f"  {label}: conversation {round_no + 1}/{args.repetitions} done",
                  file=sys.stderr, flush=True)
    summaries = [harness.summarize(slot) for slot in per_turn]
    ratio = [t10 / t1 for t1, t10 in zip(per_turn[0]["ttft_ms"], per_turn[-1]["ttft_ms"])]
    engine_ratio = [t10 / t1 for t1, t10 in zip(per_turn[0]["engine_ttft_ms"],
                                                 per_turn[-1]["engine_ttft_ms"])]
    return {"model": label, "file": path.name, "turns": per_turn, "turn_summaries": summaries,
            "turn10_over_turn1": harness.Summary.of(ratio),
            "engine_turn10_over_turn1": harness.Summary.of(engine_ratio),
            "turn10_cold_ttft_ms": harness.Summary.of(cold)}


def print_tables(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"\n{r['model']}: time to first token per turn (ms), medians ±spread")
        rows = []
        for i, s in enumerate(r["turn_summaries"], 1):
            rows.append([i, s["ttft_ms"].fmt(), s["engine_ttft_ms"].fmt(),
                         f"{s['prompt_tokens'].median:.0f}", f"{s['cached_tokens'].median:.0f}",
                         f"{s['evaluated_tokens'].median:.0f}", f"{s['completion_tokens'].median:.0f}"])
        harness.print_table(["turn", "TTFT seen by caller", "engine TTFT", "prompt tokens",
                             "from cache", "evaluated", "reply tokens"], rows)
        print(f"turn 10 / turn 1: {r['turn10_over_turn1'].fmt(2)} (caller), "
              f"{r['engine_turn10_over_turn1'].fmt(2)} (engine); target ≤ 1.5")
        print(f"turn 10 prompt from an empty cache: {r['turn10_cold_ttft_ms'].fmt()} ms")


def main() -> None:
    parser = harness.common_parser(__doc__, default_models=("smollm2",), with_llama_bench=False)
    parser.add_argument("--max-tokens", type=int, default=48, help="reply limit per turn (default 48)")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context size (default 4096)")
    args = parser.parse_args()
    info, quiet, results = harness.run_models(
        args, lambda label, path: measure_model(label, path, args))
    print(f"{args.repetitions} conversations of {len(QUESTIONS)} turns, replies ≤ "
          f"{args.max_tokens} tokens, greedy, n_ctx {args.n_ctx}")
    print_tables(results)
    harness.write_json(args, "chat_turns", {"machine": info, "quiet": quiet, "settings": {
        "threads": args.threads, "n_gpu_layers": args.n_gpu_layers, "flash_attn": args.flash_attn,
        "max_tokens": args.max_tokens, "n_ctx": args.n_ctx, "repetitions": args.repetitions},
        "models": results})


if __name__ == "__main__":
    main()
