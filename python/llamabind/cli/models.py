"""``pull``, ``ls``, ``rm`` and ``info``: the models the resolvers can see."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

from llamabind.cli.options import model_params, resolve


def _size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "?"
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


class _ProgressBar:
    """Draws one download's progress on stderr, at most ten times a second."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, event: Any) -> None:
        now = time.monotonic()
        if event.status == "downloading" and now - self._last < 0.1:
            return
        self._last = now
        name = event.url.rsplit("/", 1)[-1]
        done, total = _size(event.n_bytes_done), _size(event.n_bytes_total)
        fraction = event.fraction
        bar = ""
        if fraction is not None:
            filled = int(fraction * 30)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% "
        end = "\n" if event.status == "done" else ""
        sys.stderr.write(f"\r{name} {bar}{done} / {total} {event.status}{end}")
        sys.stderr.flush()


def pull(args: argparse.Namespace) -> int:
    """Downloads a model into its cache (with a progress bar) and prints its path."""
    from llamabind.resolvers import pull_model

    progress = None if args.quiet else _ProgressBar()
    path = pull_model(args.ref, progress=progress, sha256=args.sha256)
    print(path)
    return 0


def ls(args: argparse.Namespace) -> int:
    """Lists every model the resolvers can see, with size, quantisation and source."""
    from llamabind.resolvers import list_local_models

    models = list_local_models()
    if not models:
        print(
            "no models found (pull one with `llamabind pull hf://org/repo:QUANT`, or add a "
            "directory of .gguf files to LLAMABIND_MODELS_PATH)",
            file=sys.stderr,
        )
        return 0
    rows = [("NAME", "SIZE", "QUANT", "SOURCE", "PATH")]
    for info in models:
        quant = info.quantization or "?"
        if info.problem:
            quant = f"broken: {info.problem}"
        rows.append(
            (
                info.name,
                _size(info.size_bytes),
                quant,
                info.source,
                str(info.path or info.uri or ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    return 0


def rm(args: argparse.Namespace) -> int:
    """Deletes a downloaded model."""
    from llamabind.resolvers import remove_model

    removed = remove_model(args.ref)
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print(f"removed the partial download of {args.ref}")
    return 0


def info(args: argparse.Namespace) -> int:
    """Prints a model's metadata, chat template format and capabilities."""
    from llamabind.engine import LlamaEngine
    from llamabind.resolvers import read_gguf_info

    path = resolve(args.model)
    header = read_gguf_info(path)
    facts: list[tuple[str, Any]] = [
        ("path", path),
        ("name", header.model_name),
        ("architecture", header.architecture),
        ("parameters", f"{header.n_params:,}"),
        ("quantization", header.quantization),
        ("context (trained)", header.n_ctx_train),
        ("gguf version", header.version),
    ]
    args.n_ctx = args.n_ctx if args.n_ctx is not None else 512
    with LlamaEngine(path, model_params(args)) as engine:
        caps = engine.get_capabilities()
        template = (
            engine.chat_template([{"role": "user", "content": "hi"}]).format
            if caps.has_chat_template
            else None
        )
        facts += [
            ("size", _size(engine.model.size_bytes)),
            ("embedding size", engine.model.n_embd),
            ("layers", engine.model.n_layer),
            ("vocabulary", engine.model.n_vocab),
            ("chat template", template or "none"),
            (
                "capabilities",
                ", ".join(
                    name[len("supports_") :]
                    for name, value in sorted(dataclasses.asdict(caps).items())
                    if name.startswith("supports_") and value
                ),
            ),
            ("backend", caps.backend_name),
        ]
    width = max(len(key) for key, _ in facts)
    for key, value in facts:
        print(f"{key.ljust(width)}  {value if value is not None else '?'}")
    if args.metadata:
        for key, value in sorted(header.metadata.items()):
            text = str(value)
            print(f"  {key} = {text[:117] + '...' if len(text) > 120 else text}")
    return 0
