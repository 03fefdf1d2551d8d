"""Serving under load: N concurrent streaming clients against our server, llama.cpp's
``llama-server -np N`` and llama-cpp-python's server, on the same model and threads.

Each contender runs as a server process of its own on a free loopback port; the clients (threads
of this process) send ``--requests`` streamed chat completions in all, ``--clients`` at a time,
each asking for exactly ``--max-tokens`` tokens (``ignore_eos``, so every server generates the
same amount). Reported per contender: aggregate generated tokens/s over the whole run, p50/p99
time to first token, and failed requests. Targets at N = 4: >= 0.90x llama-server's tokens/s,
>= 1.3x llama-cpp-python's, and no failures.

    python scripts/build_llama_bench.py --server   # llama-server, once (if it is not built)
    python benchmarks/serve.py -m smollm2 --clients 4 --requests 200 --max-tokens 64

Contenders that are not installed are skipped with a hint. Not a test: the machine must be
quiet (``--max-load``), and results go to benchmarks/results/serve-*.json.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness

TOPICS = ("a lighthouse", "a lost key", "the sea", "a robot", "a garden", "winter", "a city",
          "a violin", "a mountain", "an old map")
CONTENDERS = ("llamabind", "llama-server", "llama-cpp-python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def has_request_queue() -> bool:
    """Whether this engine runs several requests at once (ModelParams.n_parallel)."""
    import dataclasses

    from llamabind.params import ModelParams

    return "n_parallel" in {f.name for f in dataclasses.fields(ModelParams)}


def server_command(name: str, model: Path, port: int, args: Any) -> list[str] | None:
    """How to start a contender, or None (with a hint printed) when it is not installed."""
    n_ctx = args.clients * args.n_ctx_per_client
    threads = str(args.threads)
    if name == "llamabind":
        # our --n-ctx is per request when requests run in parallel, llama-server's -c is shared
        per_request = args.n_ctx_per_client if has_request_queue() else n_ctx
        command = [sys.executable, "-m", "llamabind", "serve", str(model), "--port", str(port),
                   "--alias", "bench", "--n-ctx", str(per_request), "--threads", threads,
                   "--n-gpu-layers", str(args.n_gpu_layers), "--log-level", "warning"]
        if has_request_queue():
            command += ["--parallel", str(args.clients), "--queue", str(args.requests)]
        if args.kv_unified:
            command.append("--kv-unified")
        return command
    if name == "llama-server":
        binary = args.llama_server or harness.build_llama_bench.tool_path("llama-server")
        if not Path(binary).exists():
            print(f"llama-server not found at {binary}: skipped (build it with "
                  "python scripts/build_llama_bench.py --server, or pass --llama-server)",
                  file=sys.stderr)
            return None
        return [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                "-np", str(args.clients), "-c", str(n_ctx), "-t", threads, "-tb", threads,
                "-ngl", str(args.n_gpu_layers), "-fa", args.flash_attn, "-a", "bench", "--metrics",
                "-kvu" if args.kv_unified else "-no-kvu"]
    if not harness.peer_available():
        print(harness.PEER_INSTALL_HINT, file=sys.stderr)
        return None
    # llama-cpp-python's server runs one request at a time over one context; by default a new
    # request cuts the stream in progress off (interrupt_requests), so the others wait here.
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
            "127.0.0.1", "--port", str(port), "--n_ctx", str(args.n_ctx_per_client),
            "--n_threads", threads, "--n_threads_batch", threads,
            "--n_gpu_layers", str(args.n_gpu_layers), "--model_alias", "bench",
            "--interrupt_requests", "False"]


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(url + "/v1/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server at {url} was not ready after {timeout_s:.0f} s")


@dataclass
class Load:
    """What the clients saw."""

    ttft_s: list[float] = field(default_factory=list)
    n_tokens: int = 0
    n_failed: int = 0
    n_retried: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_request(client: Any, url: str, index: int, max_tokens: int, load: Load) -> None:
    import httpx

    body = {"model": "bench", "stream": True, "max_tokens": max_tokens, "temperature": 0.0,
            "ignore_eos": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user",
                          "content": f"Write a long story about {TOPICS[index % len(TOPICS)]}."}]}
    started = time.perf_counter()
    for attempt in range(2):
        try:
            with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
                read_stream(response, started, load)
                return
        except httpx.RemoteProtocolError as exc:
            # a kept-alive connection the server had just closed: nothing was sent, retry once
            # on a new one (llama-server closes idle ones); any other failure counts
            if attempt == 0 and "without sending a response" in str(exc):
                with load.lock:
                    load.n_retried += 1
                continue
            fail(load, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            fail(load, exc)
            return


def fail(load: Load, exc: BaseException) -> None:
    with load.lock:
        load.n_failed += 1
        load.errors.append(f"{type(exc).__name__}: {exc}")


def read_stream(response: Any, started: float, load: Load) -> None:
    """Reads one streamed reply; counts its tokens and time to first token."""
    first = None
    n_chunks = 0
    usage_tokens = None
    try:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.read()[:200]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage_tokens = chunk["usage"].get("completion_tokens")
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    n_chunks += 1
                    if first is None:
                        first = time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
        fail(load, exc)
        return
    with load.lock:
        load.n_tokens += usage_tokens if usage_tokens is not None else n_chunks
        if first is not None:
            load.ttft_s.append(first)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, every thread) the process used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(url: str, args: Any, pid: int | None = None) -> dict[str, Any]:
    """Sends the requests, ``args.clients`` at a time; returns the aggregate numbers.

    With the server's ``pid``, also its CPU time per generated token: on a machine with as many
    cores as ggml threads, what a server spends beside its decode steps slows the steps down.
    """
    import httpx

    load = Load()
    counter = iter(range(args.requests))
    counter_lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(timeout=600) as client:
            while True:
                with counter_lock:
                    index = next(counter, None)
                if index is None:
                    return
                one_request(client, url, index, args.max_tokens, load)

    threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
    cpu_before = cpu_seconds(pid) if pid is not None else None
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    cpu_after = cpu_seconds(pid) if pid is not None else None
    cpu_ms_per_token = None
    if cpu_before is not None and cpu_after is not None and load.n_tokens:
        cpu_ms_per_token = (cpu_after - cpu_before) * 1000 / load.n_tokens
    ttft = sorted(load.ttft_s)
    return {
        "wall_s": wall_s, "n_tokens": load.n_tokens, "tokens_per_s": load.n_tokens / wall_s,
        "ttft_p50_ms": statistics.median(ttft) * 1000 if ttft else None,
        "ttft_p99_ms": ttft[min(len(ttft) - 1, int(0.99 * len(ttft)))] * 1000 if ttft else None,
        "n_failed": load.n_failed, "n_retried": load.n_retried, "errors": load.errors[:5],
        "server_cpu_ms_per_token": cpu_ms_per_token,
    }


def batch_fill(name: str, url: str) -> float | None:
    """Mean generating sequences per decode step, from the server's /metrics (None: unknown).

    Shows whether the batches were full: with N busy clients it should be close to N.
    """
    import httpx

    try:
        text = httpx.get(url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                values[key.split("{")[0]] = values.get(key.split("{")[0], 0.0) + float(value)
            except ValueError:
                continue
    if name == "llamabind" and values.get("llamabind_decode_steps_total"):
        return values["llamabind_decode_sampled_tokens_total"] / values["llamabind_decode_steps_total"]
    if name == "llama-server":  # a gauge of the last period
        return values.get("llamacpp:n_busy_slots_per_decode")
    return None


def measure(name: str, model: Path, args: Any) -> dict[str, Any] | None:
    port = free_port()
    command = server_command(name, model, port, args)
    if command is None:
        return None
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if args.omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=env) as process:
        try:
            try:
                wait_ready(url, process)
            except RuntimeError as exc:
                print(f"{name}: skipped, {exc} (run its command to see why: "
                      f"{' '.join(command)})", file=sys.stderr)
                return None
            print(f"{name}: ready on {url}; {args.requests} requests, {args.clients} at a time",
                  file=sys.stderr, flush=True)
            result = drive(url, args, process.pid)
            result["sequences_per_step"] = batch_fill(name, url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    return {"contender": name, **result}


def main() -> None:
    parser = harness.common_parser(__doc__, default_models=("smollm2",), default_repetitions=1,
                                   with_llama_bench=False)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--requests", type=int, default=200, help="requests in all (default 200)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per reply (default 64)")
    parser.add_argument("--n-ctx-per-client", type=int, default=1024,
                        help="context tokens per parallel sequence (default 1024)")
    parser.add_argument("--llama-server", type=Path, default=None, help="llama-server binary")
    parser.add_argument("--kv-unified", action="store_true",
                        help="one KV cache buffer for all sequences, in both llama.cpp-based "
                        "servers (default: one per sequence, llama-server's default with -np)")
    parser.add_argument("--omp-wait-policy", choices=("passive", "active", "default"),
                        default="default",
                        help="OMP_WAIT_POLICY of every server (default: left as it is, what a "
                        "user gets; passive halved every server's speed on 2 cores, active "
                        "starves a Python server's threads)")
    parser.add_argument("--contender", action="append", choices=CONTENDERS, default=None,
                        help="measure only these (repeatable; default: all)")
    args = parser.parse_args()
    contenders = args.contender or list(CONTENDERS)

    def measure_model(label: str, path: Path) -> dict[str, Any]:
        rows = [measure(name, path, args) for name in contenders]
        return {"model": label, "path": path, "results": [r for r in rows if r is not None]}

    info, quiet, results = harness.run_models(args, measure_model)
    for entry in results:
        print(f"\n{entry['model']}: {args.clients} clients, {args.requests} requests, "
              f"{args.max_tokens} tokens each")
        harness.print_table(
            ["server", "tokens/s", "TTFT p50 ms", "TTFT p99 ms", "failed", "seqs/step",
             "server CPU ms/token"],
            [[r["contender"], f"{r['tokens_per_s']:.1f}", harness.ms(r["ttft_p50_ms"]),
              harness.ms(r["ttft_p99_ms"]), r["n_failed"],
              "-" if r.get("sequences_per_step") is None else f"{r['sequences_per_step']:.2f}",
              "-" if r.get("server_cpu_ms_per_token") is None
              else f"{r['server_cpu_ms_per_token']:.1f}"]
             for r in entry["results"]])
    harness.write_json(args, "serve", {"machine": info, "load": quiet, "clients": args.clients,
                                       "requests": args.requests, "max_tokens": args.max_tokens,
                                       "models": results})


if __name__ == "__main__":
    main()
