"""The latent map: where a model puts held-out images, by PCA (exact) or t-SNE (background,
kept per weights), as JSON the /map page draws; checked against independent calculations:
scikit-learn's PCA, the encode API, the renderer, the idx files the tests wrote."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.decomposition import PCA

from app.data.dsprites import index_to_classes, render
from app.main import create_app
from app.settings import Settings
from app.studies import latent_map, layout_jobs, layouts
from app.web import latent_map as map_api


def get_map(client: TestClient, name: str, **query) -> dict:
    r = client.get(f"/api/models/{name}/map", params=query)
    assert r.status_code == 200, r.text
    return r.json()


# --- PCA ---------------------------------------------------------------------------------------


def test_pca_is_scikit_learns_exact_pca_up_to_each_axis_sign():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(500, 6)) * [3.0, 2.0, 1.0, 0.5, 0.2, 0.1] + [1, -2, 0, 0, 3, 0]
    layout = layouts.pca(mu)
    ref = PCA(n_components=2, svd_solver="full").fit(mu)
    expected = ref.transform(mu)
    signs = np.sign((layout.points * expected).sum(axis=0))
    np.testing.assert_allclose(layout.points, expected * signs, atol=1e-9)
    np.testing.assert_allclose(
        layout.settings["explained_variance_ratio"], ref.explained_variance_ratio_, rtol=1e-9
    )
    # a new z lands where the same projection puts it: (z − mean)·componentsᵀ
    np.testing.assert_allclose((mu - layout.mean) @ layout.components.T, layout.points)
    # the sign rule: each axis's largest loading is positive, so the same data draws one map
    assert all(row[np.argmax(np.abs(row))] > 0 for row in layout.components)


def test_pca_of_one_latent_puts_every_point_on_a_line():
    mu = np.arange(10, dtype=np.float64)[:, None]
    layout = layouts.pca(mu)
    np.testing.assert_allclose(layout.points[:, 0], mu[:, 0] - 4.5)
    np.testing.assert_array_equal(layout.points[:, 1], 0)
    assert layout.settings["explained_variance_ratio"] == [1.0, 0.0]


# --- the API on dSprites models ------------------------------------------------------------


def test_a_dsprites_map_names_each_images_factors_and_its_mu(client):
    m = get_map(client, "tiny-vae", n=40, seed=3)
    assert m["method"] == "pca" and m["n"] == 40 and m["source"]["kind"] == "ground-truth"
    assert len(m["points"]) == len(m["indices"]) == len(m["latents"]) == 40
    factors = {c["name"]: c for c in m["colour_by"]}
    assert list(factors) == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert factors["shape"]["names"] == ["square", "ellipse", "heart"]
    assert factors["scale"]["names"] is None and factors["scale"]["size"] == 6
    classes = index_to_classes(np.array(m["indices"]))
    for k, name in enumerate(factors):
        assert factors[name]["values"] == classes[:, k].tolist()
    # each point's μ is what the encode API gives for that dataset image
    for i in (0, 17, 39):
        enc = client.get("/api/models/tiny-vae/encode", params={"index": m["indices"][i]}).json()
        np.testing.assert_allclose(m["latents"][i], enc["mu"], atol=2e-4)
    # and its image is the renderer's drawing of those factor classes
    url = m["image_url"].format(index=m["indices"][5])
    png = np.asarray(Image.open(io.BytesIO(client.get(url).content)).convert("L")) / 255
    np.testing.assert_array_equal(png, render(classes[5:6])[0])
    # the points are the PCA of those μ, and the marker's projection reproduces them
    mu = np.array(m["latents"])
    proj = (mu - m["marker"]["mean"]) @ np.array(m["marker"]["components"]).T
    assert m["marker"]["kind"] == "exact"
    np.testing.assert_allclose(m["points"], proj, atol=2e-3)
    ref = PCA(n_components=2, svd_solver="full").fit_transform(mu)
    np.testing.assert_allclose(np.abs(m["points"]), np.abs(ref), atol=2e-3)


def test_the_seed_picks_the_images_and_the_same_seed_the_same_map(client):
    a, b = get_map(client, "tiny-vae", n=30, seed=1), get_map(client, "tiny-vae", n=30, seed=2)
    assert a["indices"] != b["indices"]
    assert get_map(client, "tiny-vae", n=30, seed=1) == a


def test_a_cvae_map_encodes_each_image_under_its_own_shape(client):
    m = get_map(client, "tiny-cvae", n=30)
    shapes = index_to_classes(np.array(m["indices"]))[:, 0]
    assert m["labels"] == shapes.tolist()
    enc = client.get("/api/models/tiny-cvae/encode", params={"index": m["indices"][4]}).json()
    assert enc["label"] == shapes[4]
    np.testing.assert_allclose(m["latents"][4], enc["mu"], atol=2e-4)
    assert get_map(client, "tiny-vae", n=30)["labels"] is None


def test_the_map_answers_again_from_its_cache_and_with_304(client):
    r = client.get("/api/models/tiny-ae/map", params={"n": 50})
    again = client.get(
        "/api/models/tiny-ae/map", params={"n": 50}, headers={"If-None-Match": r.headers["etag"]}
    )
    assert r.status_code == 200 and again.status_code == 304


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ({"n": 20_001}, 422, "n is 20,001"),
        ({"n": 1}, 422, "n"),
        ({"method": "isomap"}, 422, "method"),
        ({"seed": -1}, 422, "seed"),
        ({"perplexity": 500}, 422, "perplexity"),
    ],
)
def test_bad_map_requests_are_refused_naming_the_value(client, query, status, named):
    r = client.get("/api/models/tiny-vae/map", params=query)
    assert r.status_code == status
    assert named in json.dumps(r.json()["detail"])


def test_an_unknown_model_has_no_map(client):
    r = client.get("/api/models/nope/map")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


# --- Fashion-MNIST: the test split ----------------------------------------------------------


def test_a_fashion_map_is_the_test_split_coloured_by_class(fashion_client):
    m = get_map(fashion_client, "tiny-fashion-vae", n=100)
    assert m["source"]["kind"] == "test-split" and m["indices"] == list(range(100))
    (cls,) = m["colour_by"]
    # tests/conftest.py's test images are of the classes in turn: image i is of class i % 10
    assert cls["name"] == "class" and cls["values"] == [i % 10 for i in range(100)]
    assert cls["names"][9] == "ankle boot"
    enc = fashion_client.get("/api/models/tiny-fashion-vae/encode", params={"index": 7}).json()
    np.testing.assert_allclose(m["latents"][7], enc["mu"], atol=2e-4)
    sub = get_map(fashion_client, "tiny-fashion-vae", n=20, seed=5)
    assert sub["indices"] == sorted(set(sub["indices"])) and len(sub["indices"]) == 20
    np.testing.assert_allclose([m["latents"][i] for i in sub["indices"]], sub["latents"], atol=1e-4)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_a_map_larger_than_the_test_split_is_that_models_404(fashion_client, method):
    r = fashion_client.get("/api/models/tiny-fashion-vae/map", params={"n": 101, "method": method})
    assert r.status_code == 404
    assert "n is 101" in r.json()["detail"] and "holds 100 images" in r.json()["detail"]


def test_a_fashion_map_without_the_data_is_a_503_saying_how_to_install_it(fashion_models, tmp_path):
    root = tmp_path / "served"
    shutil.copytree(fashion_models["tiny-fashion-vae"], root / "tiny-fashion-vae")
    settings = Settings(checkpoints_dir=root, fashion_mnist_dir=tmp_path / "absent")
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/models/tiny-fashion-vae/map", params={"n": 10})
    assert r.status_code == 503 and "dataset-fashion-mnist" in r.json()["detail"]


# --- a model without data here: its own prior samples ---------------------------------------


@pytest.fixture(scope="module")
def celeba_client(trained, tmp_path_factory):
    """tiny-vae's weights under a config that says CelebA, served with no data sets folder: no
    images of it are here (the project's datasets/celeba-100 would be its map otherwise)."""
    root = tmp_path_factory.mktemp("served-celeba")
    folder = shutil.copytree(trained["tiny-vae"], root / "tiny-celeba")
    config = json.loads((folder / "config.json").read_text())
    config.update(dataset="celeba", factor_names=[])
    (folder / "config.json").write_text(json.dumps(config))
    settings = Settings(checkpoints_dir=root, datasets_dir=root / "no-data-sets")
    with TestClient(create_app(settings)) as c:
        yield c


def test_a_model_without_data_maps_its_own_prior_samples(celeba_client):
    m = get_map(celeba_client, "tiny-celeba", n=16, seed=4)
    assert m["source"]["kind"] == "prior" and m["colour_by"] == [] and m["image_url"] is None
    z = torch.randn(16, 10, generator=torch.Generator().manual_seed(4))
    np.testing.assert_allclose(m["prior_z"], z.numpy(), atol=1e-4)
    model = celeba_client.app.state.registry["tiny-celeba"].model
    with torch.inference_mode():
        mu = model.encode(model.decode(z, None), None).mean.numpy()
    np.testing.assert_allclose(m["latents"], mu, atol=2e-4)
    assert "its training data (celeba) is not here" in m["source"]["description"]


# --- t-SNE in the background ----------------------------------------------------------------


def test_tsne_answers_202_while_computing_then_the_map(client):
    query = {"n": 60, "method": "tsne", "seed": 0}
    first = client.get("/api/models/tiny-vae/map", params=query)
    assert first.status_code == 202 and first.headers["retry-after"] == "5"
    assert first.json()["status"] in ("queued", "computing")
    assert "t-SNE of 60 points" in first.json()["detail"]
    map_api.layout_jobs(None).join(timeout=120)
    m = get_map(client, "tiny-vae", **query)
    assert m["marker"]["kind"] == "transform" and "openTSNE's own transform" in m["marker"]["about"]
    assert m["settings"]["perplexity"] == 19.0 + 2 / 3  # (n − 1)/3, under the asked-for 30
    # t-SNE keeps neighbourhoods: the 5 nearest points on the map are near in μ too
    # (trustworthiness, Venna & Kaski 2001: 1 when kept, about 0.5 for points placed at random)
    from sklearn.manifold import trustworthiness  # noqa: PLC0415

    mu, points = np.array(m["latents"]), np.array(m["points"])
    assert trustworthiness(mu, points, n_neighbors=5) > 0.9
    shuffled = np.random.default_rng(0).permutation(points)
    assert trustworthiness(mu, shuffled, n_neighbors=5) < 0.7


def test_a_tsne_kept_on_disk_is_read_back_by_another_process_without_computing(tmp_path):
    points = np.arange(8.0).reshape(4, 2)
    one = layout_jobs.LayoutJobs(cache_dir=tmp_path)
    first = one.get("k", 4, lambda _: layouts.Layout(points, {"perplexity": 1.0}))
    assert isinstance(first, layout_jobs.Pending)
    one.join(timeout=10)
    assert not list(tmp_path.glob("*.lock"))

    def never(_: object) -> layouts.Layout:
        raise AssertionError("computed again")

    other = layout_jobs.LayoutJobs(cache_dir=tmp_path)  # a second server process
    layout = other.get("k", 4, never)
    assert isinstance(layout, layouts.Layout)
    np.testing.assert_array_equal(layout.points, points)
    assert layout.settings == {"perplexity": 1.0}


def test_a_tsne_another_process_is_computing_is_waited_for_unless_its_lock_is_stale(tmp_path):
    (tmp_path / "k.lock").write_text("12345")
    jobs = layout_jobs.LayoutJobs(cache_dir=tmp_path)
    pending = jobs.get("k", 100, lambda _: layouts.Layout(np.zeros((100, 2)), {}))
    assert isinstance(pending, layout_jobs.Pending) and pending.state == "computing elsewhere"
    assert "another server process" in pending.detail(100)
    stale = layout_jobs.LayoutJobs(cache_dir=tmp_path, stale_after=-1)
    restarted = stale.get("k", 100, lambda _: layouts.Layout(np.zeros((100, 2)), {}))
    assert restarted.state in ("queued", "computing")
    stale.join(timeout=10)
    assert (tmp_path / "k.npz").is_file() and not (tmp_path / "k.lock").exists()


def test_a_failed_tsne_is_reported_once_then_tried_again():
    jobs = layout_jobs.LayoutJobs()
    calls = []

    def fail(_: object) -> layouts.Layout:
        calls.append(1)
        raise latent_map.InferenceError("boom")

    jobs.get("k", 10, fail)
    jobs.join(timeout=10)
    with pytest.raises(latent_map.InferenceError, match="boom"):
        jobs.get("k", 10, fail)
    assert isinstance(jobs.get("k", 10, fail), layout_jobs.Pending) and len(calls) >= 1
    jobs.join(timeout=10)
    assert len(calls) == 2


def test_the_map_page_offers_no_more_points_than_a_test_split_holds(fashion_client):
    html = fashion_client.get("/map", params={"model": "tiny-fashion-vae", "n": 5000}).text
    assert "a map of tiny-fashion-vae holds 2 to 100 points; showing 100" in html
    assert 'data-n="100"' in html
    select = html.split('id="map-n"')[1].split("</select>")[0]
    assert [int(v) for v in re.findall(r'<option value="(\d+)"', select)] == [100]


def test_past_max_queued_the_longest_waiting_tsne_is_dropped_and_queued_again_when_asked():
    jobs = layout_jobs.LayoutJobs(max_queued=1)
    started, release, ran = threading.Event(), threading.Event(), []

    def job(name: str) -> Callable[[object], layouts.Layout]:
        def compute(_: object) -> layouts.Layout:
            ran.append(name)
            if name == "a":
                started.set()
                release.wait(10)
            return layouts.Layout(np.zeros((2, 2)), {"name": name})

        return compute

    jobs.get("a", 2, job("a"))  # computing, held until released
    assert started.wait(10)
    jobs.get("b", 2, job("b"))  # waits its turn
    jobs.get("c", 2, job("c"))  # one waiting at most: b is dropped
    again = jobs.get("b", 2, job("b"))  # asked again: queued anew, and c dropped in turn
    assert isinstance(again, layout_jobs.Pending) and again.state == "queued"
    release.set()
    jobs.join(timeout=10)
    assert ran == ["a", "b"]
    assert jobs.get("b", 2, job("b")).settings == {"name": "b"}
    assert isinstance(jobs.get("c", 2, job("c")), layout_jobs.Pending)  # dropped: starts again
    jobs.join(timeout=10)


def test_a_process_exits_without_waiting_for_a_tsne_in_the_background():
    code = (
        "import threading\n"
        "from app.studies.layout_jobs import LayoutJobs\n"
        "jobs = LayoutJobs()\n"
        "jobs.get('k', 10, lambda _: threading.Event().wait())\n"  # would never finish
        "print('started', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "started\n", done.stderr


def test_the_first_tsne_request_answers_202_before_the_images_are_encoded(client, monkeypatch):
    release, released, real = threading.Event(), [], latent_map.compute_sample

    def held(*args):  # the encoding of the map's images, held until the 202 has come back
        released.append(release.wait(60))
        return real(*args)

    monkeypatch.setattr(latent_map, "compute_sample", held)
    query = {"n": 45, "method": "tsne", "seed": 11}
    first = client.get("/api/models/tiny-vae/map", params=query)
    assert first.status_code == 202 and first.headers["retry-after"] == "5"
    assert first.json()["status"] in ("queued", "computing")
    release.set()
    map_api.layout_jobs(None).join(timeout=120)
    assert released == [True]  # encoded once, in the background, after the answer
    m = get_map(client, "tiny-vae", **query)
    assert len(m["points"]) == len(m["latents"]) == 45 and released == [True]


# --- t-SNE's files: a lock a dead process left, a map on disk that is not its request's --------


def exited_pid() -> int:
    """The id of a process of this host that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_lock(folder: Path, key: str, host: str, pid: int) -> None:
    (folder / f"{key}.lock").write_text(json.dumps({"host": host, "pid": pid}))


def layout_of(n: int) -> Callable[[], layouts.Layout]:
    return lambda _: layouts.Layout(np.arange(2.0 * n).reshape(n, 2), {"perplexity": 1.0})


@pytest.mark.parametrize("holder", ["an exited process", "this process, not computing it"])
def test_a_lock_of_this_host_whose_process_is_gone_is_taken_over_at_once(tmp_path, holder):
    # a server killed with -9 mid-run leaves its lock; a restarted one (in a container, often
    # under the same process id) must not wait an hour for it
    pid = exited_pid() if holder == "an exited process" else os.getpid()
    write_lock(tmp_path, "k", socket.gethostname(), pid)
    jobs = layout_jobs.LayoutJobs(cache_dir=tmp_path)
    started = jobs.get("k", 4, layout_of(4))
    assert isinstance(started, layout_jobs.Pending) and started.state in ("queued", "computing")
    jobs.join(timeout=10)
    np.testing.assert_array_equal(jobs.get("k", 4, layout_of(4)).points, layout_of(4)(None).points)


def test_a_live_processs_lock_is_respected_until_it_dies(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        write_lock(tmp_path, "k", socket.gethostname(), child.pid)
        jobs = layout_jobs.LayoutJobs(cache_dir=tmp_path)
        for _ in range(2):
            assert jobs.get("k", 4, layout_of(4)).state == "computing elsewhere"
        assert json.loads((tmp_path / "k.lock").read_text())["pid"] == child.pid
    finally:
        child.kill()
        child.wait()
    assert jobs.get("k", 4, layout_of(4)).state in ("queued", "computing")
    jobs.join(timeout=10)
    assert (tmp_path / "k.npz").is_file() and not (tmp_path / "k.lock").exists()


def test_another_hosts_lock_ages_out_whatever_its_process_id(tmp_path):
    # the same exited id frees a lock of this host, but on another host it names another process
    gone = exited_pid()
    write_lock(tmp_path, "here", socket.gethostname(), gone)
    write_lock(tmp_path, "there", "another-host", gone)
    jobs = layout_jobs.LayoutJobs(cache_dir=tmp_path)
    assert jobs.get("here", 4, layout_of(4)).state in ("queued", "computing")
    assert jobs.get("there", 4, layout_of(4)).state == "computing elsewhere"
    jobs.join(timeout=10)
    aged = layout_jobs.LayoutJobs(cache_dir=tmp_path, stale_after=-1)
    assert aged.get("there", 4, layout_of(4)).state in ("queued", "computing")
    aged.join(timeout=10)
    assert not list(tmp_path.glob("*.lock"))


def test_the_lock_of_a_tsne_being_computed_names_this_host_and_process(tmp_path):
    started, release = threading.Event(), threading.Event()

    def compute(_: object) -> layouts.Layout:
        started.set()
        release.wait(10)
        return layout_of(4)(None)

    jobs = layout_jobs.LayoutJobs(cache_dir=tmp_path)
    jobs.get("k", 4, compute)
    assert started.wait(10)
    try:
        lock = json.loads((tmp_path / "k.lock").read_text())
    finally:
        release.set()
        jobs.join(timeout=10)
    assert lock == {"host": socket.gethostname(), "pid": os.getpid()}


def save_npz(path: Path, points=None, settings="{}") -> None:
    """A cached map as TsneJobs writes one (4 points asked for), with `points` and `settings`
    (a JSON string) as given; points=None leaves them out."""
    arrays = {"settings": np.array(settings)}
    if points is not None:
        arrays["points"] = np.asarray(points)
    with path.open("wb") as f:
        np.savez(f, **arrays)


def cut_short(path: Path) -> None:
    save_npz(path, np.zeros((4, 2)))
    path.write_bytes(path.read_bytes()[:200])


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "one point too many": lambda p: save_npz(p, np.zeros((5, 2))),
    "three dimensions": lambda p: save_npz(p, np.zeros((4, 3))),
    "a NaN": lambda p: save_npz(p, [[0, 0], [1, np.nan], [2, 2], [3, 3]]),
    "an infinity": lambda p: save_npz(p, [[0, 0], [1, 1], [-np.inf, 2], [3, 3]]),
    "text, not numbers": lambda p: save_npz(p, np.full((4, 2), "x")),
    "settings not an object": lambda p: save_npz(p, np.zeros((4, 2)), "[1]"),
    "settings not JSON": lambda p: save_npz(p, np.zeros((4, 2)), "{"),
    "no points": lambda p: save_npz(p, None),
    "cut short": cut_short,
    "not a zip": lambda p: p.write_bytes(b"PK\x03\x04 is all it has"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_cached_tsne_that_does_not_match_its_request_is_computed_again(tmp_path, corruption):
    CORRUPTIONS[corruption](tmp_path / "k.npz")
    jobs = layout_jobs.LayoutJobs(cache_dir=tmp_path)
    assert isinstance(jobs.get("k", 4, layout_of(4)), layout_jobs.Pending)  # not served
    jobs.join(timeout=10)
    expected = layout_of(4)(None).points
    np.testing.assert_array_equal(jobs.get("k", 4, layout_of(4)).points, expected)
    # and written over: another process reads the good one
    read = layout_jobs.LayoutJobs(cache_dir=tmp_path).get("k", 4, layout_of(4))
    np.testing.assert_array_equal(read.points, expected)
