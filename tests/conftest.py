"""Shared fixtures: tiny models trained for real, in seconds, by the same code as the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.training import TrainArgs, train


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
    root = tmp_path_factory.mktemp("checkpoints")
    specs = {
        "tiny-ae": dict(kind="ae"),
        "tiny-vae": dict(kind="vae", beta=4.0),
        "tiny-cvae": dict(kind="cvae"),
    }
    for name, kw in specs.items():
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
