"""A folder of rendered pictures scores a model as its ground truth does.

Colour scenes rendered to a folder (examples/render_colour_scenes.py) with their factors as
columns, served as a data set: MIG and DCI over that folder against the built-in ground-truth
route (the same scenes rendered from their classes, encoded, and scored by app.metrics.scores
with the true factor classes, on the same train and test images). Fashion-MNIST's test images
exported to a folder (examples/export_fashion_test.py): the linear probe and the importance-
weighted bound on the folder against `evaluate`'s test-split route (app.metrics.test_scores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.checkpoints import load_checkpoint
from app.data import shapes3d
from app.data.sets import open_set
from app.encodings import find_encoding
from app.inference import prepare_for_serving
from app.metrics import scores
from app.metrics.evaluate import ImageEncoder
from app.metrics.set_scores import SetScoreSettings, disentanglement_rows, factor_classes
from app.metrics.test_scores import score_test_split
from app.studies.set_scores import compute_set_scores
from examples.export_fashion_test import export_fashion_test
from examples.render_colour_scenes import render_colour_scenes

SCENES = 2_000
AGREE = 0.02  # the two routes see the same images and classes: only float rounding may differ


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("colour-scenes") / "scenes"
    render_colour_scenes(out, n=SCENES, seed=0)
    return out


def test_mig_and_dci_over_a_rendered_folder_agree_with_the_ground_truth_route(
    colour_beside_tiny: Path, scenes: Path, tmp_path: Path
) -> None:
    served = prepare_for_serving(load_checkpoint(colour_beside_tiny / "colour-vae").served())
    image_set = open_set(scenes)
    s = SetScoreSettings(k=4, likelihood_images=8)
    folder = compute_set_scores(served, image_set, tmp_path, s)["scores"]["disentanglement"]

    # the built-in route: the same scenes drawn from their classes by the renderer, encoded,
    # scored with the true classes on the folder route's train and test images
    classes = shapes3d.sample_classes(np.random.default_rng(0), SCENES)  # (n, 6)
    for k, column in enumerate(image_set.factors):
        assert column.name == shapes3d.FACTOR_NAMES[k]
        np.testing.assert_array_equal(factor_classes(column).classes, classes[:, k])
    codes = ImageEncoder(served)(classes)  # (n, D) μ
    encoding = find_encoding(served, image_set, tmp_path)
    assert encoding is not None and encoding.ok.all()
    np.testing.assert_allclose(encoding.mu, codes, atol=1e-4)
    train, test = disentanglement_rows(encoding.ok, s)
    assert (len(train), len(test)) == (SCENES - SCENES // 3, SCENES // 3)
    mig = scores.mig(codes[train], classes[train], s.bins)["mig"]
    dci = scores.dci(codes[train], classes[train], codes[test], classes[test], seed=s.seed)
    measured = {
        "mig": (folder["scores"]["mig"]["value"], mig),
        **{
            f"dci_et_{k}": (folder["scores"][f"dci_et_{k}"]["value"], dci[k])
            for k in ("disentanglement", "completeness", "informativeness")
        },
    }
    for name, (on_folder, built_in) in measured.items():
        assert abs(on_folder - built_in) <= AGREE, f"{name}: {on_folder} vs {built_in}"
    assert [f["name"] for f in folder["factors"]] == list(shapes3d.FACTOR_NAMES)
    assert all(f["train"] == len(train) and f["test"] == len(test) for f in folder["factors"])


def test_probe_and_bound_on_a_fashion_folder_agree_with_the_test_split_route(
    fashion_models: dict[str, Path], fashion_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fashion-test"
    export_fashion_test(out, root=fashion_dir)
    served = prepare_for_serving(load_checkpoint(fashion_models["tiny-fashion-vae"]).served())
    image_set = open_set(out)
    k = 64
    # the folder has no split: all its images are scored, as the test-split route scores all
    s = SetScoreSettings(held_out_share=1.0, k=k, likelihood_images=len(image_set))
    result = compute_set_scores(served, image_set, tmp_path / "cache", s)
    built_in = score_test_split(served, fashion_dir, k=k, progress=False)

    bound, their_bound = result["likelihood"]["bound"], built_in["bound"]
    assert result["likelihood"]["images"] == built_in["images"] == len(image_set)
    assert abs(bound["mean"] - their_bound["mean"]) <= bound["se"] + their_bound["se"]
    elbo, their_elbo = result["likelihood"]["elbo"], built_in["elbo"]
    assert abs(elbo["mean"] - their_elbo["mean"]) <= elbo["se"] + their_elbo["se"]
    assert result["likelihood"]["dims"] == built_in["dims"] == 784

    (probe,) = result["scores"]["probes"]["columns"]
    their_probe = built_in["probe"]
    assert probe["column"] == "label" and probe["images"] == len(image_set)
    assert abs(probe["mean"] - their_probe["mean"]) <= probe["std"] + their_probe["std"]
    assert probe["chance_uniform"] == built_in["chance"] == 0.1

    # a folder of attributes only: no factor to score, said plainly
    dis = result["scores"]["disentanglement"]
    assert dis["scores"] == {} and "no generating factors" in dis["note"]
