"""Connections accepted by `latent-explorer serve` have Nagle's algorithm off, with one worker or
several: otherwise every keep-alive response waits ~40 ms for the client's delayed ACK. Every
response of the real server carries the security headers once, the 400s uvicorn answers itself
included; and the server answers only to the hosts it is meant to be reached by."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from app import server as served
from app.main import create_app
from app.server import TcpConfig, allowed_hosts, server_config, tcp_listener
from app.settings import Settings
from app.web.security import CONTENT_SECURITY_POLICY


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


# --- what the real server answers itself, and what the app behind it answers -----------------

SECURITY = {  # the values app/web/security.py promises on every response
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[int]:
    """`serve`'s uvicorn configuration on an app with no models, in a thread: its port."""
    app = create_app(Settings(checkpoints_dir=tmp_path_factory.mktemp("none")))
    server = uvicorn.Server(server_config(app, log_level="critical"))
    sock = tcp_listener("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def raw_exchange(port: int, request: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """Send `request` as it is on a new connection; the status line, headers and body of the
    one response, read until the server closes the connection (as it does after a 400) or the
    response's Content-Length is in."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines)
    headers = [(name.strip().lower(), value.strip()) for name, _, value in fields]
    return status, headers, body


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 62  # none given: read until the server closes


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT AN HTTP REQUEST\r\n\r\n",  # a malformed request line
        b"GET / HTTP/1.1\r\nHost: localhost\r\nno colon in this header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n",  # a space in a name
    ],
)
def test_what_uvicorn_refuses_itself_carries_the_security_headers_once(live, request_bytes):
    status, headers, body = raw_exchange(live, request_bytes)
    assert status.startswith("HTTP/1.1 400 "), (status, body)
    for name, value in SECURITY.items():
        assert [v for k, v in headers if k == name] == [value], (name, headers)
    # and a request that reaches the app carries each of them exactly once too
    status, headers, _ = raw_exchange(
        live, b"GET /api/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert status.startswith("HTTP/1.1 200 "), status
    for name, value in SECURITY.items():
        assert [v for k, v in headers if k == name] == [value], (name, headers)


def test_a_wrong_host_is_refused_by_the_real_server_with_the_headers(live):
    status, headers, body = raw_exchange(
        live, b"GET /api/models HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
    )
    assert status.startswith("HTTP/1.1 400 "), status
    assert "'attacker.example'" in json.loads(body)["detail"]
    assert dict(headers)["x-frame-options"] == "DENY"


LOOPBACK = ("localhost", "127.0.0.1", "::1")


def test_serve_answers_to_the_loopback_names_and_the_host_it_binds(caplog):
    with caplog.at_level(logging.WARNING, logger="app.server"):
        assert allowed_hosts("127.0.0.1", None) == LOOPBACK
        assert allowed_hosts("::1", None) == LOOPBACK
        assert allowed_hosts("192.168.1.20", None) == (*LOOPBACK, "192.168.1.20")
        # the setting, where it is set, instead of the loopback names
        assert allowed_hosts("explorer.lan", ("explorer.example.org",)) == (
            "explorer.example.org", "explorer.lan"
        )  # fmt: skip
        assert allowed_hosts("0.0.0.0", ("explorer.example.org",)) == ("explorer.example.org",)
        assert caplog.records == []
        # every interface and no setting: any host, said once
        assert allowed_hosts("0.0.0.0", None) == ("*",)
        assert allowed_hosts("::", None) == ("*",)
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "answering requests for any host name" in caplog.records[0].getMessage()
    assert "LATENT_EXPLORER_ALLOWED_HOSTS" in caplog.records[0].getMessage()


def test_serve_hands_the_hosts_to_the_app_in_every_worker(monkeypatch):
    variable = "LATENT_EXPLORER_ALLOWED_HOSTS"
    monkeypatch.setenv(variable, "[]")  # restored after the test, whatever serve sets
    monkeypatch.delenv(variable)
    started = []
    monkeypatch.setattr(served, "run_uvicorn", lambda *args, **kw: started.append(args) or 0)
    assert served.serve("192.168.1.20", 8000, None, 2) == 0
    assert started and Settings().allowed_hosts == (*LOOPBACK, "192.168.1.20")
    monkeypatch.setenv(variable, '["explorer.example.org"]')
    assert served.serve("0.0.0.0", 8000, None, 2) == 0
    assert json.loads(os.environ[variable]) == ["explorer.example.org"]


def test_serve_refuses_a_setting_it_cannot_read_in_one_message(monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("LATENT_EXPLORER_ALLOWED_HOSTS", "explorer.example.org")  # not JSON
    monkeypatch.setattr(served, "run_uvicorn", lambda *args, **kw: 0)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latent-explorer serve: error: ") and "allowed_hosts" in err
    assert """LATENT_EXPLORER_ALLOWED_HOSTS='["explorer.example.org"]'""" in err
