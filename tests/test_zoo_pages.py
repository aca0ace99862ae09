"""The imported models in the explorer: each page serves them at their own size, and /compare
drives one of theirs and one of ours with the same z."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.checkpoints import load_checkpoint
from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
ZOO = {"disvae-btcvae-dsprites": 64, "disvae-btcvae-celeba": 64, "disvae-btcvae-mnist": 32}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # ours and theirs, linked into a folder of their own (the shipped folder holds 17 models)
    root = tmp_path_factory.mktemp("zoo")
    for name in (*ZOO, "dsprites-beta-vae"):
        (root / name).symlink_to(CHECKPOINTS / name, target_is_directory=True)
    with TestClient(create_app(Settings(checkpoints_dir=root))) as c:
        yield c


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64) / 255


@pytest.mark.parametrize("name", sorted(ZOO))
def test_an_imported_model_decodes_at_its_own_size_as_its_network_does(client, name):
    size = ZOO[name]
    z = torch.linspace(-1.5, 1.5, 10)
    r = client.get(f"/api/models/{name}/decode.png", params={"z": ",".join(f"{v:.4f}" for v in z)})
    assert r.status_code == 200
    got = pixels(r.content)
    assert got.shape[:2] == (size, size)
    ckpt = load_checkpoint(CHECKPOINTS / name)  # the network itself, outside the serving path
    with torch.no_grad():
        expected = torch.sigmoid(ckpt.model.decode(z[None].float()))[0].permute(1, 2, 0).numpy()
    assert np.abs(got.reshape(size, size, -1) - expected).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("name", sorted(ZOO))
def test_an_imported_models_pages_answer(client, name):
    page = client.get("/", params={"model": name})
    assert page.status_code == 200 and page.text.count('type="range" id="z') == 10
    card = client.get(f"/models/{name}")
    assert card.status_code == 200
    assert "YannDubs/disentangling-vae" in card.text and "MIT" in card.text
    if "celeba" in name:
        assert "non-commercial" in card.text
    size = ZOO[name]
    grid = pixels(
        client.get(f"/api/models/{name}/traverse.png", params={"z": "0," * 9 + "0"}).content
    )
    assert (grid.shape[0] - 2) % (size + 2) == 0 and (grid.shape[1] - 2) % (size + 2) == 0


def test_compare_drives_their_btcvae_and_ours_with_one_z(client):
    a, b = "dsprites-beta-vae", "disvae-btcvae-dsprites"
    page = client.get("/compare", params={"a": a, "b": b, "z": "0.5,0,0,0,0,0,0,0,0,-0.5"})
    assert page.status_code == 200
    assert page.text.count('type="range" id="z') == 10  # one set of sliders for both
    drawn = re.findall(r"/api/models/([\w-]+)/decode\.png\?z=([-\d.,]+)", page.text)
    assert {m for m, _ in drawn} == {a, b}
    assert len({z for _, z in drawn}) == 1  # the same z for both
