"""Uploads over the limit are refused while they stream in, on a real server: the client is told
413, with the limit named, before it has sent the body, and nothing is read whole first."""

from __future__ import annotations

import io
import json
import shutil
import socket
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from app.settings import Settings
from tests.browser_server import live_server

LIMIT = 100_000


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    shutil.copytree(trained["tiny-vae"], root / "tiny-vae")
    with live_server(Settings(checkpoints_dir=root, max_upload_bytes=LIMIT)) as url:
        yield urlparse(url)


def response_of(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < length_of(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def length_of(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def post_head(url, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /api/models/tiny-vae/encode HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\n{framing}\r\n\r\n"
    ).encode()


def test_a_declared_oversize_body_is_refused_before_it_is_sent(server):
    with socket.create_connection((server.hostname, server.port), timeout=20) as sock:
        sock.sendall(post_head(server, 10**9))  # a gigabyte is announced, not one byte sent
        status, body = response_of(sock)
    assert status == 413
    assert body["detail"] == f"request body is larger than the upload limit of {LIMIT:,} bytes"


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(server):
    """No length is announced and the body never ends: a server that read it whole before
    answering would wait forever; ours answers once the bytes pass the limit."""
    part = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    chunk = b"x" * 16_000
    with socket.create_connection((server.hostname, server.port), timeout=20) as sock:
        sock.sendall(post_head(server, None) + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        for _ in range(4 * LIMIT // len(chunk)):  # four times the limit, and no final chunk
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, body = response_of(sock)
    assert status == 413
    assert body["detail"] == f"request body is larger than the upload limit of {LIMIT:,} bytes"


def test_an_upload_within_the_limit_still_encodes(server):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--b--\r\n"
    )
    with socket.create_connection((server.hostname, server.port), timeout=20) as sock:
        sock.sendall(post_head(server, len(body)) + body)
        status, answer = response_of(sock)
    assert status == 200 and len(answer["mu"]) == 10


def test_every_limit_is_set_from_the_environment(trained, tmp_path, monkeypatch):
    """The limits are one settings object: environment variables override them, and the errors
    name the limit in force, not the default."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    shutil.copytree(trained["tiny-vae"], tmp_path / "tiny-vae")
    monkeypatch.setenv("LATENT_EXPLORER_CHECKPOINTS_DIR", str(tmp_path))
    monkeypatch.setenv("LATENT_EXPLORER_MAX_UPLOAD_PIXELS", "5000")
    monkeypatch.setenv("LATENT_EXPLORER_MAX_TRAVERSE_STEPS", "4")
    monkeypatch.setenv("LATENT_EXPLORER_MAX_ABS_LATENT", "2.5")

    def png(side: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.zeros((side, side), np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    with TestClient(create_app()) as c:
        url = "/api/models/tiny-vae/encode"
        assert c.post(url, files={"file": ("a.png", png(70), "image/png")}).status_code == 200
        r = c.post(url, files={"file": ("a.png", png(71), "image/png")})
        assert r.status_code == 422 and "image is 71×71, the limit is 5,000 pixels" in r.text
        z = ",".join(["0"] * 10)
        traverse = "/api/models/tiny-vae/traverse.png"
        assert c.get(traverse, params={"z": z, "steps": 4}).status_code == 200
        r = c.get(traverse, params={"z": z, "steps": 5})
        assert r.status_code == 422 and "steps is 5, the limit is 4" in r.json()["detail"]
        r = c.get("/api/models/tiny-vae/decode.png", params={"z": "2.6" + ",0" * 9})
        assert r.status_code == 422 and "within ±2.5, got 2.6" in r.json()["detail"]
