"""Data sets served: /api/datasets lists the built-ins and every folder of the data sets folder
with their typed columns, and any model is viewed on any set with `data=NAME` (each image fitted
to its input). A tiny folder set written here, beside two tiny dSprites models trained for a few
steps: the numbers below are known from what this file wrote, not read back from the server."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.cli import main
from app.cli.models import DataArgumentError, parse_data
from app.main import create_app
from app.settings import Settings
from app.training import train
from tests.browser_server import live_server
from tests.conftest import tiny_args

SET = "tiny-shapes"
# the set's images: file, its shape, its size (None: the table has no size for it)
ROWS = [
    ("a.png", "square", 0.5),
    ("b.png", "heart", 0.75),
    ("c.png", "heart", 1.0),
    ("d.png", "ellipse", None),
    ("wide.png", "square", 0.25),  # 80×64 colour: cropped to its middle 64 columns, grey
]
BROKEN = "broken.png"  # listed in the table, not an image


def sprite(i: int) -> np.ndarray:
    """A 64×64 grey picture: a bright block whose place depends on i."""
    img = np.zeros((64, 64), dtype=np.uint8)
    img[8 + 4 * i : 30 + 4 * i, 10 + 3 * i : 40 + 3 * i] = 200 + 10 * i
    return img


def wide_picture() -> np.ndarray:
    """80×64 colour pixels, different in every channel."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)


def write_set(folder) -> None:
    folder.mkdir(parents=True)
    for i, (name, _, _) in enumerate(ROWS):
        pixels = wide_picture() if name == "wide.png" else sprite(i)
        Image.fromarray(pixels).save(folder / name)
    (folder / BROKEN).write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    lines = ["file_name,shape,size"]
    lines += [f"{n},{s},{'' if v is None else v}" for n, s, v in ROWS]
    lines += [f"{BROKEN},square,0.5", "gone.png,heart,0.5"]  # the last names no file
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    record = {
        "name": SET,
        "factors": ["shape"],
        # the order the CVAE's classes have, so its class comes from this column
        "columns": {"shape": {"kind": "categorical", "categories": ["square", "ellipse", "heart"]}},
    }
    (folder / "dataset.json").write_text(json.dumps(record))


FILES = sorted([n for n, _, _ in ROWS] + [BROKEN])  # the set's order: its files by path


def index_of(file: str) -> int:
    return FILES.index(file)


@pytest.fixture(scope="module")
def served(tmp_path_factory, fashion_dir):
    """A server of a tiny VAE and CVAE of dSprites, with a data sets folder holding the tiny
    set and a folder that cannot be opened (no images in it)."""
    root = tmp_path_factory.mktemp("datasets-api")
    for name, kind in (("set-vae", "vae"), ("set-cvae", "cvae")):
        args = tiny_args(root / "run" / name, kind=kind, steps=3, eval_images=64)
        assert train(args) == 0
        shutil.copytree(args.out, root / "checkpoints" / name)
    write_set(root / "datasets" / "shapes-folder")
    (root / "datasets" / "empty").mkdir()
    (root / "datasets" / "empty" / "notes.txt").write_text("no images here")
    settings = Settings(
        checkpoints_dir=root / "checkpoints",
        datasets_dir=root / "datasets",
        fashion_mnist_dir=fashion_dir,
    )
    with TestClient(create_app(settings)) as client:
        client.settings = settings  # for a live server of the same folders
        yield client, root / "datasets" / "shapes-folder"


def encode_here(client, model: str, x: np.ndarray, label: int | None = None) -> np.ndarray:
    """μ of the (C, H, W) image x from the served model's own encoder."""
    ckpt = client.app.state.registry[model]
    labels = None if label is None else torch.tensor([label])
    with torch.inference_mode():
        return ckpt.model.encode(torch.from_numpy(x)[None], labels).mean[0].numpy()


# --- /api/datasets ------------------------------------------------------------------------------


