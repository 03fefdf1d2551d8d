"""The model-load worker of the ``gguf`` fuzz target (``targets.fuzz_gguf``), one process.

Reads one file path per line from stdin, loads it with llama.cpp and, when that succeeds, uses
the model a little (metadata, tokenizer, a context and one decode); answers one line per path:
``ok``, ``error <LlamaError class>``, or ``unexpected <type>: <message>``. A native crash ends
the process without an answer, which the caller reports.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from llamabind import _native  # noqa: E402  (after the OpenMP setting)
from llamabind.errors import LlamaError  # noqa: E402


def use(path: str) -> None:
    with _native.Model(path) as model:
        dict(model.metadata)
        tokens = model.tokenize("Hello, world! 123", add_special=True, parse_special=True)
        model.detokenize(tokens)
        if model.n_vocab > 0 and not tokens:
            tokens = [0]
        with _native.Context(model, n_ctx=16, n_batch=16, n_threads=1, n_threads_batch=1) as ctx:
            ctx.decode(tokens[:8] or [0])


def main() -> None:
    for line in sys.stdin.buffer:
        path = os.fsdecode(line.rstrip(b"\n"))
        try:
            use(path)
            answer = "ok"
        except LlamaError as exc:
            answer = f"error {type(exc).__name__}"
        except Exception as exc:  # noqa: BLE001  (every other type is a finding, reported)
            answer = f"unexpected {type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
