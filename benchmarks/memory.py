"""Peak memory and load time of llamabind against llama-bench, each in a fresh process.

    python benchmarks/memory.py                 # SmolLM2-135M and Gemma 3 270M
    python benchmarks/memory.py -m synthetic-llama-3.2-1b

Per model and round, three child processes (their peak RSS read with ``wait4``):

- llamabind: Python starts, imports llamabind, loads the Model and a Context of
  ``n_prompt + n_gen`` tokens (timed, RSS read with psutil), evaluates a ``n_prompt``-token
  prompt and generates ``n_gen`` tokens, and exits.
- llama-bench ``-p n_prompt -n n_gen -r 1``: the same work in llama.cpp's C++ tool.
- Both again with one generated token and nothing else (llama-bench ``-p 0 -n 1
  --no-warmup``): the wall time from process start to exit, i.e. start-up plus load.

Needs psutil (``pip install -e ".[bench]"``). The model file is read once before the
rounds, so every load finds it in the page cache.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import harness


def child(spec: dict[str, Any]) -> None:
    """Runs in the child process: load, then optionally a prompt and a generation."""
    import psutil

    process = psutil.Process()
    rss_start = process.memory_info().rss
    import llamabind  # noqa: F401  (the import is part of what is measured)
    from llamabind import _native

    rss_import = process.memory_info().rss
    start = time.perf_counter()
    model = _native.Model(spec["path"], n_gpu_layers=spec["n_gpu_layers"])
    model_s = time.perf_counter() - start
    context = _native.Context(model, n_ctx=spec["n_prompt"] + spec["n_gen"] + 1,
                              n_threads=spec["threads"], n_threads_batch=spec["threads"],
                              flash_attn={"auto": -1, "off": 0, "on": 1}[spec["flash_attn"]])
    load_s = time.perf_counter() - start
    rss_loaded = process.memory_info().rss
    sampler = _native.Sampler(model, temperature=0.0)
    n_prompt = max(spec["n_prompt"], 1)
    prompt = [model.special_tokens.get("bos", 0)] + [(7 * i + 3) % model.n_vocab
                                                      for i in range(1, n_prompt)]
    for _ in context.generate(prompt[:n_prompt], sampler, max_tokens=spec["n_gen"], ignore_eog=True):
        pass
    print(json.dumps({"model_load_ms": model_s * 1000, "load_ms": load_s * 1000,
                      "rss_start": rss_start, "rss_import": rss_import, "rss_loaded": rss_loaded,
                      "rss_end": process.memory_info().rss}))


def run_ours(path: Path, args: Any, n_prompt: int, n_gen: int) -> tuple[dict[str, Any], harness.ChildRun]:
    spec = {"path": str(path), "n_prompt": n_prompt, "n_gen": n_gen, "threads": args.threads,
            "n_gpu_layers": args.n_gpu_layers, "flash_attn": args.flash_attn}
    return harness.run_json_child(__file__, spec)


def measure_model(label: str, path: Path, args: Any, bench: Path | None) -> dict[str, Any]:
    path.read_bytes()  # into the page cache, so that no round pays for the disk
    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    common = {"threads": args.threads, "n_gpu_layers": args.n_gpu_layers,
              "flash_attn": args.flash_attn}
    for round_no in range(args.repetitions):
        facts, run = run_ours(path, args, args.n_prompt, args.n_gen)
        add("ours_peak_rss", run.peak_rss_bytes)
        for key in ("rss_start", "rss_import", "rss_loaded", "load_ms", "model_load_ms"):
            add(f"ours_{key}", facts[key])
        _, run = run_ours(path, args, 1, 1)
        add("ours_start_to_exit_s", run.wall_s)
        if bench is not None:
            _, run = harness.llama_bench(bench, path, n_prompt=args.n_prompt, n_gen=args.n_gen,
                                         **common)
            add("bench_peak_rss", run.peak_rss_bytes)
            _, run = harness.llama_bench(bench, path, n_prompt=0, n_gen=1, extra=["--no-warmup"],
                                         **common)
            add("bench_start_to_exit_s", run.wall_s)
        print(f"  {label}: round {round_no + 1}/{args.repetitions} done", file=sys.stderr,
              flush=True)
    return {"model": label, "file": path.name, "size_bytes": path.stat().st_size,
            "samples": samples, "summary": harness.summarize(samples)}


def print_tables(results: list[dict[str, Any]], args: Any) -> None:
    mib = 2**20
    print(f"\nMemory (MiB): peak RSS over load + {args.n_prompt}-token prompt + {args.n_gen} "
          "generated tokens; llamabind's RSS at Python start, after import and after load")
    rows = []
    for r in results:
        s = r["summary"]
        bench = s.get("bench_peak_rss")
        ours = s["ours_peak_rss"]
        rows.append([r["model"], f"{r['size_bytes'] / mib:.0f}",
                     f"{bench.median / mib:.0f}" if bench else "-", f"{ours.median / mib:.0f}",
                     f"{(ours.median - bench.median) / mib:+.0f}" if bench else "-",
                     f"{s['ours_rss_start'].median / mib:.0f}",
                     f"{s['ours_rss_import'].median / mib:.0f}",
                     f"{s['ours_rss_loaded'].median / mib:.0f}"])
    harness.print_table(["model", "file", "llama-bench peak", "llamabind peak", "difference",
                         "Python at start", "after import", "after load"], rows)

    print("\nLoad time: in process (Model + Context, ms) and process start to exit with one "
          "generated token (s)")
    rows = []
    for r in results:
        s = r["summary"]
        bench = s.get("bench_start_to_exit_s")
        rows.append([r["model"], s["ours_model_load_ms"].fmt(), s["ours_load_ms"].fmt(),
                     bench.fmt(2) if bench else "-", s["ours_start_to_exit_s"].fmt(2)])
    harness.print_table(["model", "llamabind Model (ms)", "llamabind Model + Context (ms)",
                         "llama-bench process (s)", "llamabind process (s)"], rows)


def main() -> None:
    parser = harness.common_parser(__doc__)
    parser.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens (default 512)")
    parser.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens (default 128)")
    args = parser.parse_args()
    try:
        import psutil  # noqa: F401
    except ImportError:
        raise SystemExit('memory.py needs psutil: pip install -e ".[bench]"') from None
    bench = harness.llama_bench_of(args)
    info, quiet, results = harness.run_models(
        args, lambda label, path: measure_model(label, path, args, bench))
    print_tables(results, args)
    harness.write_json(args, "memory", {"machine": info, "quiet": quiet, "settings": {
        "threads": args.threads, "n_gpu_layers": args.n_gpu_layers, "flash_attn": args.flash_attn,
        "n_prompt": args.n_prompt, "n_gen": args.n_gen, "repetitions": args.repetitions,
        "llama_bench": str(bench) if bench else None}, "models": results})


if __name__ == "__main__":
    spec = harness.child_spec(sys.argv)
    if spec is not None:
        child(spec)
    else:
        main()
