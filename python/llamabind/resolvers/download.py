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

import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from llamabind.resolvers.base import DownloadProgress, ProgressCallback
from llamabind.resolvers.integrity import (
    CHUNK_BYTES,
    check_sha256,
    read_sidecar,
    sha256_of,
    sidecar_path,
)
from llamabind.resolvers.lock import FileLock
from llamabind.resolvers.transfer import PROGRESS_INTERVAL_S, Transfer, report_progress

logger = logging.getLogger("llamabind.resolvers")

__all__ = [
    "CHUNK_BYTES",
    "PROGRESS_INTERVAL_S",
    "DownloadOptions",
    "check_sha256",
    "download_file",
    "read_sidecar",
    "sha256_of",
    "sidecar_path",
]


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
                report_progress(options, DownloadProgress(url, target, n_bytes, n_bytes, "done"))
                return target
            logger.warning(
                "cached %s does not match sha256 %s; downloading it again", target, sha256
            )
            target.unlink()
        Transfer(url, target, sha256, options).run()
    return target


def _cached_copy_is_valid(target: Path, sha256: str | None) -> bool:
    if sha256 is None:
        return True
    if read_sidecar(target).get("sha256") == sha256:
        return True
    return bool(sha256_of(target).hexdigest() == sha256)
