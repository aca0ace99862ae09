"""The map's t-SNE (openTSNE) and UMAP through the API, and GET /api/models/{name}/map/place:
where a z lands on a finished map. A training point's μ must land among its own map
neighbours (distances measured here on the map's points), the PCA answer must be the map's own
projection, and a map read back from disk by a server that did not compute it still places
by the method's transform, rebuilt from μ and the positions."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.web import latent_map as map_api

N = 80


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("map-place")
    shutil.copytree(trained["tiny-vae"], root / "checkpoints" / "tiny-vae")
    settings = Settings(checkpoints_dir=root / "checkpoints", cache_dir=root / "cache")
    with TestClient(create_app(settings)) as client:
        yield client, settings


def finished_map(client: TestClient, settings: Settings, method: str) -> dict:
    query = {"n": N, "method": method, "seed": 0}
    first = client.get("/api/models/tiny-vae/map", params=query)
    if first.status_code == 202:
        map_api.layout_jobs(settings.cache_dir).join(timeout=300)
    r = client.get("/api/models/tiny-vae/map", params=query)
    assert r.status_code == 200, r.text
    return r.json()


def place(client: TestClient, url: str, z) -> dict:
    # as the page asks: the map's own URL, z added
    r = client.get(url + "&z=" + ",".join(f"{v:.6f}" for v in z))
    assert r.status_code == 200, r.text
    return r.json()


def among_own_neighbours(points: np.ndarray, i: int, xy) -> bool:
    """Whether xy lies within the distance from point i to its 10th nearest map neighbour."""
    d = np.linalg.norm(points - points[i], axis=1)
    return bool(np.linalg.norm(np.asarray(xy) - points[i]) <= np.sort(d)[10])


def test_umap_answers_202_while_it_computes_then_the_map(served):
    client, settings = served
    query = {"n": N, "method": "umap", "seed": 0}
    first = client.get("/api/models/tiny-vae/map", params=query)
    assert first.status_code == 202 and first.headers["retry-after"] == "5"
    assert first.json()["method"] == "umap" and first.json()["status"] in ("queued", "computing")
    assert f"UMAP of {N} points" in first.json()["detail"]
    map_api.layout_jobs(settings.cache_dir).join(timeout=300)
    m = finished_map(client, settings, "umap")
    assert m["method"] == "umap" and len(m["points"]) == N
    assert m["settings"]["implementation"] == "umap-learn 0.5.12"
    assert m["marker"]["kind"] == "transform" and "UMAP's own transform" in m["marker"]["about"]
    # UMAP keeps neighbourhoods: trustworthiness (Venna & Kaski 2001) near 1, random ~0.5
    from sklearn.manifold import trustworthiness  # noqa: PLC0415

    mu, points = np.array(m["latents"]), np.array(m["points"])
    assert trustworthiness(mu, points, n_neighbors=5) > 0.85
    assert trustworthiness(mu, np.random.default_rng(0).permutation(points), n_neighbors=5) < 0.7
    assert list((settings.cache_dir).glob("umap-*.npz"))  # kept on disk, as t-SNE's are


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_place_puts_a_training_mu_among_its_own_map_neighbours(served, method):
    client, settings = served
    m = finished_map(client, settings, method)
    url = m["marker"]["place"]
    assert url.startswith("/api/models/tiny-vae/map/place?") and f"method={method}" in url
    points, mu = np.array(m["points"]), np.array(m["latents"])
    rows = range(0, N, 8)
    answers = [place(client, url, mu[i]) for i in rows]
    assert {a["how"] for a in answers} == {"transform"}
    inside = [
        among_own_neighbours(points, i, (a["x"], a["y"]))
        for i, a in zip(rows, answers, strict=True)
    ]
    assert np.mean(inside) >= 0.8, inside
    # the same measure refuses a point placed at another image's position
    swapped = [among_own_neighbours(points, i, points[(i + N // 2) % N]) for i in rows]
    assert np.mean(swapped) <= 0.3


def test_a_map_read_back_from_disk_places_by_its_rebuilt_transform(served, trained, tmp_path):
    client, settings = served
    m = finished_map(client, settings, "tsne")
    # another server process: the same weights, the map on disk, nothing in its memory
    shutil.copytree(settings.checkpoints_dir, tmp_path / "checkpoints")
    (tmp_path / "cache").mkdir()
    for f in settings.cache_dir.glob("tsne-*.npz"):
        shutil.copy(f, tmp_path / "cache" / f.name)
    other = Settings(checkpoints_dir=tmp_path / "checkpoints", cache_dir=tmp_path / "cache")
    with TestClient(create_app(other)) as second:
        again = second.get("/api/models/tiny-vae/map", params={"n": N, "method": "tsne"})
        assert again.status_code == 200  # read, not computed
        np.testing.assert_allclose(again.json()["points"], m["points"])
        points, mu = np.array(m["points"]), np.array(m["latents"])
        rows = range(3, N, 8)
        answers = [place(second, m["marker"]["place"], mu[i]) for i in rows]
    assert all(a["how"] == "transform" and "rebuilt" in a["about"] for a in answers)
    inside = [
        among_own_neighbours(points, i, (a["x"], a["y"]))
        for i, a in zip(rows, answers, strict=True)
    ]
    assert np.mean(inside) >= 0.8, inside


def test_place_on_a_pca_map_is_its_exact_projection(served):
    client, _ = served
    m = client.get("/api/models/tiny-vae/map", params={"n": N}).json()
    z = np.random.default_rng(0).normal(size=len(m["latent_names"]))
    answer = place(client, m["marker"]["place"], z)
    mean, components = np.array(m["marker"]["mean"]), np.array(m["marker"]["components"])
    np.testing.assert_allclose([answer["x"], answer["y"]], (z - mean) @ components.T, atol=1e-4)
    assert answer["how"] == "pca" and "exact" in answer["about"]


def test_place_before_the_map_is_computed_answers_202_then_places(served):
    client, settings = served
    params = {"n": 50, "method": "tsne", "seed": 9, "z": ",".join(["0"] * 10)}
    r = client.get("/api/models/tiny-vae/map/place", params=params)
    assert r.status_code == 202 and r.headers["retry-after"] == "5"
    assert r.json()["status"] in ("queued", "computing")
    # /place started the map's own job: the map is there once it is done
    map_api.layout_jobs(settings.cache_dir).join(timeout=300)
    assert client.get("/api/models/tiny-vae/map/place", params=params).json()["how"] == "transform"
    m = client.get("/api/models/tiny-vae/map", params={"n": 50, "method": "tsne", "seed": 9})
    assert m.status_code == 200


@pytest.mark.parametrize(
    ("z", "named"),
    [("0,0,0", "z must have 10 values for model tiny-vae, got 3"), ("0,0,x", "z[2] is 'x'")],
)
def test_a_z_of_the_wrong_size_is_refused_naming_it(served, z, named):
    client, _ = served
    r = client.get("/api/models/tiny-vae/map/place", params={"n": N, "z": z})
    assert r.status_code == 422 and named in r.json()["detail"]


def test_loaded_on_a_models_own_images_is_its_404_saying_it_needs_a_data_set(served):
    client, _ = served
    # valid by the schema (which cannot say that loaded needs a set): the model's 404
    r = client.get("/api/models/tiny-vae/map", params={"method": "loaded", "layout": "x"})
    assert r.status_code == 404 and "data=NAME" in r.json()["detail"]


def test_place_past_what_a_map_of_the_models_own_images_holds_is_its_404(served):
    client, settings = served
    limit = settings.max_map_points
    z = ",".join(["0"] * client.get("/api/models/tiny-vae").json()["latent_dim"])
    r = client.get("/api/models/tiny-vae/map/place", params={"n": limit + 1, "z": z})
    assert r.status_code == 404
    assert f"holds at most {limit:,}" in r.json()["detail"] and "data=NAME" in r.json()["detail"]
