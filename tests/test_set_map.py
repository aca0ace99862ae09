"""The latent map of a served data set: its kept encoding computed once in the background (202
with progress until then), then the set's test images as points, each carrying every column of
the set to colour it by. The images, their columns and which are test images are written here;
μ is checked against the model's own encoder on the pixels written."""

from __future__ import annotations

import io
import os
import shutil
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from app.studies.set_encodings import encoding_jobs
from tests.browser_server import live_server

SET = "blobs"
# (split, file, kind, weight): kind categorical with one row missing, weight ordered with one
ROWS = [
    ("train", "t0.png", "round", 0.1),
    ("train", "t1.png", "square", 0.2),
    ("test", "a.png", "round", 0.3),
    ("test", "b.png", "square", None),
    ("test", "c.png", "", 0.5),
    ("test", "d.png", "round", 0.9),
]


def blob(i: int) -> np.ndarray:
    """64×64 grey pixels: a bright block whose place depends on i."""
    img = np.zeros((64, 64), dtype=np.uint8)
    img[6 + 5 * i : 26 + 5 * i, 8 + 4 * i : 36 + 4 * i] = 255
    return img


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("set-map")
    shutil.copytree(trained["tiny-vae"], root / "checkpoints" / "tiny-vae")
    folder = root / "datasets" / SET
    lines = ["file_name,kind,weight"]
    for i, (split, name, kind, weight) in enumerate(ROWS):
        (folder / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(blob(i)).save(folder / split / name)
        lines.append(f"{split}/{name},{kind},{'' if weight is None else weight}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    settings = Settings(checkpoints_dir=root / "checkpoints", datasets_dir=root / "datasets",
                        cache_dir=root / "cache")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client, settings


def mu_here(client, i: int) -> np.ndarray:
    ckpt = client.app.state.registry["tiny-vae"]
    x = torch.from_numpy(blob(i).astype(np.float32) / 255)[None, None]
    with torch.inference_mode():
        return ckpt.model.encode(x, None).mean[0].double().numpy()


def test_the_map_of_a_set_encodes_it_once_in_the_background_then_maps_its_test_images(served):
    client, settings = served
    first = client.get(f"/api/models/tiny-vae/map?data={SET}")
    assert first.status_code == 202
    assert first.json()["status"] == "encoding"
    assert f"data set {SET}" in first.json()["detail"]
    encoding_jobs(settings.cache_dir).join()
    assert len(list((settings.cache_dir / "encodings").glob("*.parquet"))) == 1
    r = client.get(f"/api/models/tiny-vae/map?data={SET}")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["source"]["kind"] == "data-set" and m["source"]["dataset"] == SET
    # the set's order is its files by path: test/a..d are 0..3, train/t0, t1 are 4, 5
    assert m["indices"] == [0, 1, 2, 3] and m["n"] == 4
    for point, i in enumerate(range(2, 6)):  # ROWS 2..5 are the test images
        np.testing.assert_allclose(m["latents"][point], mu_here(client, i), atol=1e-4)
    kind, weight = m["colour_by"]
    assert kind["kind"] == "category" and kind["names"] == ["round", "square"]
    assert kind["values"] == [0, 1, -1, 0]  # c.png has no kind
    assert weight["kind"] == "ordered" and weight["values"] == [0.3, None, 0.5, 0.9]
    assert (weight["low"], weight["high"]) == (0.3, 0.9)
    # each point's picture is the set's image, with the set named in its URL
    url = m["image_url"].replace("{index}", "2")
    assert url.endswith(f"?data={SET}")
    png = client.get(url)
    assert png.status_code == 200
    shown = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"))
    np.testing.assert_array_equal(shown, blob(4))  # index 2 is test/c.png, ROWS[4]


def test_a_map_of_more_test_images_than_the_set_holds_is_refused_naming_the_count(served):
    client, settings = served
    client.get(f"/api/models/tiny-vae/map?data={SET}")
    encoding_jobs(settings.cache_dir).join()
    r = client.get(f"/api/models/tiny-vae/map?data={SET}&n=5")
    assert r.status_code == 404
    assert "4 test images" in r.json()["detail"]


def test_the_map_page_offers_the_sets_sizes_and_asks_the_api_for_the_set(served):
    client, _ = served
    page = client.get(f"/map?model=tiny-vae&data={SET}")
    assert page.status_code == 200
    assert f'data-api="/api/models/tiny-vae/map?data={SET}"' in page.text
    assert '<option value="4" selected>all 4</option>' in page.text  # the set's 4 test images


def test_split_all_maps_every_image_of_the_set_and_its_marker_places_on_that_map(served):
    client, settings = served
    client.get(f"/api/models/tiny-vae/map?data={SET}")
    encoding_jobs(settings.cache_dir).join()
    r = client.get(f"/api/models/tiny-vae/map?data={SET}&split=all")
    assert r.status_code == 200, r.text
    m = r.json()
    # all six, in the set's order: test/a..d are 0..3, train/t0, t1 are 4, 5 (ROWS 0, 1)
    assert m["indices"] == [0, 1, 2, 3, 4, 5] and m["n"] == 6
    for point, i in enumerate([2, 3, 4, 5, 0, 1]):
        np.testing.assert_allclose(m["latents"][point], mu_here(client, i), atol=1e-4)
    assert m["colour_by"][0]["values"] == [0, 1, -1, 0, 0, 1]  # t0 round, t1 square
    assert "all 6 images of data set" in m["source"]["description"]
    # the marker asks where z lands on this map, not on the test split's
    place = m["marker"]["place"]
    assert "split=all" in place and "n=6" in place
    z = ",".join(f"{v:.6f}" for v in mu_here(client, 0))  # train/t0's μ: PCA puts it at its point
    placed = client.get(f"{place}&z={z}")
    assert placed.status_code == 200, placed.text
    np.testing.assert_allclose([placed.json()["x"], placed.json()["y"]], m["points"][4], atol=1e-3)
    # the binary form holds the same six
    binary = client.get(f"/api/models/tiny-vae/map.bin?data={SET}&split=all")
    assert binary.status_code == 200
    test_only = client.get(f"/api/models/tiny-vae/map?data={SET}&split=test").json()
    assert test_only["indices"] == [0, 1, 2, 3]


def test_split_all_without_a_data_set_is_a_404_that_says_to_name_one(served):
    client, _ = served
    for path in ("map", "map.bin"):
        r = client.get(f"/api/models/tiny-vae/{path}?split=all")
        assert r.status_code == 404 and "data=NAME" in r.json()["detail"], r.text
    z = ",".join(["0"] * len(mu_here(client, 0)))
    r = client.get(f"/api/models/tiny-vae/map/place?split=all&z={z}")
    assert r.status_code == 404 and "data=NAME" in r.json()["detail"]


def test_the_map_page_offers_the_test_split_or_every_split(served):
    client, _ = served
    page = client.get(f"/map?model=tiny-vae&data={SET}")
    assert '<option value="test" selected>test split (4)</option>' in page.text
    assert '<option value="all" >every split (6)</option>' in page.text
    whole = client.get(f"/map?model=tiny-vae&data={SET}&split=all")
    assert f'data-binary="/api/models/tiny-vae/map.bin?data={SET}&amp;split=all"' in whole.text
    assert '<option value="6" selected>all 6</option>' in whole.text


def test_choosing_every_split_on_the_page_draws_all_six_images(served, browser):
    _, settings = served
    with live_server(settings) as url:
        page = browser.new_page()
        page.goto(f"{url}/map?model=tiny-vae&data={SET}&z=0.5,0,0,0")
        page.evaluate("window.latentMapView.ready")
        drawn = "Array.from(window.latentMapView.points().indices)"
        assert page.evaluate(drawn) == [0, 1, 2, 3]
        with page.expect_navigation():
            page.select_option("#map-split", "all")
        page.evaluate("window.latentMapView.ready")
        assert page.evaluate(drawn) == [0, 1, 2, 3, 4, 5]
        query = parse_qs(urlsplit(page.url).query)
        assert query["split"] == ["all"] and query["z"][0].startswith("0.5")
        page.close()


def test_an_image_is_picked_by_a_columns_value(served):
    client, _ = served
    page = client.get(f"/?model=tiny-vae&data={SET}")
    assert '<option value="kind=square">kind = square</option>' in page.text
    seen = set()
    for _ in range(12):
        r = client.get("/ui/tiny-vae/encode", params={"data": SET, "where": "kind=square"})
        assert r.status_code == 200
        files = ("test/b.png", "train/t1.png", "test/a.png", "test/d.png")
        seen |= {f for f in files if f in r.text}
    assert seen and seen <= {"test/b.png", "train/t1.png"}  # only the two squares
    r = client.get("/ui/tiny-vae/encode", params={"data": SET, "where": "kind=oval"})
    assert r.status_code == 422
    assert "no value &#39;oval&#39;" in r.text and "(its values: round, square)" in r.text


def test_an_image_changed_while_the_server_runs_is_encoded_again(trained, tmp_path, monkeypatch):
    from app.data.sets import folder as folder_module

    monkeypatch.setattr(folder_module, "RESTAT_AFTER", 0.0)  # look at the files every time
    shutil.copytree(trained["tiny-vae"], tmp_path / "checkpoints" / "tiny-vae")
    images = tmp_path / "datasets" / "two"
    images.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(blob(i)).save(images / f"{i}.png")
    settings = Settings(
        checkpoints_dir=tmp_path / "checkpoints",
        datasets_dir=tmp_path / "datasets",
        cache_dir=tmp_path / "cache",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/models/tiny-vae/map?data=two").status_code == 202
        encoding_jobs(settings.cache_dir).join()
        before = client.get("/api/models/tiny-vae/map?data=two").json()
        np.testing.assert_allclose(before["latents"][1], mu_here(client, 1), atol=1e-4)
        Image.fromarray(blob(5)).save(images / "1.png")  # other pixels, same name
        os.utime(images / "1.png", ns=(1, 10**18))  # and a modification time surely new
        again = client.get("/api/models/tiny-vae/map?data=two")
        assert again.status_code == 202  # a new digest: encoded again, never the old μ
        encoding_jobs(settings.cache_dir).join()
        after = client.get("/api/models/tiny-vae/map?data=two").json()
        np.testing.assert_allclose(after["latents"][1], mu_here(client, 5), atol=1e-4)
        np.testing.assert_allclose(after["latents"][0], before["latents"][0], atol=1e-6)
