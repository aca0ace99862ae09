"""A model whose card records no KL per latent (a plugin, an import without its training log)
gets its KL bars, latent order and latents-in-use count from its own data set, measured by the
server in the background: the values are the closed-form KL of its encoder on the images written
here, averaged by hand."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings


def blob(i: int) -> np.ndarray:
    img = np.zeros((64, 64), dtype=np.uint8)
    img[4 + 6 * i : 24 + 6 * i, 6 + 5 * i : 30 + 5 * i] = 255
    return img


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("data-kl")
    folder = root / "checkpoints" / "no-kl"
    shutil.copytree(trained["tiny-vae"], folder)
    card = json.loads((folder / "card.json").read_text())
    for key in ("kl_per_dim", "active_latents", "eval"):
        card.pop(key, None)
    (folder / "card.json").write_text(json.dumps(card))
    config = json.loads((folder / "config.json").read_text())
    config["dataset"] = "blobs-data"  # trained elsewhere, on data this server has a copy of
    (folder / "config.json").write_text(json.dumps(config))
    data = root / "datasets" / "blobs"
    data.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(blob(i)).save(data / f"{i}.png")
    (data / "dataset.json").write_text('{"model_dataset": "blobs-data"}')
    settings = Settings(checkpoints_dir=root / "checkpoints", datasets_dir=root / "datasets",
                        cache_dir=root / "cache")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        client.app.state.measuring_kl.join()
        yield client


def kl_here(client) -> np.ndarray:
    model = client.app.state.registry["no-kl"].model
    x = torch.from_numpy(np.stack([blob(i) for i in range(6)]).astype(np.float32) / 255)[:, None]
    with torch.inference_mode():
        q = model.encode(x, None)
    mu, var = q.mean.double(), q.std.double() ** 2
    # KL(N(μ, σ²) ‖ N(0, 1)) per latent, in closed form, averaged over the six images
    return (0.5 * (mu**2 + var - 1 - torch.log(var))).mean(0).numpy()


def test_the_card_page_shows_kl_measured_on_the_models_own_data_set(served):
    expected = kl_here(served)
    page = served.get("/models/no-kl")
    assert page.status_code == 200
    shown = re.findall(r'aria-label="z(\d+) KL ([\d.]+) nats"', page.text)
    assert len(shown) == len(expected)
    for dim, value in shown:
        assert float(value) == pytest.approx(expected[int(dim)], abs=0.006)  # shown to 2 places
    # most KL first, and the page says where it was measured
    assert [int(d) for d, _ in shown] == list(np.argsort(-expected, kind="stable"))
    assert "data set blobs (6 images)" in page.text


def test_the_explorer_orders_its_sliders_by_that_kl_and_counts_latents_in_use(served):
    expected = kl_here(served)
    page = served.get("/?model=no-kl")
    assert page.status_code == 200
    order = [int(d) for d in re.findall(r'data-dim="(\d+)"', page.text)]
    assert order[: len(expected)] == list(np.argsort(-expected, kind="stable"))
    assert f"{int((expected > 0.1).sum())} in use" in page.text
