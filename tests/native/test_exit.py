"""Interpreter exit while a daemon thread generates: a clean exit, never std::terminate."""

import subprocess
import sys
import textwrap

import pytest

ENGINE = """
    from llamabind import LlamaEngine, ModelParams
    engine = LlamaEngine(MODEL, ModelParams(n_ctx=512, n_threads=1, n_parallel=N))
    def work():
        for _ in engine.generate("Once upon a time", max_tokens=2000, ignore_eos=True):
            started.set()
"""
NATIVE = """
    from llamabind import _native
    model = _native.Model(MODEL)
    ctx = _native.Context(model, n_ctx=512, n_threads=1, n_seq_max=N)
    def work():
        tokens = model.tokenize("Once upon a time", add_special=True)
        for _ in ctx.generate(tokens, _native.Sampler(model), max_tokens=2000, ignore_eog=True):
            started.set()
"""


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("setup", [ENGINE, NATIVE], ids=["engine", "native"])
def test_exit_while_a_daemon_thread_generates(smollm2_path, setup, n):
    script = textwrap.dedent(f"""
        import threading
        MODEL, N = {smollm2_path!r}, {n}
        started = threading.Event()
    """) + textwrap.dedent(setup) + textwrap.dedent("""
        threading.Thread(target=work, daemon=True).start()
        assert started.wait(60)
        print("exiting", flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "exiting"
    assert "terminate" not in result.stderr and "leaked" not in result.stderr
