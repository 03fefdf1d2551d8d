"""The ASGI application and how it is run: models loaded first, a bound socket, SIGTERM drains.

``create_app`` builds the FastAPI app for a ``ServerConfig``; ``serve`` loads the models, binds
the address (a port in use fails here, before anything starts) and runs uvicorn until SIGINT or
SIGTERM, letting running requests finish for ``drain_timeout_s``.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from llamabind.server import errors
from llamabind.server.config import ServerConfig
from llamabind.server.metrics import Metrics
from llamabind.server.middleware import (
    APIKeyMiddleware,
    BodyLimitMiddleware,
    RequestMetricsMiddleware,
)
from llamabind.server.registry import ModelRegistry
from llamabind.server.routes import ServerState, router

logger = logging.getLogger("llamabind.server")


def create_app(config: ServerConfig, registry: ModelRegistry | None = None) -> FastAPI:
    """The OpenAI-compatible app.

    Args:
        config: Models, key, limits, CORS.
        registry: Models loaded already (the app closes them when it stops); None loads
            ``config.models`` when the app starts.

    Returns:
        An ASGI app for uvicorn (or any ASGI server).
    """
    models = registry if registry is not None else ModelRegistry(config.models)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not any(True for _ in models):
            await models.aload()
        try:
            yield
        finally:
            models.close()

    app = FastAPI(
        title="llamabind", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.llamabind = ServerState(config, models, metrics)
    app.include_router(router)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    api_key = config.resolved_api_key()
    if api_key:
        app.add_middleware(APIKeyMiddleware, api_key=api_key)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type"],
        )
    routes = frozenset(getattr(r, "path", "") for r in router.routes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, routes=routes)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one).

    Raises:
        OSError: the address is in use or cannot be bound; the message says which.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say TCP, and
    # with it on a streamed reply's first chunk waited ~40 ms for the client's delayed ACK of
    # the headers (every reply, streamed or not, came that much later).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        error = OSError(
            f"cannot listen on {host}:{port}: {exc.strerror}"
            + ("; choose another with --port" if port else "")
        )
        error.errno = exc.errno
        raise error from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: FastAPI, config: ServerConfig, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for ``app`` that drains for ``config.drain_timeout_s`` on SIGTERM."""
    settings = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=log_level == "debug",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(config.drain_timeout_s),
    )
    return uvicorn.Server(settings)


def serve(config: ServerConfig, log_level: str = "info") -> None:
    """Binds, loads the models, and serves until SIGINT or SIGTERM (blocking).

    Raises:
        ModelNotFoundError, ModelLoadError: a model could not be found or loaded.
        OSError: the address cannot be bound (e.g. the port is in use).
    """
    sock = bind(config.host, config.port)  # a port in use fails before the models load
    registry = ModelRegistry(config.models)
    try:
        registry.load()
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    logger.info(
        "listening on http://%s:%d (models: %s)",
        host,
        port,
        ", ".join(served.id for served in registry),
    )
    server = uvicorn_server(create_app(config, registry), config, log_level)
    server.run(sockets=[sock])
