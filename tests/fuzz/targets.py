"""The fuzz targets: plain functions of one input (bytes), importable without atheris.

Each target feeds its input to one parser of untrusted text and returns normally when llamabind
answered with a result or with one of the exceptions the target accepts: an error of llamabind's
hierarchy, or a plain ``ValueError`` where the API documents it for a malformed argument (exactly
``ValueError``, not a subclass such as ``UnicodeEncodeError``). Anything else propagates: another
exception type, a broken invariant (:class:`Finding`), or, in-process, a native crash or a hang,
which libFuzzer catches. Model loading runs in a worker process (``gguf_worker.py``), so a native
crash there is reported as a :class:`Finding` and the worker is started again.

``tests/fuzz/harness.py NAME`` runs one target under atheris; ``scripts/fuzz.py`` runs them all
for a bounded time; ``tests/fuzz/test_seeds.py`` runs every seed of ``corpus/NAME`` once.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from llamabind.errors import LlamaError

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
VENDOR = FUZZ_DIR.parent.parent / "vendor" / "llama.cpp" / "models"
WORKER_TIMEOUT_S = 30.0


class Finding(Exception):
    """An input broke a promise: a crash of the worker, a hang, or a broken invariant."""


def text_of(data: bytes) -> str:
    """The input as text; bytes that are not UTF-8 become lone surrogates (surrogateescape)."""
    return data.decode("utf-8", "surrogateescape")


def accepted(exc: BaseException, *plain: type[BaseException]) -> bool:
    """Whether ``exc`` is an answer: a LlamaError, or exactly one of the documented ``plain``."""
    return isinstance(exc, LlamaError) or type(exc) in plain


def _call(fn: Callable[[], Any], *plain: type[BaseException]) -> Any:
    """``fn()``, or None when it raised an accepted exception."""
    try:
        return fn()
    except Exception as exc:
        if accepted(exc, *plain):
            return None
        raise


# --------------------------------------------------------------------------- GGUF / model load


class _Worker:
    """``gguf_worker.py`` in a child process: loads one file per request, survives nothing."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, str(FUZZ_DIR / "gguf_worker.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self.proc

    def load(self, path: Path) -> str:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(os.fsencode(path) + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], WORKER_TIMEOUT_S)
        if not ready:
            proc.kill()
            self.close()
            raise Finding(f"loading the model hung for more than {WORKER_TIMEOUT_S:.0f} s")
        line = proc.stdout.readline().decode(errors="replace").strip()
        if not line:
            code = proc.wait()
            self.close()
            raise Finding(f"the model load crashed the process (exit status {code})")
        return line

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()  # the worker ends at the end of its input
            proc.wait(timeout=WORKER_TIMEOUT_S)
            proc.stdout.close()


_worker = _Worker()


@cache
def _scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="llamabind-fuzz-"))


def fuzz_gguf(data: bytes) -> None:
    """The GGUF bytes through the Python header reader (in-process) and llama.cpp (the worker)."""
    from llamabind.resolvers.gguf_info import read_gguf_info

    path = _scratch_dir() / "input.gguf"
    path.write_bytes(data)
    _call(lambda: read_gguf_info(path))
    answer = _worker.load(path)
    if not answer.startswith(("ok", "error ")):
        raise Finding(f"the model load raised {answer}")


# --------------------------------------------------------------------------- grammars


@cache
def vocab_model() -> Any:
    """A vocab-only model from the vendored tree (grammars and chat need a vocabulary)."""
    from llamabind import _native

    return _native.Model(str(VENDOR / "ggml-vocab-llama-spm.gguf"), vocab_only=True)


def _feed_tokens(sampler: Any, data: bytes) -> None:
    """Accepts a few token ids taken from the input's tail (drives the grammar's stacks)."""
    n_vocab = vocab_model().n_vocab
    for i in range(0, min(len(data), 32) - 1, 2):
        token = (data[i] << 8 | data[i + 1]) % n_vocab
        if _call(lambda t=token: sampler.accept(t)) is None:
            return


def fuzz_grammar(data: bytes) -> None:
    """GBNF text (or, by the first byte, a lazy grammar's trigger pattern) into a Sampler."""
    from llamabind import _native

    if not data:
        return
    mode, text = data[0] % 4, text_of(data[1:])
    model = vocab_model()
    if mode == 0:
        sampler = _call(lambda: _native.Sampler(model, grammar=text))
    else:
        key = ("trigger_patterns", "trigger_patterns_full", "trigger_words")[mode - 1]
        kwargs: dict[str, Any] = {key: [text]}
        sampler = _call(
            lambda: _native.Sampler(model, grammar='root ::= "x"', grammar_lazy=True, **kwargs)
        )
    if sampler is not None:
        _feed_tokens(sampler, data[1:])
        sampler.close()


def fuzz_json_schema(data: bytes) -> None:
    """A JSON schema through llama.cpp's converter; a grammar it makes must parse."""
    from llamabind import _native

    grammar = _call(lambda: _native.json_schema_to_grammar(text_of(data)))
    if grammar is None:
        return
    try:
        _native.Sampler(vocab_model(), grammar=grammar).close()
    except LlamaError as exc:
        raise Finding(f"the converter made a grammar that does not parse: {exc}") from exc


# --------------------------------------------------------------------------- chat output parser

