"""An OpenAI-compatible HTTP server over the engine (``pip install "llamabind[server]"``).

Routes: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/models``,
``/health``, ``/metrics``, ``/tokenize``, ``/detokenize``. Start it with ``llamabind serve MODEL``
or ``llamabind.server.serve(ServerConfig(...))``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the llamabind server needs its extra ({exc.name} is missing): "
        'pip install "llamabind[server]"'
    ) from exc

from llamabind.server.app import bind, create_app, serve, uvicorn_server
from llamabind.server.config import API_KEY_VARIABLE, ModelSpec, ServerConfig
from llamabind.server.registry import ModelRegistry

__all__ = [
    "API_KEY_VARIABLE",
    "ModelRegistry",
    "ModelSpec",
    "ServerConfig",
    "bind",
    "create_app",
    "serve",
    "uvicorn_server",
]
