"""Directions read from a served data set's columns (data=NAME): a folder of 240 PNGs written
here, with an ordered factor `x` (where a block sits), a categorical attribute `kind` (how big
it is) and two true/false attributes, some values missing. μ is the tiny β-VAE's own encoder on
the pixels written; the class means, the read-out (numpy's lstsq), R² and the held-out accuracy
are recomputed here from it and compared with what the API answers."""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
from html import unescape

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app import inference
from app.encodings import jobs
from app.main import create_app
from app.settings import Settings
from app.studies.directions import held_out_split
from app.studies.set_encodings import encoding_jobs
from tests.browser_server import live_server

SET, PLAIN = "marks", "plain"
N = 240
KINDS = ("round", "square", "star")
SIDES = {"round": 10, "square": 22, "star": 16, "": 16}  # a block's side by its kind


def rows() -> list[tuple[float | None, str, str, str]]:
    """(x, kind, bright, flag) per image, seeded: every 17th image has no x, every 13th no
    kind; bright and flag are true/false, so both columns have the categories false and true."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(N):
        x = None if i % 17 == 5 else round(float(rng.uniform(0, 1)), 3)
        kind = "" if i % 13 == 4 else KINDS[int(rng.integers(3))]
        out.append((x, kind, str(bool(rng.integers(2))).lower(), str(i % 2 == 0).lower()))
    return out


def picture(x: float | None, kind: str) -> np.ndarray:
    """64×64 grey: a white block of the kind's side, its left edge at 4 + 36·x (centred where x
    is missing)."""
    img = np.zeros((64, 64), dtype=np.uint8)
    side = SIDES[kind]
    left = 4 + round(36 * (0.5 if x is None else x))
    img[20 : 20 + side, left : left + side] = 255
    return img


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """datasets/: `marks` (metadata.csv, x declared a factor) and `plain` (images alone: no
    columns)."""
    root = tmp_path_factory.mktemp("set-directions") / "datasets"
    marks = root / SET
    marks.mkdir(parents=True)
    lines = ["file_name,x,kind,bright,flag"]
    for i, (x, kind, bright, flag) in enumerate(rows()):
        Image.fromarray(picture(x, kind)).save(marks / f"{i:03d}.png")
        lines.append(f"{i:03d}.png,{'' if x is None else x},{kind},{bright},{flag}")
    (marks / "metadata.csv").write_text("\n".join(lines) + "\n")
    (marks / "dataset.json").write_text(json.dumps({"factors": ["x"]}))
    (root / PLAIN).mkdir()
    for i in range(3):
        Image.fromarray(picture(i / 2, "round")).save(root / PLAIN / f"{i}.png")
    return root


def app_settings(trained, folder, root) -> Settings:
    for name in ("tiny-vae", "tiny-ae", "tiny-cvae"):
        shutil.copytree(trained[name], root / "checkpoints" / name)
    return Settings(checkpoints_dir=root / "checkpoints", datasets_dir=folder,
                    cache_dir=root / "cache")  # fmt: skip


@pytest.fixture(scope="module")
def served(trained, folder, tmp_path_factory):
    """A client whose encodings of `marks` are kept (computed at the start)."""
    settings = app_settings(trained, folder, tmp_path_factory.mktemp("served"))
    with TestClient(create_app(settings)) as client:
        for model in ("tiny-vae", "tiny-ae"):
            client.get(f"/api/models/{model}/map?data={SET}")
        encoding_jobs(settings.cache_dir).join()
        yield client


def mu_here(client, model: str = "tiny-vae") -> np.ndarray:
    """(N, D) the model's encoder means of the pixels written, as the model sees them."""
    ckpt = client.app.state.registry[model]
    x = torch.from_numpy(np.stack([picture(x, k) for x, k, _, _ in rows()]).astype(np.float32))
    with torch.inference_mode():
        return ckpt.model.encode(x[:, None] / 255, None).mean.double().numpy()


def direction(client, query: str, model: str = "tiny-vae") -> dict:
    r = client.get(f"/api/models/{model}/direction?data={SET}&{query}")
    assert r.status_code == 200, r.text
    return r.json()


# --- the numbers ------------------------------------------------------------------------------


