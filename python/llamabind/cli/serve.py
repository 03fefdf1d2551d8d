"""``serve``: the OpenAI-compatible server (needs ``pip install "llamabind[server]"``)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from llamabind.cli.options import CommandError, model_params, resolve


# size: one flag after the other, each with its help text
def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the models, address, key, queue and limit flags of ``serve``."""
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="models to serve (paths, URIs or names; default: SmolLM2-135M)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        dest="more_models",
        metavar="MODEL",
        help="another model to serve (repeatable)",
    )
    parser.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="NAME",
        help="the id of the n-th model in requests (repeatable, in order)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (default: $LLAMABIND_API_KEY)",
    )
    parser.add_argument(
        "--parallel", type=int, default=None, help="requests generating at once per model"
    )
    parser.add_argument(
        "--queue", type=int, default=None, help="requests that may wait per model; more get 429"
    )
    unified = "one KV cache for all parallel requests: a quicker first token, but a greedy reply "
    unified += "may differ from the same request served alone"
    parser.add_argument("--kv-unified", action="store_true", default=None, help=unified)
    parser.add_argument(
        "--prompt-cache-mib",
        type=int,
        default=None,
        help="host memory for earlier prompts' KV caches with --parallel > 1 (default 256; 0: off)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 1024 * 1024,
        help="largest request body (default 8 MiB)",
    )
    parser.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser requests from ORIGIN ('*' for any; default: none)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds running requests may finish after SIGTERM (default 30)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    """Loads the models and serves them until SIGINT or SIGTERM."""
    try:
        from llamabind.server import ModelSpec, ServerConfig
        from llamabind.server import serve as run_server
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    refs = list(args.models) + list(args.more_models)
    if len(args.alias) > max(len(refs), 1):
        raise CommandError(f"{len(args.alias)} aliases for {max(len(refs), 1)} models")
    params = model_params(
        args,
        n_parallel=args.parallel,
        n_queue=args.queue,
        kv_unified=args.kv_unified,
        prompt_cache_mib=args.prompt_cache_mib,
    )
    paths = [str(resolve(ref)) for ref in refs] or [str(resolve(None))]
    specs = tuple(
        ModelSpec(path, args.alias[i] if i < len(args.alias) else None, params)
        for i, path in enumerate(paths)
    )
    config = ServerConfig(
        models=specs,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        max_body_bytes=args.max_body_bytes,
        cors_origins=tuple(args.cors),
        drain_timeout_s=args.drain_timeout,
    )
    if not _is_loopback(args.host) and not config.resolved_api_key():
        print(
            f"llamabind: warning: serving on {args.host} without an API key: anyone who can "
            "reach this address can use the models (set --api-key)",
            file=sys.stderr,
        )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    run_server(config, log_level=args.log_level)
    return 0
