"""The explorer from Python: `latent_explorer.serve(models=[...], data={...})` serves model
objects and data sets already in memory from a thread of the calling process (a notebook keeps
running), on a free port, and writes no file of its own.

A model object goes through the plugins' one path (app/plugins.py: probed the way the explorer
uses it, then named), a folder through the checkpoints' loader, a data set through the same
opening as `serve --data`; the app is `create_app(settings, models=..., data_sets=...)`, whose
lifespan runs as for `latent-explorer serve`. The server is uvicorn's, configured as `serve`
configures it (app/server.py), on a socket bound before the thread starts, so the port is known
and taken before `serve` returns.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import html
import itertools
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import uvicorn
from pydantic import ValidationError

from app.checkpoints import Checkpoint, CheckpointError, ServedModel, load_checkpoint
from app.data.sets import BUILT_IN, DatasetError, DataSets, ImageSet, scan_sets
from app.importers import ModelImportError
from app.importers.pythae import is_pythae_model, network_of
from app.inference import prepare_for_serving
from app.main import create_app, with_named_sets
from app.models.autoencoder_kl import AutoencoderKLConfigError, is_autoencoder_kl
from app.models.autoencoder_kl import from_object as autoencoder_kl_of
from app.plugins import PluginError, served_object
from app.registry import SERVABLE_NAME, load_registry
from app.server import (
    ALLOWED_HOSTS_VARIABLE,
    WILDCARD_ADDRESSES,
    allowed_hosts,
    server_config,
    tcp_listener,
)
from app.settings import Settings

START_TIMEOUT_S = 120  # the lifespan only sets up (models and sets are loaded before): seconds
STOP_TIMEOUT_S = 10  # open requests finish, then the server closes
WAIT_STEP_S = 0.25

ModelLike = Any  # an object keeping the model interface, a Checkpoint, or a folder's path
DataLike = str | os.PathLike[str] | ImageSet


# the origins a notebook's output is shown from on this machine: Jupyter (Notebook, Lab) on a
# local port, and VS Code's notebook webviews
NOTEBOOK_ORIGINS = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "vscode-webview:",
)
FRAME_HEIGHT_PX = 760  # the inline explorer's height in a notebook


class ServeError(ValueError):
    """What `serve` was given that cannot be served, in one line that names it."""


def serve(
    models: Sequence[ModelLike] | Mapping[str, ModelLike] | ModelLike = (),
    data: Mapping[str, DataLike] | None = None,
    checkpoints: str | os.PathLike[str] | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    block: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    frame_ancestors: Sequence[str] = NOTEBOOK_ORIGINS,
) -> Explorer:
    """Serve the explorer on `models` and `data` from a thread of this process (from this
    thread with `block=True`) → its handle, once it answers.

    models: objects keeping the model interface (docs/plugins.md), our own VAE network, a
        pythae model on its default networks (converted as `import pythae` converts), a
        diffusers AutoencoderKL (its latent kept spatial, as a folder of one is served), a
        loaded Checkpoint, or the path (or name, in `checkpoints`) of a checkpoint folder; a
        list, or a dict NAME → model to name them. A torch module is served as a copy of its
        weights on the CPU, taken now: the caller's model is not changed.
    data: NAME → a folder of images, a saved Hugging Face dataset, a built-in's name or an
        ImageSet already open. The built-in sets are always served.
    checkpoints: a folder of checkpoint folders to serve whole (as `serve --checkpoints`), and
        where names in `models` are looked for (default: the settings' checkpoints folder).
    port: 0 for a free one. block: serve until interrupted (Ctrl-C), then return.
    cache_dir: where encodings and maps are kept between runs; None: memory and a temporary
        folder only.
    frame_ancestors: the origins whose pages may show the explorer in a frame (CSP sources):
        by default a notebook's on this machine (Jupyter on localhost, VS Code's), so the handle
        shows the explorer inline; () forbids framing, as `latent-explorer serve` does.
    ServeError in one line where something given cannot be served."""
    given = Settings().allowed_hosts if ALLOWED_HOSTS_VARIABLE in os.environ else None
    try:
        settings = Settings(
            allowed_hosts=allowed_hosts(host, given),
            cache_dir=Path(cache_dir).expanduser() if cache_dir is not None else None,
            frame_ancestors=tuple(frame_ancestors),
        )
    except ValidationError as e:
        problem = e.errors()[0]
        raise ServeError(
            f"frame_ancestors: {problem['input']!r} is not an origin such as 'http://localhost:*'"
        ) from None
    registry = served_models(models, checkpoints, settings)
    datasets = data_sets(data or {}, settings)
    app = create_app(settings, models=registry, data_sets=datasets)
    try:
        explorer = Explorer(app, host, port, tuple(registry), tuple(datasets),
                            framed=bool(settings.frame_ancestors))  # fmt: skip
    except OSError as e:  # the port is taken, the host is no address of this machine
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    if block:
        explorer.run()
        return explorer
    return explorer.start()


# --- what is served --------------------------------------------------------------------------


def served_models(
    models: Sequence[ModelLike] | Mapping[str, ModelLike] | ModelLike,
    checkpoints: str | os.PathLike[str] | None,
    settings: Settings,
) -> Mapping[str, ServedModel]:
    """NAME → ServedModel for every model given and every folder of `checkpoints`; ServeError
    where one cannot be served or two would have one name."""
    root = Path(checkpoints).expanduser() if checkpoints is not None else None
    if root is not None and not root.is_dir():
        raise ServeError(f"checkpoints={str(root)!r}: not a folder")
    served = dict(load_registry(root)) if root is not None else {}
    where = {name: f"checkpoints={str(root)!r}" for name in served}
    for given, name, item in _items(models):
        model = _served(item, given, name, root or settings.checkpoints_dir)
        if model.name in served:
            if _same_folder(served[model.name].path, model.path):
                continue  # a folder of `checkpoints`, named again: served once
            raise ServeError(
                f"{given}: a model named {model.name!r} is already served ({where[model.name]}); "
                "give them names apart: models={'other-name': model, ...}"
            )
        served[model.name] = prepare_for_serving(model)
        where[model.name] = given
    return MappingProxyType(served)


def _items(
    models: Sequence[ModelLike] | Mapping[str, ModelLike] | ModelLike,
) -> list[tuple[str, str | None, ModelLike]]:
    """(how it was given, the name given, the model) for each model: a dict names them."""
    if isinstance(models, Mapping):
        return [(f"models[{k!r}]", str(k), m) for k, m in models.items()]
    if isinstance(models, str | os.PathLike | torch.nn.Module) or not isinstance(models, Sequence):
        models = [models]  # one model, not in a list
    return [(f"models[{i}]", None, m) for i, m in enumerate(models)]


def _served(item: ModelLike, given: str, name: str | None, root: Path) -> ServedModel:
    if isinstance(item, str | os.PathLike):
        return _folder(Path(item).expanduser(), given, name, root)
    if isinstance(item, Checkpoint | ServedModel):
        model = item.served() if isinstance(item, Checkpoint) else item
        model = dataclasses.replace(model, model=_cpu_copy(model.model))  # theirs left as it is
    else:
        given = f"{given} ({type(item).__name__})"
        source = f"python {type(item).__module__}.{type(item).__qualname__}"
        if is_pythae_model(item):  # pythae's default networks are ours: converted, not probed
            try:
                item = network_of(item)
            except ModelImportError as e:
                raise ServeError(f"{given}: {e}") from None
        elif is_autoencoder_kl(item):  # diffusers': its latent kept spatial, scaled as it says
            try:
                item = autoencoder_kl_of(item)
            except AutoencoderKLConfigError as e:
                raise ServeError(f"{given}: its config: {e}") from None
        try:
            model = served_object(_cpu_copy(item), given, source, name=name)
        except PluginError as e:
            raise ServeError(str(e)) from None
        if not isinstance(item, torch.nn.Module):
            # no weights to name it by: a digest of its own, so that no cache or ETag made for
            # another object of its class (an earlier serve, a cache_dir) is taken for it
            model.digest = hashlib.sha256(f"{model.digest}{uuid.uuid4()}".encode()).hexdigest()
        return model
    if name is not None:
        model.name = name
    _check_name(model.name, given)
    return model


def _folder(path: Path, given: str, name: str | None, root: Path) -> ServedModel:
    """A checkpoint folder by its path, or by its name in `root`."""
    if not path.is_dir() and SERVABLE_NAME.fullmatch(str(path)) and (root / path).is_dir():
        path = root / path
    if not path.is_dir():
        raise ServeError(f"{given}={str(path)!r}: no checkpoint folder there, nor in {root}")
    try:
        model = load_checkpoint(path).served()
    except CheckpointError as e:
        raise ServeError(f"{given}={str(path)!r}: {' '.join(str(e).split())}") from None
    if name is not None:
        model = dataclasses.replace(model, name=name)
    _check_name(model.name, given)
    return model


def _same_folder(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


def _check_name(name: str, given: str) -> None:
    if not SERVABLE_NAME.fullmatch(name):
        raise ServeError(
            f"{given}: the name {name!r} must be letters, digits, '.', '_' or '-', the first a "
            "letter or digit (it is part of the model's URLs)"
        )


def _cpu_copy(model: Any) -> Any:
    """A torch module's copy with its weights on the CPU, as they are now: the caller's model
    keeps its training mode, its gradients and its device, and training it further changes
    neither what is served nor the digest that names the weights in ETags and caches. Anything
    else is served as it is."""
    if not isinstance(model, torch.nn.Module):
        return model
    # each tensor copied straight to the CPU (deepcopy would first copy it on its device)
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        cpu = t.detach().to("cpu", copy=True)
        is_parameter = isinstance(t, torch.nn.Parameter)
        memo[id(t)] = torch.nn.Parameter(cpu, requires_grad=False) if is_parameter else cpu
    return copy.deepcopy(model, memo)


def data_sets(data: Mapping[str, DataLike], settings: Settings) -> DataSets:
    """The built-in sets and `data`; ServeError in one line for one that cannot be opened."""
    named: list[tuple[str, str, str | Path | ImageSet]] = []
    for name, spec in data.items():
        given = f"data[{name!r}]"
        if isinstance(spec, str) and spec in BUILT_IN:
            if spec == name:
                continue  # served already, as every built-in is
            raise ServeError(
                f"{given}={spec!r}: the built-in sets are always served, under their own names "
                f"(data={spec} in the explorer's URLs)"
            )
        if isinstance(spec, ImageSet):
            if spec.name != name:  # the name it is served under is the one its pages show
                spec = copy.copy(spec)
                spec.name = name
            named.append((given, name, spec))
        elif isinstance(spec, str | os.PathLike):
            path = Path(spec).expanduser()
            named.append((f"{given}={str(path)!r}", name, path))
        else:
            raise ServeError(
                f"{given}: expected a folder's path, a built-in's name ({', '.join(BUILT_IN)}) or "
                f"an ImageSet, got {type(spec).__name__}"
            )
    try:
        found = scan_sets(None, fashion_root=settings.fashion_mnist_dir)
        return with_named_sets(found, named)
    except DatasetError as e:
        raise ServeError(" ".join(str(e).split())) from None


# --- the server in a thread ------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn's server, saying when its start-up is over (started or failed), and where it
    serves once it has started, where asked to (a script's one line)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()
        self.announce: Callable[[], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
            if self.started and self.announce is not None:
                self.announce()
        finally:
            self.startup_over.set()


class Explorer:
    """The explorer on a listening socket: `.url`, `.stop()`, `.wait()`; `with serve(...) as
    explorer:` stops it on leaving. In a notebook it shows inline (a frame of its first model's
    page) where its server lets the notebook frame it, and as a link to its URL besides."""

    def __init__(
        self, app: Any, host: str, port: int, models: tuple[str, ...], datasets: tuple[str, ...],
        framed: bool = False,
    ) -> None:  # fmt: skip
        self.models = models
        self.datasets = datasets
        self.framed = framed  # whether a notebook on this machine may show it in a frame
        self._socket = tcp_listener(host, port)
        self.port: int = self._socket.getsockname()[1]
        # a server on every interface is reached by this machine's name
        shown = socket.gethostname() if host in WILDCARD_ADDRESSES else host
        self.url = f"http://{f'[{shown}]' if ':' in shown else shown}:{self.port}/"
        # no log configuration of its own (a notebook's logging is left as it is) and no line
        # per request: warnings and errors reach the caller's log
        config = server_config(app, log_config=None, log_level="warning", access_log=False)
        self._server = _Server(config)
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()
        self._serving = False

    def start(self) -> Explorer:
        """Serve from a thread of this process (the caller carries on); → once it answers."""
        self._thread = threading.Thread(
            target=self._serve,
            name=f"latent-explorer:{self.port}",
            daemon=True,  # the process may end without stop(), as a script's does
        )
        self._thread.start()
        if not self._server.startup_over.wait(START_TIMEOUT_S) or not self._server.started:
            self.stop()
            raise ServeError(f"the explorer did not start on {self.url} (its log says why)")
        return self

    def run(self) -> None:
        """Serve from this thread until Ctrl-C or SIGTERM (uvicorn's own handling of them, as
        `latent-explorer serve` has, where this is the main thread), saying where on stderr."""

        def announce() -> None:  # as uvicorn's own "running on" line: where to point a browser
            sys.stderr.write(f"latent-explorer serving on {self.url} (Ctrl-C stops it)\n")
            sys.stderr.flush()

        self._server.announce = announce
        try:
            self._serve()
        except KeyboardInterrupt:  # uvicorn raises the signal it stopped on again, once stopped
            pass
        if not self._server.started:
            raise ServeError(f"the explorer did not start on {self.url} (its log says why)")

    def _serve(self) -> None:
        self._serving = True
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()
            self._finished.set()

    @property
    def running(self) -> bool:
        return self._server.started and not self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the server stops, or `timeout` seconds; → whether it has stopped. Ctrl-C ends
        the wait (and leaves the server running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            # short waits: Ctrl-C's KeyboardInterrupt reaches the main thread between two of
            # them, where one long wait would hold it off (the signal may land on a server thread)
            self._finished.wait(WAIT_STEP_S if left is None else min(WAIT_STEP_S, left))
        return True

    def stop(self) -> None:
        """Finish open requests, close the server and free its port."""
        self._server.should_exit = True
        thread = self._thread
        if thread is not None and thread.is_alive() and threading.current_thread() is not thread:
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():  # a request still running: close without it
                self._server.force_exit = True
                thread.join(STOP_TIMEOUT_S)
        if not self._serving:  # else the server closes it as it stops
            self._socket.close()

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<latent-explorer {state} at {self.url}: models {', '.join(self.models) or 'none'}>"

    def _repr_html_(self) -> str:
        """A notebook's view of it: the explorer on its first model in a frame (where the server
        lets the notebook frame it: `serve`'s frame_ancestors), and a line of links that open it
        in a new tab."""
        if not self.running:
            return f"<p>latent-explorer at {html.escape(self.url)}: stopped</p>"
        links = ", ".join(
            f'<a href="{html.escape(self.url)}?model={html.escape(m)}" target="_blank" '
            f'rel="noopener">{html.escape(m)}</a>'
            for m in self.models
        )
        line = (
            f'<p><a href="{html.escape(self.url)}" target="_blank" rel="noopener">latent-explorer '
            f"at {html.escape(self.url)}</a> — models: {links or 'none'}; data sets: "
            f"{html.escape(', '.join(self.datasets))}</p>"
        )
        if not self.framed:
            return line
        first = f"?model={html.escape(self.models[0])}" if self.models else ""
        return (
            f'<iframe src="{html.escape(self.url)}{first}" title="latent-explorer" '
            f'style="width: 100%; height: {FRAME_HEIGHT_PX}px; border: 1px solid #ccc"></iframe>'
            + line
        )
        return (
            f'<p><a href="{html.escape(self.url)}" target="_blank" rel="noopener">latent-explorer '
            f"at {html.escape(self.url)}</a> — models: {links or 'none'}; data sets: "
            f"{html.escape(', '.join(self.datasets))}</p>"
        )
