"""The listening socket: loopback by default, and replies not held back by Nagle's algorithm."""

from __future__ import annotations

import asyncio
import socket

import pytest

pytest.importorskip("uvicorn")

from llamabind.server import bind


def test_accepted_connections_send_small_writes_at_once():
    """asyncio disables Nagle's algorithm only on sockets made with IPPROTO_TCP; with it on, a
    streamed reply's first chunk waited ~40 ms for the client's delayed ACK of the headers."""

    async def accepted_nodelay() -> int:
        sock = bind("127.0.0.1", 0)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                raw = transport.get_extra_info("socket")
                seen.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            value = await asyncio.wait_for(seen, 10)
            writer.close()
        return value

    assert asyncio.run(accepted_nodelay()) != 0


def test_a_port_in_use_is_a_clear_error():
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
