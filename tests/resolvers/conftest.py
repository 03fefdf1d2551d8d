"""Fixtures for the resolver tests: an isolated environment, a local HTTP server, GGUF files."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from local_server import start_server
from synthetic_gguf import write_gguf


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Keeps every test away from the user's caches, models path and the real hub."""
    monkeypatch.setenv("LLAMABIND_CACHE_DIR", str(tmp_path / "llamabind-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed port: never the real hub
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for variable in ("LLAMABIND_MODELS_PATH", "HF_HUB_OFFLINE", "HF_TOKEN", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server():
    state, server = start_server()
    yield state
    state.closing.set()  # ends stalled and dripping answers
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(tls_files):
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    state, server = start_server(context)
    yield state
    state.closing.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def gguf_bytes(tmp_path):
    """Bytes of a synthetic GGUF model (``size`` adds a padding tensor of that many bytes)."""
    counter = iter(range(10_000))

    def make(size: int = 0, **options) -> bytes:
        path = tmp_path / f"synthetic-{next(counter)}.gguf"
        return write_gguf(path, extra_bytes=size, **options).read_bytes()

    return make
