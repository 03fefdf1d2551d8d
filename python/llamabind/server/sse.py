"""Server-sent events and the client's disconnect: the two ends of a streamed request.

``unless_disconnected`` runs one step of a generation while watching the connection, so a
client that goes away before the first token (e.g. while its request waits in the queue) cancels
it too; once the event stream runs, Starlette's ``StreamingResponse`` watches for the disconnect
and cancels the iteration, which cancels the engine's request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse

T = TypeVar("T")

DONE = b"data: [DONE]\n\n"


class ClientGone(Exception):
    """The client closed the connection before the answer was ready."""


def event(data: Any) -> bytes:
    """One SSE ``data:`` event holding ``data`` as JSON."""
    return (
        b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


async def _disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, awaitable: Awaitable[T]) -> T:
    """Awaits ``awaitable`` unless the client disconnects first, which cancels it.

    Raises:
        ClientGone: the client disconnected (``awaitable`` was cancelled and has ended).
    """
    work = asyncio.ensure_future(awaitable)
    watch = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
        watch.cancel()
        with contextlib.suppress(BaseException):
            await watch
    if work.cancelled():
        raise ClientGone
    return work.result()


class EventStreamResponse(StreamingResponse):
    """``text/event-stream``, not cached or buffered by proxies."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
