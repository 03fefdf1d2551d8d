"""Download limits against a real local server that stalls or drips: an overall deadline, a
minimum throughput and cancellation end a download even while a read is blocked."""

from __future__ import annotations

import ssl
import threading
import time

import pytest
from llamabind.resolvers import DownloadOptions, ModelDownloadError
from llamabind.resolvers.download import download_file
from local_server import Fault

SIZE = 600_000


@pytest.fixture
def payload(gguf_bytes):
    return gguf_bytes(SIZE)


@pytest.fixture
def target(tmp_path):
    return tmp_path / "cache" / "model.gguf"


def limited(**overrides) -> DownloadOptions:
    """A long socket timeout, so that only the watchdog can end a blocked read quickly."""
    settings = {"timeout_s": 60.0, "retry_delay_s": 0.01, "speed_window_s": 1.0}
    return DownloadOptions(**{**settings, **overrides})


def fails_within(seconds: float, url, target, options) -> ModelDownloadError:
    start = time.monotonic()
    with pytest.raises(ModelDownloadError) as caught:
        download_file(url, target, options=options)
    assert time.monotonic() - start < seconds
    assert not target.exists()
    return caught.value


def test_a_dripping_server_is_too_slow(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(drip_s=0.2, times=10))  # 5 bytes/s, each within timeout
    error = fails_within(20, url, target, limited(min_bytes_per_s=1000))
    assert error.reason == "too_slow" and "min_bytes_per_s" in str(error)


def test_a_stalled_read_ends_without_waiting_for_the_socket_timeout(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(stall_after=70_000))
    error = fails_within(20, url, target, limited(min_bytes_per_s=1000))
    assert error.reason == "too_slow"
    assert (target.parent / "model.gguf.part").stat().st_size == 70_000  # kept for resuming
    download_file(url, target, options=limited(speed_window_s=10.0))
    assert target.read_bytes() == payload and server.gets("/m.gguf")[-1].range_start == 70_000


def test_a_stalled_tls_read_ends_too(tls_server, tls_files, payload, target):
    url = tls_server.add_file("/m.gguf", payload)
    tls_server.add_fault("/m.gguf", Fault(stall_after=70_000))
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    error = fails_within(20, url, target, limited(min_bytes_per_s=1000, ssl_context=context))
    assert error.reason == "too_slow"


def test_overall_deadline(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(drip_s=0.01, times=10))
    error = fails_within(20, url, target, limited(min_bytes_per_s=0, deadline_s=1.0))
    assert error.reason == "timeout" and "deadline of 1 s" in str(error)


def test_cancel_event_ends_a_blocked_read(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(stall_after=70_000))
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    error = fails_within(20, url, target, limited(min_bytes_per_s=0, cancel=cancel))
    assert error.reason == "cancelled"


def test_a_slow_but_steady_download_completes(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(chunk_delay_s=0.05))
    download_file(url, target, options=limited(min_bytes_per_s=1000, speed_window_s=5.0))
    assert target.read_bytes() == payload


def test_a_download_cancelled_before_it_starts_sends_nothing(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    cancel = threading.Event()
    cancel.set()
    error = fails_within(20, url, target, limited(cancel=cancel))
    assert error.reason == "cancelled" and server.requests == []
