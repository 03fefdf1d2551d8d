"""What a server is started with: its models, address, key and limits (no web imports)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llamabind.params import ModelParams

API_KEY_VARIABLE = "LLAMABIND_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model the server serves.

    Args:
        ref: A path, URI or name the resolvers turn into a local GGUF file (resolved once,
            at start; requests never name paths).
        alias: The id requests select it by; None uses the file name without ``.gguf``.
        params: How it is loaded (context size, threads, parallel sequences, queue).
    """

    ref: str
    alias: str | None = None
    params: ModelParams = field(default_factory=ModelParams)

    def __post_init__(self) -> None:
        if not isinstance(self.ref, str) or not self.ref:
            raise ValueError(f"ModelSpec.ref must be a non-empty str, got {self.ref!r}")
        if self.alias is not None and (not isinstance(self.alias, str) or not self.alias.strip()):
            raise ValueError(f"ModelSpec.alias must be a non-empty str, got {self.alias!r}")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the server runs.

    Args:
        models: The models it serves; the first one answers requests that name no model.
        host: Address to bind; loopback by default, so nothing outside this machine connects.
        port: TCP port; 0 picks a free one.
        api_key: Required as ``Authorization: Bearer <key>`` on every route but ``/health``;
            None takes ``LLAMABIND_API_KEY`` from the environment, "" turns checking off.
        max_body_bytes: Largest request body accepted; bigger ones get 413.
        cors_origins: Origins allowed by CORS; empty turns CORS off.
        drain_timeout_s: On SIGTERM, how long running requests may finish before they are
            cancelled.
        retry_after_s: ``Retry-After`` sent with 429/503 when the queue is full.
    """

    models: tuple[ModelSpec, ...]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    drain_timeout_s: float = 30.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        models = tuple(self.models)
        if not models or not all(isinstance(m, ModelSpec) for m in models):
            raise ValueError("ServerConfig.models must hold at least one ModelSpec")
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 <= self.port < 65536
        ):
            raise ValueError(f"ServerConfig.port must be in [0, 65535], got {self.port!r}")
        if self.max_body_bytes < 1:
            raise ValueError(
                f"ServerConfig.max_body_bytes must be >= 1, got {self.max_body_bytes!r}"
            )
        if self.drain_timeout_s < 0:
            raise ValueError(
                f"ServerConfig.drain_timeout_s must be >= 0, got {self.drain_timeout_s!r}"
            )

    def resolved_api_key(self) -> str | None:
        """The key requests must carry, or None when none is required."""
        key = self.api_key if self.api_key is not None else os.environ.get(API_KEY_VARIABLE)
        return key or None
