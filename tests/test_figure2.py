"""Figure 2 of the β-VAE paper (positions, scale, rotation, traversal, learned variance) and the
latent × factor mutual information, as SVG, on tiny models trained in the test."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shutil
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.checkpoints import ModelCard, load_checkpoint, save_checkpoint
from app.data.dsprites import FACTOR_NAMES, SHAPE_NAMES
from app.main import create_app
from app.metrics.scores import discretize, mutual_info_matrix
from app.models import VAE, ModelConfig
from app.settings import Settings
from app.studies import figure2
from app.studies.figure2_svg import DIVERGING, SHAPE_COLOURS, colour_map
from app.web.figure2 import get_sampling

# 1,024 + 72 + 240 + 256 images per model: under a second on one core
SMALL = figure2.Sampling(
    per_position=1, per_scale=4, per_orientation=2, n_data=256, traversal_steps=3
)
NS = {"svg": "http://www.w3.org/2000/svg"}
METRICS_SCORES = {
    "mig": {"mean": 0.1234, "std": 0.01, "values": [0.11, 0.12, 0.14], "settings": "20 bins"},
    "active_latents": {"mean": 4.0, "std": 0.0, "values": [4, 4, 4], "settings": "KL > 0.1"},
}


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """The tiny models, one of them evaluated, and a model of colour images (not dSprites)."""
    root = tmp_path_factory.mktemp("figure2-served")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    shutil.copytree(trained["tiny-vae"], root / "tiny-evaluated")
    card_path = root / "tiny-evaluated" / "card.json"
    card = json.loads(card_path.read_text())
    card["metrics"] = {
        "step": 150, "digest": load_checkpoint(trained["tiny-vae"]).digest, "seeds": [0, 1, 2],
        "factors": list(FACTOR_NAMES), "scores": METRICS_SCORES, "mi_matrix": [],
        "wall_time_s": 12.0,
    }  # fmt: skip
    card_path.write_text(json.dumps(card))
    colour = ModelConfig(channels=3, likelihood="gaussian", dataset="folder:pics")
    save_checkpoint(root / "tiny-colour", VAE(colour), ModelCard(name="tiny-colour"))
    return root


@pytest.fixture(scope="module")
def client(served):
    app = create_app(Settings(checkpoints_dir=served))
    app.dependency_overrides[get_sampling] = lambda: SMALL
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def vae_data(served) -> figure2.Figure2Data:
    return figure2.figure2_data(load_checkpoint(served / "tiny-vae").served(), SMALL)


def svg(resp) -> ET.Element:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("image/svg+xml")
    return ET.fromstring(resp.text)


def columns(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{{{NS['svg']}}}g") if "latent" in g.get("class", "").split()]


def png_pixels(href: str) -> np.ndarray:
    assert href.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))))


def test_every_cell_of_each_sweep_shares_the_same_draws_of_the_other_factors():
    parts = figure2.designs(figure2.Sampling(per_position=3, per_scale=5, per_orientation=2))
    pos = parts["position"].reshape(32, 32, 3, 5)  # (pos_y, pos_x, draw, factor)
    assert (pos[..., 4] == np.arange(32)[:, None, None]).all()
    assert (pos[..., 3] == np.arange(32)[None, :, None]).all()
    assert (pos[..., :3] == pos[:1, :1, :, :3]).all()  # common random numbers
    assert sorted(pos[0, 0, :, 0]) == [0, 1, 2]  # one draw per shape
    scale = parts["scale"].reshape(3, 6, 5, 5)
    assert (scale[..., 1] == np.arange(6)[None, :, None]).all()
    assert (scale[..., 2:] == scale[:1, :1, :, 2:]).all()
    orientation = parts["orientation"].reshape(3, 40, 2, 5)
    assert (orientation[..., 2] == np.arange(40)[None, :, None]).all()
    assert parts["data"].shape == (3072, 5)


def test_figure2_data_has_a_value_per_latent_and_cell(vae_data):
    d = vae_data
    assert d.position.shape == (10, 32, 32) and d.scale.shape == (10, 3, 6)
    assert d.orientation.shape == (10, 3, 40) and d.mi.shape == (10, 5)
    assert d.traversal.shape == (10, 3, 1, 64, 64) and d.traversal_values == [-3.0, 0.0, 3.0]
    assert np.isfinite(d.position).all() and (d.variance >= 0).all() and (d.mi >= 0).all()
    assert [d.variance[i] for i in d.order] == sorted(d.variance, reverse=True)
    assert d.kl is not None and d.active == [bool(k > 0.1) for k in d.kl]


def test_figure_has_one_column_per_latent_ordered_by_learned_variance(client, vae_data):
    root = svg(client.get("/api/models/tiny-vae/figure2.svg"))
    cols = columns(root)
    assert [int(g.get("data-latent")) for g in cols] == vae_data.order
    shown = [float(g.get("data-variance")) for g in cols]
    assert shown == sorted(shown, reverse=True)
    assert np.allclose(shown, vae_data.variance[vae_data.order], rtol=1e-5)
    inactive = [g for g in cols if "inactive" in g.get("class").split()]
    assert len(inactive) == vae_data.active.count(False)
    assert all(g.get("opacity") for g in inactive)
    for g in cols:  # the learned variance is printed as the last row of each column
        assert g.findall("svg:text", NS)[-1].get("class") == "variance"


def test_position_heatmaps_are_32_by_32_on_a_shared_diverging_scale(client, vae_data):
    cols = columns(svg(client.get("/api/models/tiny-vae/figure2.svg")))
    d = vae_data
    m = max(np.abs(d.position).max(), np.abs(d.scale).max(), np.abs(d.orientation).max())
    for g in cols:
        (image,) = g.findall("svg:image[@class='heatmap']", NS)
        pixels = png_pixels(image.get("href"))
        assert pixels.shape == (32, 32, 3)
        expected = colour_map(d.position[int(g.get("data-latent"))] / (2 * m) + 0.5, DIVERGING)
        assert np.abs(pixels.astype(int) - expected).max() <= 1


def test_scale_and_rotation_rows_draw_one_line_per_shape_in_the_papers_colours(client):
    root = svg(client.get("/api/models/tiny-vae/figure2.svg"))
    strokes = [p.get("stroke") for p in root.iter(f"{{{NS['svg']}}}polyline")]
    for colour in SHAPE_COLOURS:  # square red, ellipse green, heart blue
        assert strokes.count(colour) == 2 * 10  # scale and rotation, in every column
    assert ">square<" in client.get("/api/models/tiny-vae/figure2.svg").text  # the legend
    first = columns(root)[0]
    frames = first.findall("svg:image[@class='traversal']", NS)
    assert len(frames) == 3 and png_pixels(frames[0].get("href")).shape == (64, 64)


def test_figures_differ_between_models_and_repeat_with_an_etag(client):
    ae = client.get("/api/models/tiny-ae/figure2.svg")
    vae = client.get("/api/models/tiny-vae/figure2.svg")
    assert svg(ae) is not None and ae.text != vae.text
    again = client.get("/api/models/tiny-vae/figure2.svg")
    assert again.content == vae.content
    cached = client.get(
        "/api/models/tiny-vae/figure2.svg", headers={"If-None-Match": vae.headers["etag"]}
    )
    assert cached.status_code == 304
    assert svg(client.get("/api/models/tiny-cvae/figure2.svg")) is not None  # labels from shape


def test_mutual_information_map_has_a_cell_per_factor_and_latent(client, vae_data):
    root = svg(client.get("/api/models/tiny-vae/mi.svg"))
    cells = [r for r in root.iter(f"{{{NS['svg']}}}rect") if r.get("class") == "mi"]
    assert len(cells) == 5 * 10
    assert [int(c.get("data-latent")) for c in cells[:10]] == vae_data.order
    assert {c.get("data-factor") for c in cells} == set(FACTOR_NAMES)
    tip = cells[0].find("svg:title", NS).text
    mi = vae_data.mi[vae_data.order[0], 0]
    assert tip.startswith(f"z{vae_data.order[0]} · shape: {mi:.3f} nats")
    labels = {t.text for t in root.iter(f"{{{NS['svg']}}}text")}
    assert set(FACTOR_NAMES) <= labels and {f"z{i}" for i in range(10)} <= labels


def test_shape_view_tells_a_latent_that_holds_shape_from_a_pair_that_shares_it(vae_data):
    """Latent 2 is shape itself; latents 3 and 4 put each shape on a ring of its own radius,
    as the β-TCVAE does with the ellipse (one latent of the ring cannot tell the shapes
    apart, the pair can); the rest are noise the model does not use."""
    rng = np.random.default_rng(5)
    factors = vae_data.sample_factors
    shape = factors[:, 0]
    mu = rng.standard_normal((len(shape), 10)) * 0.01
    mu[:, 2] = shape + rng.normal(0, 0.05, len(shape))
    angle = rng.uniform(0, 2 * np.pi, len(shape))
    radius = np.array([0.5, 1.5, 2.5])[shape]
    mu[:, 3], mu[:, 4] = radius * np.cos(angle), radius * np.sin(angle)
    kl = np.where(np.isin(np.arange(10), [2, 3, 4]), 1.0, 0.001)
    data = dataclasses.replace(
        vae_data, sample_mu=mu, kl=kl, mi=mutual_info_matrix(discretize(mu), factors)
    )
    view = figure2.shape_view(data)
    assert view.latents[0] == 2 and set(view.latents) == {2, 3, 4}
    assert view.single[2] > 0.95 and max(view.single[3], view.single[4]) < 0.8
    ring = view.pairs.get((3, 4), view.pairs.get((4, 3)))
    assert ring is not None and ring > 0.95
    assert len(view.pairs) == 3
    assert view.chance == np.bincount(shape).max() / len(shape)  # the commonest shape's share


def test_shape_view_plots_each_pair_with_one_dot_per_image_in_the_shape_colours(client, vae_data):
    root = svg(client.get("/api/models/tiny-vae/shape.svg"))
    panels = [g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "shape-panel"]
    view = figure2.shape_view(vae_data)
    assert [tuple(map(int, g.get("data-latents").split())) for g in panels] == list(view.pairs)
    shapes = vae_data.sample_factors[:, 0]  # 256 images, under the 900 a panel shows
    for g in panels:
        dots = [p for p in g.findall("svg:path", NS) if p.get("class") == "dots"]
        for s, (name, colour) in enumerate(zip(SHAPE_NAMES, SHAPE_COLOURS, strict=True)):
            mine = [p for p in dots if p.get("data-shape") == name]
            assert {p.get("stroke") for p in mine} == {colour}
            assert sum(p.get("d").count("h0") for p in mine) == int((shapes == s).sum())
    text = " ".join(t.text or "" for t in root.iter(f"{{{NS['svg']}}}text"))
    a, b = next(iter(view.pairs))
    assert f"z{b} against z{a}" in text and f"shape from both: {view.pairs[(a, b)]:.0%}" in text
    assert (
        "shape from one latent alone: " + ", ".join(f"z{i} {v:.0%}" for i, v in view.single.items())
        in text
    )


def test_unknown_model_and_a_model_without_dsprites_factors_are_404s(client):
    for path in ("figure2.svg", "mi.svg", "shape.svg"):
        r = client.get(f"/api/models/nope/{path}")
        assert r.status_code == 404 and "unknown model 'nope'" in r.json()["detail"]
        r = client.get(f"/api/models/tiny-colour/{path}")
        assert r.status_code == 404  # a valid request: this model has no Figure 2
        assert "trained on folder:pics, not dSprites" in r.json()["detail"]
    r = client.get("/ui/tiny-colour/figure2")
    assert r.status_code == 422 and 'class="error"' in r.text and "not dSprites" in r.text


def test_a_model_without_ground_truth_has_no_dataset_images_anywhere(client):
    """An image-folder model: the API says why there is no image N; the pages offer none."""
    r = client.get("/api/models/tiny-colour/encode", params={"index": 3})
    assert r.status_code == 404  # the other served models have image 3: this one has none
    assert "trained on folder:pics, whose images cannot be drawn by index" in r.json()["detail"]
    r = client.get("/ui/tiny-colour/encode")
    assert r.status_code == 422 and "no dataset images to start from" in r.text
    r = client.post("/ui/tiny-colour/interpolate", data={"index_a": 1, "index_b": 2})
    assert r.status_code == 422 and "tiny-colour has no dataset images; upload a file" in r.text
    assert "Start from a dataset image" not in client.get("/?model=tiny-colour").text
    assert 'name="index_a"' not in client.get("/interpolate?model=tiny-colour").text
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models["tiny-colour"]["dataset_images"] is None
    assert models["tiny-vae"]["dataset_images"] == 737_280
    assert "Start from a dataset image" in client.get("/?model=tiny-vae").text
    assert 'max="737279"' in client.get("/interpolate?model=tiny-vae").text


def test_compare_and_card_pages_load_the_figures_lazily(client):
    page = client.get("/compare", params={"a": "tiny-ae", "b": "tiny-vae"}).text
    assert 'class="figure2"' in page and "Figure 2" in page
    for name in ("tiny-ae", "tiny-vae"):
        assert f'hx-get="/ui/{name}/figure2" hx-trigger="intersect once"' in page
    assert "<svg xmlns" not in page  # the page does not wait for the computation
    card = client.get("/models/tiny-vae").text
    assert 'hx-get="/ui/tiny-vae/figure2"' in card and 'hx-get="/ui/tiny-ae' not in card


def test_the_fragment_inlines_the_svgs_and_says_when_metrics_are_missing(client):
    r = client.get("/ui/tiny-vae/figure2", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert r.text.count("<svg xmlns") == 3 and "&lt;svg" not in r.text
    assert 'class="figure2-shape"' in r.text and "Where shape lives" in r.text
    assert (
        "not evaluated — run <code>latent-explorer evaluate checkpoints/tiny-vae</code>" in r.text
    )


def test_metric_table_shows_mean_and_std_with_the_settings(client):
    r = client.get("/ui/tiny-evaluated/figure2")
    assert r.status_code == 200
    table = re.search(r'<table class="metrics-table">.*?</table>', r.text, re.S).group(0)
    assert "seeds 0, 1, 2" in table and "step 150" in table
    assert re.search(r'title="20 bins" data-metric="mig">\s*<th scope="row">MIG</th>\s*'
                     r'<td>0.123</td>\s*<td class="std">± 0.010</td>', table)  # fmt: skip
    assert table.index("active latents") < table.index("MIG")
    assert "not evaluated" not in r.text and "stale" not in r.text


def test_metric_table_says_stale_when_the_weights_changed(client):
    macro = client.app.state.templates.get_template("partials/metrics.html").module.metric_table
    metrics = {"step": 1, "digest": "a" * 64, "seeds": [0], "scores": METRICS_SCORES}
    html = str(macro("m", metrics, "b" * 64))
    assert "Metrics are stale" in html and "latent-explorer evaluate checkpoints/m" in html
    assert 'class="metrics-table stale"' in html
    assert "not evaluated" in str(macro("m", None, "b" * 64))


def test_concurrent_first_requests_compute_once(served, monkeypatch):
    calls = []
    compute = figure2.compute_figure2

    def slow_compute(ckpt, s):
        calls.append(ckpt.digest)
        time.sleep(0.2)  # long enough for every thread to arrive while it runs
        return compute(ckpt, s)

    monkeypatch.setattr(figure2, "compute_figure2", slow_compute)
    ckpt = dataclasses.replace(
        load_checkpoint(served / "tiny-ae").served(), digest="concurrency-test"
    )
    results: list[figure2.Figure2Data] = []
    threads = [
        threading.Thread(target=lambda: results.append(figure2.figure2_data(ckpt, SMALL)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["concurrency-test"] and len(results) == 4
    assert all(r is results[0] for r in results)


def test_a_colour_shapes_model_shows_its_own_factors_mi_and_scores(tmp_path):
    """Figure 2 is dSprites' figure; a model of another dataset with known factors gets the MI
    map and the scores that `evaluate` stored in its card, over its own six factors."""
    from app.data.shapes3d import FACTOR_NAMES as SHAPES_FACTORS
    from app.metrics.evaluate import EvaluationSettings, evaluate_checkpoint
    from app.training import train
    from tests.conftest import tiny_args

    args = tiny_args(tmp_path / "shapes", dataset="shapes3d", steps=8)
    assert train(args) == 0
    with TestClient(create_app(Settings(checkpoints_dir=tmp_path))) as c:
        r = c.get("/ui/shapes/figure2")
        assert r.status_code == 200, r.text
        assert "Figure 2 plots latents against dSprites' factors" in r.text
        assert "colour shapes" in r.text and "not evaluated" in r.text and "<svg" not in r.text
    few = EvaluationSettings(seeds=(0,), points=300, test_points=100, beta_vae_points=(20, 10),
                             factor_vae_votes=(20, 10), pairs=4)  # fmt: skip
    evaluate_checkpoint(args.out, few, progress=False)
    with TestClient(create_app(Settings(checkpoints_dir=tmp_path))) as c:
        r = c.get("/ui/shapes/figure2")
    assert r.status_code == 200, r.text
    root = ET.fromstring(re.search(r"<svg.*?</svg>", r.text, re.S).group(0))
    cells = root.findall(".//svg:rect[@class='mi']", NS)
    assert len(cells) == 10 * 6
    assert {cell.get("data-factor") for cell in cells} == set(SHAPES_FACTORS)
    mi = np.asarray(load_checkpoint(args.out).card.to_json()["metrics"]["mi_matrix"])
    first = cells[0]
    tip = first.find("svg:title", NS).text
    dim, factor = int(first.get("data-latent")), first.get("data-factor")
    assert tip.startswith(f"z{dim} · {factor}: {mi[dim, SHAPES_FACTORS.index(factor)]:.3f} nats")
    assert 'class="metrics-table"' in r.text and "not evaluated" not in r.text
