"""What a new user meets: `/` opens on the model the settings name, starting from a dataset
image encoded, and an AE's sliders span its own codes over data rather than the prior's ±3."""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.checkpoints import CARD, load_checkpoint
from app.data.dsprites import render
from app.main import create_app
from app.settings import Settings
from app.web.sliders import code_range

# dSprites' middle image, worked out by hand: shape 1 (ellipse), scale 3 of 0..5, orientation 20
# of 0..39, x 16 and y 16 of 0..31, with strides (245760, 40960, 1024, 32, 1)
MIDDLE_CLASSES = [1, 3, 20, 16, 16]
MIDDLE_INDEX = 1 * 245760 + 3 * 40960 + 20 * 1024 + 16 * 32 + 16


def sliders(html: str) -> dict[int, dict[str, float]]:
    """dim → the slider's min, max, step and value as the page writes them."""
    rows = re.findall(
        r'data-dim="(\d+)" min="([^"]+)" max="([^"]+)"\s+step="([^"]+)" value="([^"]+)"', html
    )
    return {
        int(d): {"lo": float(lo), "hi": float(hi), "step": float(st), "value": float(v)}
        for d, lo, hi, st, v in rows
    }


def png(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    return np.asarray(Image.open(io.BytesIO(resp.content)), dtype=np.float64)


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    return root


def test_the_landing_page_opens_on_the_named_model_at_a_dataset_images_code(served):
    with TestClient(create_app(Settings(checkpoints_dir=served, default_model="tiny-vae"))) as c:
        page = c.get("/").text
    assert 'data-model="tiny-vae"' in page and "tiny-vae</strong>" in page
    assert f"image {MIDDLE_INDEX:,}" in page and "ellipse" in page
    # the sliders hold the encoder's mean of that image, computed here without the app
    model = load_checkpoint(served / "tiny-vae").model
    x = torch.from_numpy(render(np.array([MIDDLE_CLASSES]))[:, None].astype(np.float32))
    with torch.no_grad():
        mu = model.encoder(x, None)[0, :10]  # the encoder's first half is μ
    values = sliders(page)
    assert [values[d]["value"] for d in range(10)] == pytest.approx(mu.tolist(), abs=0.0051)
    # and the line says where to go next
    assert 'href="/models/tiny-vae"' in page


def test_without_its_default_model_the_landing_page_opens_on_the_best_mig(served, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(served, root)
    for name, mig in (("tiny-ae", 0.1), ("tiny-cvae", 0.5), ("tiny-vae", 0.3)):
        card = json.loads((root / name / CARD).read_text())
        card["metrics"] = {"scores": {"mig": {"mean": mig, "std": 0.0}}}  # as evaluate writes it
        (root / name / CARD).write_text(json.dumps(card))
    with TestClient(create_app(Settings(checkpoints_dir=root, default_model="absent"))) as c:
        assert 'data-model="tiny-cvae"' in c.get("/").text
        # a URL that names a model still wins
        assert 'data-model="tiny-ae"' in c.get("/", params={"model": "tiny-ae"}).text


def test_a_url_with_z_starts_there_not_from_the_dataset_image(client):
    page = client.get("/", params={"model": "tiny-vae", "z": "1.5" + ",0" * 9}).text
    assert sliders(page)[0]["value"] == 1.5
    assert "reconstruction of dSprites" not in page


def test_an_aes_sliders_span_its_own_codes_over_data(client, trained):
    ckpt = load_checkpoint(trained["tiny-ae"]).served()
    # the codes of 1,000 random sprites, computed here: their 1st–99th percentiles per latent
    rng = np.random.default_rng(7)
    classes = np.stack([rng.integers(0, n, 1000) for n in (3, 6, 40, 32, 32)], axis=1)
    x = torch.from_numpy(render(classes)[:, None].astype(np.float32))
    with torch.no_grad():
        mu = ckpt.model.network.encoder(x, None).numpy()
    p1, p99 = np.percentile(mu, [1, 99], axis=0)
    spread = p99 - p1
    ranges = sliders(client.get("/", params={"model": "tiny-ae"}).text)
    for d, r in ranges.items():
        # the slider covers where the codes lie (two sample estimates of the same percentiles
        # differ a little) and is not the prior's ±3 unless the codes happen to lie there
        assert r["lo"] <= p1[d] + 0.1 * spread[d] and r["hi"] >= p99[d] - 0.1 * spread[d]
        assert r["hi"] - r["lo"] <= 1.5 * spread[d] + 2 * r["step"]
        assert round((r["hi"] - r["lo"]) / r["step"]) <= 120  # a drag's worth of positions
        # and its positions are whole hundredths, as the page writes z
        assert abs(r["lo"] * 100 - round(r["lo"] * 100)) < 1e-6
    assert any(abs(r["lo"] + 3) > 0.5 or abs(r["hi"] - 3) > 0.5 for r in ranges.values())


def test_every_move_of_the_shipped_aes_sliders_changes_the_picture():
    # the shipped AE's codes reach about ±18: on the prior's ±3, half of a drag's moves of its
    # top slider changed nothing; over its own codes, each of 20 even moves does, on every slider
    with TestClient(create_app(Settings())) as c:
        ranges = sliders(c.get("/", params={"model": "dsprites-ae"}).text)
        z = [ranges[d]["value"] for d in range(10)]
        for dim, r in ranges.items():
            pictures = []
            for k in range(21):
                zk = list(z)
                zk[dim] = r["lo"] + (r["hi"] - r["lo"]) * k / 20
                q = {"z": ",".join(f"{t:.2f}" for t in zk)}
                pictures.append(png(c.get("/api/models/dsprites-ae/decode.png", params=q)))
            unchanged = [k for k in range(20) if np.array_equal(pictures[k], pictures[k + 1])]
            assert unchanged == [], f"z{dim}: moves {unchanged} changed nothing"


def test_code_ranges_are_whole_hundredths_and_at_most_121_positions():
    r = code_range(-17.034, 11.519)
    assert (r.lo, r.hi) == (-17.04, 11.52)
    assert r.positions <= 121 and r.step == 0.24
    assert abs((r.hi - r.lo) / r.step - round((r.hi - r.lo) / r.step)) < 1e-9
    narrow = code_range(-0.5, 0.7)
    assert narrow.step == 0.05 and narrow.lo == -0.5 and narrow.hi == 0.7


def test_a_sweep_over_lo_and_hi_is_the_single_decodes_of_those_positions(client):
    z = ["0.10"] * 10
    q = {"z": ",".join(z), "dim": 2, "lo": -7.2, "hi": 4.8, "step": 0.4}
    strip = png(client.get("/api/models/tiny-ae/sweep.png", params=q))
    assert strip.shape[1] == 64 * 31
    for k in (0, 13, 30):
        zk = list(z)
        zk[2] = f"{-7.2 + 0.4 * k:.2f}"
        single = png(client.get("/api/models/tiny-ae/decode.png", params={"z": ",".join(zk)}))
        assert np.array_equal(strip[:, 64 * k : 64 * (k + 1)], single)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lo": -1.005, "hi": 1}, "lo must be a multiple of 0.01"),
        ({"lo": -500, "hi": 1}, "lo and hi values must lie within ±10"),
    ],
)
def test_a_bad_sweep_range_is_a_422_that_names_it(client, params, message):
    q = {"z": ",".join(["0"] * 10), "dim": 0, **params}
    resp = client.get("/api/models/tiny-vae/sweep.png", params=q)
    assert resp.status_code == 422 and message in resp.json()["detail"]
