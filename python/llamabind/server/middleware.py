"""Admission before any handler runs: the API key and the body size limit (pure ASGI)."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health"})


async def _send_error(
    send: Send,
    status: int,
    message: str,
    kind: str,
    code: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    body = json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class APIKeyMiddleware:
    """Requires ``Authorization: Bearer <key>`` on every path but ``/health``.

    The key is compared in constant time (``hmac.compare_digest``).
    """

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
        if not hmac.compare_digest(given, self._key):
            message = (
                "wrong API key"
                if given
                else "missing API key: send it as 'Authorization: Bearer <key>'"
            )
            await _send_error(
                send,
                401,
                message,
                "authentication_error",
                "invalid_api_key",
                ((b"www-authenticate", b"Bearer"),),
            )
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Answers 413 to a body bigger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send)
                return
        n_bytes = 0

        async def limited_receive() -> Message:
            nonlocal n_bytes
            message = await receive()
            if message["type"] == "http.request":
                n_bytes += len(message.get("body", b""))
                if n_bytes > limit:  # answered as a 413 by the app's error handler
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    async def _refuse(self, send: Send) -> None:
        await _send_error(send, 413, self._message(), "invalid_request_error", "body_too_large")


class RequestMetricsMiddleware:
    """Counts every answer by route and status (refusals by the other middleware included)
    and the requests in flight."""

    def __init__(self, app: ASGIApp, metrics: Any, routes: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.routes:
            route = path
        else:
            route = "/v1/models/{model_id}" if path.startswith("/v1/models/") else "other"
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.request_started()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.request_ended()
            self.metrics.request_done(route, status)
