"""A model's prior (app/models/priors.py): N(0, I) as before, and an equal-weight mixture of
diagonal Gaussians (a VampPrior), checked against torch.distributions, closed forms and fresh
Monte Carlo draws; the config fields that name it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from app import inference
from app.models.config import ConfigError, ModelConfig
from app.models.elbo import kl_per_dim
from app.models.interface import ModelDescription, Posterior
from app.models.priors import (
    KL_SAMPLES,
    GaussianMixture,
    PriorError,
    StandardNormal,
    prior_kl,
)
from app.plugins import PluginError, served_object
from app.settings import Settings
from app.web.deps import latent_limit
from app.web.sliders import code_range, slider_ranges


def mixture(k: int = 3, d: int = 4, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    return GaussianMixture(2 * torch.randn(k, d, generator=g), torch.randn(k, d, generator=g) - 1)


def reference(prior: GaussianMixture) -> td.MixtureSameFamily:
    comps = td.Independent(
        td.Normal(prior.means.double(), prior.logvars.double().mul(0.5).exp()), 1
    )
    return td.MixtureSameFamily(td.Categorical(torch.ones(prior.components)), comps)


def test_the_standard_normal_samples_what_sample_prior_always_drew_and_its_kl_is_closed_form():
    prior = StandardNormal(5)
    drawn = prior.sample(7, torch.Generator().manual_seed(3))
    assert torch.equal(drawn, inference.sample_prior(5, 7, 3))
    z = torch.randn(6, 5)
    expected = td.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(prior.log_prob(z), expected, atol=1e-5, rtol=0)
    mean, logvar = torch.randn(4, 5), torch.randn(4, 5)
    kl = prior_kl(mean, logvar, prior)
    assert kl.exact and torch.equal(kl.per_latent, kl_per_dim(mean, logvar))
    torch.testing.assert_close(kl.total, kl_per_dim(mean, logvar).sum(-1))
    q = prior.marginal_quantiles([0.01, 0.5, 0.99])
    torch.testing.assert_close(
        q[:, 0], torch.tensor([-2.3263479, 0.0, 2.3263479], dtype=torch.float64)
    )


def test_a_mixtures_log_prob_is_torch_distributions_own():
    prior = mixture()
    z = 3 * torch.randn(50, 4, dtype=torch.float64)
    torch.testing.assert_close(prior.log_prob(z), reference(prior).log_prob(z), atol=1e-7, rtol=0)
    marginal = td.MixtureSameFamily(
        td.Categorical(torch.ones(3)),
        td.Normal(prior.means[:, 1].double(), prior.logvars[:, 1].double().mul(0.5).exp()),
    )
    torch.testing.assert_close(
        prior.marginal_log_prob(z)[:, 1], marginal.log_prob(z[:, 1]), atol=1e-7, rtol=0
    )


def test_a_mixtures_samples_come_from_its_components():
    prior = GaussianMixture(
        torch.tensor([[-20.0, 0.0], [0.0, 20.0], [20.0, -20.0]]), torch.full((3, 2), -4.0)
    )
    z = prior.sample(30_000, torch.Generator().manual_seed(1))
    # σ = e⁻², components 20 apart: each draw is within 1 of exactly one mean
    nearest = torch.cdist(z, prior.means).min(1)
    assert nearest.values.max() < 1.0
    counts = torch.bincount(nearest.indices, minlength=3).double() / len(z)
    torch.testing.assert_close(
        counts, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.015, rtol=0
    )
    torch.testing.assert_close(z.mean(0), prior.means.mean(0), atol=0.3, rtol=0)


def test_a_one_component_mixtures_kl_equals_the_closed_form_gaussian_kl():
    m, lv = torch.randn(2, 3).double(), torch.randn(2, 3).double()
    prior = GaussianMixture(m[:1].float(), lv[:1].float())
    mean, logvar = torch.randn(5, 3), torch.randn(5, 3)
    kl = prior_kl(mean, logvar, prior)
    # KL(N(μ, σ²) ‖ N(m, s²)) = ½ (log s²/σ² + (σ² + (μ − m)²)/s² − 1), per latent
    pm, plv = prior.means.double(), prior.logvars.double()
    closed = 0.5 * (plv - logvar.double() + (logvar.double().exp() + (mean.double() - pm) ** 2)
                    / plv.exp() - 1)  # fmt: skip
    assert not kl.exact
    torch.testing.assert_close(kl.per_latent.double(), closed, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kl.total.double(), closed.sum(-1), atol=1e-5, rtol=1e-5)


def test_a_mixtures_kl_matches_fresh_monte_carlo_and_does_not_depend_on_the_batch():
    prior = mixture(k=4, d=3, seed=2)
    g = torch.Generator().manual_seed(7)
    mean, logvar = torch.randn(3, 3, generator=g), torch.randn(3, 3, generator=g) - 1
    kl = prior_kl(mean, logvar, prior)
    # E_q[log q(z|x) − log p(z)] from 200,000 fresh draws of each q, scored by torch.distributions
    q = td.Independent(td.Normal(mean.double(), logvar.double().mul(0.5).exp()), 1)
    eps = torch.randn(200_000, 3, 3, generator=g, dtype=torch.float64)  # (S, B, D)
    z = mean.double() + logvar.double().mul(0.5).exp() * eps
    terms = q.log_prob(z) - reference(prior).log_prob(z.reshape(-1, 3)).view(200_000, 3)
    # the estimate's own error: KL_SAMPLES draws (antithetic pairs, which only help)
    allowed = 4 * terms.std(0) / math.sqrt(KL_SAMPLES)
    assert ((kl.total.double() - terms.mean(0)).abs() < allowed).all()
    assert (allowed < 2.0).all()  # below what a missing constant (3/2 log 2π = 2.76) shifts
    alone = prior_kl(mean[1:2], logvar[1:2], prior)
    assert torch.equal(alone.total[0], kl.total[1])  # the same fixed draws for every image


def test_a_mixtures_marginal_quantiles_are_where_its_cdf_reaches_them():
    prior = mixture(k=5, d=3, seed=4)
    q = prior.marginal_quantiles([0.01, 0.99])  # (2, D)
    sd = prior.logvars.double().mul(0.5).exp()
    cdf = td.Normal(prior.means.double(), sd).cdf(q[:, None, :]).mean(1)  # (2, D)
    torch.testing.assert_close(cdf, torch.tensor([[0.01] * 3, [0.99] * 3], dtype=torch.float64),
                               atol=1e-9, rtol=0)  # fmt: skip
    drawn = prior.sample(200_000, torch.Generator().manual_seed(5)).double()
    empirical = torch.quantile(drawn, torch.tensor([0.01, 0.99], dtype=torch.float64), dim=0)
    torch.testing.assert_close(q, empirical, atol=0.05, rtol=0)


def test_a_bad_mixture_is_refused():
    with pytest.raises(PriorError, match=r"\(K, D\)"):
        GaussianMixture(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(PriorError, match="finite"):
        GaussianMixture(torch.tensor([[math.nan]]), torch.zeros(1, 1))


def test_the_config_names_a_vamp_prior_and_keeps_older_configs_as_they_were():
    plain = ModelConfig()
    assert "prior" not in plain.to_json() and "prior_components" not in plain.to_json()
    vamp = ModelConfig(prior="vamp", prior_components=50)
    assert ModelConfig.from_json(vamp.to_json()) == vamp
    assert vamp.to_json()["prior"] == "vamp" and vamp.to_json()["prior_components"] == 50
    for bad, message in (
        ({"prior": "flow"}, r"prior must be one of normal, vamp, got 'flow'"),
        ({"prior": "vamp"}, r"prior_components must be an integer in 1\.\.500, got 0"),
        ({"prior_components": 3}, r"prior_components is for the vamp prior"),
        ({"prior": "vamp", "prior_components": 3, "kind": "ae"}, r"a vamp prior is for a vae"),
    ):
        with pytest.raises(ConfigError, match=message):
            ModelConfig.from_json(ModelConfig().to_json() | bad)


# --- a plugin's own prior ----------------------------------------------------------------------


class MixturePlugin(torch.nn.Module):
    """A 2-latent model of 4×4 grey images that owns a mixture prior."""

    def __init__(self, prior: object) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(
            torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
        )
        self.prior = prior

    @property
    def description(self) -> ModelDescription:
        return ModelDescription(latent_dim=2, channels=1, height=4, width=4, kind="vae")

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mean = x.flatten(1) @ self.weight.T
        return Posterior(mean, torch.zeros_like(mean))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(z @ self.weight).view(-1, 1, 4, 4)


def test_a_plugin_may_own_a_mixture_prior_which_its_samples_and_sliders_follow():
    prior = GaussianMixture(torch.tensor([[-6.0, 0.0], [6.0, 1.0]]), torch.full((2, 2), -2.0))
    served = served_object(MixturePlugin(prior), "--plugin t:build", "t:build", name="mix")
    assert served.prior is prior
    drawn = inference.sample_model_prior(served, 5, seed=3)
    assert torch.equal(drawn, prior.sample(5, torch.Generator().manual_seed(3)))
    lo, hi = prior.marginal_quantiles([0.01, 0.99]).tolist()
    ranges = slider_ranges(served)
    assert ranges == [code_range(a, b) for a, b in zip(lo, hi, strict=True)]
    assert ranges[0].lo < -6 and ranges[0].hi > 6  # both components within the slider
    assert latent_limit(served, Settings()) == Settings().max_abs_code


@pytest.mark.parametrize(
    ("prior", "message"),
    [
        ("N(0, I)", r"prior must be app\.models\.priors\.StandardNormal or GaussianMixture"),
        (StandardNormal(3), r"prior: it has 3 latents, the model 2"),
    ],
)
def test_a_plugins_prior_that_does_not_fit_is_refused_naming_it(prior, message):
    with pytest.raises(PluginError, match=r"^--plugin t:build: .*" + message):
        served_object(MixturePlugin(prior), "--plugin t:build", "t:build", name="mix")
