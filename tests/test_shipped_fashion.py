"""The shipped Fashion-MNIST models are real: they were trained here on the train split, they
reconstruct test images they never saw far better than the average garment does, the β-VAE keeps
fewer latents in use than the VAE, the CVAE draws the garment its label names, and each explains
the binarised test images far better than a model of independent pixels would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.checkpoints import load_checkpoint
from app.data.fashion_mnist import FashionMNIST

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("fashion-vae", "fashion-beta-vae", "fashion-cvae")


@pytest.fixture(scope="module")
def data():
    """The real data (Debian's dataset-fashion-mnist, which `make test` installs)."""
    train, test = (
        FashionMNIST(split="train", image_size=28),
        FashionMNIST(split="test", image_size=28),
    )
    return train, test


def _served(name):
    return load_checkpoint(ROOT / "checkpoints" / name).served()


@pytest.mark.parametrize("name", NAMES)
def test_each_was_trained_here_on_binarised_fashion_mnist_at_28_pixels(name):
    ckpt = load_checkpoint(ROOT / "checkpoints" / name)
    cfg, card = ckpt.config, ckpt.card.to_json()
    assert (cfg.architecture, cfg.image_size, cfg.channels) == ("mlp", 28, 1)
    assert (cfg.dataset, cfg.likelihood, cfg.latent_dim) == ("fashion-mnist", "bernoulli", 10)
    commands = card.get("commands", [card["command"]])
    assert all(c.startswith("latent-explorer train") for c in commands)
    assert any(f"--out checkpoints/{name}" in c for c in commands)
    assert all("--dataset fashion-mnist" in c for c in commands if "--resume" not in c)
    assert card["steps"] >= 20_000


@pytest.mark.parametrize("name", NAMES)
def test_each_reconstructs_test_images_far_better_than_the_average_garment(name, data):
    train, test = data
    s = _served(name)
    x = torch.from_numpy(test.images[:500]).float() / 255
    labels = torch.from_numpy(test.labels[:500]) if s.description.kind == "cvae" else None
    with torch.no_grad():
        recon = s.model.decode(s.model.encode(x, labels).mean, labels)
    err = (recon - x).pow(2).mean().item()
    mean_image = torch.from_numpy(train.images.mean(0, dtype=np.float64) / 255).float()
    baseline = (mean_image - x).pow(2).mean().item()  # the average training garment, for all
    assert err < 0.3 * baseline, (name, err, baseline)


def _active(name, x):
    s = _served(name)
    with torch.no_grad():
        kl = s.model.encode(x).kl().mean(0)
    return int((kl > 0.1).sum())


def test_the_beta_vae_keeps_fewer_latents_in_use_than_the_vae(data):
    _, test = data
    x = torch.from_numpy(test.images[:2000]).float() / 255
    vae, beta = _active("fashion-vae", x), _active("fashion-beta-vae", x)
    assert beta <= vae - 2, (vae, beta)


def test_the_cvae_draws_the_garment_its_label_names(data):
    """Each of 20 z from the prior decoded under each of the ten labels; a nearest-class-mean
    classifier built here from the test images (independent of the model) names the garment."""
    _, test = data
    x = test.images.reshape(len(test), -1).astype(np.float64) / 255
    means = np.stack([x[test.labels == c].mean(0) for c in range(10)])
    s = _served("fashion-cvae")
    z = torch.randn(20, 10, generator=torch.Generator().manual_seed(7))
    hits = 0
    with torch.no_grad():
        for c in range(10):
            images = s.model.decode(z, torch.full((20,), c)).reshape(20, -1).double().numpy()
            d = ((images[:, None, :] - means[None]) ** 2).sum(-1)
            hits += int((d.argmin(1) == c).sum())
    assert hits / 200 > 0.7, hits / 200


@pytest.mark.parametrize("name", NAMES)
def test_the_card_s_test_set_scores_hold_when_recomputed(name, data):
    """The card's ELBO on the binarised test split, recomputed here from the network's logits
    with other draws (KL in closed form, E_q[log p(x|z)] over 8 draws per image), and its bound
    placed where a bound must lie: above the ELBO, below 0, far above independent pixels."""
    train, test = data
    entry = load_checkpoint(ROOT / "checkpoints" / name).card.to_json()["test_split"]
    assert (entry["images"], entry["k"], entry["dims"]) == (10_000, 1_000, 784)
    s = _served(name)
    bits = torch.from_numpy(test.binarised(0)).float()
    labels = torch.from_numpy(test.labels) if s.description.kind == "cvae" else None
    g = torch.Generator().manual_seed(12345)
    total = 0.0
    with torch.no_grad():
        post = s.model.encode(bits, labels)
        kl = 0.5 * (post.mean**2 + post.logvar.exp() - 1 - post.logvar).sum(1)
        for _ in range(8):
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
            logits = s.model.network.decode(z, labels).flatten(1)
            x = bits.flatten(1)
            log_px = (x * logits - torch.nn.functional.softplus(logits)).sum(1)  # Bernoulli
            total += (log_px - kl).mean().item() / 8
    assert total == pytest.approx(entry["elbo"]["mean"], abs=0.3), (total, entry["elbo"])
    bound = entry["bound"]["mean"]
    assert entry["elbo"]["mean"] < bound < 0
    assert entry["bound"]["bits_per_dim"] == pytest.approx(-bound / (784 * np.log(2)), abs=1e-4)
    p = np.clip(train.images.reshape(len(train), -1).mean(0) / 255, 1e-4, 1 - 1e-4)
    xb = bits.flatten(1).double().numpy()
    independent = (xb * np.log(p) + (1 - xb) * np.log1p(-p)).sum(1).mean()
    assert bound > independent + 100, (bound, independent)  # −385 nats: what z buys
