"""Fashion-MNIST's test images exported to a folder of PNGs with a metadata.csv
(examples/export_fashion_test.py), served as a data set and viewed by a Fashion model, agree with
the model's own test split (no `data`): the map's class colours are the split's labels, and the
sneaker → ankle boot direction is the built-in one.

The noise between the two: none but float32 rounding. PNG is lossless, so the folder's pixels
are the split's (checked below); both routes encode the same float32 input with the same
encoder; and both take the same images in the same order (file 000.png is test image 0), so
the same 80% fit and the same 20% are held out. μ can differ only by float32 rounding between
batches of different sizes (the set's encoding runs in chunks of its own): measured at most
1e-6 on the tiny MLPs, allowed 1e-5. The direction's vector then agrees to that, and the
held-out accuracy, a count of images on their side of a midpoint far from any of them,
exactly (35 of the 37 held-out sneakers and ankle boots, chance 0.62, on both routes and both
models). The images are the fake Fashion-MNIST of tests/conftest.py (write_fashion_mnist, here
with 1,000 test images) and its tiny models; the real 10,000 with the shipped fashion-vae are
bench/fashion_folder_directions.py's."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.data.fashion_mnist import LABEL_NAMES, FashionMNIST
from app.main import create_app
from app.settings import Settings
from app.studies.set_encodings import encoding_jobs
from examples.export_fashion_test import main as export_fashion_test
from tests.conftest import write_fashion_mnist

SET = "fashion-test"
N = 1000  # test images: 200 held out, about 40 of them sneakers and ankle boots
MU_NOISE = 1e-5  # float32 rounding between batchings of the same input (measured 6e-7)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    """A fake Fashion-MNIST as tests/conftest.py writes it, with 1,000 test images."""
    return write_fashion_mnist(tmp_path_factory.mktemp("fashion-1000"), n_train=10, n_test=N)


@pytest.fixture(scope="module")
def exported(split_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fashion-folder") / "datasets" / SET
    export_fashion_test(["--out", str(out), "--root", str(split_dir)])
    return out


@pytest.fixture(scope="module")
def served(fashion_models, split_dir, exported, tmp_path_factory):
    """The tiny Fashion VAE and CVAE (trained on conftest's fashion_dir), their test split read
    from `split_dir`, its export served as data set fashion-test; its encodings kept before the
    tests ask."""
    root = tmp_path_factory.mktemp("fashion-folder-served")
    for name, folder in fashion_models.items():
        shutil.copytree(folder, root / "checkpoints" / name)
    settings = Settings(checkpoints_dir=root / "checkpoints", fashion_mnist_dir=split_dir,
                        datasets_dir=exported.parent, cache_dir=root / "cache")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        for name in fashion_models:
            first = client.get(f"/api/models/{name}/map?data={SET}")
            assert first.status_code == 202, first.text
        encoding_jobs(settings.cache_dir).join()
        yield client


def test_the_folder_holds_the_test_split_pixel_for_pixel(exported, split_dir):
    split = FashionMNIST(split_dir, split="test", image_size=28)
    files = sorted(exported.glob("*.png"))
    assert [f.name for f in files[:2]] == ["000.png", "001.png"] and len(files) == N
    for i, f in enumerate(files):
        assert np.array_equal(np.asarray(Image.open(f)), split.images[i, 0])


@pytest.mark.parametrize("model", ["tiny-fashion-vae", "tiny-fashion-cvae"])
def test_the_maps_classes_are_the_test_splits_labels_and_mu_the_same(served, split_dir, model):
    own = served.get(f"/api/models/{model}/map?n={N}").json()
    folder = served.get(f"/api/models/{model}/map?data={SET}").json()
    assert own["source"]["kind"] == "test-split" and folder["source"]["kind"] == "data-set"
    labels = FashionMNIST(split_dir, split="test", image_size=28).labels
    (label,) = folder["colour_by"]
    assert (label["name"], label["kind"], label["names"]) == (
        "label",
        "category",
        list(LABEL_NAMES),
    )
    assert label["values"] == labels[folder["indices"]].tolist()  # each point's class: its label
    assert folder["indices"] == own["indices"] == list(range(N))
    assert own["colour_by"][0]["values"] == label["values"]
    # μ, as the map sends it (4 decimals): at most one step of the last decimal apart
    gap = np.abs(np.array(folder["latents"]) - np.array(own["latents"])).max()
    assert gap <= 1e-4 + MU_NOISE


@pytest.mark.parametrize("model", ["tiny-fashion-vae", "tiny-fashion-cvae"])
def test_sneaker_to_ankle_boot_on_the_folder_is_the_built_in_direction(served, model):
    query = f"from=sneaker&to=ankle%20boot&n={N}"
    own = served.get(f"/api/models/{model}/direction?{query}")
    folder = served.get(f"/api/models/{model}/direction?{query}&data={SET}")
    assert own.status_code == 200 and folder.status_code == 200, (own.text, folder.text)
    own, folder = own.json(), folder.json()
    assert (folder["data"], folder["column"], folder["source"]["kind"]) == (
        SET,
        "label",
        "data-set",
    )
    assert own["data"] is None and own["column"] is None and own["source"]["kind"] == "test-split"
    assert folder["fit"]["left_out"] == 0  # every image has a label
    # the same images fitted and held out, the same μ: the same direction and the same count
    assert folder["vector"] == pytest.approx(own["vector"], rel=1e-4, abs=MU_NOISE)
    assert folder["centre"] == pytest.approx(own["centre"], rel=1e-4, abs=MU_NOISE)
    assert folder["fit"]["held_out"] == own["fit"]["held_out"]
    assert folder["fit"]["value"] == own["fit"]["value"]
    assert folder["fit"]["chance"] == own["fit"]["chance"]
    assert folder["participation_ratio"] == pytest.approx(own["participation_ratio"], rel=1e-4)