def test_the_list_holds_the_built_ins_and_the_folder_with_its_columns_and_counts(served):
    client, _ = served
    r = client.get("/api/datasets")
    assert r.status_code == 200
    sets = {s["name"]: s for s in r.json()}
    assert list(sets) == ["dsprites", "shapes3d", "fashion-mnist", SET]
    [skipped] = client.app.state.datasets.skipped  # the folder with no images, with why
    assert skipped.where.endswith("empty") and "holds no images" in skipped.what
    tiny = sets[SET]
    assert tiny["images"] == 6  # five pictures and the broken file, all listed
    assert tiny["source"] == "folder (metadata.csv)"
    shape, size = tiny["columns"]
    assert shape == {
        "name": "shape", "kind": "categorical", "role": "factor", "missing": 0,
        "categories": [{"name": "square", "images": 3}, {"name": "ellipse", "images": 1},
                       {"name": "heart", "images": 2}],
        "low": None, "high": None, "distinct": None,
    }  # fmt: skip
    assert size == {
        "name": "size", "kind": "ordered", "role": "attribute", "missing": 1,
        "categories": None, "low": 0.25, "high": 1.0, "distinct": 4,
    }  # fmt: skip
    assert tiny["splits"] == {} and tiny["problems"] == 1  # gone.png's row
    # the built-ins' own numbers: dSprites' 737,280 combinations, our Fashion-MNIST's 400 images
    assert sets["dsprites"]["images"] == 737_280
    assert [c["name"] for c in sets["dsprites"]["columns"]][0] == "shape"
    assert sets["fashion-mnist"]["images"] == 400
    assert sets["fashion-mnist"]["splits"] == {"train": 300, "test": 100}


def test_one_set_lists_its_problems(served):
    client, _ = served
    r = client.get(f"/api/datasets/{SET}")
    assert r.status_code == 200
    body = r.json()
    assert body["images"] == 6 and body["problems"] == 1
    [problem] = body["problem_list"]
    assert problem["where"] == "metadata.csv line 8" and "gone.png" in problem["what"]


def test_an_unknown_set_is_a_404_naming_it_and_the_known_ones(served):
    client, _ = served
    r = client.get("/api/datasets/nope")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"unknown data set 'nope'; served: dsprites, shapes3d, fashion-mnist, {SET}"
    )
    r = client.get("/api/models/set-vae/encode", params={"index": 0, "data": "nope"})
    assert r.status_code == 404 and "unknown data set 'nope'" in r.json()["detail"]


def test_the_schema_lists_the_served_sets_for_data(served):
    client, _ = served
    schema = client.get("/openapi.json").json()
    params = schema["paths"]["/api/models/{name}/encode"]["get"]["parameters"]
    [data] = [p for p in params if p["name"] == "data"]
    assert data["schema"]["enum"] == ["", "dsprites", "shapes3d", "fashion-mnist", SET]


# --- a model viewed on a set ----------------------------------------------------------------------


def test_encoding_an_image_of_a_set_gives_the_mu_of_that_exact_image(served):
    client, folder = served
    i = index_of("b.png")
    r = client.get("/api/models/set-vae/encode", params={"index": i, "data": SET})
    assert r.status_code == 200, r.text
    body = r.json()
    x = np.asarray(Image.open(folder / "b.png"), dtype=np.float32)[None] / 255  # 64×64 grey
    assert np.allclose(body["mu"], encode_here(client, "set-vae", x), atol=1e-6)
    assert body["dataset"] == SET and body["index"] == i
    assert body["values"] == {"shape": "heart", "size": "0.75"}
    assert body["description"] == f"{SET} image 1: b.png: shape heart; size 0.75"


def test_a_colour_picture_is_fitted_to_a_grey_model_as_an_upload_is(served):
    client, folder = served
    i = index_of("wide.png")
    r = client.get("/api/models/set-vae/encode", params={"index": i, "data": SET})
    assert r.status_code == 200, r.text
    # 80×64 → the middle 64×64 (columns 8..71), grey by PIL's ITU-R 601-2 luma
    grey = np.asarray(Image.open(folder / "wide.png").convert("L"), dtype=np.float32)
    x = grey[None, :, 8:72] / 255
    assert np.allclose(r.json()["mu"], encode_here(client, "set-vae", x), atol=1e-6)
    png = client.get(f"/api/models/set-vae/dataset/{i}.png", params={"data": SET})
    assert png.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), grey[:, 8:72])


