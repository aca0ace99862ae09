"""The server lists the checkpoints it loaded; a broken folder is skipped, the rest serve."""

from __future__ import annotations

import logging
import shutil

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


def test_models_api_lists_each_checkpoint_with_its_card(trained, tmp_path):
    root = tmp_path / "ck"
    for name in ("tiny-ae", "tiny-cvae"):
        shutil.copytree(trained[name], root / name)
    with TestClient(create_app(Settings(checkpoints_dir=root))) as client:
        r = client.get("/api/models")
    assert r.status_code == 200
    models = {m["name"]: m for m in r.json()}
    assert set(models) == {"tiny-ae", "tiny-cvae"}
    cvae = models["tiny-cvae"]
    assert cvae["kind"] == "cvae" and cvae["latent_dim"] == 10
    assert cvae["labels"] == ["square", "ellipse", "heart"]
    assert cvae["image_size"] == 64 and cvae["channels"] == 1
    assert cvae["card"]["steps"] == 150 and len(cvae["card"]["kl_per_dim"]) == 10
    assert models["tiny-ae"]["card"]["recipe"].startswith("deterministic autoencoder")


def test_index_page_shows_the_models_and_their_latent_use(trained, tmp_path):
    root = tmp_path / "ck"
    shutil.copytree(trained["tiny-vae"], root / "tiny-vae")
    with TestClient(create_app(Settings(checkpoints_dir=root))) as client:
        page = client.get("/")
        htmx = client.get("/static/vendor/htmx.min.js")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "tiny-vae" in page.text and "β-VAE, β=4" in page.text
    assert page.text.count('type="range" id="z') == 10  # one slider per latent
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]


def test_a_broken_checkpoint_is_skipped_with_a_log_line(trained, tmp_path, caplog):
    root = tmp_path / "ck"
    shutil.copytree(trained["tiny-vae"], root / "good")
    shutil.copytree(trained["tiny-vae"], root / "broken")
    (root / "broken" / "model.safetensors").write_bytes(b"\x00" * 10)
    (root / ".good.tmp-123").mkdir()  # a crashed save's leftovers are not a model
    with (
        caplog.at_level(logging.ERROR),
        TestClient(create_app(Settings(checkpoints_dir=root))) as c,
    ):
        names = [m["name"] for m in c.get("/api/models").json()]
    assert names == ["good"]
    assert any(
        "skipping checkpoint broken" in r.message and "safetensors" in r.message
        for r in caplog.records
    )
