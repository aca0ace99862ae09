"""The importance-weighted bound on log p(x), on a model whose log p(x) is known in closed form:
a linear decoder with Gaussian pixel noise, x = W z + b + σ ε, so p(x) = N(b, W Wᵀ + σ² I)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.metrics.likelihood import bits_per_dim, importance_weighted_bound
from app.models.interface import ModelDescription, Posterior

SIGMA = 0.3
W = torch.tensor([[0.8, -0.2], [0.1, 0.5], [-0.4, 0.3], [0.2, 0.9]], dtype=torch.float64)
B = torch.tensor([0.5, 0.4, 0.6, 0.5], dtype=torch.float64)


class LinearGaussian:
    """Decoder means W z + b as a 1×2×2 image; the encoder gives the exact posterior, shifted
    by `offset` (0: exact) and with its variance scaled by `spread`."""

    description = ModelDescription(
        latent_dim=2, channels=1, height=2, width=2, likelihood="gaussian", gaussian_sigma=SIGMA
    )

    def __init__(self, offset: float = 0.0, spread: float = 1.0) -> None:
        precision = torch.eye(2, dtype=torch.float64) + W.T @ W / SIGMA**2
        self.cov = torch.linalg.inv(precision)
        self.offset, self.spread = offset, spread

    def encode(self, x, labels=None) -> Posterior:  # noqa: ANN001
        v = x.flatten(1).double() - B  # (B, 4)
        mean = (v @ W / SIGMA**2) @ self.cov.T + self.offset  # (B, 2)
        # a diagonal posterior is exact only where the true covariance is diagonal: use the
        # true one's diagonal only when asked to be exact (see the test)
        logvar = torch.log(torch.diagonal(self.cov) * self.spread).expand_as(mean)
        return Posterior(mean.float(), logvar.float())

    def decode(self, z, labels=None) -> torch.Tensor:  # noqa: ANN001
        return (z.double() @ W.T + B).float().view(-1, 1, 2, 2)


def log_p(x: torch.Tensor) -> np.ndarray:
    """log N(x; b, W Wᵀ + σ² I), written out with numpy."""
    cov = (W @ W.T).numpy() + SIGMA**2 * np.eye(4)
    v = x.flatten(1).double().numpy() - B.numpy()
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("bi,ij,bj->b", v, np.linalg.inv(cov), v)
    return -0.5 * (4 * math.log(2 * math.pi) + logdet + quad)


def images(n: int = 6) -> torch.Tensor:
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noise = SIGMA * torch.randn(
        n, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    return (z @ W.T + B + noise).float().view(n, 1, 2, 2)


def test_the_bound_rises_with_k_toward_the_true_log_likelihood():
    x = images()
    model = LinearGaussian(offset=0.4, spread=2.0)  # a poor posterior: a loose bound at k = 1
    truth = log_p(x)
    bounds = {
        k: importance_weighted_bound(model, x, k, torch.Generator().manual_seed(0)).numpy()
        for k in (1, 10, 1_000)
    }
    assert bounds[1].mean() < bounds[10].mean() < bounds[1_000].mean()
    # at k = 1,000 each estimate is within Monte-Carlo error of log p(x) (±0.05 nats per image
    # here, measured: at k = 100,000 they agree to 0.01), and so is their mean
    assert np.abs(bounds[1_000] - truth).max() < 0.12
    assert abs(bounds[1_000].mean() - truth.mean()) < 0.05
    assert (truth - bounds[1]).mean() > 0.3  # k = 1 (the ELBO) was far off


def test_with_a_diagonal_true_posterior_every_weight_is_p_x():
    # make the true posterior diagonal: W with orthogonal columns
    global W
    saved = W
    W = torch.tensor([[0.6, 0.0], [0.0, 0.5], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    try:
        x = images()
        bound = importance_weighted_bound(LinearGaussian(), x, 7, torch.Generator().manual_seed(0))
        np.testing.assert_allclose(bound.numpy(), log_p(x), atol=1e-4)
    finally:
        W = saved


def test_bits_per_dim_divides_by_the_pixels_and_ln_2():
    assert float(bits_per_dim(torch.tensor(-4 * math.log(2) * 3.5), 4)) == pytest.approx(3.5)


def test_an_ae_has_no_bound():
    class Code(LinearGaussian):
        description = ModelDescription(latent_dim=2, channels=1, height=2, width=2, kind="ae")

    with pytest.raises(ValueError, match="an AE has no posterior"):
        importance_weighted_bound(Code(), images(), 5, torch.Generator())
