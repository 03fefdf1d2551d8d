"""A real server on a free loopback port, in a thread of the test process, for the session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

pytest.importorskip("fastapi", reason="the server tests need the server extra")
pytest.importorskip("uvicorn", reason="the server tests need the server extra")

from live_server import is_busy, start_server, wait_idle  # noqa: E402,F401 (helpers the tests share)
from llamabind.params import ModelParams
from llamabind.server import (
    ModelRegistry,
    ModelSpec,
    ServerConfig,
)

API_KEY = "test-key-123"
MODEL_ID = "smollm2"


@dataclass
class RunningServer:
    url: str
    host: str
    port: int
    api_key: str
    model_id: str
    registry: ModelRegistry

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture(scope="session")
def server(smollm2_path):
    params = ModelParams(n_ctx=2048, n_threads=2)
    config = ServerConfig(
        models=(ModelSpec(smollm2_path, alias=MODEL_ID, params=params),),
        port=0,
        api_key=API_KEY,
        max_body_bytes=64 * 1024,
        drain_timeout_s=5,
    )
    registry = ModelRegistry(config.models)
    registry.load()
    uv, thread, port = start_server(config, registry)
    yield RunningServer(f"http://127.0.0.1:{port}", "127.0.0.1", port, API_KEY, MODEL_ID, registry)
    uv.should_exit = True
    thread.join(30)
