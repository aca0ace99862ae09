"""Server-rendered pages and htmx partials (TestClient on tiny models trained in the test)."""

from __future__ import annotations

import io
import re

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from app.checkpoints import load_checkpoint
from app.main import create_app
from app.settings import Settings


def slider_dims(html: str) -> list[int]:
    return [int(d) for d in re.findall(r'type="range" id="z\d+" data-dim="(\d+)"', html)]


def slider_value(html: str, dim: int) -> str:
    return re.search(rf'id="z{dim}" data-dim="{dim}"[^>]*?value="([^"]+)"', html, re.S).group(1)


def test_explore_has_one_slider_per_latent_ordered_by_kl(client, trained):
    page = client.get("/", params={"model": "tiny-vae"})
    assert page.status_code == 200
    dims = slider_dims(page.text)
    kl = load_checkpoint(trained["tiny-vae"]).card.to_json()["kl_per_dim"]
    assert sorted(dims) == list(range(10))
    assert [kl[d] for d in dims] == sorted(kl, reverse=True)
    inactive = sum(k <= 0.1 for k in kl)
    assert page.text.count('class="latent inactive"') == inactive
    # without a z in the URL the first picture is the model's code of a dataset image
    z = re.search(r'src="/api/models/tiny-vae/decode.png\?z=([^"&]+)', page.text).group(1)
    assert [float(v) for v in z.split(",")] == [
        float(slider_value(page.text, d)) for d in range(10)
    ]
    assert "/static/vendor/htmx.min.js" in page.text and "/static/explore.js" in page.text


def test_the_url_sets_the_initial_sliders_and_label(client):
    z = "1.5,0,0,0,0,0,0,0,0,-2"
    page = client.get("/", params={"model": "tiny-cvae", "z": z, "label": 2}).text
    assert slider_value(page, 0) == "1.50" and slider_value(page, 9) == "-2.00"
    assert slider_value(page, 4) == "0.00"
    assert 'value="2" checked' in page
    assert "decode.png?z=1.50,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00,-2.00&amp;label=2" in page


def test_a_bad_url_state_falls_back_with_a_message(client):
    page = client.get("/", params={"model": "tiny-vae", "z": "1,2"}).text
    assert "z must have 10 values for model tiny-vae, got 2; started from z = 0 instead" in page
    page = client.get("/", params={"model": "nope"}).text
    assert "unknown model &#39;nope&#39;" in page


def test_compare_drives_two_models_with_one_set_of_sliders(client):
    page = client.get("/compare", params={"a": "tiny-ae", "b": "tiny-vae"}).text
    assert page.count('class="decoded"') == 2
    assert len(slider_dims(page)) == 10  # one set of sliders
    assert page.count('class="klcell"') == 20  # a KL bar per model beside each
    assert 'img class="traverse" data-model="tiny-ae"' in page
    assert 'img class="traverse" data-model="tiny-vae"' in page


