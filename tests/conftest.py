"""Shared fixtures: tiny models trained for real, in seconds, by the same code as the CLI."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from filelock import FileLock
from threadpoolctl import threadpool_limits

from app.main import create_app
from app.settings import Settings
from app.training import TrainArgs, train
from tests.browser_server import launch_chromium, live_server

# the hosts every app of the tests answers to: the loopback names of the live servers, and
# "testserver", which Starlette's TestClient sends (Django's test runner trusts it likewise)
os.environ["LATENT_EXPLORER_ALLOWED_HOSTS"] = '["localhost", "127.0.0.1", "::1", "testserver"]'

# --- running on several cores: pytest-xdist (`make test` runs `pytest -n 2 --dist loadfile`) ----


def pytest_configure(config: pytest.Config) -> None:
    """In an xdist worker, the thread pools of torch, OpenBLAS (numpy, scipy) and OpenMP
    (scikit-learn) share the cores with the other workers: each would start one thread per core,
    and threads waiting on each other across workers cost more than they bring."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        threadpool_limits(limits=threads)
        torch.set_num_threads(threads)


@contextmanager
def made_once(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Path, bool]]:
    """A folder for a session fixture's files, and whether they are still to be made there.
    Under xdist the workers share it (in the run's base temporary folder, behind a lock): the
    first to ask makes the files while any other waits, then all read them. Tests copy what
    they change, so one copy serves every worker."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield tmp_path_factory.mktemp(name), True
        return
    folder = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{folder}.lock"):
        made = folder / ".made"
        if made.exists():
            yield folder, False
            return
        shutil.rmtree(folder, ignore_errors=True)  # what a failed first try left
        folder.mkdir()
        yield folder, True
        made.touch()


def tiny_args(out: Path, **kw) -> TrainArgs:
    defaults = dict(
        out=out,
        run_dir=out.parent / f"run-{out.name}",
        steps=30,
        batch_size=16,
        save_every=1000,
        log_every=5,
        eval_images=256,
        seed=0,
        command="test",
    )
    defaults.update(kw)
    return TrainArgs(**defaults)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoint folders of a tiny AE, VAE (β=4) and CVAE, each trained for 150 steps: enough
    to learn where the sprite is, in seconds."""
    specs = {
        "tiny-ae": dict(kind="ae"),
        "tiny-vae": dict(kind="vae", beta=4.0),
        "tiny-cvae": dict(kind="cvae"),
    }
    with made_once(tmp_path_factory, "trained") as (folder, to_make):
        root = folder / "checkpoints"
        for name, kw in specs.items() if to_make else ():
            args = tiny_args(
                root / name, run_dir=root.parent / f"runs-{name}", steps=150, batch_size=32, **kw
            )
            assert train(args) == 0
    return {name: root / name for name in specs}


@pytest.fixture(scope="module")
def client(trained, tmp_path_factory):
    """A TestClient on a server whose checkpoints folder holds the tiny models."""
    root = tmp_path_factory.mktemp("served")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    with TestClient(create_app(Settings(checkpoints_dir=root))) as c:
        yield c


@pytest.fixture(scope="session")
def colour_beside_tiny(trained, tmp_path_factory) -> Path:
    """A checkpoints folder: the tiny AE and β-VAE of dSprites beside a plain (β=1) VAE of
    colour images with 6 latents, which takes neither their images nor their z; no denoising
    model and no VAE-GAN among them."""
    root = tmp_path_factory.mktemp("colour-beside-tiny")
    colour = tiny_args(root / "run" / "colour-vae", dataset="shapes3d", latents=6, steps=3,
                       eval_images=64)  # fmt: skip
    assert train(colour) == 0
    for name, folder in (("colour-vae", colour.out), ("tiny-ae", trained["tiny-ae"]),
                         ("tiny-vae", trained["tiny-vae"])):  # fmt: skip
        shutil.copytree(folder, root / "served" / name)
    return root / "served"


# --- a Fashion-MNIST of our own: four idx files the tests write ------------------------------


def idx_file(array: np.ndarray) -> bytes:
    """The idx format: magic 0x0000080N (unsigned bytes, N dimensions), N big-endian sizes, the
    data."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def garment(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 28×28 grey picture of class `label` (0..9) on a black ground: a bright block whose
    height and width grow with the class (4 + 2·label rows, 20 − label columns), its level drawn
    from 120..255 and a pixel or two of jitter in place, so a class is recognisable and its
    images are not all alike."""
    img = np.zeros((28, 28), dtype=np.uint8)
    h, w = 4 + 2 * label, 20 - label
    top, left = (28 - h) // 2 + rng.integers(-1, 2), (28 - w) // 2 + rng.integers(-1, 2)
    img[top : top + h, left : left + w] = rng.integers(120, 256)
    return img


def write_fashion_mnist(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """Four gzipped idx files as Debian's package lays them out, classes in turn (image i is of
    class i % 10) and pictures from `garment`. → root."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.stack([garment(int(c), rng) for c in labels])
        for stem, array in (("images-idx3", images), ("labels-idx1", labels)):
            (root / f"{prefix}-{stem}-ubyte.gz").write_bytes(gzip.compress(idx_file(array)))
    return root


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Fashion-MNIST (300 train, 100 test images) written by write_fashion_mnist."""
    with made_once(tmp_path_factory, "fashion-mnist") as (folder, to_make):
        if to_make:
            write_fashion_mnist(folder)
    return folder


@pytest.fixture(scope="session")
def fashion_models(tmp_path_factory: pytest.TempPathFactory, fashion_dir: Path) -> dict[str, Path]:
    """A tiny MLP VAE and CVAE (28×28, 64 hidden units, 4 latents) trained 200 steps on
    `fashion_dir`'s binarised images: checkpoint folders by name."""
    specs = {"tiny-fashion-vae": dict(kind="vae"), "tiny-fashion-cvae": dict(kind="cvae")}
    with made_once(tmp_path_factory, "fashion-models") as (folder, to_make):
        root = folder / "checkpoints"
        for name, kw in specs.items() if to_make else ():
            args = tiny_args(
                root / name, run_dir=root.parent / f"runs-{name}", steps=200, batch_size=32,
                dataset=f"fashion-mnist:{fashion_dir}", architecture="mlp", hidden=64, latents=4,
                **kw,
            )  # fmt: skip
            assert train(args) == 0
    return {name: root / name for name in specs}


@pytest.fixture(scope="module")
def fashion_client(fashion_models, fashion_dir, tmp_path_factory):
    """A TestClient on a server of the tiny Fashion-MNIST models, reading `fashion_dir`."""
    root = tmp_path_factory.mktemp("served-fashion")
    for name, folder in fashion_models.items():
        shutil.copytree(folder, root / name)
    settings = Settings(checkpoints_dir=root, fashion_mnist_dir=fashion_dir)
    with TestClient(create_app(settings)) as c:
        yield c


# --- the browser tests: Debian's Chromium, and a live server on the shipped checkpoints -------


@pytest.fixture(scope="module")
def browser():
    """Chromium, per module: Playwright's sync API keeps an event loop running on this thread
    while it is open, which asyncio.run in later modules (test_server.py) would trip over."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (only browser tests)

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shipped_server():
    """A live server on the shipped checkpoints: its URL."""
    with live_server(Settings()) as url:
        yield url