def test_a_category_to_another_joins_their_mean_mu_over_the_images_with_a_kind(served):
    body = direction(served, "from=Round&to=square")  # the column found from the two
    assert (body["kind"], body["column"], body["from"], body["to"], body["data"]) == (
        "classes", "kind", "round", "square", SET,
    )  # fmt: skip
    mu = mu_here(served)
    kind = np.array([k for _, k, _, _ in rows()])
    kept = np.flatnonzero(kind != "")  # images without a kind are left out
    mu, kind = mu[kept], kind[kept]
    fit, held = held_out_split(len(kept), 0)
    round_, square = (mu[fit][kind[fit] == k].mean(axis=0) for k in ("round", "square"))
    assert body["vector"] == pytest.approx((square - round_).tolist(), rel=1e-4, abs=1e-5)
    assert body["centre"] == pytest.approx(((round_ + square) / 2).tolist(), rel=1e-4, abs=1e-5)
    pair = held[np.isin(kind[held], ("round", "square"))]
    side = (mu[pair] - (round_ + square) / 2) @ (square - round_) > 0
    assert body["fit"]["held_out"] == len(pair)
    accuracy = np.mean(side == (kind[pair] == "square"))
    assert body["fit"]["value"] == pytest.approx(accuracy, abs=1e-5)
    missing = N - len(kept)
    assert body["fit"]["left_out"] == missing == 19
    assert f"{missing} of the {N} images have no kind and are left out" in body["fit"]["about"]
    assert body["source"]["kind"] == "data-set" and body["n"] == N


def test_an_ordered_column_is_read_out_scaled_by_its_low_and_high(served):
    body = direction(served, "factor=x&seed=3")
    assert (body["kind"], body["factor"], body["column"]) == ("factor", "x", "x")
    mu = mu_here(served)
    x = np.array([np.nan if v is None else v for v, _, _, _ in rows()])
    kept = np.flatnonzero(~np.isnan(x))
    low, high = np.nanmin(x), np.nanmax(x)
    y, mu = (x[kept] - low) / (high - low), mu[kept]
    fit, held = held_out_split(len(kept), 3)
    design = np.c_[mu[fit], np.ones(len(fit))]  # the read-out with its intercept
    coef = np.linalg.lstsq(design, y[fit], rcond=None)[0]
    predicted = np.c_[mu[held], np.ones(len(held))] @ coef
    r2 = 1 - ((y[held] - predicted) ** 2).sum() / ((y[held] - y[held].mean()) ** 2).sum()
    assert body["fit"]["measure"] == "R²" and body["fit"]["value"] == pytest.approx(r2, abs=1e-4)
    assert body["fit"]["value"] > 0.5  # the model learnt where a block is
    # the pattern: how μ moves as the read-out rises, sized so the read-out rises by 1 along it
    w = coef[:-1]
    centred = mu[fit] - mu[fit].mean(axis=0)
    read = centred @ w
    assert body["vector"] == pytest.approx((centred.T @ read / (read @ read)).tolist(), abs=1e-3)
    assert float(np.array(body["vector"]) @ w) == pytest.approx(1, abs=1e-3)
    assert f"from {low:g} to {high:g}" in body["fit"]["about"]
    assert body["fit"]["left_out"] == N - len(kept) == 14
    assert f"{N - len(kept)} of the {N} images have no x" in body["fit"]["about"]


def test_the_images_are_the_maps_sample_of_the_set(served):
    body = direction(served, "factor=x&n=120&seed=5")
    indices = served.get(f"/api/models/tiny-vae/map?data={SET}&n=120&seed=5").json()["indices"]
    x = np.array([np.nan if v is None else v for v, _, _, _ in rows()])
    left_out = int(np.isnan(x[indices]).sum())
    assert body["n"] == 120 and body["fit"]["left_out"] == left_out
    assert body["fit"]["held_out"] == round(0.2 * (120 - left_out))


def test_the_strip_on_a_set_is_decoded_along_its_direction(served):
    body = direction(served, "column=kind&from=star&to=round")
    query = f"data={SET}&column=kind&from=star&to=round&steps=3"
    r = served.get(f"/api/models/tiny-vae/direction.png?{query}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    model = served.app.state.registry["tiny-vae"]
    centre, vector = np.array(body["centre"]), np.array(body["vector"])
    z = torch.from_numpy(np.stack([centre + t * vector for t in (-0.5, 0, 0.5)])).float()
    expected = np.round(inference.decode_latents(model, z).numpy()[:, 0] * 255)
    grid = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"), dtype=np.int16)
    for k in range(3):
        cell = grid[2:66, 2 + 66 * k : 66 + 66 * k]
        assert np.abs(cell - expected[k]).max() <= 1


# --- what a set has not -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("factor=depth", 404, ["'depth'", "ordered columns: x", "categorical: kind, bright, flag"]),
        ("factor=kind", 404, ["'kind'", "categorical", "column=kind&from=round&to=square"]),
        ("column=kind&from=round&to=circle", 404, ["'circle'", "round, square, star"]),
        ("from=round&to=circle", 404, ["'round' and 'circle'", "kind: round, square, star"]),
        ("from=false&to=true", 404, ["several columns", "bright, flag", "column="]),
        ("column=x&from=a&to=b", 404, ["'x'", "ordered", "factor=x"]),
        ("column=size&from=a&to=b", 404, ["'size'", "kind, bright, flag"]),
        ("from=round&to=ROUND", 422, ["two different categories"]),
        ("factor=x&column=kind", 422, ["not both"]),
        ("from=round", 422, ["from alone"]),
        ("factor=x&n=241", 404, ["240 images"]),
    ],
)
def test_a_request_the_set_cannot_answer_names_what_it_has(served, query, status, named):
    r = served.get(f"/api/models/tiny-vae/direction?data={SET}&{query}")
    assert r.status_code == status, r.text
    for text in named:
        assert text in r.json()["detail"]


