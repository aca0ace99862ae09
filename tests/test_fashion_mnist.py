"""The Fashion-MNIST loader on idx files the tests write: pixels padded to 32×32 where they
belong, labels kept with their images, the train split alone for training, and a missing,
truncated or mislabelled file refused with what is wrong and how to get the data."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from app.data import DatasetError, open_dataset
from app.data.fashion_mnist import FashionMNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx format written out by hand: magic 0x0000080N, N big-endian sizes, the bytes."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(root, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    for stem, array in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = idx_bytes(array)
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (root / stem).write_bytes(data)


def make_folder(tmp_path, gz: bool = True, n_train: int = 12, n_test: int = 5):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8)
    test = np.full((n_test, 28, 28), 7, dtype=np.uint8)  # every test pixel 7: recognisable
    train_labels = np.arange(n_train) % 10
    test_labels = (np.arange(n_test) * 3) % 10
    write_split(tmp_path, "train", train, train_labels, gz)
    write_split(tmp_path, "t10k", test, test_labels, gz)
    return train, train_labels, test, test_labels


@pytest.mark.parametrize("gz", [True, False])
def test_images_are_padded_to_32_with_black_and_keep_their_labels(tmp_path, gz):
    train, labels, _, _ = make_folder(tmp_path, gz)
    ds = FashionMNIST(tmp_path)
    assert (len(ds), ds.image_size, ds.channels, ds.binary) == (12, 32, 1, False)
    assert ds.images.shape == (12, 1, 32, 32) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:, 0, 2:30, 2:30], train)
    border = ds.images.copy()
    border[:, :, 2:30, 2:30] = 0
    assert not border.any()  # two black pixels on every side, nothing else
    np.testing.assert_array_equal(ds.labels, labels)
    batch = ds.sample(np.random.default_rng(1), 50)
    for image, label in zip(batch.images, batch.labels, strict=True):
        i = int(np.flatnonzero((ds.images == image).all(axis=(1, 2, 3)))[0])
        assert labels[i] == label  # each image comes with its own label
    assert ds.label_names[7] == "sneaker" and ds.label_names[9] == "ankle boot"


def test_training_opens_the_train_split_and_never_the_test_split(tmp_path):
    make_folder(tmp_path)
    ds = open_dataset(f"fashion-mnist:{tmp_path}")
    assert ds.name == "fashion-mnist" and len(ds) == 12
    batch = ds.sample(np.random.default_rng(0), 2_000)
    assert not (batch.images[:, 0, 2:30, 2:30] == 7).all(axis=(1, 2)).any()  # no test image
    test = FashionMNIST(tmp_path, split="test")
    assert len(test) == 5 and (test.images[:, 0, 2:30, 2:30] == 7).all()


def test_a_missing_folder_or_file_says_how_to_install_the_data(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST(tmp_path / "nowhere")
    make_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\(\.gz\) is missing"):
        FashionMNIST(tmp_path)


def test_a_truncated_file_is_refused(tmp_path):
    make_folder(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated: 9,308 bytes of data, expected 9,408"):
        FashionMNIST(tmp_path)


def test_a_truncated_gzip_is_refused(tmp_path):
    make_folder(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DatasetError, match="cannot be read"):
        FashionMNIST(tmp_path)


def test_a_label_out_of_the_ten_classes_is_refused(tmp_path):
    train, labels, _, _ = make_folder(tmp_path)
    labels = labels.copy()
    labels[4] = 10
    write_split(tmp_path, "train", train, labels, gz=True)
    with pytest.raises(DatasetError, match="holds class 10 at image 4"):
        FashionMNIST(tmp_path)


def test_images_and_labels_that_do_not_pair_up_are_refused(tmp_path):
    train, labels, _, _ = make_folder(tmp_path)
    write_split(tmp_path, "train", train, labels[:-1], gz=True)
    with pytest.raises(DatasetError, match="holds 12 images but train-labels 11 labels"):
        FashionMNIST(tmp_path)


def test_labels_in_place_of_images_are_refused_by_their_magic_number(tmp_path):
    make_folder(tmp_path)
    labels = (tmp_path / "train-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(labels)
    with pytest.raises(DatasetError, match="magic 0x00000801, expected 0x00000803"):
        FashionMNIST(tmp_path)


def test_the_debian_package_holds_the_published_splits():
    """The real data, installed by `make test` (Debian's dataset-fashion-mnist): 60,000 training
    and 10,000 test images, 6,000 and 1,000 of each class (Xiao et al. 2017, Table 1)."""
    train, test = FashionMNIST(split="train"), FashionMNIST(split="test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert np.bincount(train.labels).tolist() == [6_000] * 10
    assert np.bincount(test.labels).tolist() == [1_000] * 10
    # garments bright on a black ground: the corners of the 28×28 images are almost all black
    corners = train.images[:, 0, [2, 2, 29, 29], [2, 29, 2, 29]]
    assert (corners == 0).mean() > 0.9
