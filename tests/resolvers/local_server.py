"""A real HTTP server on 127.0.0.1 for resolver tests: static files with Range/If-Range support,
fault injection (cut connections, no length, drips, stalls, wrong bytes, error statuses, delays),
and the small part of
the Hugging Face Hub API that ``huggingface_hub`` uses to list and download files.

Every request is recorded (method, path, headers) so tests can check what was asked for.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CHUNK = 64 * 1024
LAST_MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)


@dataclass
class Fault:
    """What to do wrong on the next ``times`` requests of one path.

    Attributes:
        status: Answer this HTTP status (with an empty body) instead of the file.
        cut_after: Send the headers for the whole file, then only this many body bytes, then
            drop the connection.
        delay_s: Sleep before answering (longer than the client's timeout: a timeout).
        chunk_delay_s: Sleep between 64 KiB chunks (a slow server).
        body: Serve these bytes instead of the file (a checksum mismatch).
        ignore_range: Answer 200 with the whole file even to a Range request.
        redirect_to: Answer 302 with this ``Location``.
        no_length: Send no ``Content-Length`` and mark the end of the body by closing the
            connection (as an HTTP/1.0 server does), so a cut looks like a clean end.
        drip_s: Send the body one byte at a time, this many seconds apart.
        stall_after: Send this many body bytes, then keep the connection open and silent until
            the server shuts down.
        times: How many requests the fault applies to.
    """

    status: int | None = None
    cut_after: int | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    body: bytes | None = None
    ignore_range: bool = False
    redirect_to: str | None = None
    no_length: bool = False
    drip_s: float = 0.0
    stall_after: int | None = None
    times: int = 1


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def range_start(self) -> int | None:
        match = re.fullmatch(r"bytes=(\d+)-\d*", self.headers.get("Range", ""))
        return int(match[1]) if match else None


@dataclass
class HubRepo:
    """A fake hub repository: one commit, its files, the branch names pointing at it."""

    files: dict[str, bytes]
    commit: str
    refs: tuple[str, ...] = ("main",)
    gated: bool = False


@dataclass
class LocalServer:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    repos: dict[str, list[HubRepo]] = field(default_factory=dict)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base_url + path

    def add_file(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url(path)

    def add_fault(self, path: str, fault: Fault) -> None:
        self.faults.setdefault(path, []).append(fault)

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        commit: str | None = None,
        refs: tuple[str, ...] = ("main",),
        gated: bool = False,
    ) -> str:
        commit = commit or hashlib.sha1(repr(sorted(files)).encode() + repo_id.encode()).hexdigest()
        self.repos.setdefault(repo_id, []).insert(0, HubRepo(files, commit, refs, gated))
        return commit

    def gets(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and urlsplit(r.path).path == path]

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            pending = self.faults.get(path)
            if not pending:
                return None
            fault = pending[0]
            fault.times -= 1
            if fault.times <= 0:
                pending.pop(0)
            return fault

    def find_repo(self, repo_id: str, revision: str) -> HubRepo | None:
        for repo in self.repos.get(repo_id, []):
            if revision == repo.commit or revision in repo.refs:
                return repo
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.respond(head=True)

    def do_GET(self) -> None:
        self.respond(head=False)

    def respond(self, head: bool) -> None:
        state = self.server.state
        state.requests.append(Request(self.command, self.path, dict(self.headers.items())))
        path = urlsplit(self.path).path
        try:
            hub = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path)
            resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if hub:
                self.tree(unquote(hub[1]), unquote(hub[2]))
            elif resolve:
                self.hub_file(unquote(resolve[1]), unquote(resolve[2]), unquote(resolve[3]), head)
            elif path in state.files:
                self.send_file(path, state.files[path], head, {})
            else:
                self.send_status(404)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_status(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def tree(self, repo_id: str, revision: str) -> None:
        state = self.server.state
        repo = state.find_repo(repo_id, revision)
        if repo_id not in state.repos:
            return self.send_status(404, {"X-Error-Code": "RepoNotFound"})
        if repo is None:
            return self.send_status(404, {"X-Error-Code": "RevisionNotFound"})
        entries = [
            {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for name, data in sorted(repo.files.items())
        ]
        body = json.dumps(entries).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def hub_file(self, repo_id: str, revision: str, filename: str, head: bool) -> None:
        state = self.server.state
        repo = state.find_repo(repo_id, revision)
        if repo_id not in state.repos:
            return self.send_status(404, {"X-Error-Code": "RepoNotFound"})
        if repo is None:
            return self.send_status(404, {"X-Error-Code": "RevisionNotFound"})
        if repo.gated:
            return self.send_status(403, {"X-Error-Code": "GatedRepo", "X-Error-Message": "gated"})
        if filename not in repo.files:
            return self.send_status(
                404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}
            )
        data = repo.files[filename]
        extra = {"X-Repo-Commit": repo.commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        self.send_file(f"/{repo_id}/resolve/{revision}/{filename}", data, head, extra)

    def send_file(self, path: str, data: bytes, head: bool, extra: dict[str, str]) -> None:
        state = self.server.state
        fault = None if head else state.take_fault(path)
        if fault and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault and fault.redirect_to:
            return self.send_status(302, {"Location": fault.redirect_to})
        if fault and fault.status:
            return self.send_status(fault.status)
        if fault and fault.body is not None:
            data = fault.body
        etag = extra.get("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"')
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        if match and not (fault and fault.ignore_range) and if_range in (None, etag, LAST_MODIFIED):
            start = int(match[1])
            if start >= len(data):
                return self.send_status(416, {"Content-Range": f"bytes */{len(data)}"})
            status = 206
        body = data[start:]
        self.send_response(status)
        if fault and fault.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        for key, value in extra.items():
            if key != "ETag":
                self.send_header(key, value)
        self.end_headers()
        if head:
            return
        self.send_body(body, fault)

    def send_body(self, body: bytes, fault: Fault | None) -> None:
        state = self.server.state
        limit = len(body)
        if fault and fault.cut_after is not None:
            limit = fault.cut_after
        if fault and fault.stall_after is not None:
            limit = fault.stall_after
        step = 1 if fault and fault.drip_s else CHUNK
        pause_s = (fault.drip_s or fault.chunk_delay_s) if fault else 0.0
        for offset in range(0, limit, step):
            self.wfile.write(body[offset : min(limit, offset + step)])
            self.wfile.flush()
            if pause_s and state.closing.wait(pause_s):
                break
        if fault and fault.stall_after is not None:
            state.closing.wait()
        if limit < len(body) or (fault and fault.no_length):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out and hang up are part of the tests


def start_server(tls: ssl.SSLContext | None = None) -> tuple[LocalServer, _Server]:
    """Starts a server on a free port of 127.0.0.1 in a daemon thread."""
    server = _Server(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state = LocalServer()
    server.state = state
    scheme = "https" if tls is not None else "http"
    state.base_url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return state, server
