import logging
import subprocess
import sys

import pytest

import llamabind


def test_public_names():
    assert llamabind.Model is llamabind._native.Model
    assert issubclass(llamabind.GrammarError, ValueError)
    assert issubclass(llamabind.ContextOverflowError, llamabind.LlamaError)


def test_set_log_level():
    try:
        llamabind.set_log_level("INFO")
        assert llamabind._native.log_threshold() == logging.INFO
        assert logging.getLogger("llamabind.native").level == logging.INFO
        with pytest.raises(ValueError):
            llamabind.set_log_level("LOUD")
    finally:
        llamabind.set_log_level(logging.WARNING)


def test_main_streams_a_completion(smollm2_path):
    result = subprocess.run(
        [sys.executable, "-m", "llamabind", "The capital of France is", "--model", smollm2_path,
         "--max-tokens", "8"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The capital of France is Paris")
    assert "8 tokens" in result.stderr
