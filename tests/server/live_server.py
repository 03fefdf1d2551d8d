"""Helpers the server tests share (a module of its own: ``conftest`` is ambiguous between test
folders, so tests never import from it)."""

from __future__ import annotations

import threading
import time

from llamabind.server import ModelRegistry, ServerConfig, bind, create_app, uvicorn_server


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
