"""The Fashion-MNIST loader on idx files the tests write: pixels at 28×28 or padded to 32×32 where
they belong, labels kept with their images, batches binarised with each pixel's intensity as its
probability (and the same bits from the same generator), the train split alone for training, and a
missing, truncated or mislabelled file refused with what is wrong and how to get the data."""

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
    train = rng.integers(0, 201, (n_train, 28, 28)).astype(np.uint8)
    # every test pixel 255: it binarises to all ones, which no training image (levels ≤ 200)
    # does in a lifetime of draws, so a test image is recognisable in a batch
    test = np.full((n_test, 28, 28), 255, dtype=np.uint8)
    train_labels = np.arange(n_train) % 10
    test_labels = (np.arange(n_test) * 3) % 10
    write_split(tmp_path, "train", train, train_labels, gz)
    write_split(tmp_path, "t10k", test, test_labels, gz)
    return train, train_labels, test, test_labels


@pytest.mark.parametrize("gz", [True, False])
def test_images_are_padded_to_32_with_black_and_keep_their_labels(tmp_path, gz):
    train, labels, _, _ = make_folder(tmp_path, gz)
    ds = FashionMNIST(tmp_path)
    assert (len(ds), ds.image_size, ds.channels, ds.binary) == (12, 32, 1, True)
    assert ds.images.shape == (12, 1, 32, 32) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:, 0, 2:30, 2:30], train)
    border = ds.images.copy()
    border[:, :, 2:30, 2:30] = 0
    assert not border.any()  # two black pixels on every side, nothing else
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.label_names[7] == "sneaker" and ds.label_names[9] == "ankle boot"
    native = FashionMNIST(tmp_path, image_size=28)  # the mlp network's size: as published
    np.testing.assert_array_equal(native.images[:, 0], train)
    with pytest.raises(DatasetError, match="28×28 or padded to 32×32, not 64"):
        FashionMNIST(tmp_path, image_size=64)


def test_batches_are_binarised_with_each_pixel_s_intensity_as_its_probability(tmp_path):
    rng = np.random.default_rng(5)
    levels = np.array([0, 51, 128, 204, 255, 0, 51, 128, 204, 255, 102, 153])  # one per image
    images = np.repeat(levels, 28 * 28).reshape(12, 28, 28).astype(np.uint8)
    labels = np.arange(12) % 10
    write_split(tmp_path, "train", images, labels, gz=True)
    write_split(tmp_path, "t10k", images[:2], labels[:2], gz=True)
    ds = FashionMNIST(tmp_path, image_size=28)
    batch = ds.sample(rng, 600)
    assert batch.images.dtype == np.uint8 and set(np.unique(batch.images)) <= {0, 1}
    fractions = batch.images.reshape(600, -1).mean(axis=1)  # 784 Bernoulli draws per image
    for fraction, label in zip(fractions, batch.labels, strict=True):
        # the image's own level: label l is image l (or l + 10), both of one level except 0/1
        expected = levels[[i for i in range(12) if labels[i] == label]] / 255
        # within 5 standard deviations of a Binomial(784, p) fraction (≤ 0.018 at p = ½)
        assert np.abs(expected - fraction).min() <= 5 * 0.0179, (label, fraction, expected)
    # each draw is a pure function of the generator: a resumed run sees the same bits
    again = ds.sample(np.random.default_rng(5), 600)
    np.testing.assert_array_equal(again.images, batch.images)
    np.testing.assert_array_equal(again.labels, batch.labels)
    other = ds.sample(np.random.default_rng(6), 600)
    assert not np.array_equal(other.images, batch.images)
    # the test split's one binarisation: fixed by its seed, black padding stays black
    padded = FashionMNIST(tmp_path, split="test")
    bits = padded.binarised()
    np.testing.assert_array_equal(bits, padded.binarised(0))
    assert not np.array_equal(bits, padded.binarised(1))
    assert bits[:, :, :2].sum() == 0 and bits[:, :, :, 30:].sum() == 0
    assert bits[0].sum() == 0  # level 0 never lights
    assert 0.15 < bits[1, 0, 2:30, 2:30].mean() < 0.25  # level 51: p = 0.2


def test_training_opens_the_train_split_and_never_the_test_split(tmp_path):
    make_folder(tmp_path)
    ds = open_dataset(f"fashion-mnist:{tmp_path}")
    assert ds.name == "fashion-mnist" and len(ds) == 12 and ds.image_size == 32
    batch = ds.sample(np.random.default_rng(0), 2_000)
    assert not (batch.images[:, 0, 2:30, 2:30] == 1).all(axis=(1, 2)).any()  # no test image
    test = FashionMNIST(tmp_path, split="test")
    assert len(test) == 5 and (test.images[:, 0, 2:30, 2:30] == 255).all()
    assert (test.binarised()[:, 0, 2:30, 2:30] == 1).all()  # what a test image would look like
    assert open_dataset(f"fashion-mnist:{tmp_path}", architecture="mlp").image_size == 28


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
