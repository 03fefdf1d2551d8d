"""Prompt and generation speed of llamabind against llama.cpp's llama-bench, in one run.

    python benchmarks/speed.py                                  # SmolLM2-135M and Gemma 3 270M
    python benchmarks/speed.py -m synthetic-llama-3.2-1b -r 2   # after synthetic_model.py
    python benchmarks/speed.py -m smollm2 --cuda -ngl -1        # a CUDA build, all layers on GPU

Per model and round, each contender in a process of its own that holds the model alone and
warms up first (a process generated 3-6 % faster on our CPU while another held the same model,
so none runs beside another's); the contenders take turns at going first, so that drift on a
shared machine hits all alike:

- llama-bench ``-p 512 -n 0`` and ``-p 0 -n 128 -d D``, one repetition each: pp512 and tg128
  tokens/s, the engine's ceiling (decode only, no sampling), built from the same llama.cpp by
  scripts/build_llama_bench.py.
- llamabind, prompt: a 512-token prompt (random ids, as llama-bench uses) evaluated from an
  empty cache; pp512 tokens/s from the native Generator's prompt timer, and time to first
  token through the Generator and through ``LlamaEngine.start_generation``.
- llamabind, generation of 128 tokens, greedy, end of text ignored, all three after the same
  prompt (one user message rendered with the model's chat template, D tokens): (a) the native
  ``Generator`` (wall time between the first and the last token handed to Python), (b)
  ``LlamaEngine.generate`` (text pieces) and (c) ``LlamaEngine.create`` (streamed chat
  chunks), both from their usage (the whole stream after the first token). Each is a ratio to
  llama-bench's tg128 at the same depth (``-d D``) of the same round, and an overhead in
  microseconds per token over llama-bench's.
- llama-cpp-python, when importable: the same prompt and generation through ``Llama.generate``
  (benchmarks/peer.py, a process without llamabind in it).

Medians over rounds, with the spread (max - min) / median.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import harness
from harness import Summary
from llamabind import GenerationParams, LlamaEngine, ModelParams, _native

PEER_SCRIPT = str(Path(__file__).with_name("peer.py"))
CHAT_MESSAGES = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


def greedy(max_tokens: int) -> GenerationParams:
    """Greedy, no penalties, end of text ignored: the same work as llama-bench's tg."""
    return GenerationParams(max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0,
                            ignore_eos=True)


def random_prompt(model: _native.Model, n_tokens: int) -> list[int]:
    """Random token ids, BOS first when the model adds one (llama-bench's pp prompt)."""
    rng = random.Random(1234)
    ids = [rng.randrange(model.n_vocab) for _ in range(n_tokens)]
    bos = model.special_tokens.get("bos", -1)
    if model.add_bos and bos >= 0:
        ids[0] = bos
    return ids


def after_first_token(usage: Any) -> float:
    """Tokens/s of a high-level stream after its first token, from its usage."""
    seconds = (usage.duration_ms - usage.time_to_first_token_ms) / 1000
    return (usage.completion_tokens - 1) / seconds


