"""Many sequences on one model at once: llamabind's batch loop against llama-batched-bench.

    python scripts/build_llama_bench.py                    # once: builds llama-batched-bench too
    python benchmarks/batched.py                           # SmolLM2, B = 1 2 4 8
    python benchmarks/batched.py -m gemma3 -B 1 2 4
    python benchmarks/batched.py -m synthetic-llama-3.2-1b --cuda -ngl -1 -B 8 16 32   # a GPU

For each B, every contender in a process of its own, holding the model alone:

- llama-batched-bench ``-npp P -ntg G -npl B``: B sequences, each with its own P-token prompt,
  evaluated together, then G tokens generated for each, one llama_decode per step (decode only,
  no sampling): aggregate prompt and generation tokens/s, the engine's ceiling.
- native: B ``Context.generate`` on one context with B sequences (random P-token prompts, greedy,
  end of text ignored), each consumed by a Python thread; the batch loop evaluates the prompts
  and decodes all B next tokens in one llama_decode per step. Prompt tokens/s = B*P / the time
  until every sequence had its first token; generation tokens/s = B*(G-1) / the time from then
  until the last token.
- create: B concurrent ``LlamaEngine.create`` streams (one chat message each, greedy, G tokens)
  on an engine with ``n_parallel=B``, each from a thread; generation tokens/s summed over the
  streams' usage.

Same context size, threads and flash attention for all. Medians over rounds. llama-cpp-python
cannot batch: its server runs the B requests one after another, so its aggregate equals its
single-stream speed (benchmarks/speed.py measures that: 0.92-1.00 x llama-bench tg).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import harness

SCRIPT = str(Path(__file__).resolve())


def random_prompts(model: Any, n_seqs: int, n_tokens: int) -> list[list[int]]:
    rng = random.Random(4321)
    bos = model.special_tokens.get("bos", -1)
    prompts = []
    for _ in range(n_seqs):
        ids = [rng.randrange(1000, model.n_vocab) for _ in range(n_tokens)]
        if model.add_bos and bos >= 0:
            ids[0] = bos
        prompts.append(ids)
    return prompts


def child_native(spec: dict[str, Any]) -> dict[str, float]:
    from llamabind import _native

    model = _native.Model(spec["model"], n_gpu_layers=spec["ngl"])
    b, p, g = spec["b"], spec["p"], spec["g"]
    ctx = _native.Context(model, n_ctx=spec["n_ctx"], n_seq_max=spec["n_seq_max"], n_batch=min(2048, spec["n_ctx"]),
                          n_ubatch=min(512, spec["n_ctx"]), n_threads=spec["threads"], n_threads_batch=spec["threads"],
                          flash_attn={"auto": -1, "off": 0, "on": 1}[spec["fa"]])
    prompts = random_prompts(model, b, p)

    def run_once() -> tuple[float, float]:
        ctx.memory_clear()
        firsts: list[float] = [0.0] * b
        ends: list[float] = [0.0] * b
        start = time.perf_counter()  # the loop starts evaluating as soon as a generation exists
        gens = [ctx.generate(prompts[i], _native.Sampler(model, temperature=0), max_tokens=g,
                             ignore_eog=True, seq_id=i) for i in range(b)]

        def consume(i: int) -> None:
            for n, _ in enumerate(gens[i]):
                if n == 0:
                    firsts[i] = time.perf_counter()
            ends[i] = time.perf_counter()

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        first_all = max(firsts)
        return b * p / (first_all - start), b * (g - 1) / (max(ends) - first_all)

    run_once()  # warm-up
    pp, tg = run_once()
    return {"pp": pp, "tg": tg}


def chat_prompt(engine: Any, i: int, n_tokens: int) -> list[dict[str, str]]:
    """A conversation of its own for stream i whose rendered prompt has about ``n_tokens``
    tokens, so that generation runs at the depth of llama-batched-bench's (-npp)."""
    words = ["rivers", "lamps", "orchards", "engines", "letters", "harbours", "clocks", "birds"]
    text = f"Story number {i}: tell me a long story about"
    while True:
        messages = [{"role": "user", "content": text + "."}]
        if engine.chat_template(messages).token_count >= n_tokens:
            return messages
        text += f" {words[len(text) % len(words)]}"


