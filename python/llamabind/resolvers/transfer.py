"""One HTTP(S) transfer of a URL into ``<target>.part``, resumed, verified and renamed.

``Transfer`` is the work ``download.download_file`` does under the target's lock: it resumes a
partial file with a ``Range`` request when the server's validator still matches, retries
transient failures, stops on the watchdog's deadline, throughput or cancel, checks the length
(or the sha256, or the GGUF header when no length was announced) and renames the part file
onto the target with its sidecar. See :mod:`llamabind.resolvers.download`.
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
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from llamabind.resolvers.base import (
    DownloadProgress,
    ModelDownloadError,
    ModelLoadError,
    not_found,
)
from llamabind.resolvers.gguf_info import read_gguf_info
from llamabind.resolvers.integrity import (
    CHUNK_BYTES,
    sha256_of,
    sidecar_path,
    write_json_atomically,
)
from llamabind.resolvers.watchdog import Watchdog, WatchedHTTPHandler, WatchedHTTPSHandler

if TYPE_CHECKING:
    from llamabind.resolvers.download import DownloadOptions

logger = logging.getLogger("llamabind.resolvers")

PROGRESS_INTERVAL_S = 0.1
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


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


def report_progress(options: DownloadOptions, event: DownloadProgress) -> None:
    """Hands ``event`` to the progress callback; a callback that returns False cancels.

    Raises:
        ModelDownloadError: the callback cancelled a running download.
    """
    if options.progress is None:
        return
    if options.progress(event) is False and event.status == "downloading":
        raise ModelDownloadError(
            f"download of {event.url} cancelled by the progress callback at "
            f"{event.n_bytes_done} bytes; the partial file is kept and the next attempt resumes",
            url=event.url,
            reason="cancelled",
        )


class Transfer:
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
            write_json_atomically(self.part_meta, self.validator)
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
                report_progress(
                    self.options, DownloadProgress(self.url, self.target, self.n_done, self.n_total)
                )

    def _finish(self) -> None:
        report_progress(
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
        write_json_atomically(
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
        report_progress(
            self.options, DownloadProgress(self.url, self.target, self.n_done, self.n_total, "done")
        )
