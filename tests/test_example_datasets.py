"""The example data sets: datasets/celeba-100 (100 CelebA photographs cut from disentangling-vae's
grid) and the folders the two export scripts write, each opened as the server opens a data set."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.data import shapes3d
from app.data.fashion_mnist import DEFAULT_ROOT as FASHION_ROOT
from app.data.fashion_mnist import LABEL_NAMES, FashionMNIST
from app.data.sets import open_set, scan_sets
from examples.export_fashion_test import main as export_fashion_test
from examples.render_colour_scenes import main as render_colour_scenes

ROOT = Path(__file__).resolve().parents[1]
CELEBA = ROOT / "datasets" / "celeba-100"
GRID = ROOT.parent / "shared/zoo/disentangling-vae/results/btcvae_celeba/data_samples.png"
# the grid's geometry, measured from data_samples.png (datasets/celeba-100/README.md)
PAD, SIDE, N = 2, 64, 10
PAD_COLOUR = (0, 0, 0)


def celeba_tiles() -> np.ndarray:
    """(100, 64, 64, 3) uint8, read with PIL alone (not through the data layer)."""
    return np.stack([np.asarray(Image.open(CELEBA / f"{k:03d}.png")) for k in range(N * N)])


# --- celeba-100 ------------------------------------------------------------------------------


def test_celeba_100_opens_as_100_colour_photographs_for_celeba_models() -> None:
    s = open_set(CELEBA)
    assert s.name == "celeba-100"
    assert len(s) == 100
    assert s.problems == ()
    assert s.record.model_dataset == "celeba"
    assert "Liu" in s.record.credit and "non-commercial" in s.record.licence
    images = np.stack([s.native(i) for i in range(len(s))])
    assert images.shape == (100, 3, 64, 64)
    # colour: in every photograph the red and blue channels differ somewhere
    assert all((im[0] != im[2]).any() for im in images)
    # image i is file i: the listing's order is the grid's reading order
    assert [s.file(i) for i in range(3)] == ["000.png", "001.png", "002.png"]
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), celeba_tiles())


def test_a_celeba_model_is_viewed_on_celeba_100_by_default() -> None:
    sets = scan_sets(ROOT / "datasets", built_ins=False)
    chosen = sets.default_for("celeba")
    assert chosen is not None and chosen.name == "celeba-100"


def test_celeba_tiles_are_pictures_not_padding() -> None:
    tiles = celeba_tiles()
    pad = np.array(PAD_COLOUR, dtype=np.uint8)
    edges = {
        "top": tiles[:, 0],
        "bottom": tiles[:, -1],
        "left": tiles[:, :, 0],
        "right": tiles[:, :, -1],
    }  # each (100, 64, 3)
    for where, edge in edges.items():
        all_pad = (edge == pad).all(axis=(1, 2))
        assert not all_pad.any(), f"tiles {np.flatnonzero(all_pad)} have a {where} edge of padding"
    flat = tiles.reshape(len(tiles), -1).astype(np.int16)
    assert len({t.tobytes() for t in tiles}) == 100
    # not near-copies either: every pair differs by several grey levels per value on average
    closest = min(np.abs(flat[i] - flat[i + 1 :]).mean(axis=1).min() for i in range(99))
    assert closest > 10


@pytest.mark.skipif(not GRID.is_file(), reason="../shared (disentangling-vae's results) absent")
def test_celeba_tile_k_is_the_grid_at_its_measured_offset() -> None:
    grid = np.asarray(Image.open(GRID).convert("RGB"))
    assert grid.shape == (N * SIDE + (N + 1) * PAD, N * SIDE + (N + 1) * PAD, 3)  # 662
    tiles = celeba_tiles()
    inside = np.zeros(grid.shape[:2], dtype=bool)
    for k in range(N * N):
        row, col = divmod(k, N)
        y, x = PAD + (SIDE + PAD) * row, PAD + (SIDE + PAD) * col
        np.testing.assert_array_equal(tiles[k], grid[y : y + SIDE, x : x + SIDE])
        inside[y : y + SIDE, x : x + SIDE] = True
    # everything between and around the tiles is the pad colour: the tiles are the grid's all
    assert (grid[~inside] == np.array(PAD_COLOUR, dtype=np.uint8)).all()


# --- examples/export_fashion_test.py ---------------------------------------------------------

needs_fashion = pytest.mark.skipif(
    not FASHION_ROOT.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)


@needs_fashion
def test_exported_fashion_test_images_carry_their_named_classes(tmp_path: Path) -> None:
    out = tmp_path / "fashion-test"
    export_fashion_test(["--out", str(out), "--n", "40"])
    with open(out / "metadata.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file_name", "label"]
    test = FashionMNIST(FASHION_ROOT, split="test", image_size=28)
    assert [int(r[1]) for r in rows[1:]] == test.labels[:40].tolist()  # class numbers

    s = open_set(out)
    assert len(s) == 40 and s.problems == ()
    assert [c.name for c in s.columns] == ["label"]
    label = s.column("label")
    assert (label.kind, label.role, label.categories) == ("categorical", "attribute", LABEL_NAMES)
    np.testing.assert_array_equal(label.values, test.labels[:40])
    assert label.value_text(0) == LABEL_NAMES[int(test.labels[0])]  # "ankle boot"
    pixels = np.stack([s.native(i) for i in range(40)])
    np.testing.assert_array_equal(pixels, test.images[:40])  # (40, 1, 28, 28), as published


@needs_fashion
def test_fashion_export_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty"):
        export_fashion_test(["--out", str(tmp_path), "--n", "3"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    export_fashion_test(["--out", str(tmp_path), "--n", "3", "--force"])
    assert len(open_set(tmp_path)) == 3
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --- examples/render_colour_scenes.py --------------------------------------------------------


def test_colour_scenes_hold_the_true_factor_values_of_their_seed(tmp_path: Path) -> None:
    n, seed = 24, 7
    render_colour_scenes(["--out", str(tmp_path), "--n", str(n), "--seed", str(seed)])
    classes = shapes3d.sample_classes(np.random.default_rng(seed), n)  # (24, 6)

    s = open_set(tmp_path)
    assert len(s) == n and s.problems == ()
    assert [c.name for c in s.factors] == list(shapes3d.FACTOR_NAMES)
    for k, name in enumerate(shapes3d.FACTOR_NAMES):
        column = s.column(name)
        if name == "shape":
            assert column.kind == "categorical"
            assert column.categories == ("cube", "cylinder", "sphere", "capsule")
            np.testing.assert_array_equal(column.values, classes[:, k])
        else:
            assert column.kind == "ordered"
            # the very floats: hue class 3 is 0.30000000000000004, not 0.3
            np.testing.assert_array_equal(column.values, shapes3d.FACTOR_VALUES[k][classes[:, k]])
    orientation = s.column("orientation").values
    assert orientation.min() >= -30 and orientation.max() <= 30  # degrees

    # the same numbers as the built-in colour scenes hold for the same scenes
    drawn = open_set("shapes3d")
    index = shapes3d.classes_to_index(classes)
    for c in s.columns:
        np.testing.assert_array_equal(c.values, drawn.column(c.name).values[index])

    pixels = np.stack([s.native(i) for i in range(n)])  # (24, 3, 64, 64)
    np.testing.assert_array_equal(pixels, shapes3d.render(classes).transpose(0, 3, 1, 2))


def test_colour_scenes_refuse_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.png").write_bytes(b"")
    with pytest.raises(SystemExit, match="not empty"):
        render_colour_scenes(["--out", str(tmp_path), "--n", "2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]
