"""Datasets from disk: the official dSprites .npz layout and a user's image folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.data import DatasetError, open_dataset
from app.data.dsprites import FACTOR_VALUES, classes_to_index, index_to_classes, render


def write_tiny_dsprites_npz(path, n: int = 50) -> np.ndarray:
    """A file with the official layout: imgs, latents_classes/values with colour first,
    and a pickled metadata entry that the loader must never touch."""
    idx = np.random.default_rng(0).choice(737_280, n, replace=False)
    classes = index_to_classes(idx)
    latents_classes = np.concatenate([np.zeros((n, 1), np.int64), classes], axis=1)
    values = np.stack([FACTOR_VALUES[i][classes[:, i]] for i in range(5)], 1)
    values[:, 0] += 1  # the official file stores shape as 1, 2, 3
    latents_values = np.concatenate([np.ones((n, 1)), values], axis=1)
    metadata = np.array({"description": "pickled dict"}, dtype=object)
    np.savez(
        path,
        imgs=render(classes),
        latents_classes=latents_classes,
        latents_values=latents_values,
        metadata=metadata,
    )
    return idx


def test_official_npz_layout_loads_without_unpickling(tmp_path):
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    idx = write_tiny_dsprites_npz(path)
    ds = open_dataset(str(path))
    assert len(ds) == 50 and ds.channels == 1 and ds.binary
    batch = ds.sample(np.random.default_rng(1), 16)
    assert batch.images.shape == (16, 1, 64, 64)
    # each image is the sprite its factors say
    assert np.array_equal(batch.images[:, 0], render(batch.factors))
    assert set(classes_to_index(batch.factors)) <= set(idx)
    assert np.array_equal(batch.labels, batch.factors[:, 0])


def test_npz_without_the_arrays_is_a_clear_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, pictures=np.zeros((2, 64, 64)))
    with pytest.raises(DatasetError, match="not a dSprites file, it lacks the array 'imgs'"):
        open_dataset(str(path))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="cannot read it as .npz"):
        open_dataset(str(tmp_path / "broken.npz"))


def test_image_folder_resizes_any_size_and_labels_by_subfolder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    Image.fromarray(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(
        tmp_path / "cats/a.png"
    )
    Image.fromarray(rng.integers(0, 255, (31, 17, 3), dtype=np.uint8)).save(tmp_path / "cats/b.jpg")
    Image.fromarray(np.full((64, 80), 200, np.uint8)).convert("RGB").save(tmp_path / "dogs/c.jpeg")
    ds = open_dataset(str(tmp_path))
    assert ds.channels == 3 and not ds.binary and ds.label_names == ("cats", "dogs")
    assert ds.images.shape == (3, 3, 64, 64)
    assert ds.labels.tolist() == [0, 0, 1]
    assert abs(int(ds.images[2].mean()) - 200) <= 1  # the flat grey survives resizing


def test_grey_images_give_a_one_channel_dataset(tmp_path):
    Image.fromarray(np.tile(np.arange(100, dtype=np.uint8), (50, 1))).save(tmp_path / "g.png")
    ds = open_dataset(str(tmp_path))
    assert ds.channels == 1 and ds.label_names == () and ds.images.shape == (1, 1, 64, 64)
    # left-to-right ramp stays a left-to-right ramp
    assert ds.images[0, 0, 10, 5] < ds.images[0, 0, 10, 60]


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="holds no .png, .jpg or .jpeg files"):
        open_dataset(str(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="bad.png: cannot read it as an image"):
        open_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'"):
        open_dataset("mnist")