def test_a_cvae_takes_the_class_of_a_set_image_from_the_column_of_its_classes(served):
    client, folder = served
    i = index_of("d.png")  # an ellipse: class 1 of square, ellipse, heart
    r = client.get("/api/models/set-cvae/encode", params={"index": i, "data": SET})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == 1
    x = np.asarray(Image.open(folder / "d.png"), dtype=np.float32)[None] / 255
    assert np.allclose(r.json()["mu"], encode_here(client, "set-cvae", x, 1), atol=1e-6)
    # shapes3d's shapes are not the CVAE's classes: without a label it cannot say which
    r = client.get("/api/models/set-cvae/encode", params={"index": 0, "data": "shapes3d"})
    assert r.status_code == 404
    assert "data set shapes3d has no column of the model's classes" in r.json()["detail"]
    r = client.get("/api/models/set-cvae/encode", params={"index": 0, "data": "shapes3d",
                                                          "label": 2})  # fmt: skip
    assert r.status_code == 200 and r.json()["label"] == 2


def test_an_unreadable_image_is_a_422_naming_its_file(served):
    client, _ = served
    i = index_of(BROKEN)
    for url in ("/api/models/set-vae/encode", f"/api/models/set-vae/dataset/{i}.png"):
        r = client.get(url, params={"index": i, "data": SET})
        assert r.status_code == 422, url
        detail = r.json()["detail"]
        assert detail.startswith(f"data set {SET}: {BROKEN}: ")  # the file, then why
        assert "\n" not in detail


def test_an_index_past_the_set_is_a_404_naming_its_range(served):
    client, _ = served
    r = client.get("/api/models/set-vae/encode", params={"index": 6, "data": SET})
    assert r.status_code == 404
    assert r.json()["detail"] == f"index: {SET} index must be in 0..5, got 6"


def test_without_data_a_dsprites_model_keeps_its_own_images(served):
    client, _ = served
    r = client.get("/api/models/set-vae/encode", params={"index": 1234})
    assert r.status_code == 200
    assert r.json()["dataset"] == "dSprites" and "factors" in r.json()


def test_the_explore_page_offers_the_sets_and_encodes_from_the_one_picked(served):
    client, _ = served
    page = client.get("/", params={"model": "set-vae", "data": SET})
    assert page.status_code == 200
    html = page.text
    assert f'<option value="{SET}" selected>{SET}</option>' in html
    assert '<option value="shapes3d">shapes3d</option>' in html
    assert f'hx-get="/ui/set-vae/encode?data={SET}"' in html
    assert f"Start from a {SET} image" in html
    r = client.get("/ui/set-vae/encode", params={"index": index_of("a.png"), "data": SET})
    assert r.status_code == 200
    assert f"{SET} image 0: a.png: shape square; size 0.5" in r.text
    r = client.get("/ui/set-vae/encode", params={"index": index_of(BROKEN), "data": SET})
    assert r.status_code == 422 and f"data set {SET}: {BROKEN}: " in r.text


def pixels_of(data_url: str) -> np.ndarray:
    """The pixels of a PNG data URL."""
    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)))


def test_compress_denoise_and_sharpness_take_the_image_of_the_set(served):
    client, folder = served
    i = index_of("c.png")
    written = np.asarray(Image.open(folder / "c.png"))
    query = {"index": i, "data": SET}
    r = client.get("/api/models/set-vae/compress", params=query)
    assert r.status_code == 200, r.text
    assert np.array_equal(pixels_of(r.json()["original_png"]), written)
    # the same picture uploaded as it is: the same code
    upload = {"file": ("c.png", (folder / "c.png").read_bytes(), "image/png")}
    same = client.post("/api/models/set-vae/compress", files=upload, data={"fit": "false"})
    assert same.status_code == 200, same.text
    assert same.json()["code"] == r.json()["code"]
    r = client.get("/api/models/set-vae/denoise", params={**query, "level": 0.1})
    assert r.status_code == 200, r.text
    assert np.array_equal(pixels_of(r.json()["clean_png"]), written)
    r = client.get(f"/api/models/set-vae/sharpness/{i}", params={"data": SET})
    assert r.status_code == 200, r.text
    assert np.array_equal(pixels_of(r.json()["input_png"]), written)
    r = client.get("/api/models/set-vae/reconstructions.png", params={"indices": f"{i},0",
                                                                       "data": SET})  # fmt: skip
    assert r.status_code == 200
    grid = np.asarray(Image.open(io.BytesIO(r.content)))
    assert grid.shape[1] == 2 * 64 + 3 * 2  # two columns of 64 with the grid's 2-pixel padding


