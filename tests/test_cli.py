"""The ``llamabind`` command, run as a subprocess: run, chat (through stdin), info, bench,
ls/pull/rm against a local HTTP server, serve with SIGTERM draining, and one-line errors."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from llamabind.engine import LlamaEngine
from llamabind.params import GenerationParams, ModelParams

pytestmark = pytest.mark.timeout(900)


def llamabind(
    *args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llamabind", *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llamabind: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def engine(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=1024)) as engine:
        yield engine


def test_bare_prompt_streams_a_raw_completion(smollm2_path, engine):
    prompt = "The capital of France is"
    result = llamabind(prompt, "--model", smollm2_path, "--max-tokens", "6")
    assert result.returncode == 0, result.stderr
    expected = "".join(
        engine.generate(prompt, GenerationParams(max_tokens=6, temperature=0, seed=0))
    )
    assert result.stdout == prompt + expected + "\n"
    assert re.search(r"\[\d+ tokens, prompt \d+ tokens", result.stderr)


def test_run_matches_the_engine_and_reads_stdin(smollm2_path, engine):
    messages = [{"role": "user", "content": "Name a fruit."}]
    expected = engine.complete(messages, GenerationParams(max_tokens=10, temperature=0)).text
    argv = ["run", smollm2_path, "--max-tokens", "10", "--temperature", "0"]
    from_argument = llamabind(*argv, "Name a fruit.")
    assert from_argument.returncode == 0, from_argument.stderr
    assert from_argument.stdout == expected + "\n"
    from_stdin = llamabind(*argv, stdin="Name a fruit.")
    assert from_stdin.stdout == expected + "\n"


def test_chat_keeps_history_and_resets(smollm2_path, engine):
    params = GenerationParams(max_tokens=8, temperature=0)
    first = engine.complete([{"role": "user", "content": "Hi"}], params).text
    second = engine.complete(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": first},
            {"role": "user", "content": "Tell me a joke"},
        ],
        params,
    ).text
    fresh = engine.complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a joke"}],
        params,
    ).text
    script = "Hi\nTell me a joke\n/system Be brief.\nTell me a joke\n/nonsense\n"
    result = llamabind(
        "chat", smollm2_path, "--max-tokens", "8", "--temperature", "0", stdin=script
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [first, second, fresh]
    assert "[system prompt set; conversation reset]" in result.stderr
    assert "[unknown command /nonsense" in result.stderr


def test_chat_ctrl_c_stops_the_reply_not_the_program(smollm2_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llamabind",
            "chat",
            smollm2_path,
            "--max-tokens",
            "4000",
            "--temperature",
            "0.9",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        process.stdin.write("Write a very long story about a dragon.\n")
        process.stdin.flush()
        assert process.stdout.read(1), "no reply started"
        process.send_signal(signal.SIGINT)
        process.stdin.write("/exit\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "[stopped]" in out
    assert "Traceback" not in err


def test_info_and_bench(smollm2_path):
    info = llamabind("info", smollm2_path)
    assert info.returncode == 0, info.stderr
    assert re.search(r"architecture\s+llama", info.stdout)
    assert re.search(r"chat template\s+\S+", info.stdout)
    assert "tool_calling" in info.stdout
    bench = llamabind(
        "bench", smollm2_path, "--n-prompt", "16", "--n-gen", "8", "--repetitions", "1", "--json"
    )
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    assert result["n_prompt"] == 16 and result["n_gen"] == 8
    assert result["prompt_tokens_per_s"] > 0 and result["generation_tokens_per_s"] > 0


def test_errors_are_one_line(tmp_path, smollm2_path):
    assert_one_line_error(
        llamabind("run", str(tmp_path / "missing.gguf"), "hi"), "not found", "missing.gguf"
    )
    assert_one_line_error(llamabind("run", str(tmp_path), "hi"), "is a directory")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model at all")
    assert_one_line_error(llamabind("info", str(fake)), "not a GGUF file")
    assert_one_line_error(
        llamabind(
            "run",
            "hf://nobody/nothing:Q4_K_M",
            "hi",
            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        )
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert_one_line_error(
            llamabind("serve", smollm2_path, "--port", str(port)), "in use", str(port)
        )
    debug = llamabind("run", str(tmp_path / "missing.gguf"), "hi", "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.fixture
def file_server(tmp_path, smollm2_path):
    """A loopback HTTP server with a copy of the test model."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copyfile(smollm2_path, root / "tiny.gguf")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_pull_ls_rm(tmp_path, file_server):
    env = {
        "LLAMABIND_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "LLAMABIND_MODELS_PATH": "",
    }
    pulled = llamabind("pull", f"{file_server}/tiny.gguf", env=env)
    assert pulled.returncode == 0, pulled.stderr
    path = Path(pulled.stdout.strip())
    assert path.is_file() and path.is_relative_to(tmp_path / "cache")
    assert "100.0%" in pulled.stderr
    listed = llamabind("ls", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if str(path) in line]
    assert len(rows) == 1 and "Q4_1" in rows[0] and "url" in rows[0]
    removed = llamabind("rm", f"{file_server}/tiny.gguf", env=env)
    assert removed.returncode == 0, removed.stderr
    assert not path.exists()
    assert str(path) not in llamabind("ls", env=env).stdout