def test_random_z_for_ae_vs_vae_redirects_to_a_shareable_url(client):
    r = client.get(
        "/compare",
        params={"a": "tiny-ae", "b": "tiny-vae", "sample": "random"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    location = r.headers["location"]
    z = re.search(r"z=([^&]+)", location).group(1).replace("%2C", ",").split(",")
    assert len(z) == 10 and location.startswith("/compare?a=tiny-ae&b=tiny-vae")
    assert 'href="/compare?a=tiny-ae&b=tiny-vae&sample=random"' in client.get("/").text


def test_dataset_partial_carries_mu_for_the_sliders(client):
    r = client.get("/ui/tiny-vae/encode", params={"index": 4242}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    mu = re.search(r'data-mu="([^"]+)"', r.text).group(1)
    api = client.get("/api/models/tiny-vae/encode", params={"index": 4242}).json()
    assert np.allclose(eval(mu.replace("&#34;", '"')), api["mu"])  # noqa: S307 - our own JSON list
    assert "−ELBO" in r.text and r.text.count("<tr>") == 11  # header + one row per latent
    assert "<html" not in r.text  # a fragment, not a page


def test_upload_partial_shows_the_error_next_to_the_upload(client):
    r = client.post("/ui/tiny-vae/encode", files={"file": ("x.png", b"%PDF-1.4", "image/png")})
    assert r.status_code == 422
    assert 'class="error"' in r.text and "file is not an image" in r.text


def test_interpolate_partial_replaces_the_url_with_its_state(client):
    buf = io.BytesIO()
    Image.new("L", (40, 40), 255).save(buf, format="PNG")
    r = client.post(
        "/ui/tiny-vae/interpolate",
        data={"index_a": 10, "steps": 5},
        files={"file_b": ("w.png", buf.getvalue(), "image/png")},
    )
    assert r.status_code == 200, r.text
    url = r.headers["HX-Replace-Url"]
    assert url.startswith("/interpolate?model=tiny-vae&z0=") and "steps=5" in url
    assert r.text.count('class="strip"') == 2 and 'id="playback"' in r.text
    page = client.get(url).text  # the URL restores the strips
    assert page.count('class="strip"') == 2
    bad = client.post("/ui/tiny-vae/interpolate", data={"steps": 5})
    assert bad.status_code == 422 and "image A: upload a file or give a dataset index" in bad.text


def test_model_card_page(client):
    page = client.get("/models/tiny-vae")
    assert page.status_code == 200 and "β-VAE, β=4" in page.text and "card.json" in page.text
    # where it trained, from the card's segments (the tiny model: 150 steps, one segment)
    assert re.search(r"Trained 150 steps × 32 in \d+ min:\s+150 steps on cpu \(", page.text)
    assert client.get("/models/missing").status_code == 404


def test_a_dataset_image_is_described_by_its_own_datasets_factors(client, tmp_path):
    from app.training import train
    from tests.conftest import tiny_args

    # ellipse, scale 0, orientation 3, x 7, y 9
    r = client.get("/ui/tiny-vae/encode", params={"index": 245760 + 1024 * 3 + 32 * 7 + 9})
    assert r.status_code == 200
    assert "dSprites #249065: ellipse;" in r.text
    assert "scale 0, orientation 3, pos x 7, pos y 9" in r.text

    args = tiny_args(tmp_path / "shapes", dataset="shapes3d", steps=2)
    assert train(args) == 0
    with TestClient(create_app(Settings(checkpoints_dir=tmp_path))) as c:
        # floor hue 2, wall hue 0, object hue 5, scale 3, sphere, orientation 1
        r = c.get("/ui/shapes/encode", params={"index": 48000 * 2 + 480 * 5 + 60 * 3 + 15 * 2 + 1})
        assert r.status_code == 200, r.text
        assert "colour shapes #98611: sphere;" in r.text
        assert "floor hue 2, wall hue 0, object hue 5, scale 3, orientation 1" in r.text
        # past its images but not past dSprites', which any model is viewed on with
        # data=dsprites: valid for the schema, this model's 404; past every served set's, a 422
        assert c.get("/api/models/shapes/encode", params={"index": 480000}).status_code == 404
        assert c.get("/api/models/shapes/encode", params={"index": 737280}).status_code == 422


def test_random_z_ae_vs_vae_keeps_the_model_on_the_page_and_sends_each_only_its_own_range():
    """On the shipped models: from a VAE's page the pair is an AE and that VAE; the shared
    sliders never pass what either model takes (the AE's codes reach ±18, the VAE takes ±10),
    so every strip the compare page asks for is answered."""
    settings = Settings()
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        page = client.get("/?model=fashion-vae").text
        assert 'href="/compare?a=dsprites-ae&b=fashion-vae&sample=random"' in page
        assert 'href="/compare?a=dsprites-ae&b=dsprites-beta-vae&sample=random"' in client.get(
            "/?model=dsprites-beta-vae").text  # fmt: skip
        page = client.get("/compare?a=dsprites-ae&b=dsprites-vae").text
        sliders = re.findall(r'<input type="range" id="z(\d+)" data-dim="\d+" min="([^"]+)" '
                             r'max="([^"]+)"\s+step="([^"]+)"', page)  # fmt: skip
        assert len(sliders) == 10
        z = ",".join(["0"] * 10)
        for dim, lo, hi, step in sliders:
            assert -10 <= float(lo) and float(hi) <= 10, (dim, lo, hi)
            for model in ("dsprites-ae", "dsprites-vae"):
                r = client.get(f"/api/models/{model}/sweep.png", params={
                    "z": z, "dim": dim, "lo": lo, "hi": hi, "step": step})  # fmt: skip
                assert r.status_code == 200, (model, dim, r.text)
