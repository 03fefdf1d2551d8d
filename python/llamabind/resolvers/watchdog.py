"""The limits a download runs under: an overall deadline, a minimum throughput, cancellation.

A read from a stalled or dripping server can block for the whole socket timeout, again and
again. A :class:`Watchdog` thread therefore checks the limits a few times a second and, when
one is broken, shuts the connection's socket down, which ends a blocked read at once; the
download then raises the watchdog's error instead of retrying.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request
from collections import deque
from typing import Any

from llamabind.errors import ModelDownloadError

TICK_S = 0.1


class Watchdog:
    """Watches one download (all its attempts) against the limits of its options.

    Args:
        url: What is downloaded (for messages).
        deadline_s: Seconds the whole download may take; ``None``: no deadline.
        min_bytes_per_s: Fewer bytes than this per second, averaged over ``speed_window_s``,
            end the download; ``0`` disables the rule.
        speed_window_s: The window of the throughput rule, in seconds.
        cancel: Set it (from any thread) to cancel the download.
    """

    def __init__(
        self,
        url: str,
        *,
        deadline_s: float | None,
        min_bytes_per_s: float,
        speed_window_s: float,
        cancel: threading.Event | None,
    ) -> None:
        self.url, self.deadline_s, self.cancel = url, deadline_s, cancel
        self.min_bytes_per_s, self.speed_window_s = min_bytes_per_s, speed_window_s
        self.failure: ModelDownloadError | None = None
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._n_bytes = 0
        self._start_s = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque([(self._start_s, 0)])
        self._thread = threading.Thread(target=self._watch, name="llamabind-download", daemon=True)

    def __enter__(self) -> None:
        self._start_s = time.monotonic()
        self._samples = deque([(self._start_s, self._n_bytes)])
        self.failure = self._broken_limit(self._start_s)  # cancelled before it began
        self._thread.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self._thread.join()

    def attach(self, sock: socket.socket | None) -> None:
        """Watches the socket of a new connection (the previous one is done)."""
        with self._lock:
            self._socket = sock
            tripped = self.failure is not None
        if tripped:
            self._shut_down()

    def count(self, n_bytes: int) -> None:
        """Records bytes received."""
        with self._lock:
            self._n_bytes += n_bytes

    def check(self) -> None:
        """Raises the watchdog's error if a limit was broken.

        Raises:
            ModelDownloadError: Past the deadline, too slow, or cancelled.
        """
        if self.failure is not None:
            raise self.failure

    def wait(self, delay_s: float) -> None:
        """Sleeps ``delay_s`` between attempts, waking early (and raising) if a limit breaks."""
        self.stopped.wait(delay_s)
        self.check()

    def _watch(self) -> None:
        while not self.stopped.wait(TICK_S):
            failure = self._broken_limit(time.monotonic())
            if failure is not None:
                self.failure = failure
                self.stopped.set()
                self._shut_down()

    def _shut_down(self) -> None:
        with self._lock:
            sock = self._socket
        if sock is not None:
            try:  # the plain socket's shutdown, so that a TLS socket is not torn down mid-read
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def _broken_limit(self, now: float) -> ModelDownloadError | None:
        kept = "; the partial file is kept and the next attempt resumes"
        with self._lock:
            n_bytes = self._n_bytes
        if self.cancel is not None and self.cancel.is_set():
            return self._error(f"cancelled at {n_bytes} bytes received{kept}", "cancelled")
        elapsed_s = now - self._start_s
        if self.deadline_s is not None and elapsed_s > self.deadline_s:
            return self._error(
                f"not finished within the deadline of {self.deadline_s:g} s ({n_bytes} bytes "
                f"received){kept}; raise DownloadOptions(deadline_s=...) for large files",
                "timeout",
            )
        self._samples.append((now, n_bytes))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.speed_window_s:
            self._samples.popleft()
        if self.min_bytes_per_s > 0 and elapsed_s >= self.speed_window_s:
            n_window = n_bytes - self._samples[0][1]
            if n_window < self.min_bytes_per_s * self.speed_window_s:
                return self._error(
                    f"too slow: {n_window} bytes in the last {self.speed_window_s:g} s, below "
                    f"the minimum of {self.min_bytes_per_s:g} bytes/s (the server stalled or "
                    f"drips){kept}; change DownloadOptions(min_bytes_per_s=..., "
                    "speed_window_s=...) to allow slower links",
                    "too_slow",
                )
        return None

    def _error(self, message: str, reason: str) -> ModelDownloadError:
        return ModelDownloadError(f"[download] {self.url}: {message}", url=self.url, reason=reason)


def _watched(base: type[http.client.HTTPConnection], watchdog: Watchdog) -> Any:
    """``base`` (HTTP or HTTPS connection) that hands its socket to ``watchdog`` on connect."""

    class WatchedConnection(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            watchdog.attach(self.sock)

    return WatchedConnection


class WatchedHTTPHandler(urllib.request.HTTPHandler):
    """Opens ``http://`` connections whose sockets the watchdog can shut down."""

    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self.watchdog), req)


class WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    """Opens ``https://`` connections (with ``ssl_context``) the watchdog can shut down."""

    def __init__(self, watchdog: Watchdog, ssl_context: Any) -> None:
        super().__init__(context=ssl_context)
        self.watchdog, self.ssl_context = watchdog, ssl_context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _watched(http.client.HTTPSConnection, self.watchdog), req, context=self.ssl_context
        )
