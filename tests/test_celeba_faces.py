"""The imported CelebA models viewed on real faces: datasets/celeba-100 (100 CelebA photographs
cut from disentangling-vae's data_samples.png) is their own data set by its dataset.json, so the
map, the reconstructions and the image picker show faces. μ is checked against the model's own
encoder on the PNG tiles read here."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from app.studies.set_encodings import encoding_jobs

ROOT = Path(__file__).resolve().parent.parent
MODEL = "disvae-btcvae-celeba"
FACES = ROOT / "datasets" / "celeba-100"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    shutil.copytree(ROOT / "checkpoints" / MODEL, root / "checkpoints" / MODEL)
    settings = Settings(checkpoints_dir=root / "checkpoints", datasets_dir=ROOT / "datasets",
                        cache_dir=root / "cache")  # fmt: skip
    with TestClient(create_app(settings)) as c:
        c.get(f"/api/models/{MODEL}/map")  # starts the encoding of its faces
        encoding_jobs(settings.cache_dir).join()
        yield c


def face(i: int) -> np.ndarray:
    return np.asarray(Image.open(FACES / f"{i:03d}.png").convert("RGB"))


def test_a_celeba_model_maps_the_hundred_faces_by_default(client):
    r = client.get(f"/api/models/{MODEL}/map")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["source"]["dataset"] == "celeba-100" and m["indices"] == list(range(100))
    model = client.app.state.registry[MODEL].model
    x = torch.from_numpy(np.stack([face(i) for i in (0, 57)]).astype(np.float32) / 255)
    with torch.inference_mode():
        mu = model.encode(x.permute(0, 3, 1, 2), None).mean.numpy()
    np.testing.assert_allclose([m["latents"][0], m["latents"][57]], mu, atol=1e-4)
    # the point's picture is the face itself
    png = client.get(m["image_url"].replace("{index}", "57"))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))), face(57))


def test_its_pages_pick_faces_and_reconstruct_them(client):
    page = client.get(f"/?model={MODEL}")
    assert page.status_code == 200
    assert "celeba-100" in page.text  # the picker names its own images
    encoded = client.get(f"/api/models/{MODEL}/encode", params={"index": 3})
    assert encoded.status_code == 200, encoded.text
    model = client.app.state.registry[MODEL].model
    x = torch.from_numpy(face(3).astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        mu = model.encode(x, None).mean[0].numpy()
    np.testing.assert_allclose(encoded.json()["mu"], mu, atol=1e-4)
    grid = client.get(f"/api/models/{MODEL}/reconstructions.png")
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
