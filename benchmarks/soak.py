"""Soak: resident memory over 1,000 load/generate/close cycles and 2,000 chat completions.

    python benchmarks/soak.py -t 1                      # SmolLM2-135M, the full counts
    python benchmarks/soak.py -t 1 --cycles 100 --creates 200 --every 20   # a quick run

Two phases in one process, each model in turn:

- cycles: ``LlamaEngine`` loads the model, generates ``--max-tokens`` greedy tokens from a fixed
  prompt and is closed, ``--cycles`` times;
- creates: one engine answers the same chat request (``create``, streamed, greedy)
  ``--creates`` times.

The resident set size (RSS) is read after every iteration and printed every ``--every``. The
first ``--warmup`` iterations of a phase fill caches (allocator arenas, the page cache of the
mapped model, compiled templates) and are left out. The growth is the median RSS of the last
tenth of the iterations minus that of the first tenth after the warm-up; a phase passes when
it is at most ``--bound-mib`` and every output equals the first one (greedy decoding is
deterministic). Exits with status 1 when a phase fails. Needs psutil (``pip install -e
".[bench]"``). Memory does not depend on the machine's load, so it does not wait for a quiet
machine unless ``--max-wait`` is given.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
from llamabind import GenerationParams, LlamaEngine, ModelParams

PROMPT = "The capital of France is"
MESSAGES = [{"role": "user", "content": "Name three colors."}]
MIB = 2**20


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def run_phase(
    name: str, n: int, step: Callable[[], str], args: argparse.Namespace
) -> dict[str, Any]:
    """Runs ``step`` n times; RSS after each, outputs compared with the first."""
    rss: list[int] = []
    first: str | None = None
    n_changed = 0
    first_change: dict[str, Any] | None = None
    start = time.perf_counter()
    print(f"\n{name}: {n} iterations (RSS in MiB)", flush=True)
    print(f"{'iteration':>9} {'RSS':>8} {'vs warm-up':>10} {'elapsed s':>9}", flush=True)
    for i in range(1, n + 1):
        text = step()
        rss.append(rss_bytes())
        if first is None:
            first = text
        elif text != first:
            n_changed += 1
            first_change = first_change or {"iteration": i, "text": text}
        if i % args.every == 0 or i in (1, n):
            base = rss[min(args.warmup, len(rss)) - 1]
            print(
                f"{i:>9} {rss[-1] / MIB:>8.1f} {(rss[-1] - base) / MIB:>+10.1f} "
                f"{time.perf_counter() - start:>9.0f}",
                flush=True,
            )
    return summarize(
        name, rss, first or "", n_changed, first_change, time.perf_counter() - start, args
    )


def summarize(
    name: str,
    rss: list[int],
    first: str,
    n_changed: int,
    first_change: dict[str, Any] | None,
    seconds: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    after = rss[args.warmup :] or rss
    window = max(len(after) // 10, 1)
    early = statistics.median(after[:window])
    late = statistics.median(after[-window:])
    growth = (late - early) / MIB
    # Least-squares slope over the iterations after the warm-up, in KiB per iteration.
    xs = range(len(after))
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(after)
    var = sum((x - mean_x) ** 2 for x in xs) or 1.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, after)) / var / 1024
    passed = growth <= args.bound_mib and n_changed == 0
    print(
        f"{name}: RSS {early / MIB:.1f} -> {late / MIB:.1f} MiB after the warm-up "
        f"(growth {growth:+.1f} MiB, bound {args.bound_mib} MiB; slope {slope:+.2f} KiB/iteration; "
        f"min {min(after) / MIB:.1f}, max {max(after) / MIB:.1f}); outputs changed: {n_changed} "
        f"-> {'PASS' if passed else 'FAIL'}",
        flush=True,
    )
    if first_change:
        print(
            f"  first output {first!r}, iteration {first_change['iteration']} gave "
            f"{first_change['text']!r}",
            flush=True,
        )
    return {
        "phase": name,
        "iterations": len(rss),
        "seconds": round(seconds, 1),
        "rss_mib_every_10": [round(b / MIB, 1) for b in rss[9::10]],
        "rss_first_mib": round(rss[0] / MIB, 1),
        "rss_after_warmup_mib": round(early / MIB, 1),
        "rss_last_mib": round(late / MIB, 1),
        "growth_mib": round(growth, 2),
        "slope_kib_per_iteration": round(slope, 3),
        "rss_max_mib": round(max(after) / MIB, 1),
        "bound_mib": args.bound_mib,
        "output": first,
        "outputs_changed": n_changed,
        "first_change": first_change,
        "passed": passed,
    }


def measure_model(label: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    model_params = ModelParams(
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        flash_attn=args.flash_attn,
    )
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.0)

    def cycle() -> str:
        engine = LlamaEngine(str(path), model_params)
        try:
            return "".join(engine.generate(PROMPT, params))
        finally:
            engine.close()

    print(f"\n== {label} ==", flush=True)
    phases = [run_phase("cycles (load, generate, close)", args.cycles, cycle, args)]
    with LlamaEngine(str(path), model_params) as engine:

        def create() -> str:
            return "".join(chunk.text for chunk in engine.create(MESSAGES, params))

        phases.append(run_phase("creates (one engine)", args.creates, create, args))
    return {
        "model": label,
        "file": path.name,
        "phases": phases,
        "passed": all(p["passed"] for p in phases),
    }


def main() -> None:
    parser = harness.common_parser(__doc__, default_models=("smollm2",), with_llama_bench=False)
    parser.add_argument(
        "--cycles", type=int, default=1000, help="load/generate/close cycles (default 1000)"
    )
    parser.add_argument(
        "--creates", type=int, default=2000, help="create calls on one engine (default 2000)"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=8, help="greedy tokens per generation (default 8)"
    )
    parser.add_argument("--n-ctx", type=int, default=512, help="context size (default 512)")
    parser.add_argument(
        "--every",
        type=int,
        default=100,
        help="print the RSS every this many iterations (default 100)",
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="iterations left out of the growth (default 20)"
    )
    parser.add_argument(
        "--bound-mib",
        type=float,
        default=16.0,
        help="the most RSS may grow after the warm-up, in MiB (default 16)",
    )
    parser.set_defaults(max_wait=0.0)
    args = parser.parse_args()
    if min(args.cycles, args.creates, args.every) < 1 or args.warmup < 0:
        raise SystemExit("--cycles, --creates and --every must be positive, --warmup >= 0")
    info, quiet, results = harness.run_models(
        args, lambda label, path: measure_model(label, path, args)
    )
    harness.write_json(
        args,
        "soak",
        {
            "machine": info,
            "quiet": quiet,
            "settings": {
                "threads": args.threads,
                "n_gpu_layers": args.n_gpu_layers,
                "flash_attn": args.flash_attn,
                "cycles": args.cycles,
                "creates": args.creates,
                "max_tokens": args.max_tokens,
                "n_ctx": args.n_ctx,
                "warmup": args.warmup,
                "bound_mib": args.bound_mib,
            },
            "models": results,
        },
    )
    failed = [r["model"] for r in results if not r["passed"]]
    print("soak: " + (f"FAIL ({', '.join(failed)})" if failed else "PASS"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