def test_a_column_asked_of_a_models_own_images_is_refused(served):
    r = served.get("/api/models/tiny-vae/direction?column=kind&from=square&to=heart&n=100")
    assert r.status_code == 404 and "own images have no columns" in r.json()["detail"]


def test_a_set_without_columns_says_there_is_nothing_to_read(served):
    r = served.get(f"/api/models/tiny-vae/direction?data={PLAIN}&factor=scale")
    assert r.status_code == 404
    assert r.json()["detail"].startswith(f"data set {PLAIN} has no columns")
    page = served.get(f"/map?model=tiny-vae&data={PLAIN}").text
    assert 'id="direction-slider" hidden' in page
    assert f"data set {PLAIN} has no columns" in unescape(page)


# --- the encoding, computed in the background -------------------------------------------------


def test_a_direction_waits_for_the_sets_encoding_with_its_progress(trained, folder, tmp_path):
    settings = app_settings(trained, folder, tmp_path)
    with TestClient(create_app(settings)) as client:
        first = client.get(f"/api/models/tiny-vae/direction?data={SET}&factor=x")
        assert first.status_code == 202, first.text
        assert first.headers["retry-after"] == "5"
        body = first.json()
        assert (body["status"], body["data"], body["model"]) == ("encoding", SET, "tiny-vae")
        assert f"the {N} images of data set {SET}" in body["detail"]
        strip = client.get(f"/api/models/tiny-vae/direction.png?data={SET}&factor=x")
        assert strip.status_code == 202
        section = client.get(f"/ui/compare/direction?a=tiny-vae&b=tiny-vae&data={SET}&factor=x")
        assert section.status_code == 202
        assert 'data-state="encoding"' in section.text
        assert 'hx-trigger="load delay:5s"' in section.text
        assert f"data set {SET}" in section.text and "asking again every 5 s" in section.text
        encoding_jobs(settings.cache_dir).join()
        assert client.get(f"/api/models/tiny-vae/direction?data={SET}&factor=x").status_code == 200
        done = client.get(f"/ui/compare/direction?a=tiny-vae&b=tiny-vae&data={SET}&factor=x")
        assert done.status_code == 200 and 'data-state="done"' in done.text
        assert "hx-trigger" not in done.text.split("<form")[0]  # no more asking


def test_a_set_the_model_cannot_encode_says_why_in_one_line(served):
    # the CVAE needs each image's shape, and the set has no column of square, ellipse, heart:
    # the pair has no encoding to find (a 404, since the schema cannot know a set's columns)
    client = served
    r = client.get(f"/api/models/tiny-cvae/direction?data={SET}&factor=x")
    assert r.status_code == 404, r.text
    detail = r.json()["detail"]
    assert "\n" not in detail and "square, ellipse, heart" in detail and SET in detail


# --- the pages --------------------------------------------------------------------------------


def test_the_map_page_offers_the_sets_columns_and_its_slider_asks_for_the_set(served):
    page = served.get(f"/map?model=tiny-vae&data={SET}").text
    slider = page.split('id="direction-slider"')[1].split("</section>")[0]
    assert f'data-data="{SET}"' in slider
    assert re.findall(r'data-factor="([^"]+)"', slider) == ["x"]
    options = re.findall(r'<option value="classes" data-column="([^"]*)">([^<]+)</option>', slider)
    assert options == [
        ("kind", "one kind to another"), ("bright", "one bright to another"),
        ("flag", "one flag to another"),
    ]  # fmt: skip
    kind = slider.split('data-column="kind" hidden>')[1].split("</span>")[0]
    assert re.findall(r'<option value="([^"]+)"', kind)[:3] == list(KINDS)
    # the model's own images: dSprites' factors and shapes, no data set
    own = served.get("/map?model=tiny-vae").text.split('id="direction-slider"')[1]
    assert 'data-data=""' in own and 'data-factor="scale"' in own