CHAT_TEMPLATES = (
    "Qwen-Qwen2.5-7B-Instruct",  # Hermes-style <tool_call> JSON
    "meta-llama-Llama-3.1-8B-Instruct",  # Llama 3.x JSON tool calls
    "mistralai-Mistral-Nemo-Instruct-2407",  # [TOOL_CALLS]
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",  # <think> reasoning and DeepSeek tool calls
    "openai-gpt-oss-120b",  # harmony channels
    "Qwen3-Coder",  # XML-style tool calls
    "google-gemma-4-31B-it",  # Gemma 4's own syntax
)
_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]


@cache
def chat_params(index: int) -> Any:
    """llama.cpp's ChatParams of a vendored template, for a request with one tool."""
    from llamabind import _native

    name = CHAT_TEMPLATES[index]
    source = (VENDOR / "templates" / f"{name}.jinja").read_text(encoding="utf-8")
    templates = _native.ChatTemplates(template=source, bos_token="<s>", eos_token="</s>")
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    return templates.apply(json.dumps(messages), tools_json=json.dumps(_TOOLS))


def fuzz_chat_parse(data: bytes) -> None:
    """Generated text through a format's parser: whole, partial, or streamed in pieces."""
    from llamabind import _native

    if len(data) < 2:
        return
    params = chat_params(data[0] % len(CHAT_TEMPLATES))
    mode, body = data[1] % 4, data[2:]
    parser = _native.ChatParser(params)
    if mode < 2:
        _call(lambda: parser.parse(text_of(body), is_partial=mode == 1), ValueError)
        return
    # Streamed: pieces of 1..8 bytes, as bytes (mode 2) or as text (mode 3).
    at, step = 0, 1
    while at < len(body):
        piece = body[at : at + step]
        at, step = at + step, step % 8 + 1
        _call(lambda p=piece: parser.feed(p if mode == 2 else text_of(p)))
    parser.finish()
    parser.message  # noqa: B018  (the property is the check: it must build a dict)


# --------------------------------------------------------------------------- template rendering

_MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "What is 2 + 2?"},
]


def fuzz_template(data: bytes) -> None:
    """Template source (first byte even) or message text (odd, through a vendored template)
    rendered by the sandboxed Python renderer; data spans must stay inside the prompt."""
    from llamabind.chat.limits import RenderLimits
    from llamabind.chat.marking import unmark
    from llamabind.chat.template import ChatTemplate

    if not data:
        return
    limits = RenderLimits(max_output_chars=1 << 20, max_steps=200_000, max_seconds=2.0)
    if data[0] % 2 == 0:
        source, messages = text_of(data[1:]), _MESSAGES
    else:
        name = CHAT_TEMPLATES[(data[0] >> 1) % len(CHAT_TEMPLATES)]
        source = (VENDOR / "templates" / f"{name}.jinja").read_text(encoding="utf-8")
        parts = text_of(data[1:]).split("\x00")
        roles = ("user", "assistant")
        messages = [{"role": roles[i % 2], "content": part} for i, part in enumerate(parts)]
    template = _call(lambda: ChatTemplate(source, name="fuzz", limits=limits))
    if template is None:
        return
    marked = _call(lambda: template.render(messages, mark_data=True))
    if marked is None:
        return
    prompt, spans = unmark(marked)
    if any(not 0 <= start <= end <= len(prompt) for start, end in spans):
        raise Finding(f"data spans {spans} fall outside the {len(prompt)}-character prompt")


# --------------------------------------------------------------------------- resolvers' names


@cache
def _resolvers() -> tuple[Any, Any, Path]:
    from llamabind.resolvers.file import FileModelResolver
    from llamabind.resolvers.url import UrlModelResolver

    root = _scratch_dir() / "models"
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "m.gguf").write_bytes(b"GGUF")
    files = FileModelResolver(root)
    urls = UrlModelResolver(base_url="https://example.org/models/", cache_dir=root / "cache")
    return files, urls, root


def fuzz_resolvers(data: bytes) -> None:
    """A model name through every parser of names, URIs and references; nothing may leave
    the file resolver's directory or the URL resolver's cache."""
    from llamabind.resolvers.hf import looks_like_hf_reference, parse_hf_reference
    from llamabind.resolvers.names import file_uri_path, name_form
    from llamabind.resolvers.url import cache_path_for, split_checksum

    name = text_of(data)
    files, urls, root = _resolvers()
    form = _call(lambda: name_form(name), ValueError)
    if form == "file":
        _call(lambda: file_uri_path(name), ValueError)
    _call(lambda: looks_like_hf_reference(name), ValueError)
    _call(lambda: parse_hf_reference(name), ValueError)
    url = _call(lambda: split_checksum(name)[0], ValueError)
    if url is not None and url.lower().startswith(("http://", "https://")):
        cached = _call(lambda: cache_path_for(url, root / "cache"), ValueError)
        if cached is not None and not cached.resolve().is_relative_to((root / "cache").resolve()):
            raise Finding(f"{name!r} is cached at {cached}, outside the cache")
    _call(lambda: urls.url_for(name), ValueError)
    found = _call(lambda: files.resolve(name), ValueError)
    if found is not None and not Path(found).resolve().is_relative_to(root.resolve()):
        raise Finding(f"{name!r} resolved to {found}, outside {root}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "gguf": fuzz_gguf,
    "grammar": fuzz_grammar,
    "json_schema": fuzz_json_schema,
    "chat_parse": fuzz_chat_parse,
    "template": fuzz_template,
    "resolvers": fuzz_resolvers,
}


def seeds(name: str) -> list[Path]:
    """The committed seed inputs of a target."""
    return sorted(p for p in (CORPUS_DIR / name).iterdir() if p.is_file())


def close() -> None:
    """Stops the model-load worker."""
    _worker.close()
