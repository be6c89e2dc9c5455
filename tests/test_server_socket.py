"""The server's listening socket is made so that asyncio turns Nagle's algorithm off on every
connection it accepts (asyncio does so only for sockets made with IPPROTO_TCP): without it, each
answer on a kept-alive connection waits for the client's delayed ACK, about 40 ms."""

from __future__ import annotations

import asyncio
import socket

from huskies.server import _listening


async def test_accepted_connections_send_without_delay():
    listener = _listening("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        nodelay.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    async with server:
        port = listener.getsockname()[1]
        _, client = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(nodelay, 10) != 0
        client.close()
