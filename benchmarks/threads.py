"""GIL release: generations in parallel threads, and generation beside a busy Python thread.

    python benchmarks/threads.py                  # SmolLM2-135M and Gemma 3 270M
    python benchmarks/threads.py -m smollm2 -r 5

Two measurements per model, on one shared ``Model`` with contexts of ``n_threads=1``:

- Parallel: one thread generating 128 tokens on one context, against two threads generating
  128 tokens each on two contexts at the same time. The aggregate tokens/s of the pair over
  the single one is ~2 when each ``next()`` runs without the GIL (and the two cores are free).
- Busy Python: tokens/s of one generation alone, and while another thread runs pure-Python
  CPU work (which holds the GIL whenever it runs); and how much work that thread gets done
  beside the generation compared with alone. Run at CPython's default switch interval (5 ms)
  and at 0.5 ms: a thread that wants the GIL back after a native call waits up to one switch
  interval for the busy thread to let go, once per token.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import harness
from llamabind import _native

PROMPT = "Once upon a time"
SWITCH_INTERVALS_S = (0.005, 0.0005)


def generate(model: _native.Model, context: _native.Context, n_gen: int) -> float:
    """Generates ``n_gen`` greedy tokens from a fresh cache; returns the wall seconds."""
    context.memory_clear()
    sampler = _native.Sampler(model, temperature=0.0)
    prompt = model.tokenize(PROMPT, add_special=True)
    start = time.perf_counter()
    for _ in context.generate(prompt, sampler, max_tokens=n_gen, ignore_eog=True):
        pass
    return time.perf_counter() - start


def parallel_round(model: _native.Model, contexts: list[_native.Context], n_gen: int) -> dict[str, float]:
    """Tokens/s of one thread alone and of two threads together (aggregate)."""
    single_s = generate(model, contexts[0], n_gen)
    barrier = threading.Barrier(len(contexts) + 1)
    errors: list[BaseException] = []

    def worker(context: _native.Context) -> None:
        try:
            barrier.wait()
            generate(model, context, n_gen)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread after join)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(ctx,)) for ctx in contexts]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    both_s = time.perf_counter() - start
    if errors:
        raise errors[0]
    single = n_gen / single_s
    aggregate = len(contexts) * n_gen / both_s
    return {"single_tps": single, "aggregate_tps": aggregate, "speedup": aggregate / single}


def busy_python(stop: threading.Event, counter: list[int]) -> None:
    """Pure-Python CPU work, counting loop iterations until ``stop`` is set."""
    n = 0
    while not stop.is_set():
        for _ in range(1000):
            n += 1
    counter[0] = n


def busy_rate(seconds: float) -> float:
    """Iterations/s of ``busy_python`` with nothing else running."""
    stop = threading.Event()
    counter = [0]
    thread = threading.Thread(target=busy_python, args=(stop, counter))
    start = time.perf_counter()
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join()
    return counter[0] / (time.perf_counter() - start)


def busy_round(model: _native.Model, context: _native.Context, n_gen: int,
               switch_interval_s: float) -> dict[str, float]:
    """Generation alone and beside the busy thread, at one switch interval."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval_s)
    try:
        alone_s = generate(model, context, n_gen)
        python_alone = busy_rate(min(alone_s, 2.0))
        stop = threading.Event()
        counter = [0]
        thread = threading.Thread(target=busy_python, args=(stop, counter))
        start = time.perf_counter()
        thread.start()
        beside_s = generate(model, context, n_gen)
        stop.set()
        thread.join()
        python_beside = counter[0] / (time.perf_counter() - start)
    finally:
        sys.setswitchinterval(previous)
    return {"alone_tps": n_gen / alone_s, "beside_tps": n_gen / beside_s,
            "generation_kept": alone_s / beside_s,
            "python_alone_per_s": python_alone, "python_beside_per_s": python_beside,
            "python_kept": python_beside / python_alone}


def measure_model(label: str, path: Path, args: Any) -> dict[str, Any]:
    model = _native.Model(str(path), n_gpu_layers=args.n_gpu_layers)
    fa = {"auto": -1, "off": 0, "on": 1}[args.flash_attn]
    contexts = [_native.Context(model, n_ctx=args.n_gen + 64, n_threads=1, n_threads_batch=1,
                                flash_attn=fa) for _ in range(2)]
    samples: dict[str, list[float]] = {}
    try:
        generate(model, contexts[0], 16)  # warm-up
        generate(model, contexts[1], 16)
        for round_no in range(args.repetitions):
            for key, value in parallel_round(model, contexts, args.n_gen).items():
                samples.setdefault(f"parallel_{key}", []).append(value)
            for interval in SWITCH_INTERVALS_S:
                tag = f"busy_{interval * 1000:g}ms"
                for key, value in busy_round(model, contexts[0], args.n_gen, interval).items():
                    samples.setdefault(f"{tag}_{key}", []).append(value)
            print(f"  {label}: round {round_no + 1}/{args.repetitions} done", file=sys.stderr,
                  flush=True)
    finally:
        for context in contexts:
            context.close()
        model.close()
    return {"model": label, "file": path.name, "samples": samples,
            "summary": harness.summarize(samples)}


def print_tables(results: list[dict[str, Any]], args: Any) -> None:
    print(f"\nParallel generation: {args.n_gen} tokens per thread, contexts of n_threads=1, "
          "one shared Model (tokens/s)")
    rows = []
    for r in results:
        s = r["summary"]
        rows.append([r["model"], s["parallel_single_tps"].fmt(), s["parallel_aggregate_tps"].fmt(),
                     s["parallel_speedup"].fmt(3)])
    harness.print_table(["model", "1 thread", "2 threads, aggregate", "speed-up (target ≥ 1.8)"],
                        rows)

    print("\nGeneration beside a busy pure-Python thread (n_threads=1 for the generation)")
    rows = []
    for r in results:
        s = r["summary"]
        for interval in SWITCH_INTERVALS_S:
            tag = f"busy_{interval * 1000:g}ms"
            rows.append([r["model"], f"{interval * 1000:g} ms", s[f"{tag}_alone_tps"].fmt(),
                         s[f"{tag}_beside_tps"].fmt(), s[f"{tag}_generation_kept"].fmt(3),
                         s[f"{tag}_python_kept"].fmt(3)])
    harness.print_table(["model", "switch interval", "tokens/s alone", "tokens/s beside",
                         "generation kept", "Python work kept"], rows)


def main() -> None:
    parser = harness.common_parser(__doc__, with_threads=False, with_llama_bench=False)
    parser.add_argument("-n", "--n-gen", type=int, default=128, help="tokens per generation")
    args = parser.parse_args()
    args.threads = 1  # every context here uses one thread
    info, quiet, results = harness.run_models(
        args, lambda label, path: measure_model(label, path, args))
    print(f"{args.repetitions} rounds; medians ±spread (max-min)/median")
    print_tables(results, args)
    harness.write_json(args, "threads", {"machine": info, "quiet": quiet, "settings": {
        "n_gen": args.n_gen, "n_gpu_layers": args.n_gpu_layers, "flash_attn": args.flash_attn,
        "repetitions": args.repetitions, "switch_intervals_s": list(SWITCH_INTERVALS_S)},
        "models": results})


if __name__ == "__main__":
    main()
