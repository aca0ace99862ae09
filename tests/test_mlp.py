"""The dense (mlp) network: a config that names it, weights that compute what the network
written out in numpy computes, served decoding that does not depend on the batch, the batched
log-likelihood equal to the Bernoulli log-probability of the served pixel means, and a run on
binarised Fashion-MNIST images that resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.checkpoints import ModelCard, load_checkpoint, save_checkpoint
from app.models import VAE, ModelConfig
from app.models.config import ConfigError
from app.models.interface import NativeModel, describe_config
from app.training import train
from tests.conftest import tiny_args


def mlp_config(**kw) -> ModelConfig:
    base = dict(architecture="mlp", image_size=28, hidden_dim=32, latent_dim=3,
                dataset="fashion-mnist")  # fmt: skip
    return ModelConfig(**{**base, **kw})


def test_the_config_names_the_architecture_and_its_sizes():
    assert mlp_config().architecture == "mlp"
    assert ModelConfig().architecture == "conv"  # what every config before it meant
    data = ModelConfig().to_json()
    del data["architecture"]
    assert ModelConfig.from_json(data).architecture == "conv"
    named = "conv, mlp, pytorch-vae, pythae-conv, pythae-resnet"
    with pytest.raises(ConfigError, match=f"architecture must be one of {named}, got 'rnn'"):
        mlp_config(architecture="rnn")
    with pytest.raises(ConfigError, match="image_size must be one of 16, 32, 64, 128"):
        ModelConfig(image_size=28)  # the conv stack halves to 4×4: not 28
    with pytest.raises(ConfigError, match=r"image_size must be an integer in 4\.\.128"):
        mlp_config(image_size=200)


def _numpy_forward(model: VAE, x: np.ndarray, z: np.ndarray, onehot: np.ndarray | None):
    """The mlp network by hand: ReLU(x W1ᵀ + b1) → ReLU(· W2ᵀ + b2) → head; the decoder alike."""
    p = {k: v.detach().numpy().astype(np.float64) for k, v in model.state_dict().items()}

    def dense(h, prefix, n):
        for i in range(n):
            h = h @ p[f"{prefix}.{2 * i}.weight"].T + p[f"{prefix}.{2 * i}.bias"]
            if i < n - 1 or prefix == "encoder.dense":
                h = np.maximum(h, 0)
        return h

    h = x.reshape(len(x), -1)
    zin = z
    if onehot is not None:
        h, zin = np.concatenate([h, onehot], 1), np.concatenate([z, onehot], 1)
    enc = dense(h, "encoder.dense", 2) @ p["encoder.head.weight"].T + p["encoder.head.bias"]
    logits = dense(zin, "decoder.dense", 3)
    return enc, logits


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_the_network_computes_what_numpy_computes(kind):
    labels = ("a", "b", "c") if kind == "cvae" else ()
    torch.manual_seed(0)
    model = VAE(mlp_config(kind=kind, label_names=labels)).eval()
    rng = np.random.default_rng(0)
    x = rng.random((5, 1, 28, 28)).astype(np.float32)
    z = rng.standard_normal((5, 3)).astype(np.float32)
    lab = torch.tensor([0, 2, 1, 1, 0]) if kind == "cvae" else None
    onehot = np.eye(3)[lab.numpy()] if lab is not None else None
    enc, logits = _numpy_forward(model, x, z, onehot)
    with torch.no_grad():
        mu, logvar = model.encode(torch.from_numpy(x), lab)
        decoded = model.decode(torch.from_numpy(z), lab)
    np.testing.assert_allclose(mu.numpy(), enc[:, :3], atol=1e-5)
    np.testing.assert_allclose(logvar.numpy(), enc[:, 3:], atol=1e-5)
    assert decoded.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(decoded.numpy().reshape(5, -1), logits, atol=1e-4)


def test_served_decoding_does_not_depend_on_the_batch_and_scores_as_bernoulli():
    torch.manual_seed(1)
    cfg = mlp_config(hidden_dim=64)
    served = NativeModel(VAE(cfg).eval(), describe_config(cfg))
    z = torch.randn(9, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        together = served.decode(z)
        alone = torch.cat([served.decode(row[None]) for row in z])
    assert torch.equal(together, alone)  # bit for bit
    x = (torch.rand(9, 1, 28, 28, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    with torch.no_grad():
        got = served.log_likelihood(x, z).double().numpy()
    p = together.double().numpy().reshape(9, -1)
    xs = x.double().numpy().reshape(9, -1)
    want = (xs * np.log(p) + (1 - xs) * np.log1p(-p)).sum(1)  # Bernoulli log-probability
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_28_pixel_checkpoint_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    model = VAE(mlp_config())
    save_checkpoint(tmp_path / "m", model, ModelCard(dataset="fashion-mnist"))
    loaded = load_checkpoint(tmp_path / "m")
    assert loaded.config == model.config
    assert json.loads((tmp_path / "m" / "config.json").read_text())["architecture"] == "mlp"
    d = loaded.served().description
    assert (d.height, d.width, d.channels) == (28, 28, 1)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k


def test_a_run_on_binarised_fashion_mnist_resumes_exactly(tmp_path, fashion_dir):
    kw = dict(dataset=f"fashion-mnist:{fashion_dir}", architecture="mlp", hidden=32, latents=3,
              batch_size=16)  # fmt: skip
    straight = tiny_args(tmp_path / "straight", steps=20, **kw)
    assert train(straight) == 0
    assert train(tiny_args(tmp_path / "halves", steps=10, **kw)) == 0
    assert train(tiny_args(tmp_path / "halves", steps=20, resume=True)) == 0
    a, b = load_checkpoint(straight.out), load_checkpoint(tmp_path / "halves")
    assert a.config.architecture == "mlp" and a.config.image_size == 28
    assert a.config.likelihood == "bernoulli"  # binarised pixels are Bernoulli draws
    for k, v in a.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[k], v), k