def test_compare_reads_both_models_on_the_set(served):
    pair = "kind=classes&column=kind&from=star&to=square"
    r = served.get(f"/ui/compare/direction?a=tiny-vae&b=tiny-ae&data={SET}&{pair}")
    assert r.status_code == 200, r.text
    html = r.text
    assert f'<option value="{SET}" selected>' in html
    for name in ("tiny-vae", "tiny-ae"):
        body = direction(served, "column=kind&from=star&to=square", model=name)
        article = html.split(f'data-model="{name}"')[1].split("</article>")[0]
        shares = [float(v) for v in re.findall(r'data-share="([^"]+)"', article)]
        assert shares == pytest.approx([body["shares"][i] for i in body["latent_order"]])
        assert f"accuracy {body['fit']['value']:.3f}" in article
        assert "19 images with no kind, left out" in article
        assert f"data={SET}" in article and "column=kind" in article  # the strip's URL
    # the placeholder on /compare carries the page's data set
    page = served.get(f"/compare?a=tiny-vae&b=tiny-ae&data={SET}").text
    assert f'hx-get="/ui/compare/direction?a=tiny-vae&amp;b=tiny-ae&amp;data={SET}"' in page


def test_compare_falls_back_to_a_factor_the_set_has_and_says_so(served):
    asked = "kind=factor&factor=scale"
    r = served.get(f"/ui/compare/direction?a=tiny-vae&b=tiny-ae&data={SET}&{asked}")
    assert r.status_code == 200
    html = unescape(r.text)
    assert f"neither model has a factor 'scale' on data set {SET}" in html
    assert '<option value="x" selected>' in r.text and "R² " in html
    # the picker still offers a column's categories to go from one to another
    picker = r.text.split('name="from"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]+)"', picker) == list(KINDS)
    assert re.findall(r'name="column".*?<option value="([^"]+)"', r.text, re.S)[:1] == ["kind"]
    r = served.get("/ui/compare/direction?a=tiny-vae&b=tiny-ae&data=nowhere")
    assert "unknown data set 'nowhere'" in unescape(r.text)


# --- in Chromium: the slider waits for the encoding, then moves along the set's direction -----


def slider_vector(page) -> np.ndarray:
    return np.array(
        [float(v) for v in page.get_attribute("#direction-slider", "data-vector").split(",")]
    )


def test_the_maps_slider_says_the_set_is_being_encoded_then_reads_its_columns(
    browser, trained, folder, tmp_path, monkeypatch
):
    release = threading.Event()  # the encoding waits for it: the page sees it in progress
    encode = jobs.encode_set

    def held(*args, **kwargs):
        release.wait(60)
        return encode(*args, **kwargs)

    monkeypatch.setattr(jobs, "encode_set", held)
    with live_server(app_settings(trained, folder, tmp_path)) as url:
        context = browser.new_context(base_url=url, bypass_csp=True)  # wait_for_function
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"/map?model=tiny-vae&data={SET}")
        page.wait_for_selector("#direction-slider[data-ready=encoding]", timeout=60_000)
        said = page.inner_text("#direction-slider-fit")
        assert f"data set {SET}" in said and "asking again in 5 s" in said
        assert page.is_disabled("#direction-slider-t")
        release.set()
        page.wait_for_selector("#direction-slider[data-ready=true]", timeout=60_000)
        api = f"{url}/api/models/tiny-vae/direction"
        x = httpx.get(api, params={"data": SET, "factor": "x"}, timeout=60).json()
        assert slider_vector(page) == pytest.approx(x["vector"])
        assert "14 images with no x, left out" in page.inner_text("#direction-slider-fit")
        # one kind to another: the kind's pickers appear, the others stay hidden
        page.select_option("#direction-slider-choice", label="one kind to another")
        assert page.is_visible("#direction-slider-from-1") and not page.is_visible(
            "#direction-slider-from-2"
        )
        page.select_option("#direction-slider-from-1", "star")
        page.wait_for_function(
            "document.getElementById('direction-slider-fit').title.includes('star and square')"
        )
        page.wait_for_selector("#direction-slider[data-ready=true]")
        pair = {"data": SET, "column": "kind", "from": "star", "to": "square"}
        body = httpx.get(api, params=pair, timeout=60).json()
        assert slider_vector(page) == pytest.approx(body["vector"])
        context.close()
        assert errors == []


def test_the_explore_page_offers_the_sets_columns_to_its_direction_slider(served):
    client = served
    page = client.get(f"/?model=tiny-vae&data={SET}")
    assert page.status_code == 200
    assert f'data-data="{SET}"' in page.text
    assert f"read from data set {SET}'s columns" in page.text
