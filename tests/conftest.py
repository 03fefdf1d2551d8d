"""Shared fixtures: real GGUF models from PyPI (see model_files.py) and vendored test data."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

# ggml's CPU threads are OpenMP teams; spinning teams of several test processes (or of a test
# beside a build) on a small machine stall each other's barriers for seconds. Tests measure no
# speed, so idle team threads sleep. Set before llamabind loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# A suite started in the background (`pytest ... &` in a script) inherits SIGINT ignored, and so
# would every interpreter it starts, where the Ctrl-C tests then see no KeyboardInterrupt. A
# handler here is reset to the default in each child at exec.
signal.signal(signal.SIGINT, signal.default_int_handler)

sys.path.insert(0, str(Path(__file__).parent))

import no_native
from model_files import ensure_test_models

if no_native.ENABLED:  # the fast lane: no compiled extension, no models
    no_native.block()

REPO_ROOT = Path(__file__).resolve().parent.parent
VENDOR_MODELS = REPO_ROOT / "vendor" / "llama.cpp" / "models"


@pytest.fixture(scope="session")
def model_paths() -> dict[str, Path]:
    """The test models; fetched once. In CI a failure to fetch fails the run, never skips."""
    if no_native.ENABLED:
        pytest.skip("the fast lane runs the model-free tests only")
    try:
        return ensure_test_models()
    except Exception as exc:  # pragma: no cover - depends on the network
        if os.environ.get("CI"):
            raise
        pytest.skip(f"test models unavailable (set CI=1 to make this an error): {exc}")


@pytest.fixture(scope="session")
def smollm2_path(model_paths) -> str:
    return str(model_paths["smollm2"])


@pytest.fixture(scope="session")
def gemma3_path(model_paths) -> str:
    return str(model_paths["gemma3"])


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    from llamabind import _native

    model = _native.Model(smollm2_path)
    yield model
    model.close()


@pytest.fixture(scope="session")
def vendor_models() -> Path:
    return VENDOR_MODELS
