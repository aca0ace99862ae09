"""The pages and the API on Fashion-MNIST models: their dataset images are the test split (grey,
as published), picked by index or by class; what needs dSprites' factors says why it does not
apply; without the data installed, the model still serves and the hint says how to install it.

The test split here is conftest's own (100 images, image i of class i % 10); every expected
pixel is read back from its gzipped idx files with gzip and numpy alone."""

from __future__ import annotations

import base64
import gzip
import html
import io
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import sync_playwright

from app.checkpoints import load_checkpoint
from app.main import create_app
from app.settings import Settings
from app.studies.compression import Study
from app.training import train
from app.web.compress import get_study
from tests.browser_server import (
    canvas_pixels,
    grab_and_drag,
    launch_chromium,
    live_server,
    wait_painted,
    wait_repainted,
)
from tests.conftest import tiny_args

VAE, CVAE, BETA = "tiny-fashion-vae", "tiny-fashion-cvae", "tiny-fashion-beta-vae"
CLASSES = [
    "T-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip
SNEAKER, ANKLE_BOOT = 7, 9
INSTALL_HINT = "apt-get install dataset-fashion-mnist"
SMALL = Study(n_images=16, qualities=(1, 10, 50, 90))  # a second or two per model


# --- the data, read independently -----------------------------------------------------------


def read_idx_gz(path: Path) -> np.ndarray:
    """An idx file as conftest wrote it: big-endian magic (0x0800 + dims), dims, uint8 data."""
    data = gzip.decompress(path.read_bytes())
    dims = data[3]
    shape = np.frombuffer(data[4 : 4 + 4 * dims], dtype=">u4").astype(int)
    return np.frombuffer(data[4 + 4 * dims :], dtype=np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def test_images(fashion_dir) -> np.ndarray:
    return read_idx_gz(fashion_dir / "t10k-images-idx3-ubyte.gz")  # (100, 28, 28)


@pytest.fixture(scope="module")
def test_labels(fashion_dir) -> np.ndarray:
    return read_idx_gz(fashion_dir / "t10k-labels-idx1-ubyte.gz")  # (100,)


@pytest.fixture(scope="module")
def checkpoints(fashion_models, fashion_dir, tmp_path_factory) -> Path:
    """The tiny Fashion VAE and CVAE, and a β = 4 VAE of the same latent size beside them."""
    root = tmp_path_factory.mktemp("fashion-served")
    for name, folder in fashion_models.items():
        shutil.copytree(folder, root / name)
    args = tiny_args(
        root / BETA, run_dir=root.parent / f"runs-{BETA}", steps=100, batch_size=32, beta=4.0,
        dataset=f"fashion-mnist:{fashion_dir}", architecture="mlp", hidden=64, latents=4,
    )  # fmt: skip
    assert train(args) == 0
    return root


@pytest.fixture(scope="module")
def client(checkpoints, fashion_dir):
    app = create_app(Settings(checkpoints_dir=checkpoints, fashion_mnist_dir=fashion_dir))
    app.dependency_overrides[get_study] = lambda: SMALL
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def no_data_client(checkpoints, tmp_path_factory):
    """The same models, on a server whose Fashion-MNIST folder does not exist."""
    nowhere = tmp_path_factory.mktemp("empty") / "fashion-mnist"
    app = create_app(Settings(checkpoints_dir=checkpoints, fashion_mnist_dir=nowhere))
    with TestClient(app) as c:
        yield c


def mu_of(checkpoints: Path, name: str, pixels: np.ndarray, label: int | None = None) -> np.ndarray:
    """The model's μ of one grey 28×28 uint8 image, from its folder through `model.encode`."""
    model = load_checkpoint(checkpoints / name).served().model
    x = torch.from_numpy(pixels.astype(np.float32) / 255)[None, None]
    labels = None if label is None else torch.tensor([label])
    with torch.inference_mode():
        return model.encode(x, labels).mean[0].numpy()


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def data_url_pixels(url: str) -> np.ndarray:
    return png_pixels(base64.b64decode(url.split(",", 1)[1]))


BROKEN = re.compile(r"\bNone\b|\bnan\b|Traceback|\bundefined\b")


def assert_clean(text: str) -> None:
    found = BROKEN.search(text)
    assert found is None, text[max(0, found.start() - 200) : found.end() + 100]


# --- dataset images by index ----------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 7, 58, 99])
def test_the_png_of_test_image_i_is_the_idx_files_pixels(client, test_images, index):
    r = client.get(f"/api/models/{VAE}/dataset/{index}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array_equal(png_pixels(r.content), test_images[index])
    big = png_pixels(client.get(f"/api/models/{VAE}/dataset/{index}.png?scale=3").content)
    assert np.array_equal(big[::3, ::3], test_images[index]) and big.shape == (84, 84)


@pytest.mark.parametrize("index", [9, 42])
def test_encoding_test_image_i_gives_the_models_mu_of_its_pixels(
    client, checkpoints, test_images, test_labels, index
):
    r = client.get(f"/api/models/{VAE}/encode", params={"index": index})
    assert r.status_code == 200, r.text
    body = r.json()
    own = int(test_labels[index])
    assert body["index"] == index and body["dataset"] == "Fashion-MNIST"
    assert body["split"] == "test" and body["class"] == own
    assert body["class_name"] == CLASSES[own]
    assert body["description"] == f"Fashion-MNIST test image {index}: {CLASSES[own]}"
    assert body["label"] is None  # a plain VAE takes no class
    np.testing.assert_allclose(body["mu"], mu_of(checkpoints, VAE, test_images[index]), atol=1e-5)
    assert np.array_equal(data_url_pixels(body["input_png"]), test_images[index])


def test_a_cvae_encodes_a_test_image_under_its_own_class_unless_told(
    client, checkpoints, test_images, test_labels
):
    index = 23  # a dress
    own = int(test_labels[index])
    body = client.get(f"/api/models/{CVAE}/encode", params={"index": index}).json()
    assert body["label"] == own == 3
    np.testing.assert_allclose(
        body["mu"], mu_of(checkpoints, CVAE, test_images[index], own), atol=1e-5
    )
    told = client.get(f"/api/models/{CVAE}/encode", params={"index": index, "label": 5}).json()
    assert told["label"] == 5 and told["class"] == own
    np.testing.assert_allclose(
        told["mu"], mu_of(checkpoints, CVAE, test_images[index], 5), atol=1e-5
    )


@pytest.mark.parametrize(
    "url",
    [f"/api/models/{VAE}/encode?index=100", f"/api/models/{VAE}/dataset/100.png",
     f"/api/models/{VAE}/encode?index=5000000", f"/api/models/{VAE}/compress?index=100",
     f"/api/models/{VAE}/denoise?index=100"],
)  # fmt: skip
def test_an_index_past_the_test_split_is_refused_naming_the_range(client, url):
    r = client.get(url)
    assert 400 <= r.status_code < 500, r.text
    assert "Fashion-MNIST test image index must be in 0..99" in r.json()["detail"]


def test_the_model_list_names_the_test_split_and_its_classes(client):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    for name in (VAE, CVAE, BETA):
        m = models[name]
        assert m["dataset"] == "fashion-mnist" and m["dataset_name"] == "Fashion-MNIST"
        assert m["dataset_images"] == 100 and m["dataset_split"] == "test"
        assert m["dataset_classes"] == CLASSES and m["dataset_missing"] is None


# --- without the data -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [f"/api/models/{VAE}/encode?index=3", f"/api/models/{VAE}/dataset/3.png",
     f"/api/models/{VAE}/compress?index=3", f"/api/models/{CVAE}/denoise?index=3",
     f"/api/models/{VAE}/rate-distortion"],
)  # fmt: skip
def test_without_the_data_the_api_says_how_to_install_it(no_data_client, url):
    r = no_data_client.get(url)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert INSTALL_HINT in detail and "LATENT_EXPLORER_FASHION_MNIST_DIR" in detail
    assert "no such folder" in detail


def test_without_the_data_the_model_still_serves_and_the_pages_say_why(no_data_client):
    z = "0.5,-1,0,0.25"
    r = no_data_client.get(f"/api/models/{VAE}/decode.png", params={"z": z})
    assert r.status_code == 200 and png_pixels(r.content).shape == (28, 28)
    summary = no_data_client.get(f"/api/models/{VAE}").json()
    assert summary["dataset_images"] is None and INSTALL_HINT in summary["dataset_missing"]
    page = no_data_client.get(f"/?model={VAE}")
    assert page.status_code == 200 and INSTALL_HINT in page.text
    assert page.text.count('type="range" id="z') == 4  # the sliders are there, from z = 0
    assert 'value="0.00"' in page.text and 'id="test-image"' not in page.text
    for url in (f"/interpolate?model={VAE}", f"/compress?model={VAE}",
                f"/denoise?a={VAE}&b={BETA}"):  # fmt: skip
        r = no_data_client.get(url)
        assert r.status_code == 200 and INSTALL_HINT in html.unescape(r.text), url
        assert_clean(r.text)
    partial = no_data_client.get(f"/ui/{VAE}/encode", params={"class": "7"})
    assert partial.status_code == 422 and INSTALL_HINT in html.unescape(partial.text)


# --- the pages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [f"/?model={VAE}", f"/?model={CVAE}", f"/compare?a={VAE}&b={BETA}",
     f"/interpolate?model={VAE}", f"/interpolate?model={CVAE}", f"/compress?model={VAE}",
     f"/compress?model={CVAE}&index=12", f"/denoise?a={VAE}&b={BETA}", f"/models/{VAE}",
     f"/models/{CVAE}", f"/ui/{VAE}/rate-distortion", f"/ui/{VAE}/encode?class=2"],
)  # fmt: skip
def test_every_page_renders_for_a_fashion_model_without_blanks(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert_clean(r.text)


def test_explore_opens_on_test_image_0_encoded_and_offers_test_images_by_class(
    client, checkpoints, test_images
):
    text = client.get(f"/?model={VAE}").text
    lead = " ".join(re.search(r'id="lead">(.*?)</p>', text, re.S)[1].split())
    assert "reconstruction of Fashion-MNIST test image 0 (T-shirt/top)" in lead
    mu = mu_of(checkpoints, VAE, test_images[0])
    for dim in range(4):  # each slider holds μ of image 0, held to ±3 and two decimals
        value = float(re.search(rf'id="z{dim}" [^>]*value="([^"]+)"', text)[1])
        assert value == pytest.approx(round(float(np.clip(mu[dim], -3, 3)), 2), abs=1e-9)
    picker = re.search(r'<select id="test-class" name="class">(.*?)</select>', text, re.S)[1]
    assert re.findall(r'<option value="(\d+)">([^<]+)</option>', picker) == [
        (str(i), n) for i, n in enumerate(CLASSES)
    ]


def test_the_picker_encodes_a_random_test_image_of_the_class_asked_for(client, test_labels):
    for label in (SNEAKER, 2):
        for _ in range(3):
            r = client.get(f"/ui/{VAE}/encode", params={"class": str(label)})
            assert r.status_code == 200, r.text
            note = re.search(r'id="dataset-image-class">Fashion-MNIST test image (\d+): ([^<]+)<',
                             r.text)  # fmt: skip
            assert note is not None, r.text
            assert test_labels[int(note[1])] == label and note[2] == CLASSES[label]
    r = client.get(f"/ui/{VAE}/encode", params={"class": "10"})
    assert r.status_code == 422 and "class must be in 0..9" in r.text


def test_compare_drives_two_fashion_models_of_one_latent_size(client, checkpoints, test_images):
    text = client.get(f"/compare?a={VAE}&b={BETA}").text
    assert 'role="alert">' not in text  # no "one set of sliders cannot drive both"
    assert f'data-model="{VAE}"' in text and f'data-model="{BETA}"' in text
    z = re.search(rf'src="/api/models/{BETA}/decode.png\?z=([^"&]+)', text)[1]
    mu = mu_of(checkpoints, VAE, test_images[0])  # both decode the left model's code of image 0
    expected = [round(float(np.clip(v, -3, 3)), 2) for v in mu]
    assert [float(v) for v in z.split(",")] == pytest.approx(expected, abs=1e-9)


def strip_ends(text: str) -> tuple[list[float], list[float]]:
    url = html.unescape(re.search(r'id="strip-linear" src="([^"]+)"', text)[1])
    query = parse_qs(urlparse(url).query)
    return ([float(v) for v in query["z0"][0].split(",")],
            [float(v) for v in query["z1"][0].split(",")])  # fmt: skip


def test_interpolate_opens_on_the_first_sneaker_and_the_first_ankle_boot(
    client, checkpoints, test_images, test_labels
):
    sneaker = int(np.flatnonzero(test_labels == SNEAKER)[0])
    boot = int(np.flatnonzero(test_labels == ANKLE_BOOT)[0])
    text = client.get(f"/interpolate?model={VAE}").text
    z0, z1 = strip_ends(text)
    np.testing.assert_allclose(z0, mu_of(checkpoints, VAE, test_images[sneaker]), atol=6e-4)
    np.testing.assert_allclose(z1, mu_of(checkpoints, VAE, test_images[boot]), atol=6e-4)
    captions = re.findall(r'class="end-caption">([^<]+)<', text)
    assert captions == [f"Fashion-MNIST test image {sneaker}: sneaker",
                        f"Fashion-MNIST test image {boot}: ankle boot"]  # fmt: skip
    shown = re.findall(r'<img class="pixel" src="([^"]+)"', text)
    assert np.array_equal(data_url_pixels(shown[0]), test_images[sneaker])
    assert np.array_equal(data_url_pixels(shown[1]), test_images[boot])
    # the form starts there too
    assert re.search(r'name="class_a".*?<option value="7" selected>sneaker', text, re.S)
    assert re.search(r'name="class_b".*?<option value="9" selected>ankle boot', text, re.S)


def test_interpolate_picks_an_end_by_class_and_number_or_by_index(
    client, checkpoints, test_images, test_labels
):
    third_dress = int(np.flatnonzero(test_labels == 3)[2])
    form = {"class_a": "3", "nth_a": "2", "class_b": "", "index_b": "41", "steps": "5"}
    r = client.post(f"/ui/{VAE}/interpolate", data=form)
    assert r.status_code == 200, r.text
    query = parse_qs(urlparse(r.headers["HX-Replace-Url"]).query)
    z0 = [float(v) for v in query["z0"][0].split(",")]
    z1 = [float(v) for v in query["z1"][0].split(",")]
    np.testing.assert_allclose(z0, mu_of(checkpoints, VAE, test_images[third_dress]), atol=6e-4)
    np.testing.assert_allclose(z1, mu_of(checkpoints, VAE, test_images[41]), atol=6e-4)
    assert f"Fashion-MNIST test image {third_dress}: dress" in r.text
    r = client.post(f"/ui/{VAE}/interpolate", data={**form, "nth_a": "10"})
    assert r.status_code == 422
    assert "holds 10 images of class dress" in r.text and "must be in 0..9, got 10" in r.text


def test_compress_starts_from_test_image_0_and_studies_test_images(client, test_images):
    text = client.get(f"/compress?model={VAE}").text
    assert "Fashion-MNIST test image #0" in text
    original = re.search(r'<img class="compress-img" src="([^"]+)"', text)[1]
    assert np.array_equal(data_url_pixels(original), test_images[0])
    r = client.get(f"/api/models/{VAE}/compress", params={"index": 31, "bits": 4})
    assert r.status_code == 200 and r.json()["index"] == 31
    assert np.array_equal(data_url_pixels(r.json()["original_png"]), test_images[31])
    rd = client.get(f"/api/models/{VAE}/rate-distortion").json()
    assert rd["dataset"] == "Fashion-MNIST test" and rd["images"] == SMALL.n_images
    assert rd["pixels"] == 28 * 28 and len(rd["vae"]) == 8
    partial = client.get(f"/ui/{VAE}/rate-distortion").text
    assert "2 scales a 28×28 image allows" in partial and "Fashion-MNIST test images" in partial


def test_denoise_corrupts_a_test_image_and_takes_a_28_by_28_mask(client, test_images):
    text = client.get(f"/denoise?a={VAE}&b={BETA}").text
    clean = re.search(r'id="clean-image" src="([^"]+)"', text)[1]
    assert np.array_equal(data_url_pixels(clean), test_images[1234 % 100])
    mask = np.zeros((28, 28), dtype=bool)
    mask[10:14, 4:24] = True  # a band across the garment
    hex_mask = np.packbits(mask.ravel()).tobytes().hex()
    r = client.get(f"/api/models/{VAE}/denoise",
                   params={"index": 5, "noise": "drawn", "mask": hex_mask})  # fmt: skip
    assert r.status_code == 200, r.text
    corrupted = data_url_pixels(r.json()["corrupted_png"])
    assert (corrupted[mask] == 128).all()  # MASK_FILL, as a PNG level
    assert np.array_equal(corrupted[~mask], test_images[5][~mask])


def test_views_that_need_dsprites_factors_say_why_they_do_not_apply(client):
    r = client.get(f"/ui/{VAE}/figure2")
    assert "trained on fashion-mnist, not dSprites" in r.text
    assert "which it was not trained on" in r.text
    r = client.get(f"/api/models/{VAE}/figure2.svg")
    assert r.status_code == 404 and "not dSprites" in r.json()["detail"]


# --- in the browser -------------------------------------------------------------------------


def test_dragging_a_slider_of_a_fashion_model_changes_its_picture(checkpoints, fashion_dir):
    settings = Settings(checkpoints_dir=checkpoints, fashion_mnist_dir=fashion_dir)
    with live_server(settings) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(base_url=url, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"/?model={VAE}")
        shown = wait_painted(page, VAE)
        before = canvas_pixels(page, VAE)
        # from the middle leftwards: away from μ of image 0, wherever in ±3 it lies
        grab_and_drag(page, page.locator(".latent input[type=range]").first, -0.4)
        wait_repainted(page, VAE, shown)
        after = canvas_pixels(page, VAE)
        page.mouse.up()
        # a sneaker from the picker: its code lands on the sliders
        page.select_option("#test-class", str(SNEAKER))
        page.click("#dataset")
        page.wait_for_selector("#dataset-image-class")
        note = page.text_content("#dataset-image-class")
        browser.close()
    assert after != before
    assert note is not None and note.endswith(": sneaker")
    assert errors == []
