"""Download one file over HTTP(S) into a cache: resumable, verified, atomic, safe to race.

The file is written to ``<target>.part`` and renamed onto ``<target>`` only once it is complete:
its length was announced and matched, or (without a ``Content-Length``) its sha256 matches or
its GGUF header accounts for every byte. A file at the target path is therefore always whole,
and it is never truncated or rewritten in place: a process may have it memory-mapped (as
llama.cpp does by default), and shrinking a mapped file kills that process with SIGBUS on its
next read. Replacing it means writing a new file and renaming it over the old one.

An interrupted download keeps its ``.part`` file (with the server's validator in
``<target>.part.json``) and the next attempt asks for the rest with an HTTP ``Range`` request.
A :class:`~llamabind.resolvers.watchdog.Watchdog` ends a download that passes its deadline,
runs below the minimum throughput (a stalled or dripping server) or is cancelled, even while a
read is blocked. A lock file (``<target>.lock``, an ``flock``/``msvcrt`` lock, so it works
across threads and processes) makes a second downloader of the same file wait and then use the
first one's result.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from llamabind.resolvers.base import (
    DownloadProgress,
    ModelDownloadError,
    ModelLoadError,
    ProgressCallback,
    not_found,
)
from llamabind.resolvers.gguf_info import read_gguf_info
from llamabind.resolvers.lock import FileLock
from llamabind.resolvers.watchdog import Watchdog, WatchedHTTPHandler, WatchedHTTPSHandler

logger = logging.getLogger("llamabind.resolvers")

CHUNK_BYTES = 1 << 20
PROGRESS_INTERVAL_S = 0.1
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    """How to download: network settings shared by the URL and package resolvers.

    Attributes:
        progress: Called with each :class:`DownloadProgress` (at most every 0.1 s, and at the
            end); returning ``False`` cancels. ``None``: silent.
        timeout_s: Seconds to wait for the server to connect or send the next bytes.
        max_retries: Attempts after a failure (connection cut, timeout, 5xx) that made no
            progress; each retry resumes where the last one stopped.
        headers: Extra request headers (e.g. ``Authorization``); dropped on redirects to
            another host.
        ssl_context: TLS settings (e.g. a private CA); ``None`` uses the system's trust store
            (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are honoured).
        retry_delay_s: Wait before the first retry; doubled each time, at most 8 s.
        deadline_s: Seconds the whole download (every attempt) may take; ``None``: no
            deadline. Past it the download ends with ``reason="timeout"``.
        min_bytes_per_s: The slowest accepted transfer, averaged over ``speed_window_s``:
            slower (a stalled server, or one that drips bytes just within ``timeout_s``) ends
            the download with ``reason="too_slow"``. ``0`` disables the rule.
        speed_window_s: Seconds over which ``min_bytes_per_s`` is measured. The default rule
            ends a download that received less than 60 KiB in the last 60 s.
        cancel: An event that cancels the download when set from any thread (within about
            0.1 s, even in a blocked read; ``reason="cancelled"``).

    After a deadline, throughput or cancellation failure the partial file is kept, so the
    next attempt resumes.
    """

    progress: ProgressCallback | None = None
    timeout_s: float = 30.0
    max_retries: int = 3
    headers: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None
    retry_delay_s: float = 0.25
    deadline_s: float | None = None
    min_bytes_per_s: float = 1024.0
    speed_window_s: float = 60.0
    cancel: threading.Event | None = None


class _AlreadyComplete(Exception):
    """The server says the partial file already holds every byte."""


class _Retry(Exception):
    """A transient failure; the download may resume."""

    def __init__(self, message: str, reason: str = "connection") -> None:
        super().__init__(message)
        self.reason = reason


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects but never sends credentials to another host or scheme."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        old_origin, new_origin = urlsplit(req.full_url)[:2], urlsplit(newurl)[:2]
        if new is not None and old_origin != new_origin:
            for header in ("Authorization", "Cookie", "Proxy-authorization"):
                new.remove_header(header)
        return new


def sidecar_path(target: Path) -> Path:
    """Where the facts of a downloaded file (source URL, sha256, size) are kept."""
    return target.with_name(target.name + ".json")


def read_sidecar(target: Path) -> dict[str, Any]:
    """The sidecar of ``target`` as a dict (empty if missing or unreadable)."""
    try:
        value = json.loads(sidecar_path(target).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_json_atomically(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1), "utf-8")
    os.replace(temporary, path)


def sha256_of(path: Path, digest: Any = None) -> Any:
    """Feeds the bytes of ``path`` to a sha256 digest (a new one unless given) and returns it."""
    digest = digest or hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(CHUNK_BYTES):
            digest.update(block)
    return digest


def check_sha256(sha256: str | None) -> str | None:
    """Normalizes an expected sha256 (64 hex digits) to lower case.

    Raises:
        ValueError: Not 64 hex digits.
    """
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value


def download_file(
    url: str, target: Path, *, sha256: str | None = None, options: DownloadOptions | None = None
) -> Path:
    """Downloads ``url`` to ``target`` unless a complete copy is already there.

    Args:
        url: An ``http://`` or ``https://`` URL.
        target: The final file. Its directory is created if needed.
        sha256: The expected checksum; the file is rejected (and deleted) if it differs. Also
            checked against an existing copy.
        options: Network settings and the progress callback.

    Returns:
        ``target``, complete.

    Raises:
        ModelNotFoundError: The server answered 404 or 410.
        ModelDownloadError: Any other failure (``reason`` says which); no file is left at
            ``target``.
        ValueError: ``url`` is not HTTP(S) or ``sha256`` is malformed.
    """
    options = options or DownloadOptions()
    sha256 = check_sha256(sha256)
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs can be downloaded, not {url!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.with_name(target.name + ".lock")):
        if target.is_file():
            if _cached_copy_is_valid(target, sha256):
                n_bytes = target.stat().st_size
                _report(options, DownloadProgress(url, target, n_bytes, n_bytes, "done"))
                return target
            logger.warning(
                "cached %s does not match sha256 %s; downloading it again", target, sha256
            )
            target.unlink()
        _Download(url, target, sha256, options).run()
    return target


def _cached_copy_is_valid(target: Path, sha256: str | None) -> bool:
    if sha256 is None:
        return True
    if read_sidecar(target).get("sha256") == sha256:
        return True
    return bool(sha256_of(target).hexdigest() == sha256)


def _report(options: DownloadOptions, event: DownloadProgress) -> None:
    if options.progress is None:
        return
    if options.progress(event) is False and event.status == "downloading":
        raise ModelDownloadError(
            f"download of {event.url} cancelled by the progress callback at "
            f"{event.n_bytes_done} bytes; the partial file is kept and the next attempt resumes",
            url=event.url,
            reason="cancelled",
        )


class _Download:
    """One download of one URL into ``target`` (the caller holds the lock)."""

    def __init__(self, url: str, target: Path, sha256: str | None, options: DownloadOptions):
        self.url, self.target, self.sha256, self.options = url, target, sha256, options
        self.part = target.with_name(target.name + ".part")
        self.part_meta = target.with_name(target.name + ".part.json")
        self.watchdog = Watchdog(
            url,
            deadline_s=options.deadline_s,
            min_bytes_per_s=options.min_bytes_per_s,
            speed_window_s=options.speed_window_s,
            cancel=options.cancel,
        )
        self.opener = urllib.request.build_opener(
            _RedirectHandler(),
            WatchedHTTPHandler(self.watchdog),
            WatchedHTTPSHandler(self.watchdog, options.ssl_context),
        )
        self.validator: dict[str, Any] = {}
        self.digest = hashlib.sha256()
        self.n_done = 0
        self.n_total: int | None = None
        self.last_report_s = 0.0

    def error(self, message: str, reason: str, **details: Any) -> ModelDownloadError:
        return ModelDownloadError(
            f"[download] {self.url}: {message}", url=self.url, reason=reason, **details
        )

    def run(self) -> None:
        self._load_partial()
        with self.watchdog:
            self._transfer()
        self._finish()

    def _transfer(self) -> None:
        failures = 0
        while True:
            n_before = self.n_done
            try:
                self.watchdog.check()
                self._attempt()
                self.watchdog.check()
                break
            except (_Retry, ModelDownloadError) as exc:
                self.watchdog.check()  # a broken limit, not the symptom it caused
                if isinstance(exc, ModelDownloadError):
                    raise
                failures = 0 if self.n_done > n_before else failures + 1
                if failures > self.options.max_retries:
                    raise self.error(
                        f"{exc}; gave up after {failures} attempts without "
                        "progress (the partial file is kept for the next attempt)",
                        exc.reason,
                    ) from exc
                delay = min(8.0, self.options.retry_delay_s * 2 ** max(0, failures - 1))
                logger.info(
                    "download of %s interrupted (%s) at %d bytes; resuming in %.2f s",
                    self.url,
                    exc,
                    self.n_done,
                    delay,
                )
                self.watchdog.wait(delay)

    def _load_partial(self) -> None:
        meta = {}
        if self.part.is_file() and self.part_meta.is_file():
            try:
                meta = json.loads(self.part_meta.read_text("utf-8"))
            except (OSError, ValueError):
                meta = {}
        if meta.get("url") == self.url and self.part.is_file():
            self.validator = meta
            self.n_done = self.part.stat().st_size
            self.n_total = meta.get("n_bytes_total")
            sha256_of(self.part, self.digest)
            logger.info("resuming %s at %d bytes", self.url, self.n_done)
        else:
            self._restart()

    def _restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.part_meta.unlink(missing_ok=True)
        self.validator, self.digest, self.n_done = {}, hashlib.sha256(), 0

    def _request(self) -> urllib.request.Request:
        request = urllib.request.Request(self.url, headers={"Accept-Encoding": "identity"})
        for key, value in self.options.headers.items():
            request.add_header(key, value)
        if self.n_done:
            request.add_header("Range", f"bytes={self.n_done}-")
            etag = self.validator.get("etag") or ""
            if_range = (
                etag if etag and not etag.startswith("W/") else self.validator.get("last_modified")
            )
            if if_range:
                request.add_header("If-Range", if_range)
        return request

    def _open(self) -> http.client.HTTPResponse:
        try:
            response: http.client.HTTPResponse = self.opener.open(
                self._request(), timeout=self.options.timeout_s
            )
            return response
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (404, 410):
                raise not_found(
                    self.url,
                    [(self.url, f"HTTP {exc.code} {exc.reason}")],
                    "check the URL (and the base_url of the resolver)",
                ) from None
            if exc.code == 416 and self.n_done:
                complete = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", ""))
                if complete and int(complete[1]) == self.n_done:
                    raise _AlreadyComplete from None  # the part file holds the whole file
                self._restart()
                raise _Retry("the server refused to resume (HTTP 416); starting over") from None
            if exc.code in (408, 429) or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code} {exc.reason}", "http") from None
            hint = (
                " (send a token with headers={'Authorization': ...})"
                if exc.code in (401, 403)
                else ""
            )
            raise self.error(
                f"HTTP {exc.code} {exc.reason}{hint}", "http", status=exc.code
            ) from None
        except urllib.error.URLError as exc:
            raise self._network_error(exc.reason) from exc
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise self._network_error(exc) from exc

    def _network_error(self, cause: object) -> Exception:
        if isinstance(cause, ssl.SSLError):
            return self.error(
                f"TLS error: {cause}. If the server uses a private certificate authority, set "
                "SSL_CERT_FILE or pass ssl_context=ssl.create_default_context(cafile=...)",
                "tls",
            )
        if isinstance(cause, TimeoutError):
            return _Retry(f"no data for {self.options.timeout_s} s (timeout)", "timeout")
        return _Retry(f"connection failed: {cause}")

    def _attempt(self) -> None:
        try:
            response = self._open()
        except _AlreadyComplete:
            self.n_total = self.n_done  # the server's Content-Range named this length
            return
        with response:
            self._accept(response)
            try:
                with self.part.open("ab") as out:
                    self._copy(response, out)
            except (TimeoutError, ConnectionError, http.client.HTTPException, ssl.SSLError) as exc:
                self.watchdog.check()
                raise self._network_error(exc) from exc
        self.watchdog.check()  # an end caused by the watchdog is not the end of the file
        if self.n_total is None:
            self._check_unannounced_end()
        elif self.n_done < self.n_total:
            raise _Retry(f"connection closed at {self.n_done} of {self.n_total} bytes")

    def _check_unannounced_end(self) -> None:
        """Accepts a body sent without a length only if its sha256 (checked when finishing) or
        its GGUF header vouches for every byte; a cut one resumes, anything else is refused."""
        if self.sha256 is not None:
            return
        try:
            header = read_gguf_info(self.part)
        except ModelLoadError as exc:
            with self.part.open("rb") as file:
                is_gguf = file.read(4) == b"GGUF"
            if is_gguf and "needs" in exc.message:
                raise _Retry(
                    f"connection closed at {self.n_done} bytes, inside the GGUF header",
                    "incomplete",
                ) from None
            problem: str | None = exc.message
        else:
            problem = header.size_problem(self.n_done)
            if self.n_done < header.n_bytes_expected:
                self.n_total = header.n_bytes_expected
                raise _Retry(
                    f"connection closed at {self.n_done} of the {self.n_total} bytes its GGUF "
                    "header implies",
                    "incomplete",
                )
        if problem is not None:
            self._restart()
            raise self.error(
                f"the server sent {self.n_done} bytes without a Content-Length, and they are "
                f"not a whole GGUF file ({problem}); nothing was cached. If the file is "
                "right, give its sha256 to accept it",
                "incomplete",
            )

    def _accept(self, response: http.client.HTTPResponse) -> None:
        length = response.headers.get("Content-Length")
        n_length = int(length) if length and length.isdigit() else None
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match[1]) != self.n_done:
                self._restart()
                raise _Retry("the server resumed at the wrong offset; starting over")
            self.n_total = int(match[3]) if match[3] != "*" else None
        else:
            if self.n_done:
                logger.info("%s changed or does not support resuming; starting over", self.url)
                self._restart()
            self.n_total = n_length
        if not self.n_done:
            self.validator = {
                "url": self.url,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
                "n_bytes_total": self.n_total,
            }
            _write_json_atomically(self.part_meta, self.validator)
        if self.n_total is not None:
            free = shutil.disk_usage(self.part.parent).free
            if free < self.n_total - self.n_done:
                raise self.error(
                    f"not enough disk space in {self.part.parent}: {self.n_total - self.n_done} "
                    f"bytes needed, {free} free",
                    "disk_full",
                )

    def _copy(self, response: http.client.HTTPResponse, out: BinaryIO) -> None:
        while block := response.read1(CHUNK_BYTES):
            try:
                out.write(block)
            except OSError as exc:
                if exc.errno in _DISK_FULL_ERRNOS:
                    raise self.error(
                        f"disk full writing {self.part} ({exc.strerror}); free some "
                        "space and retry: the download resumes",
                        "disk_full",
                    ) from exc
                raise self.error(f"cannot write {self.part}: {exc}", "io") from exc
            self.digest.update(block)
            self.n_done += len(block)
            self.watchdog.count(len(block))
            now = time.monotonic()
            if now - self.last_report_s >= PROGRESS_INTERVAL_S:
                self.last_report_s = now
                _report(
                    self.options, DownloadProgress(self.url, self.target, self.n_done, self.n_total)
                )

    def _finish(self) -> None:
        _report(
            self.options,
            DownloadProgress(self.url, self.target, self.n_done, self.n_total, "verifying"),
        )
        actual = self.digest.hexdigest()
        if self.sha256 is not None and actual != self.sha256:
            self._restart()
            raise self.error(
                f"sha256 mismatch: expected {self.sha256}, got {actual}; the "
                "downloaded file was deleted",
                "checksum",
                expected_sha256=self.sha256,
                actual_sha256=actual,
            )
        with self.part.open("rb+") as file:
            os.fsync(file.fileno())
        _write_json_atomically(
            sidecar_path(self.target),
            {
                "url": self.url,
                "sha256": actual,
                "n_bytes": self.n_done,
                "etag": self.validator.get("etag"),
                "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        os.replace(self.part, self.target)
        self.part_meta.unlink(missing_ok=True)
        logger.info("downloaded %s to %s (%d bytes)", self.url, self.target, self.n_done)
        _report(
            self.options, DownloadProgress(self.url, self.target, self.n_done, self.n_total, "done")
        )
