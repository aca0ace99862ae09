"""The shipped colour-shapes models are real: small, trained as their cards say, with one latent
for each hue of the scene (the lecture's "skin colour" kind of factor), and a VAE-GAN whose
samples are sharper than the β-VAE's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.checkpoints import load_checkpoint
from app.data import open_dataset
from app.inference import decode_latents, encode_images, sample_prior
from app.metrics.scores import discretize, entropy, mutual_info_matrix
from app.quality import gradient_energy, to_8bit

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("shapes-beta-vae", "shapes-vaegan")
HUES = ("floor_hue", "wall_hue", "object_hue")


@pytest.mark.parametrize("name", MODELS)
def test_the_colour_models_are_small_gaussian_and_say_how_they_were_trained(name):
    ckpt = load_checkpoint(ROOT / "checkpoints" / name)
    assert (ckpt.path / "model.safetensors").stat().st_size <= 5 * 1024 * 1024
    assert ckpt.config.dataset == "shapes3d" and ckpt.config.likelihood == "gaussian"
    card = ckpt.card
    assert all(c.startswith("latent-explorer train") for c in card["commands"])
    assert any(f"--out checkpoints/{name}" in c for c in card["commands"])
    assert 1000 < card["steps"] <= card["target_steps"]
    # `latent-explorer evaluate` ran on its own factors, and its scores are in the card
    assert card["metrics"]["factors"] == list(ckpt.config.factor_names)
    assert 0 < card["metrics"]["scores"]["mig"]["mean"] <= 1


@pytest.fixture(scope="module")
def normalised_mi() -> np.ndarray:
    """The β-VAE's (latents, factors) mutual information ÷ each factor's entropy, on 2,000
    held-out scenes (seed 31337, not the training stream), codes = posterior means, 20 bins as
    MIG uses."""
    torch.set_num_threads(1)
    batch = open_dataset("shapes3d").sample(np.random.default_rng(31337), 2000)
    assert batch.factors is not None
    x = torch.from_numpy(batch.images).float() / 255.0
    ckpt = load_checkpoint(ROOT / "checkpoints" / "shapes-beta-vae")
    mu = torch.cat([encode_images(ckpt, part).mu for part in x.split(250)]).numpy()
    return mutual_info_matrix(discretize(mu), batch.factors) / entropy(batch.factors)


def test_each_hue_of_the_scene_has_a_latent_of_its_own(normalised_mi):
    mi = normalised_mi
    names = list(load_checkpoint(ROOT / "checkpoints" / "shapes-beta-vae").config.factor_names)
    hue_columns = [names.index(h) for h in HUES]
    leaders = [int(mi[:, f].argmax()) for f in hue_columns]
    assert len(set(leaders)) == 3, leaders  # three different latents
    for latent, f in zip(leaders, hue_columns, strict=True):
        assert mi[latent, f] >= 0.5, (names[f], mi[latent, f])  # most of the hue's information
        others = [mi[latent, g] for g in hue_columns if g != f]
        assert max(others) < 0.2, (names[f], others)  # and little of the other two hues'


def test_the_vaegan_samples_are_sharper_than_the_beta_vaes():
    energy = {}
    for name in MODELS:
        ckpt = load_checkpoint(ROOT / "checkpoints" / name)
        z = sample_prior(ckpt.config.latent_dim, 256, seed=0)
        energy[name] = float(gradient_energy(to_8bit(decode_latents(ckpt, z))).mean())
    assert energy["shapes-vaegan"] > 1.3 * energy["shapes-beta-vae"], energy
