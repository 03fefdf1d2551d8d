"""Prompt and generation speed of the portable wheel against the native source build, in one run.

    /tmp/venv-native/bin/python benchmarks/wheel_speed.py \\
        --wheel /tmp/venv-wheel/bin/python --native /tmp/venv-native/bin/python [-m smollm2 -r 5]

Each side is a Python interpreter with llamabind installed: ``--wheel`` from the release wheel
(runtime CPU dispatch, the variant ggml picks at import), ``--native`` from a source build
(``-march=native``, the CPU backend compiled in). Per model and round, each side runs
``speed.py``'s child in a process of its own (warm-up first, then pp512 through the native
Generator's prompt timer and generation of 128 tokens through the Generator, LlamaEngine.generate
and LlamaEngine.create); the sides take turns at going first. Reported: medians, and the wheel's
speed as a ratio to the native build's in the same round (target >= 0.97).

Run it on a quiet machine; it waits for one like the other scripts (--max-load).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness

SPEED_SCRIPT = str(Path(__file__).with_name("speed.py"))
SIDES = ("wheel", "native")
KEYS = ("pp_native", "native", "generate", "create")
KEY_NAMES = {"pp_native": "pp (tok/s)", "native": "tg Generator (tok/s)",
             "generate": "tg engine.generate (tok/s)", "create": "tg engine.create (tok/s)"}


def describe(python: str) -> dict[str, str]:
    """Where llamabind comes from in this interpreter, and which CPU variant it loads."""
    code = ("import json, llamabind; from llamabind import _native; print(json.dumps({"
            "'path': llamabind.__file__, 'cpu_variant': _native.cpu_variant(), "
            "'system_info': _native.system_info()}))")
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_model(label: str, path: Path, args: Any) -> dict[str, Any]:
    spec = {"path": str(path), "role": "ours", "args": {
        "n_prompt": args.n_prompt, "n_gen": args.n_gen, "threads": args.threads,
        "n_gpu_layers": args.n_gpu_layers, "flash_attn": args.flash_attn}}
    samples: dict[str, dict[str, list[float]]] = {side: {k: [] for k in KEYS} for side in SIDES}
    started = time.perf_counter()
    for round_no in range(args.repetitions):
        order = SIDES if round_no % 2 == 0 else SIDES[::-1]
        for side in order:
            run = harness.run_child([getattr(args, side), SPEED_SCRIPT, harness.CHILD_FLAG,
                                     json.dumps({**spec, "round": round_no})])
            result = json.loads(run.stdout.strip().splitlines()[-1])
            for key in KEYS:
                samples[side][key] += result["samples"][key]
        print(f"  {label}: round {round_no + 1}/{args.repetitions} done "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    ratios = {key: [w / n for w, n in zip(samples["wheel"][key], samples["native"][key])]
              for key in KEYS}
    return {"model": label, "file": path.name, "samples": samples,
            "summary": {side: harness.summarize(samples[side]) for side in SIDES},
            "ratio": harness.summarize(ratios)}


def main() -> None:
    parser = harness.common_parser(__doc__, with_llama_bench=False)
    parser.add_argument("--wheel", required=True, help="python of a venv with the wheel installed")
    parser.add_argument("--native", required=True,
                        help="python of a venv with a native source build installed")
    parser.add_argument("-p", "--n-prompt", type=int, default=512,
                        help="prompt tokens (default 512)")
    parser.add_argument("-n", "--n-gen", type=int, default=128,
                        help="generated tokens (default 128)")
    args = parser.parse_args()

    builds = {side: describe(getattr(args, side)) for side in SIDES}
    info, quiet, results = harness.run_models(
        args, lambda label, path: measure_model(label, path, args))
    for side in SIDES:
        print(f"{side}: {builds[side]['path']} (CPU variant {builds[side]['cpu_variant']})")
    print(f"{args.threads} threads, {args.repetitions} rounds; medians ±spread (max-min)/median")
    headers = ["model", "measure", "wheel", "native", "wheel / native"]
    rows = []
    for r in results:
        for key in KEYS:
            rows.append([r["model"], KEY_NAMES[key], r["summary"]["wheel"][key].fmt(),
                         r["summary"]["native"][key].fmt(), r["ratio"][key].fmt(3)])
    harness.print_table(headers, rows)
    harness.write_json(args, "wheel_speed", {"machine": info, "quiet": quiet, "builds": builds,
                                             "settings": {"threads": args.threads,
                                                          "n_prompt": args.n_prompt,
                                                          "n_gen": args.n_gen,
                                                          "repetitions": args.repetitions},
                                             "models": results})


if __name__ == "__main__":
    main()