class Ours:
    """llamabind on one model: the engine, and its model and context for the native rows."""

    def __init__(self, path: Path, args: Any) -> None:
        params = ModelParams(n_ctx=args.n_prompt + args.n_gen + 128, n_threads=args.threads,
                             n_threads_batch=args.threads, n_gpu_layers=args.n_gpu_layers,
                             flash_attn=args.flash_attn)
        self.engine = LlamaEngine(path, params)
        self.model = self.engine.model
        self.context = self.engine.context
        self.prompt_ids = random_prompt(self.model, args.n_prompt)
        # The chat prompt that create() renders, as tokens, so that all three paths do the same work.
        rendered = self.engine.chat_template(CHAT_MESSAGES).prompt
        self.gen_prompt_ids = self.model.tokenize(rendered, add_special=True, parse_special=True)
        self.sampling_backend = ""
        bos = self.model.special_tokens.get("bos", -1)
        if len(self.gen_prompt_ids) > 1 and self.gen_prompt_ids[0] == self.gen_prompt_ids[1] == bos:
            self.gen_prompt_ids = self.gen_prompt_ids[1:]  # the template wrote BOS too

    def close(self) -> None:
        self.engine.close()

    def prompt_native(self) -> tuple[float, float]:
        """(pp tokens/s, time to first token in ms) through the native Generator."""
        self.context.memory_clear()
        sampler = _native.Sampler(self.model, temperature=0.0)
        start = time.perf_counter()
        gen = self.context.generate(self.prompt_ids, sampler, max_tokens=1, ignore_eog=True)
        next(gen)
        ttft_ms = (time.perf_counter() - start) * 1000
        pp = len(self.prompt_ids) / (gen.t_prompt_eval_ms / 1000)
        gen.close()
        return pp, ttft_ms

    def prompt_engine(self) -> float:
        """Time to first token in ms through LlamaEngine.start_generation (token ids)."""
        self.engine.reset_cache()
        run = self.engine.start_generation(self.prompt_ids, greedy(1))
        for _ in run:
            pass
        return run.usage.time_to_first_token_ms

    def generate_native(self, n_gen: int) -> tuple[float, float]:
        """(tokens/s seen by Python, tokens/s by the Generator's own timer)."""
        self.context.memory_clear()
        sampler = _native.Sampler(self.model, temperature=0.0)
        gen = self.context.generate(self.gen_prompt_ids, sampler, max_tokens=n_gen, ignore_eog=True)
        first = last = 0.0
        for _ in gen:
            last = time.perf_counter()
            if not first:
                first = last
        n = gen.n_generated_tokens
        self.sampling_backend = gen.sampling_backend  # "backend" (in the graph) or "cpu"
        return (n - 1) / (last - first), (n - 1) / (gen.t_generation_ms / 1000)

    def generate_engine(self, n_gen: int) -> float:
        self.engine.reset_cache()
        run = self.engine.start_generation(self.gen_prompt_ids, greedy(n_gen))
        for _ in run:
            pass
        return after_first_token(run.usage)

    def create_stream(self, n_gen: int) -> float:
        self.engine.reset_cache()
        last = None
        for chunk in self.engine.create(CHAT_MESSAGES, greedy(n_gen)):
            last = chunk
        return after_first_token(last.usage)


def generation_steps(ours: Ours, n_gen: int,
                     samples: dict[str, list[float]]) -> list[Callable[[], None]]:
    """One callable per generation path; each measures once and records its sample."""
    def native() -> None:
        seen, internal = ours.generate_native(n_gen)
        samples["native"].append(seen)
        samples["native_internal"].append(internal)

    return [native,
            lambda: samples["generate"].append(ours.generate_engine(n_gen)),
            lambda: samples["create"].append(ours.create_stream(n_gen))]


def child(spec: dict[str, Any]) -> None:
    """Runs in a child process: one contender's round on one model; prints its samples as JSON."""
    args = SimpleNamespace(**spec["args"])
    path = Path(spec["path"])
    if spec["role"] == "prepare":  # the prompts, and facts about the model
        ours = Ours(path, args)
        print(json.dumps({"prompt_ids": ours.prompt_ids, "gen_prompt_ids": ours.gen_prompt_ids,
                          "n_params": ours.model.n_params, "size_bytes": ours.model.size_bytes}))
        ours.close()
        return
    samples: dict[str, list[float]] = defaultdict(list)
    ours = Ours(path, args)
    try:
        ours.prompt_native()  # warm-up
        ours.generate_native(16)
        ours.generate_engine(16)
        ours.create_stream(16)
        pp, ttft = ours.prompt_native()
        samples["pp_native"].append(pp)
        samples["ttft_native_ms"].append(ttft)
        samples["ttft_engine_ms"].append(ours.prompt_engine())
        # The generation paths take turns at going first, so that none always follows
        # the prompt runs (or anything else that leaves the caches or clocks different).
        steps = generation_steps(ours, args.n_gen, samples)
        shift = spec["round"] % len(steps)
        for step in steps[shift:] + steps[:shift]:
            step()
    finally:
        ours.close()
    print(json.dumps({"samples": samples, "sampling_backend": ours.sampling_backend}))


