"""The pictures a model is judged by: held-out images over their reconstructions, samples from
the prior, a CVAE's class grid. Each PNG is cut into its cells and each cell compared with the
model's own decode, computed here, and with the dataset's pixels read from its files."""

from __future__ import annotations

import gzip
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings

CVAE, VAE = "tiny-fashion-cvae", "tiny-fashion-vae"
SIDE, PAD = 28, 2  # the fake Fashion-MNIST's images; the grid's white padding


def serve(models: dict[str, Path], root: Path, **settings) -> TestClient:
    for name, folder in models.items():
        shutil.copytree(folder, root / name)
    return TestClient(create_app(Settings(checkpoints_dir=root, **settings)))


@pytest.fixture(scope="module")
def fashion(fashion_models, fashion_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("served-fashion")
    with serve(fashion_models, root, fashion_mnist_dir=fashion_dir) as client:
        yield client


def cells(png: bytes, rows: int, cols: int, side: int = SIDE, scale: int = 1) -> np.ndarray:
    """A grid PNG → (rows, cols, side, side) grey uint8 cells, after checking that the grid has
    exactly that many cells and that each is enlarged by whole `scale`×`scale` blocks."""
    arr = np.asarray(Image.open(io.BytesIO(png)))
    assert arr.shape == (
        (rows * (side + PAD) + PAD) * scale,
        (cols * (side + PAD) + PAD) * scale,
    )
    out = np.empty((rows, cols, side, side), dtype=np.uint8)
    for r in range(rows):
        for k in range(cols):
            y, x = (PAD + r * (side + PAD)) * scale, (PAD + k * (side + PAD)) * scale
            block = arr[y : y + side * scale, x : x + side * scale]
            out[r, k] = block[::scale, ::scale]
            assert (np.kron(out[r, k], np.ones((scale, scale), np.uint8)) == block).all()
    return out


def grey(images: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) pixel means → (B, H, W) as 8-bit grey, rounded."""
    return (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to within one grey level: a batch of another size may round a pixel the other way."""
    return bool((np.abs(a.astype(int) - b.astype(int)) <= 1).all())


def idx_test_split(fashion_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The fake test split, read straight from its idx files: (N, 28, 28) uint8 and labels."""
    images = gzip.decompress((fashion_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((fashion_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    return np.frombuffer(images[16:], np.uint8).reshape(-1, 28, 28), np.frombuffer(
        labels[8:], np.uint8
    )


def prior_z(client: TestClient, name: str, n: int, seed: int) -> torch.Tensor:
    r = client.get(f"/api/models/{name}/sample", params={"n": n, "seed": seed})
    return torch.tensor(r.json()["z"], dtype=torch.float32)


def model_of(client: TestClient, name: str):
    return client.app.state.registry[name].model


# --- the class grid ---------------------------------------------------------------------------


def test_each_class_grid_cell_is_that_rows_z_decoded_under_that_columns_label(fashion):
    r = fashion.get(f"/api/models/{CVAE}/class-grid.png", params={"rows": 3, "seed": 5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    grid = cells(r.content, 3, 10)
    z = prior_z(fashion, CVAE, 3, 5)  # the z the docs say the rows are
    model = model_of(fashion, CVAE)
    with torch.inference_mode():
        for label in range(10):
            want = grey(model.decode(z, torch.full((3,), label)))
            for row in range(3):
                assert close(grid[row, label], want[row]), (row, label)
    # the label changes the picture: no two columns of a row alike, beyond a rounding's level
    for row in range(3):
        for a in range(10):
            for b in range(a + 1, 10):
                diff = np.abs(grid[row, a].astype(int) - grid[row, b].astype(int))
                assert diff.max() > 3, (row, a, b)


def test_a_given_z_is_the_class_grids_only_row(fashion):
    z = "0.5,-1.25,2,0.01"
    r = fashion.get(f"/api/models/{CVAE}/class-grid.png", params={"z": z, "scale": 3})
    grid = cells(r.content, 1, 10, scale=3)
    zt = torch.tensor([[0.5, -1.25, 2.0, 0.01]])
    with torch.inference_mode():
        want = [grey(model_of(fashion, CVAE).decode(zt, torch.tensor([k])))[0] for k in range(10)]
    assert all(close(grid[0, k], want[k]) for k in range(10))


def test_a_dsprites_cvae_has_a_class_grid_of_its_three_shapes(client):
    r = client.get("/api/models/tiny-cvae/class-grid.png", params={"rows": 2, "seed": 1})
    grid = cells(r.content, 2, 3, side=64)
    z = prior_z(client, "tiny-cvae", 2, 1)
    with torch.inference_mode():
        for shape in range(3):
            want = grey(model_of(client, "tiny-cvae").decode(z, torch.full((2,), shape)))
            assert close(grid[0, shape], want[0]) and close(grid[1, shape], want[1])


def test_a_model_without_labels_has_no_class_grid(fashion):
    r = fashion.get(f"/api/models/{VAE}/class-grid.png")
    assert r.status_code == 404
    assert "no labels" in r.json()["detail"] and VAE in r.json()["detail"]


# --- reconstructions --------------------------------------------------------------------------


def test_reconstructions_default_to_the_first_test_image_of_each_class(fashion, fashion_dir):
    images, labels = idx_test_split(fashion_dir)
    first = [int(np.flatnonzero(labels == c)[0]) for c in range(10)]
    r = fashion.get(f"/api/models/{CVAE}/reconstructions.png", params={"scale": 2})
    grid = cells(r.content, 2, 10, scale=2)
    assert (grid[0] == images[first]).all()  # row 1: the idx file's pixels, exactly
    x = torch.from_numpy(images[first]).float()[:, None] / 255
    own = torch.from_numpy(labels[first].astype(np.int64))
    model = model_of(fashion, CVAE)
    with torch.inference_mode():
        want = grey(model.decode(model.encode(x, own).mean, own))  # each with its own label
    assert close(grid[1], want)
    with torch.inference_mode():  # under another label the reconstructions would differ
        other = grey(model.decode(model.encode(x, own).mean, (own + 1) % 10))
    assert not close(grid[1], other)


def test_reconstructions_of_chosen_idx_test_split(fashion, fashion_dir):
    images, _ = idx_test_split(fashion_dir)
    chosen = [37, 5, 99, 5]
    r = fashion.get(f"/api/models/{VAE}/reconstructions.png", params={"indices": "37,5,99,5"})
    grid = cells(r.content, 2, 4)
    assert (grid[0] == images[chosen]).all()
    x = torch.from_numpy(images[chosen]).float()[:, None] / 255
    model = model_of(fashion, VAE)
    with torch.inference_mode():
        want = grey(model.decode(model.encode(x, None).mean, None))
    assert close(grid[1], want)
    assert not close(grid[1], grid[0])  # a reconstruction, not the image again


def test_a_dsprites_models_reconstructions_are_each_shape_at_the_middle_of_every_factor(client):
    # dSprites' factors: shape 3, scale 6, orientation 40, x 32, y 32, the first slowest
    middle = [s * 245760 + 3 * 40960 + 20 * 1024 + 16 * 32 + 16 for s in range(3)]
    r = client.get("/api/models/tiny-vae/reconstructions.png")
    grid = cells(r.content, 2, 3, side=64)
    for k, index in enumerate(middle):
        drawn = np.asarray(Image.open(io.BytesIO(client.get(f"/api/dsprites/{index}.png").content)))
        assert (grid[0, k] == drawn).all()
    x = torch.from_numpy(grid[0]).float()[:, None] / 255
    model = model_of(client, "tiny-vae")
    with torch.inference_mode():
        assert close(grid[1], grey(model.decode(model.encode(x, None).mean, None)))


# --- prior samples ----------------------------------------------------------------------------


def test_prior_samples_are_the_sample_endpoints_z_decoded(fashion):
    r = fashion.get(f"/api/models/{VAE}/samples.png", params={"n": 5, "seed": 3, "cols": 3})
    grid = cells(r.content, 2, 3)
    with torch.inference_mode():
        want = grey(model_of(fashion, VAE).decode(prior_z(fashion, VAE, 5, 3), None))
    for i in range(5):
        assert close(grid[i // 3, i % 3], want[i])
    assert (grid[1, 2] == 255).all()  # the short last row is left white


def test_prior_samples_change_with_the_seed_and_repeat_with_it(fashion):
    url = f"/api/models/{VAE}/samples.png"
    a, again = fashion.get(url, params={"seed": 1}), fashion.get(url, params={"seed": 1})
    b = fashion.get(url, params={"seed": 2})
    assert a.content == again.content and a.headers["etag"] == again.headers["etag"]
    assert not close(cells(a.content, 2, 8), cells(b.content, 2, 8))
    cached = fashion.get(url, params={"seed": 1}, headers={"if-none-match": a.headers["etag"]})
    assert cached.status_code == 304 and not cached.content


def test_a_cvaes_prior_samples_use_the_label_asked_for(fashion):
    r = fashion.get(f"/api/models/{CVAE}/samples.png", params={"n": 4, "seed": 0, "label": 8})
    grid = cells(r.content, 1, 4)
    with torch.inference_mode():
        want = grey(
            model_of(fashion, CVAE).decode(prior_z(fashion, CVAE, 4, 0), torch.full((4,), 8))
        )
    assert all(close(grid[0, i], want[i]) for i in range(4))


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        (f"{VAE}/samples.png", {"n": 257}, 422, "n is 257, the limit is 256"),
        (f"{VAE}/samples.png", {"n": 0}, 422, "n"),
        (f"{VAE}/samples.png", {"seed": -1}, 422, "seed"),
        (f"{VAE}/samples.png", {"scale": 9}, 422, "scale is 9, the limit is 8"),
        (f"{VAE}/samples.png", {"label": 3}, 404, "takes no label"),  # a served CVAE has 3
        (f"{CVAE}/samples.png", {"label": 10}, 422, "label must be in 0..9"),
        (
            f"{VAE}/reconstructions.png",
            {"indices": "3,100"},
            404,
            "index 100 is not a Fashion-MNIST test image",
        ),
        (f"{VAE}/reconstructions.png", {"indices": "3,,4"}, 422, "indices"),
        (f"{VAE}/reconstructions.png", {"indices": "-1"}, 422, "indices"),
        (f"{VAE}/reconstructions.png", {"indices": ",".join(["0"] * 33)}, 422, "indices"),
        (f"{CVAE}/class-grid.png", {"z": "1,2,3"}, 422, "z must have 4 values"),
        (f"{CVAE}/class-grid.png", {"z": "1,2,nan,0"}, 422, "finite"),
        (f"{CVAE}/class-grid.png", {"z": "1,2,inf,0"}, 422, "finite"),
        (f"{CVAE}/class-grid.png", {"z": "1,2,x,0"}, 422, "z[2] is 'x', not a number"),
        (f"{CVAE}/class-grid.png", {"z": "1,2,11,0"}, 422, "within ±10"),
        (f"{CVAE}/class-grid.png", {"rows": 17}, 422, "rows"),
        ("no-such-model/class-grid.png", {}, 404, "unknown model 'no-such-model'"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(fashion, path, params, status, says):
    r = fashion.get(f"/api/models/{path}", params=params)
    assert r.status_code == status
    detail = r.json()["detail"]
    if isinstance(detail, list):  # FastAPI's own validation: the field is named in `loc`
        assert [says] in [e["loc"][1:] for e in detail]
    else:
        assert says in detail


def test_reconstructions_say_why_when_the_test_split_is_not_installed(fashion_models, tmp_path):
    with serve(fashion_models, tmp_path / "ck", fashion_mnist_dir=tmp_path / "nowhere") as c:
        r = c.get(f"/api/models/{VAE}/reconstructions.png")
        assert r.status_code == 503 and "dataset-fashion-mnist" in r.json()["detail"]
        page = c.get(f"/ui/{VAE}/gallery").text
    assert "No reconstructions:" in page and "not installed" in page
    assert "reconstructions.png" not in page
    assert "samples.png" in page  # what needs no data is still shown


# --- the model page ---------------------------------------------------------------------------


def gallery_images(client: TestClient, name: str) -> list[str]:
    """The card page loads its gallery from /ui/{name}/gallery: the images that brings."""
    card = client.get(f"/models/{name}").text
    assert f'hx-get="/ui/{name}/gallery"' in card
    part = client.get(f"/ui/{name}/gallery").text
    return [
        src.replace("&amp;", "&")
        for src in re.findall(r'<img class="gallery-img" src="([^"]+)"', part)
    ]


def test_a_cvaes_page_shows_reconstructions_samples_and_its_class_grid(fashion):
    srcs = gallery_images(fashion, CVAE)
    kinds = [re.search(r"/(\w[\w-]*)\.png", s)[1] for s in srcs]
    assert kinds == ["reconstructions", "samples", "class-grid"]
    for src in srcs:
        r = fashion.get(src)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    part = fashion.get(f"/ui/{CVAE}/gallery").text
    columns = re.findall(r"<li>([^<]+)</li>", part.split("gallery-class-grid")[1])
    assert columns[-10:] == ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
                             "shirt", "sneaker", "bag", "ankle boot"]  # fmt: skip
    assert "seed 0" in part and "test images 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in part


def test_a_plain_vaes_page_has_no_class_grid(fashion):
    srcs = gallery_images(fashion, VAE)
    assert [s.split("?")[0].rsplit("/", 1)[1] for s in srcs] == [
        "reconstructions.png", "samples.png",
    ]  # fmt: skip
    assert "class grid" not in fashion.get(f"/ui/{VAE}/gallery").text.lower()


def test_the_explore_page_of_a_cvae_shows_the_current_z_under_every_label(fashion):
    z = "0.10,-0.50,1.00,0.00"
    page = fashion.get("/", params={"model": CVAE, "z": z}).text
    src = re.search(r'<img class="class-grid[^>]* src="([^"]+)"', page)[1].replace("&amp;", "&")
    assert f"z={z}" in src
    grid = cells(fashion.get(src).content, 1, 10, scale=2)
    zt = torch.tensor([[0.1, -0.5, 1.0, 0.0]])
    with torch.inference_mode():
        want = [grey(model_of(fashion, CVAE).decode(zt, torch.tensor([k])))[0] for k in range(10)]
    assert all(close(grid[0, k], want[k]) for k in range(10))
    assert 'class="class-grid' not in fashion.get("/", params={"model": VAE, "z": z}).text