def test_interpolating_between_two_set_images_keeps_the_set_in_the_url(served):
    client, _ = served
    form = {"index_a": str(index_of("a.png")), "index_b": str(index_of("c.png")), "steps": "4"}
    r = client.post(f"/ui/set-vae/interpolate?data={SET}", data=form)
    assert r.status_code == 200, r.text
    assert f"{SET} image 0: a.png: shape square; size 0.5" in r.text
    assert f"{SET} image 3: c.png: shape heart; size 1" in r.text
    assert r.headers["HX-Replace-Url"].endswith(f"&data={SET}")


def test_every_page_of_dataset_images_offers_the_set_picked(served):
    client, _ = served
    selected = f'<option value="{SET}" selected>{SET}</option>'
    for url in (
        "/compress?model=set-vae",
        "/denoise?a=set-vae&b=set-vae",
        "/interpolate?model=set-vae",
        "/sharpness?a=set-vae&b=set-vae",
    ):
        page = client.get(f"{url}&data={SET}")
        assert page.status_code == 200, (url, page.text[-2000:])
        assert selected in page.text and 'class="data-picker"' in page.text, url
        own = client.get(url)
        assert '<option value="" selected>its own (dsprites)</option>' in own.text, url
    # the compress page shows the set's first image by default, and its form posts with the set
    page = client.get(f"/compress?model=set-vae&data={SET}").text
    assert f'hx-post="/ui/set-vae/compress?data={SET}"' in page
    assert f"{SET} #0" in page


def test_picking_a_set_in_the_browser_reloads_the_page_on_it_keeping_its_state(served, browser):
    client, _ = served
    with live_server(client.settings) as url:
        context = browser.new_context(base_url=url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/interpolate?model=set-vae&steps=5")
        page.select_option("#data-set", SET)
        page.wait_for_url(f"**/interpolate?model=set-vae&steps=5&data={SET}")
        assert page.locator("#data-set").input_value() == SET
        page.select_option("#data-set", "")  # back to the model's own images
        page.wait_for_url("**/interpolate?model=set-vae&steps=5")
        context.close()
        assert errors == []


# --- where sets come from -------------------------------------------------------------------------


def test_serve_data_reads_name_equals_path(tmp_path):
    assert parse_data([f"faces={tmp_path}", "b.2=rel"]) == {
        "faces": tmp_path.resolve(),
        "b.2": (tmp_path.cwd() / "rel").resolve(),
    }
    for bad, says in [
        ("faces", "expected NAME=PATH"),
        ("=/x", "expected NAME=PATH"),
        ("faces=", "expected NAME=PATH"),
        ("my faces=/x", "the name 'my faces' must be letters, digits"),
    ]:
        with pytest.raises(DataArgumentError, match=says):
            parse_data([bad])
    with pytest.raises(DataArgumentError, match="the name 'a' is given twice"):
        parse_data(["a=/x", "a=/y"])


def test_serve_refuses_a_bad_data_set_in_one_line_before_starting(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    write_set(tmp_path / "good")
    cases = [
        (["--data", "faces"], "--data 'faces': expected NAME=PATH"),
        (["--data", f"faces={tmp_path / 'missing'}"], "neither a folder nor a built-in"),
        (["--data", f"faces={empty}"], "holds no images"),
        (["--data", f"dsprites={tmp_path / 'good'}"], "named 'dsprites' is already served"),
    ]
    for argv, says in cases:
        assert main(["serve", "--port", "1", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("latent-explorer serve: error: ") and says in err, err
        assert err.count("\n") == 1


def test_a_data_set_given_by_the_environment_is_served(tmp_path, monkeypatch):
    write_set(tmp_path / "folder")
    monkeypatch.setenv("LATENT_EXPLORER_DATA", json.dumps({"mine": str(tmp_path / "folder")}))
    settings = Settings(checkpoints_dir=tmp_path / "no-models", datasets_dir=tmp_path / "none")
    assert settings.data == {"mine": tmp_path / "folder"}
    with TestClient(create_app(settings)) as client:
        names = [s["name"] for s in client.get("/api/datasets").json()]
    assert names == ["dsprites", "shapes3d", "fashion-mnist", "mine"]
