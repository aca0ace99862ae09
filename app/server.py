"""`latent-explorer serve`: uvicorn on the app factory."""

from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess


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


# uvicorn's supervisor kills a worker that has not answered its health check within this many
# seconds (uvicorn's default: 5), counting from the worker's start. A spawned worker answers only
# once it has re-imported the entry point, torch included: 4–8 s when two workers start at once
# on a busy 2-core machine. With the default, workers were killed and restarted before they
# could answer (up to three times and 30 s before `serve --workers 2` came up here; a worker
# that needs 8 s never comes up).
WORKER_HEALTHCHECK_S = 60


def run_uvicorn(app: str, host: str, port: int, workers: int, **config: Any) -> int:
    """uvicorn on the import string `app`, one process or `workers` of them, with TcpConfig's
    listening socket either way (bench/ runs its bare comparison app through this too)."""
    config.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_S)
    cfg = TcpConfig(app, host=host, port=port, workers=workers, **config)
    if workers > 1:
        Multiprocess(cfg, sockets=[cfg.bind_socket()]).run()
        return 0
    server = uvicorn.Server(cfg)
    server.run()
    return 0 if server.started else 1


def serve(
    host: str, port: int, checkpoints: Path | None, workers: int, plugins: tuple[str, ...] = ()
) -> int:
    # the factory reads Settings from the environment in every worker process
    if checkpoints is not None:
        os.environ["LATENT_EXPLORER_CHECKPOINTS_DIR"] = str(checkpoints.resolve())
    if plugins:
        os.environ["LATENT_EXPLORER_PLUGINS"] = json.dumps(list(plugins))
    # our own log lines (models loaded, checkpoints skipped) go where uvicorn's go, in every worker
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["app"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return run_uvicorn(
        "app.main:create_app", host, port, workers, factory=True, log_config=log_config
    )
