"""``bench``: quick prompt and generation speed of a model (tokens per second)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from llamabind.cli.options import CommandError, model_params, resolve
from llamabind.engine import LlamaEngine
from llamabind.params import GenerationParams

FILLER = "The quick brown fox jumps over the lazy dog while the sun sets behind the hills. "


def bench(args: argparse.Namespace) -> int:
    """Evaluates a prompt of ``--n-prompt`` tokens and generates ``--n-gen`` tokens,
    ``--repetitions`` times with an empty cache, and prints the medians."""
    if args.n_prompt < 1 or args.n_gen < 1 or args.repetitions < 1:
        raise CommandError("--n-prompt, --n-gen and --repetitions must be >= 1")
    path = resolve(args.model)
    if args.n_ctx is None:
        args.n_ctx = args.n_prompt + args.n_gen + 16
    prompt_rates, gen_rates = [], []
    with LlamaEngine(path, model_params(args)) as engine:
        token_ids = engine.tokenize(FILLER * (args.n_prompt // 8 + 1))[: args.n_prompt]
        params = GenerationParams(max_tokens=args.n_gen, temperature=0.0, ignore_eos=True)
        for _ in range(args.repetitions):
            engine.reset_cache()
            run = engine.start_generation(token_ids, params)
            for _ in run:
                pass
            usage = run.usage
            if usage is not None and usage.prompt_tokens_per_s:
                prompt_rates.append(usage.prompt_tokens_per_s)
            if usage is not None and usage.generation_tokens_per_s:
                gen_rates.append(usage.generation_tokens_per_s)
        threads = engine.params.n_threads if engine.params else None
    result = {
        "model": path.name,
        "n_prompt": args.n_prompt,
        "n_gen": args.n_gen,
        "repetitions": args.repetitions,
        "threads": threads,
        "prompt_tokens_per_s": statistics.median(prompt_rates) if prompt_rates else None,
        "generation_tokens_per_s": statistics.median(gen_rates) if gen_rates else None,
    }
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(
            f"{path.name}: prompt {args.n_prompt} tokens {result['prompt_tokens_per_s'] or 0:.1f} "
            f"tokens/s, generation {args.n_gen} tokens {result['generation_tokens_per_s'] or 0:.1f}"
            f" tokens/s (median of {args.repetitions})"
        )
    return 0
