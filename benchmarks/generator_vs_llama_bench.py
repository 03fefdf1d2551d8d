"""Generation speed of the native Generator against llama.cpp's llama-bench, in one run.

    python benchmarks/generator_vs_llama_bench.py MODEL.gguf [--llama-bench PATH] [-t 2] [-n 128] [-r 5]

Our number: tokens/s of ``Context.generate`` with a greedy sampler over ``n`` tokens after a
short prompt (decode + sampling + handing each token to Python), the median of ``r`` runs
after a warm-up run. The ceiling: ``llama-bench -p 0 -n N -t T`` (decode only) built from the
same vendored llama.cpp sources, run in the same process tree right after ours. Runs are
interleaved (ours, llama-bench, ours, ...) so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess

from llamabind import _native


def ours(model: _native.Model, n_tokens: int, n_threads: int) -> float:
    with _native.Context(model, n_ctx=n_tokens + 64, n_threads=n_threads) as ctx:
        prompt = model.tokenize("Once upon a time", add_special=True)
        gen = ctx.generate(prompt, _native.Sampler(model, temperature=0), max_tokens=n_tokens, ignore_eog=True)
        for _ in gen:
            pass
        return (gen.n_generated_tokens - 1) / (gen.t_generation_ms / 1000)


def llama_bench(binary: str, path: str, n_tokens: int, n_threads: int) -> float:
    out = subprocess.run(
        [binary, "-m", path, "-p", "0", "-n", str(n_tokens), "-t", str(n_threads), "-r", "1", "-o", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(json.loads(out)[0]["avg_ts"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--llama-bench", help="llama-bench built from vendor/llama.cpp")
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-n", "--tokens", type=int, default=128)
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    args = parser.parse_args()

    model = _native.Model(args.model)
    ours(model, 16, args.threads)  # warm-up
    rows: dict[str, list[float]] = {"llamabind Generator": [], "llama-bench tg": []}
    for _ in range(args.repetitions):
        rows["llamabind Generator"].append(ours(model, args.tokens, args.threads))
        if args.llama_bench:
            rows["llama-bench tg"].append(llama_bench(args.llama_bench, args.model, args.tokens, args.threads))
    print(f"machine: {platform.processor() or platform.machine()}, threads {args.threads}, tg{args.tokens}")
    result = {}
    for name, values in rows.items():
        if values:
            med = statistics.median(values)
            result[name] = {"median_tps": med, "min": min(values), "max": max(values)}
            print(f"{name:22s} median {med:7.1f} t/s  (min {min(values):.1f}, max {max(values):.1f})")
    if rows["llama-bench tg"]:
        ratio = result["llamabind Generator"]["median_tps"] / result["llama-bench tg"]["median_tps"]
        print(f"ratio Generator / llama-bench: {ratio:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