def child_create(spec: dict[str, Any]) -> dict[str, float]:
    from llamabind import GenerationParams, LlamaEngine, ModelParams

    b, g = spec["b"], spec["g"]
    params = ModelParams(n_ctx=spec["n_ctx"] // spec["n_seq_max"], n_parallel=b,
                         n_threads=spec["threads"], n_threads_batch=spec["threads"],
                         n_gpu_layers=spec["ngl"], flash_attn=spec["fa"])
    request = GenerationParams(max_tokens=g, temperature=0, repeat_penalty=1.0, ignore_eos=True)
    with LlamaEngine(spec["model"], params) as engine:
        prompts = [chat_prompt(engine, i, spec["p"]) for i in range(b)]

        def run_once() -> float:
            """Aggregate over the time every stream is generating (from the last first token to
            the first last token): each stream's tokens in that window, by its chunks' times.
            (Counting every token after each stream's own first over that window overstated
            when the streams started apart.)"""
            engine.reset_cache()
            streams: list[tuple[list[float], int]] = [([], 0)] * b
            start = threading.Barrier(b)

            def ask(i: int) -> None:
                messages = prompts[i]
                times: list[float] = []
                n_tokens = 0
                start.wait()
                for chunk in engine.create(messages, request):
                    if chunk.choices and chunk.choices[0].delta.content:
                        times.append(time.perf_counter())
                    if chunk.usage is not None:
                        n_tokens = chunk.usage.completion_tokens
                streams[i] = (times, n_tokens)

            threads = [threading.Thread(target=ask, args=(i,)) for i in range(b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            begin = max(times[0] for times, _ in streams)
            end = min(times[-1] for times, _ in streams)
            # a chunk is about one token: scale each stream's share of chunks to its tokens
            tokens = sum((n - 1) * sum(begin < t <= end for t in times) / max(len(times) - 1, 1)
                         for times, n in streams)  # fmt: skip
            return tokens / (end - begin)

        run_once()
        return {"tg": run_once()}


def child_peer(spec: dict[str, Any]) -> dict[str, float]:
    """llama-cpp-python serving the B requests one after another (it has one sequence)."""
    import llama_cpp

    b, p, g = spec["b"], spec["p"], spec["g"]
    llm = llama_cpp.Llama(spec["model"], n_ctx=spec["p"] + spec["g"] + 16, n_batch=2048,
                          n_ubatch=512, n_threads=spec["threads"], n_threads_batch=spec["threads"],
                          n_gpu_layers=spec["ngl"], flash_attn=spec["fa"] != "off", verbose=False)

    class Model:  # what random_prompts reads
        special_tokens = {"bos": llm.token_bos()}
        n_vocab = llm.n_vocab()
        add_bos = True

    def run_once() -> tuple[float, float]:
        t_prompt = t_gen = 0.0
        for prompt in random_prompts(Model, b, p):
            llm.reset()
            t0 = time.perf_counter()
            first = None
            for n, _ in enumerate(llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True), 1):
                if first is None:
                    first = time.perf_counter()
                if n == g:
                    break
            end = time.perf_counter()
            t_prompt += first - t0
            t_gen += end - first
        return b * p / t_prompt, b * (g - 1) / t_gen

    run_once()
    pp, tg = run_once()
    return {"pp": pp, "tg": tg}


def batched_bench(binary: Path, spec: dict[str, Any], batches: list[int]) -> dict[int, dict[str, float]]:
    argv = [str(binary), "-m", spec["model"], "-c", str(spec["n_ctx"]), "-b", "2048", "-ub", "512",
            "-npp", str(spec["p"]), "-ntg", str(spec["g"]), "-npl", ",".join(map(str, batches)),
            "-t", str(spec["threads"]), "-ngl", str(spec["ngl"]), "-fa", spec["fa"],
            "--output-format", "jsonl"]
    run = harness.run_child(argv)
    out = {}
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            out[int(row["pl"])] = {"pp": float(row["speed_pp"]), "tg": float(row["speed_tg"])}
    return out


def measure(label: str, path: Path, args: Any) -> dict[str, Any]:
    binary = args.llama_bench or harness.build_llama_bench.tool_path("llama-batched-bench", cuda=args.cuda)
    n_seq_max = max(args.batches)
    base = {"model": str(path), "p": args.n_prompt, "g": args.n_gen, "threads": args.threads,
            "ngl": args.n_gpu_layers, "fa": "on" if args.flash_attn == "auto" else args.flash_attn,
            "n_seq_max": n_seq_max, "n_ctx": n_seq_max * (args.n_prompt + args.n_gen + 16)}
    samples: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for round_ in range(args.repetitions):
        if binary.exists():
            for b, row in batched_bench(binary, base, args.batches).items():
                samples[b]["ref_pp"].append(row["pp"])
                samples[b]["ref_tg"].append(row["tg"])
        for b in args.batches:
            spec = {**base, "b": b}
            native, _ = harness.run_json_child(SCRIPT, {**spec, "kind": "native"})
            samples[b]["native_pp"].append(native["pp"])
            samples[b]["native_tg"].append(native["tg"])
            create, _ = harness.run_json_child(SCRIPT, {**spec, "kind": "create"})
            samples[b]["create_tg"].append(create["tg"])
            if harness.peer_available():
                peer, _ = harness.run_json_child(SCRIPT, {**spec, "kind": "peer"})
                samples[b]["peer_pp"].append(peer["pp"])
                samples[b]["peer_tg"].append(peer["tg"])
        print(f"{label}: round {round_ + 1} done", file=sys.stderr)
    return {"label": label, "settings": base,
            "by_batch": {b: harness.summarize(s) for b, s in samples.items()}}


def print_results(results: list[dict[str, Any]]) -> None:
    for result in results:
        print(f"\n{result['label']}: aggregate tokens/s (medians), ratio to llama-batched-bench")
        rows = []
        for b, s in sorted(result["by_batch"].items()):
            ref_tg = s["ref_tg"].median if "ref_tg" in s else None
            ref_pp = s["ref_pp"].median if "ref_pp" in s else None

            def ratio(key: str, ref: float | None, s: Any = s) -> str:
                return f"{s[key].median / ref:.3f}" if ref else "-"

            rows.append([b, f"{ref_pp:.0f}" if ref_pp else "-", f"{s['native_pp'].median:.0f}",
                         ratio("native_pp", ref_pp), f"{ref_tg:.1f}" if ref_tg else "-",
                         f"{s['native_tg'].median:.1f}", ratio("native_tg", ref_tg),
                         f"{s['create_tg'].median:.1f}", ratio("create_tg", ref_tg),
                         f"{s['peer_tg'].median:.1f}" if "peer_tg" in s else "-",
                         f"{s['create_tg'].median / s['peer_tg'].median:.2f}" if "peer_tg" in s
                         else "-"])
        harness.print_table(["B", "ref pp", "native pp", "x", "ref tg", "native tg", "x",
                             "create tg", "x", "llama-cpp-python tg", "create / it"], rows)


def main() -> None:
    parser = harness.common_parser(__doc__, default_models=("smollm2",), default_repetitions=2)
    parser.add_argument("-B", "--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--n-prompt", type=int, default=128)
    parser.add_argument("--n-gen", type=int, default=128)
    args = parser.parse_args()
    if not harness.peer_available():
        print(harness.PEER_INSTALL_HINT, file=sys.stderr)
    info, quiet, results = harness.run_models(args, lambda label, path: measure(label, path, args))
    print_results(results)
    harness.write_json(args, "batched", {"machine": info, "quiet": quiet, "results": results})


if __name__ == "__main__":
    spec = harness.child_spec(sys.argv)
    if spec is not None:
        kind = spec.pop("kind")
        children = {"native": child_native, "create": child_create, "peer": child_peer}
        print(json.dumps(children[kind](spec)))
    else:
        main()
