"""The ELBO's pieces are the math they claim to be."""

from __future__ import annotations

import math

import torch

from app.models.elbo import kl_per_dim, reconstruction_nll, reparameterize
from app.models.objectives import BetaELBO, BetaTCVAE, ControlledCapacity


def test_closed_form_kl_matches_a_monte_carlo_estimate_per_dimension():
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.0, 1.5, -0.7, 0.2]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0, 0.8, -3.0]], dtype=torch.float64)
    eps = torch.randn(400_000, 4, generator=g, dtype=torch.float64)
    z = reparameterize(mu, logvar, eps)  # samples of q(z|x)
    log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp())
    log_p = -0.5 * (math.log(2 * math.pi) + z**2)
    mc = (log_q - log_p).mean(0)
    closed = kl_per_dim(mu, logvar)[0]
    assert torch.allclose(closed, mc, atol=0.01), (closed, mc)
    assert closed[0].item() == 0.0  # q = prior: no information, zero KL


def test_reparameterised_samples_have_the_encoders_mean_and_std_and_carry_gradients():
    mu = torch.tensor([2.0, -1.0], requires_grad=True)
    logvar = torch.tensor([0.5, -2.0], requires_grad=True)
    eps = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(1))
    z = reparameterize(mu, logvar, eps)
    assert torch.allclose(z.mean(0), mu, atol=0.01)
    assert torch.allclose(z.std(0), torch.exp(0.5 * logvar), atol=0.01)
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    assert torch.allclose(mu.grad, torch.full((2,), 200_000.0))


def test_bernoulli_nll_is_the_summed_binary_cross_entropy():
    x = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]]])
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum()
    assert torch.allclose(reconstruction_nll(logits, x, "bernoulli"), expected.reshape(1))


def test_gaussian_nll_includes_its_normaliser():
    x = torch.full((1, 3, 2, 2), 0.5)
    decoded = torch.zeros(1, 3, 2, 2)  # sigmoid(0) = 0.5: a perfect mean
    nll = reconstruction_nll(decoded, x, "gaussian", gaussian_sigma=0.1)
    assert torch.allclose(nll, torch.tensor([12 * math.log(0.1 * math.sqrt(2 * math.pi))]))


def test_beta_weights_only_the_kl_term():
    nll = torch.tensor([100.0, 120.0])
    mu, logvar = torch.ones(2, 3), torch.zeros(2, 3)  # KL = 0.5 per latent
    z = mu
    for beta in (1.0, 4.0):
        t = BetaELBO(beta)(nll, mu, logvar, z, 0)
        assert torch.allclose(t.kl, torch.full((3,), 0.5))
        assert math.isclose(t.loss.item(), 110.0 + beta * 1.5)


def test_controlled_capacity_targets_a_kl_that_rises_linearly():
    obj = ControlledCapacity(gamma=10.0, capacity_max=20.0, capacity_steps=100)
    assert obj.capacity(0) == 0 and obj.capacity(50) == 10 and obj.capacity(1000) == 20
    nll, mu, logvar = torch.tensor([10.0]), torch.ones(1, 4), torch.zeros(1, 4)  # KL = 2
    assert math.isclose(obj(nll, mu, logvar, mu, 0).loss.item(), 10 + 10 * 2)
    assert math.isclose(obj(nll, mu, logvar, mu, 10).loss.item(), 10 + 10 * 0)


def test_tc_penalty_is_larger_for_correlated_latents():
    g = torch.Generator().manual_seed(0)
    n = 512
    base = torch.randn(n, 1, generator=g)
    logvar = torch.full((n, 2), -4.0)
    eps = torch.randn(n, 2, generator=g)
    indep_mu = torch.randn(n, 2, generator=g)
    corr_mu = torch.cat([base, base + 0.05 * torch.randn(n, 1, generator=g)], dim=1)
    obj = BetaTCVAE(beta=1.0, alpha=0.0, gamma=0.0, dataset_size=n)
    nll = torch.zeros(n)

    def tc(mu: torch.Tensor) -> float:
        return obj(nll, mu, logvar, reparameterize(mu, logvar, eps), 0).loss.item()

    assert tc(corr_mu) > tc(indep_mu) + 0.5


def test_kl_warm_up_ramps_the_weight_then_is_the_plain_objective():
    obj = BetaELBO(beta=1.0, warmup_steps=100)
    nll, mu, logvar = torch.tensor([50.0]), torch.ones(1, 2), torch.zeros(1, 2)  # KL = 1
    assert math.isclose(obj(nll, mu, logvar, mu, 0).loss.item(), 50.0)
    assert math.isclose(obj(nll, mu, logvar, mu, 50).loss.item(), 50.5)
    assert math.isclose(obj(nll, mu, logvar, mu, 100).loss.item(), 51.0)
    assert math.isclose(obj(nll, mu, logvar, mu, 5000).loss.item(), 51.0)
