"""The committed _native.pyi must match the built module (regenerate with the command below)."""

import subprocess
import sys
from pathlib import Path

import pytest

STUB = Path(__file__).resolve().parent.parent / "python" / "llamabind" / "_native.pyi"


def test_native_stub_is_current(tmp_path):
    pytest.importorskip("nanobind")
    pytest.importorskip("llamabind._native")  # the fast lane has no build (tests/no_native.py)
    out = tmp_path / "_native.pyi"
    subprocess.run(
        [sys.executable, "-m", "nanobind.stubgen", "-q", "-m", "llamabind._native", "-o", str(out)],
        check=True,
    )
    assert out.read_text() == STUB.read_text(), (
        "python/llamabind/_native.pyi is stale: run "
        "python -m nanobind.stubgen -m llamabind._native -o python/llamabind/_native.pyi"
    )
