"""Threads are cleaned up: nothing the app, the metrics' image encoder or the training data
stream starts outlives it."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from app.checkpoints import load_checkpoint
from app.data import open_dataset
from app.main import create_app
from app.metrics.evaluate import ImageEncoder
from app.settings import Settings
from app.studies import figure2
from app.training import TrainArgs
from app.training.stream import prefetch
from app.web.figure2 import get_sampling

SMALL = figure2.Sampling(
    per_position=1, per_scale=2, per_orientation=1, n_data=128, traversal_steps=3
)


def started_since(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before]


def test_no_thread_the_app_started_outlives_its_lifespan(trained, tmp_path):
    for name in ("tiny-vae", "tiny-cvae"):
        shutil.copytree(trained[name], tmp_path / name)
    before = set(threading.enumerate())
    app = create_app(Settings(checkpoints_dir=tmp_path))
    app.dependency_overrides[get_sampling] = lambda: SMALL
    rows = np.random.default_rng(0).normal(size=(24, 10))
    zs = [",".join(f"{v:.2f}" for v in row) for row in rows]
    with TestClient(app) as client:
        # concurrent decodes (the batcher's forward passes run on worker threads), the figure
        # (an image encoder with a render-ahead thread), and the thread-pooled plain routes
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(
                lambda z: client.get("/api/models/tiny-vae/decode.png", params={"z": z}), zs
            ))  # fmt: skip
        assert [r.status_code for r in codes] == [200] * len(zs)
        for url, params in [
            ("/api/models/tiny-cvae/figure2.svg", {}),
            ("/api/models/tiny-vae/traverse.png", {"z": zs[0]}),
            ("/api/models/tiny-vae/interpolate.gif", {"z0": zs[0], "z1": zs[1]}),
            ("/api/models/tiny-cvae/encode", {"index": 5}),
        ]:
            assert client.get(url, params=params).status_code == 200, url
        assert started_since(before)  # the app did run things on threads of its own
    leftover = started_since(before)
    for t in leftover:
        t.join(timeout=10)  # a thread told to stop ends at once; one never told, never
    alive = [t.name for t in leftover if t.is_alive()]
    assert alive == [], f"threads left running after the app shut down: {alive}"


def test_the_image_encoder_stops_its_render_ahead_thread_before_returning(trained):
    encoder = ImageEncoder(load_checkpoint(trained["tiny-vae"]).served(), batch_size=32)
    before = set(threading.enumerate())
    classes = np.random.default_rng(1).integers(0, [3, 6, 40, 32, 32], size=(100, 5))
    mu, _ = encoder.encode(classes)
    assert mu.shape == (100, 10)
    assert [t.name for t in started_since(before) if t.is_alive()] == []


def test_a_data_stream_stopped_early_leaves_no_render_thread(tmp_path):
    args = TrainArgs(out=Path(tmp_path / "x"), batch_size=8, render_workers=3, prefetch=4)
    before = set(threading.enumerate())
    stream = prefetch(open_dataset("dsprites"), args, 0, 0, 1000)
    assert next(stream).step == 0
    assert any(t.is_alive() for t in started_since(before))  # rendering ahead
    stream.close()  # what the loop does when it stops on SIGTERM
    assert [t.name for t in started_since(before) if t.is_alive()] == []