@pytest.mark.parametrize(
    ("drain_s", "max_tokens", "completes"),
    [(120, 40, True), (1, 4000, False)],
    ids=["drained", "drain-timeout"],
)
def test_serve_answers_and_drains_on_sigterm(smollm2_path, drain_s, max_tokens, completes):
    """SIGTERM mid-stream: the reply completes within the drain time, or is cut at its end."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    command = [sys.executable, "-m", "llamabind", "serve", smollm2_path, "--alias", "tiny",
               "--port", "0", "--api-key", "k", "--n-ctx", "4096",
               "--drain-timeout", str(drain_s)]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            url = _listening_url(process)
            headers = {"Authorization": "Bearer k"}
            models = httpx.get(url + "/v1/models", headers=headers).json()
            assert models["data"][0]["id"] == "tiny"
            events = _stream_through_sigterm(process, httpx, url, headers, max_tokens)
            if completes:
                assert events[-1] == "data: [DONE]"
                last = json.loads(events[-2][len("data: ") :])
                assert last["choices"][0]["finish_reason"] in ("stop", "length")
            else:
                assert "data: [DONE]" not in events
            # uvicorn re-raises SIGTERM once drained: death by that signal is the clean exit
            assert process.wait(timeout=120) in (0, -signal.SIGTERM)
            assert "Traceback" not in process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()


def _listening_url(process: subprocess.Popen) -> str:
    for line in process.stderr:
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError("the server did not say where it listens")


def _stream_through_sigterm(process, httpx, url, headers, max_tokens) -> list[str]:
    """Starts a streamed reply, sends SIGTERM after its first event, returns all its events."""
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Count to fifty."}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True}  # fmt: skip
    events = []
    with httpx.stream(
        "POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=300
    ) as response:
        assert response.status_code == 200, response.read()
        lines = response.iter_lines()
        events.append(next(line for line in lines if line.startswith("data: ")))
        process.send_signal(signal.SIGTERM)
        try:
            events += [line for line in lines if line.startswith("data: ")]
        except httpx.HTTPError:  # the connection closed mid-body when the drain time ran out
            pass
    return events


def test_import_llamabind_stays_light_and_a_missing_extra_is_named():
    check = (
        "import sys, llamabind, llamabind.cli; print(sorted(m for m in "
        "('fastapi', 'uvicorn', 'starlette', 'pydantic') if m in sys.modules))"
    )
    light = subprocess.run(
        [sys.executable, "-c", check], check=False, capture_output=True, text=True, timeout=120
    )
    assert light.returncode == 0, light.stderr
    assert light.stdout.strip() == "[]"
    without_fastapi = (
        "import sys; sys.modules['fastapi'] = None; from llamabind.cli import main; "
        "sys.exit(main(['serve', 'any-model']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", without_fastapi],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result, 'pip install "llamabind[server]"')


def test_serve_flags_set_the_parallel_requests_and_the_unified_cache():
    from llamabind.cli import parse
    from llamabind.cli.options import model_params

    args = parse(["serve", "m.gguf", "--parallel", "4", "--queue", "9", "--kv-unified"])
    params = model_params(args, n_parallel=args.parallel, n_queue=args.queue,
                          kv_unified=args.kv_unified)  # fmt: skip
    assert (params.n_parallel, params.n_queue, params.kv_unified) == (4, 9, True)
    plain = parse(["serve", "m.gguf"])
    assert model_params(plain, kv_unified=plain.kv_unified).kv_unified is False
