"""`latent-explorer serve`: uvicorn on the app factory."""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from app.settings import Settings
from app.web import security

log = logging.getLogger(__name__)


def tcp_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket created with its protocol named (IPPROTO_TCP), so that asyncio turns
    Nagle's algorithm off on every connection it accepts (see TcpConfig)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


class TcpConfig(uvicorn.Config):
    """uvicorn's Config whose pre-bound listening socket says it is TCP.

    With `--workers N` uvicorn binds the socket itself with `proto` left at 0; accepted
    connections inherit it, and asyncio only sets TCP_NODELAY when `proto == IPPROTO_TCP`. Nagle's
    algorithm then holds every keep-alive response's last segment until the client's delayed ACK:
    +40 ms per request (uvicorn issue #3149). Re-wrapping the same descriptor with the protocol
    named fixes it; the single-process path (host and port handed to asyncio) never had it."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            tcp.set_inheritable(True)
            return tcp
        return sock


class SecureHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol on httptools (the one its "auto" picks, httptools being a
    dependency) whose own 400, for a request it cannot parse (a malformed request line, an
    invalid header), carries the security headers too. That request never reaches the app, so
    SecurityHeaders (app/web/security.py) never sees the answer; uvicorn's `headers=` setting
    would add them to the app's responses a second time."""

    def send_400_response(self, msg: str) -> None:
        body = msg.encode("ascii")
        headers = [
            *self.server_state.default_headers,  # date and server, as uvicorn's own 400 has
            *security.HEADERS,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\n" + head + b"\r\n" + body)
        self.transport.close()


# uvicorn's supervisor kills a worker that has not answered its health check within this many
# seconds (uvicorn's default: 5), counting from the worker's start. A spawned worker answers only
# once it has re-imported the entry point, torch included: 4–8 s when two workers start at once
# on a busy 2-core machine. With the default, workers were killed and restarted before they
# could answer (up to three times and 30 s before `serve --workers 2` came up here; a worker
# that needs 8 s never comes up).
WORKER_HEALTHCHECK_S = 60


def server_config(app: Any, **config: Any) -> TcpConfig:
    """uvicorn's configuration for `app` (an ASGI app or an import string) as `serve` runs it:
    TcpConfig's listening socket, the security headers on uvicorn's own 400s, and time for a
    slow worker to start."""
    config.setdefault("http", SecureHttpToolsProtocol)
    config.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_S)
    return TcpConfig(app, **config)


def run_uvicorn(app: str, host: str, port: int, workers: int, **config: Any) -> int:
    """uvicorn on the import string `app`, one process or `workers` of them, configured by
    server_config either way (bench/ runs its bare comparison app through this too)."""
    cfg = server_config(app, host=host, port=port, workers=workers, **config)
    if workers > 1:
        Multiprocess(cfg, sockets=[cfg.bind_socket()]).run()
        return 0
    server = uvicorn.Server(cfg)
    server.run()
    return 0 if server.started else 1


# what `--host` binds to when it binds every interface: the Host header may then name anything
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
ALLOWED_HOSTS_VARIABLE = "LATENT_EXPLORER_ALLOWED_HOSTS"
DATA_VARIABLE = "LATENT_EXPLORER_DATA"


def allowed_hosts(host: str, given: tuple[str, ...] | None) -> tuple[str, ...]:
    """The hosts `serve --host HOST` answers to: those `given` (the setting, where it is set),
    else the loopback names (Settings' default); with the address or name it binds added. Bound
    to every interface (0.0.0.0, ::) with nothing given, any host: the server is then meant to be
    reached by names and addresses it cannot know, and says so in a warning."""
    if host in WILDCARD_ADDRESSES:
        if given is None:
            log.warning(
                "--host %s with %s unset: answering requests for any host name; set it to the "
                "names this server is reached by, e.g. %s='[\"explorer.example.org\"]', to "
                "refuse the others (docs/hardening.md)",
                host or "''", ALLOWED_HOSTS_VARIABLE, ALLOWED_HOSTS_VARIABLE,
            )  # fmt: skip
            return ("*",)
        return given
    base = given if given is not None else Settings.model_fields["allowed_hosts"].default
    return base if host in base else (*base, host)


def serve(
    host: str, port: int, checkpoints: Path | None, workers: int, plugins: tuple[str, ...] = (),
    data: dict[str, Path] | None = None,
) -> int:  # fmt: skip
    # the factory reads Settings from the environment in every worker process
    if checkpoints is not None:
        os.environ["LATENT_EXPLORER_CHECKPOINTS_DIR"] = str(checkpoints.resolve())
    if plugins:
        os.environ["LATENT_EXPLORER_PLUGINS"] = json.dumps(list(plugins))
    if data:  # `--data NAME=PATH`: beside any set the variable already names
        named = {**Settings().data, **data}
        os.environ[DATA_VARIABLE] = json.dumps({k: str(v) for k, v in named.items()})
    given = Settings().allowed_hosts if ALLOWED_HOSTS_VARIABLE in os.environ else None
    os.environ[ALLOWED_HOSTS_VARIABLE] = json.dumps(list(allowed_hosts(host, given)))
    # our own log lines (models loaded, checkpoints skipped) go where uvicorn's go, in every worker
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["app"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return run_uvicorn(
        "app.main:create_app", host, port, workers, factory=True, log_config=log_config
    )
