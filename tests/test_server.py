"""Connections accepted by `latent-explorer serve` have Nagle's algorithm off, with one worker or
several: otherwise every keep-alive response waits ~40 ms for the client's delayed ACK."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.server import TcpConfig, tcp_listener


def accepted_nodelay(listener: socket.socket) -> int:
    """Serve one connection on `listener` with asyncio, as uvicorn does; TCP_NODELAY of the
    server side of that connection."""

    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        host, port = listener.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, timeout=10)
        finally:
            writer.close()
            server.close()

    return asyncio.run(main())


def test_multi_worker_socket_turns_nagle_off():
    config = TcpConfig("app.main:create_app", factory=True, host="127.0.0.1", port=0)
    sock = config.bind_socket()  # what `serve --workers N` hands to its worker processes
    assert sock.proto == socket.IPPROTO_TCP
    assert sock.get_inheritable()
    sock.listen(8)
    assert accepted_nodelay(sock) == 1


def test_plain_socket_would_keep_nagle_on():
    """The failure TcpConfig exists for: a listener made without naming the protocol."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    if sock.proto == socket.IPPROTO_TCP:  # pragma: no cover - a platform that fills it in
        pytest.skip("this platform reports the protocol of a plain socket")
    assert accepted_nodelay(sock) == 0


def test_test_and_bench_listener_turns_nagle_off():
    assert accepted_nodelay(tcp_listener("127.0.0.1", 0)) == 1