def measure_model(label: str, path: Path, args: Any, bench: Path | None) -> dict[str, Any]:
    """Rounds of every contender, each in a process of its own that holds the model alone.

    On the machines we measured, generation in one process ran 3-6 % faster while another
    process held the same model loaded, so no contender may run beside another's model.
    """
    pp_key, tg_key = f"pp{args.n_prompt}", f"tg{args.n_gen}"
    samples: dict[str, list[float]] = {key: [] for key in (
        pp_key, tg_key, "pp_native", "ttft_native_ms", "ttft_engine_ms", "native", "native_internal",
        "generate", "create", "peer_ttft_ms", "peer")}
    started = time.perf_counter()
    common = {"threads": args.threads, "n_gpu_layers": args.n_gpu_layers,
              "flash_attn": args.flash_attn}
    spec = {"path": str(path), "args": {"n_prompt": args.n_prompt, "n_gen": args.n_gen, **common}}
    facts, _ = harness.run_json_child(__file__, {**spec, "role": "prepare"})
    depth = len(facts["gen_prompt_ids"])
    prompts = {"prompt_ids": facts["prompt_ids"], "gen_prompt_ids": facts["gen_prompt_ids"]}
    sampling_backend = ""

    def add(child_samples: dict[str, list[float]]) -> None:
        for key, values in child_samples.items():
            samples[key] += values

    def run_ours(round_no: int) -> None:
        nonlocal sampling_backend
        result, _ = harness.run_json_child(__file__, {**spec, "role": "ours", "round": round_no})
        sampling_backend = result["sampling_backend"]
        add(result["samples"])

    def run_peer(round_no: int) -> None:
        try:
            result, _ = harness.run_json_child(PEER_SCRIPT, {**spec, **prompts})
        except RuntimeError as exc:  # a broken peer install must not stop our rows
            print(f"llama-cpp-python failed on {path.name}: {exc}", file=sys.stderr)
            return
        add(result["samples"])

    def run_bench(round_no: int) -> None:
        tests, _ = harness.llama_bench(bench, path, n_prompt=args.n_prompt, n_gen=0, **common)
        samples[pp_key] += tests[pp_key]
        tests, _ = harness.llama_bench(bench, path, n_prompt=0, n_gen=args.n_gen,
                                       extra=["-d", str(depth)], **common)
        samples[tg_key] += tests[tg_key]

    contenders = [run_ours] + ([run_bench] if bench is not None else []) + (
        [run_peer] if args.peer else [])
    for round_no in range(args.repetitions):
        # The contenders take turns at going first: drift on a shared machine hits all alike.
        shift = round_no % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            contender(round_no)
        print(f"  {label}: round {round_no + 1}/{args.repetitions} done "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    result: dict[str, Any] = {"model": label, "file": path.name, "n_params": facts["n_params"],
                              "size_bytes": facts["size_bytes"], "generation_prompt_tokens": depth,
                              "sampling_backend": sampling_backend,
                              "samples": samples,
                              "summary": harness.summarize(samples)}
    if samples[tg_key]:
        paired: dict[str, list[float]] = {}
        for key in ("native", "native_internal", "generate", "create", "peer"):
            if len(samples[key]) == len(samples[tg_key]):
                tg = samples[tg_key]
                paired[f"{key}_ratio"] = [ours_ / ref for ours_, ref in zip(samples[key], tg)]
                paired[f"{key}_overhead_us"] = [1e6 / ours_ - 1e6 / ref
                                                for ours_, ref in zip(samples[key], tg)]
        paired["pp_ratio"] = [a / b for a, b in zip(samples["pp_native"], samples[pp_key])]
        result["paired"] = harness.summarize(paired)
    return result


def print_tables(results: list[dict[str, Any]], args: Any) -> None:
    pp_key, tg_key = f"pp{args.n_prompt}", f"tg{args.n_gen}"
    has_peer = any(r["samples"]["peer"] for r in results)

    def get(r: dict[str, Any], key: str, table: str = "summary", digits: int = 1) -> str:
        value: Summary | None = r.get(table, {}).get(key)
        return value.fmt(digits) if value else "-"

    print(f"\nPrompt: {args.n_prompt} tokens from an empty cache (tokens/s; ms)")
    headers = ["model", f"llama-bench {pp_key}", f"llamabind {pp_key}", "ratio",
               "llama-bench time (ms)", "TTFT Generator (ms)", "TTFT engine (ms)"]
    if has_peer:
        headers.append("TTFT llama-cpp-python (ms)")
    rows = []
    for r in results:
        pp = r["summary"].get(pp_key)
        row = [r["model"], get(r, pp_key), get(r, "pp_native"), get(r, "pp_ratio", "paired", 3),
               f"{args.n_prompt / pp.median * 1000:.1f}" if pp else "-",
               get(r, "ttft_native_ms"), get(r, "ttft_engine_ms")]
        if has_peer:
            row.append(get(r, "peer_ttft_ms"))
        rows.append(row)
    harness.print_table(headers, rows)

    depths = ", ".join(f"{r['model']} {r['generation_prompt_tokens']}" for r in results)
    where = ", ".join(f"{r['model']} {r['sampling_backend']}" for r in results)
    print(f"\nGeneration: {args.n_gen} tokens, greedy, after a chat prompt of D tokens ({depths}); "
          f"tokens/s, and × llama-bench {tg_key} at depth D of the same round; the "
          f"Generator sampled on: {where}")
    paths = [("native", "Generator"), ("generate", "engine.generate"), ("create", "engine.create")]
    if has_peer:
        paths.append(("peer", "llama-cpp-python"))
    headers = ["model", f"llama-bench {tg_key}"] + [name for _, name in paths]
    rows = []
    for r in results:
        row = [r["model"], get(r, tg_key)]
        for key, _ in paths:
            ratio = r.get("paired", {}).get(f"{key}_ratio")
            row.append(get(r, key) + (f" ({ratio.median:.3f}×)" if ratio else ""))
        rows.append(row)
    harness.print_table(headers, rows)

    print("\nPer-token overhead over llama-bench (µs; 'C++ loop' is the Generator's own timer: "
          "decode + sampling, no Python)")
    paths = [("native_internal", "C++ loop")] + paths
    headers = ["model", "llama-bench µs/token"] + [name for _, name in paths]
    rows = []
    for r in results:
        tg = r["summary"].get(tg_key)
        row = [r["model"], f"{1e6 / tg.median:.0f}" if tg else "-"]
        for key, _ in paths:
            over = r.get("paired", {}).get(f"{key}_overhead_us")
            row.append(f"{over.median:+.0f}" if over else "-")
        rows.append(row)
    harness.print_table(headers, rows)


def main() -> None:
    parser = harness.common_parser(__doc__)
    parser.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens (default 512)")
    parser.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens (default 128)")
    parser.add_argument("--no-peer", dest="peer", action="store_false",
                        help="skip llama-cpp-python even when it is importable")
    args = parser.parse_args()
    if args.peer and not harness.peer_available():
        print(harness.PEER_INSTALL_HINT, file=sys.stderr)
        args.peer = False

    bench = harness.llama_bench_of(args)
    info, quiet, results = harness.run_models(
        args, lambda label, path: measure_model(label, path, args, bench))
    print(f"flash attention {args.flash_attn}, n_gpu_layers {args.n_gpu_layers}, "
          f"{args.repetitions} rounds; medians ±spread (max-min)/median")
    print_tables(results, args)
    harness.write_json(args, "speed", {"machine": info, "quiet": quiet, "settings": {
        "threads": args.threads, "n_gpu_layers": args.n_gpu_layers, "flash_attn": args.flash_attn,
        "n_prompt": args.n_prompt, "n_gen": args.n_gen, "repetitions": args.repetitions,
        "llama_bench": str(bench) if bench else None, "peer": args.peer}, "models": results})


if __name__ == "__main__":
    spec = harness.child_spec(sys.argv)
    if spec is not None:
        child(spec)
    else:
        main()
