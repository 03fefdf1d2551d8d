"""A real server on a free loopback port, in a thread of the test process, for the session."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

pytest.importorskip("fastapi", reason="the server tests need the server extra")
pytest.importorskip("uvicorn", reason="the server tests need the server extra")

from llamabind.params import ModelParams
from llamabind.server import (
    ModelRegistry,
    ModelSpec,
    ServerConfig,
    bind,
    create_app,
    uvicorn_server,
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


def start_server(config: ServerConfig, registry: ModelRegistry):
    """Runs uvicorn on a bound loopback socket in a daemon thread; returns (server, thread, port)."""
    sock = bind(config.host, 0)
    port = sock.getsockname()[1]
    server = uvicorn_server(create_app(config, registry), config, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return server, thread, port


def is_busy(engine) -> bool:
    """Whether the engine runs (or queues) any request."""
    queue_info = getattr(engine, "queue_info", None)
    if queue_info is not None:
        info = queue_info()
        return info.n_active + info.n_waiting > 0
    return engine.is_generating


def wait_idle(engine, timeout_s: float = 60) -> bool:
    """Waits until the engine runs nothing; False if it still does after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while is_busy(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_busy(engine)


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
