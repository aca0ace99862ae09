"""Corruptions do what they say at the level asked, reproducibly; a denoising autoencoder trains
on them, resumes as one, and undoes them better than the plain autoencoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.checkpoints import load_checkpoint
from app.data import corruption
from app.data.ground_truth import DSPRITES
from app.training import train
from app.training.stream import step_data
from tests.conftest import tiny_args


def sprites(n: int = 64, seed: int = 0) -> np.ndarray:
    return DSPRITES.render(DSPRITES.sample_classes(np.random.default_rng(seed), n))


def test_gaussian_noise_has_the_asked_spread_and_stays_in_range():
    x = np.full((8, 1, 64, 64), 0.5, np.float32)  # mid-grey: clipping never bites at σ=0.1
    y = corruption.corrupt(x, "gaussian", 0.1, np.random.default_rng(0))
    assert y.min() >= 0 and y.max() <= 1
    assert abs((y - x).std() - 0.1) < 0.005 and abs((y - x).mean()) < 0.005
    assert np.array_equal(corruption.corrupt(x, "gaussian", 0.0, np.random.default_rng(0)), x)


def test_salt_and_pepper_flips_the_asked_fraction_to_black_or_white():
    x = np.full((16, 1, 64, 64), 0.5, np.float32)
    y = corruption.corrupt(x, "salt_pepper", 0.2, np.random.default_rng(0))
    hit = y != 0.5
    assert abs(hit.mean() - 0.2) < 0.01
    assert set(np.unique(y[hit])) == {0.0, 1.0} and abs((y[hit] == 1).mean() - 0.5) < 0.03


def test_a_mask_hides_about_the_asked_fraction_behind_grey():
    x = sprites(32)
    y = corruption.corrupt(x, "mask", 0.3, np.random.default_rng(0))
    hidden = y == corruption.MASK_FILL
    assert 0.2 < hidden.mean() <= 0.31
    assert np.array_equal(y[~hidden], x[~hidden])  # what is not hidden is untouched


def test_corruption_is_a_function_of_the_generator():
    x = sprites(16)
    for noise in corruption.NOISES:
        a = corruption.corrupt(x, noise, 0.2, np.random.default_rng(7))
        b = corruption.corrupt(x, noise, 0.2, np.random.default_rng(7))
        c = corruption.corrupt(x, noise, 0.2, np.random.default_rng(8))
        assert np.array_equal(a, b) and not np.array_equal(a, c), noise


@pytest.mark.parametrize(
    ("noise", "level", "message"),
    [
        ("blur", 0.1, "unknown noise 'blur': choose from gaussian, salt_pepper, mask"),
        ("gaussian", 0.9, "gaussian level must be in 0..0.5, got 0.9"),
        ("mask", -0.1, "mask level must be in 0..0.4, got -0.1"),
    ],
)
def test_bad_corruptions_are_named(noise, level, message):
    with pytest.raises(corruption.CorruptionError, match=message.replace(".", r"\.")):
        corruption.corrupt(sprites(1), noise, level, np.random.default_rng(0))


def test_training_inputs_mix_all_three_corruptions():
    x = sprites(300)
    y = corruption.training_corruption(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
    grey = (y == corruption.MASK_FILL).any(axis=(1, 2, 3))
    fractional = ((y > 0) & (y < 1) & (y != corruption.MASK_FILL)).any(axis=(1, 2, 3))
    flipped_only = ~grey & ~fractional & (y != x).any(axis=(1, 2, 3))
    # about a third each: masked, Gaussian (fractional values), salt-and-pepper (0/1 flips only)
    for kind in (grey, fractional, flipped_only):
        assert 60 < kind.sum() < 140, kind.sum()


def test_a_denoising_step_keeps_the_clean_image_as_target_and_the_same_data():
    plain = step_data(_procedural(), 0, 0, 5, 32, 10)
    noisy = step_data(_procedural(), 0, 0, 5, 32, 10, denoise=True)
    assert torch.equal(noisy.target, plain.x) and torch.equal(noisy.eps, plain.eps)
    assert not torch.equal(noisy.x, noisy.target)
    assert plain.target is plain.x


def _procedural():
    from app.data import open_dataset

    return open_dataset("dsprites")


def test_a_denoising_run_records_its_recipe_and_resumes_as_one(tmp_path):
    args = tiny_args(tmp_path / "dae", kind="ae", denoise=True, steps=20, batch_size=16)
    assert train(args) == 0
    card = json.loads((args.out / "card.json").read_text())
    assert card["recipe"].startswith("denoising deterministic autoencoder")
    assert card["denoising"]["noises"] == list(corruption.NOISES)
    # resumed with no flag, it stays a denoising run
    more = tiny_args(tmp_path / "dae", steps=30, batch_size=16, resume=True)
    assert train(more) == 0
    trainer = json.loads((more.run_path / "trainer.json").read_text())
    assert trainer["args"]["denoise"] is True and trainer["step"] == 30
    assert load_checkpoint(args.out).card.to_json()["denoising"] == card["denoising"]
