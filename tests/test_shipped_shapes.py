"""The shipped colour-shapes models are real: small, trained as their cards say, with one latent
for each hue of the scene (the lecture's "skin colour" kind of factor), one for the object's scale
and one for its shape in `shapes-beta-vae`, and a VAE-GAN whose samples are sharper than those of
the β-VAE it started from."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from app.checkpoints import load_checkpoint
from app.data import open_dataset
from app.inference import decode_latents, encode_images, sample_prior
from app.metrics.scores import discretize, entropy, mutual_info_matrix
from app.studies.quality import gradient_energy, to_8bit

ROOT = Path(__file__).resolve().parent.parent
DISENTANGLED = "shapes-beta-vae"  # β-TCVAE: a latent per hue, scale and shape
VAEGAN_PARENT = "shapes-beta4-vae"  # plain β=4: scale and shape share a latent
MODELS = (DISENTANGLED, VAEGAN_PARENT, "shapes-vaegan")
HUES = ("floor_hue", "wall_hue", "object_hue")


@pytest.mark.parametrize("name", MODELS)
def test_the_colour_models_are_small_gaussian_and_say_how_they_were_trained(name):
    ckpt = load_checkpoint(ROOT / "checkpoints" / name).served()
    assert (ckpt.path / "model.safetensors").stat().st_size <= 5 * 1024 * 1024
    assert ckpt.description.dataset == "shapes3d" and ckpt.description.likelihood == "gaussian"
    card = ckpt.card.to_json()
    assert all(c.startswith("latent-explorer train") for c in card["commands"])
    # its last command resumes its own folder; after a rename, none of them may train into the
    # folder its old name now belongs to
    assert f"--out checkpoints/{name} " in card["commands"][-1] + " "
    if "renamed_from" in card:
        old = card["renamed_from"]["name"]
        assert not any(f"checkpoints/{old} " in c + " " for c in card["commands"])
    assert 1000 < card["steps"] <= card["target_steps"]
    # `latent-explorer evaluate` ran on these weights, on the model's own factors
    assert card["metrics"]["digest"] == ckpt.digest
    assert card["metrics"]["factors"] == list(ckpt.description.factor_names)
    assert 0 < card["metrics"]["scores"]["mig"]["mean"] <= 1


@cache
def normalised_mi(name: str) -> tuple[np.ndarray, list[str]]:
    """(latents, factors) mutual information ÷ each factor's entropy, on 2,000 held-out scenes
    (seed 31337, not the training stream), codes = posterior means, 20 bins as MIG uses; and
    the factor names."""
    torch.set_num_threads(1)
    batch = open_dataset("shapes3d").sample(np.random.default_rng(31337), 2000)
    assert batch.factors is not None
    x = torch.from_numpy(batch.images).float() / 255.0
    ckpt = load_checkpoint(ROOT / "checkpoints" / name).served()
    mu = torch.cat([encode_images(ckpt, part).mu for part in x.split(250)]).numpy()
    mi = mutual_info_matrix(discretize(mu), batch.factors) / entropy(batch.factors)
    return mi, list(ckpt.description.factor_names)


def assert_own_latents(name: str, factors: tuple[str, ...]) -> None:
    """Each of `factors` is led by a different latent, which holds at least half of that
    factor's information and less than a fifth of any other factor's among them."""
    mi, names = normalised_mi(name)
    columns = [names.index(f) for f in factors]
    leaders = [int(mi[:, f].argmax()) for f in columns]
    assert len(set(leaders)) == len(factors), (name, dict(zip(factors, leaders, strict=True)))
    for latent, f in zip(leaders, columns, strict=True):
        assert mi[latent, f] >= 0.5, (name, names[f], mi[latent, f])
        others = [round(float(mi[latent, g]), 2) for g in columns if g != f]
        assert max(others) < 0.2, (name, names[f], others)


@pytest.mark.parametrize("name", [DISENTANGLED, VAEGAN_PARENT])
def test_each_hue_of_the_scene_has_a_latent_of_its_own(name):
    assert_own_latents(name, HUES)


def test_the_disentangled_model_gives_scale_and_shape_a_latent_each():
    assert_own_latents(DISENTANGLED, (*HUES, "scale", "shape"))


def test_the_vaegan_samples_are_sharper_than_its_parents():
    energy = {}
    for name in (VAEGAN_PARENT, "shapes-vaegan"):
        ckpt = load_checkpoint(ROOT / "checkpoints" / name).served()
        z = sample_prior(ckpt.description.latent_dim, 256, seed=0)
        energy[name] = float(gradient_energy(to_8bit(decode_latents(ckpt, z))).mean())
    parent = load_checkpoint(ROOT / "checkpoints" / "shapes-vaegan").card.initialised_from
    parent_digest = load_checkpoint(ROOT / "checkpoints" / VAEGAN_PARENT).digest
    assert parent is not None and parent.digest == parent_digest
    assert energy["shapes-vaegan"] > 1.3 * energy[VAEGAN_PARENT], energy
