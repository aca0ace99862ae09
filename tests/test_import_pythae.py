"""`latent-explorer import pythae SRC`: folders written by pythae's own `model.save()` (pythae is a
test extra), after a few training steps with pythae's own loss, imported without unpickling
anything; μ and pixels of the import against pythae's own networks on the same inputs; a folder
with a network of its own refused naming its class, its pickle never run; bad folders refused in
one line naming the file."""

from __future__ import annotations

import io
import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch.distributions import Normal

from app import inference
from app.checkpoints import load_checkpoint
from app.cli import main
from app.importers import ModelImportError
from app.importers.pythae import import_pythae
from app.main import create_app
from app.models.priors import KL_SAMPLES
from app.settings import Settings

pythae_models = pytest.importorskip("pythae.models")

SHAPE = (1, 16, 16)
LATENTS = 4
VARIANTS = {
    "VAE": (pythae_models.VAE, pythae_models.VAEConfig, {}),
    "BetaVAE": (pythae_models.BetaVAE, pythae_models.BetaVAEConfig, {"beta": 4.0}),
    "BetaTCVAE": (pythae_models.BetaTCVAE, pythae_models.BetaTCVAEConfig, {"beta": 6.0}),
    "FactorVAE": (pythae_models.FactorVAE, pythae_models.FactorVAEConfig, {"gamma": 10.0}),
    "IWAE": (pythae_models.IWAE, pythae_models.IWAEConfig, {"number_samples": 3}),
    "VAMP": (pythae_models.VAMP, pythae_models.VAMPConfig,
             {"number_components": 5, "linear_scheduling_steps": 3}),
}  # fmt: skip


def trained_pythae(kind: str, loss: str = "bce", **extra):
    """A pythae model of `kind` after 10 Adam steps on its own loss over random images."""
    model_cls, config_cls, settings = VARIANTS[kind]
    torch.manual_seed(0)
    config = config_cls(input_dim=SHAPE, latent_dim=LATENTS, reconstruction_loss=loss,
                        **settings, **extra)  # fmt: skip
    model = model_cls(config)
    x = torch.rand(64, *SHAPE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(10):
        out = model({"data": x}, epoch=1)
        opt.zero_grad()
        (out.autoencoder_loss if kind == "FactorVAE" else out.loss).backward()
        opt.step()
    return model.eval()


def saved(model, folder: Path) -> Path:
    model.save(str(folder))
    return folder


@pytest.mark.parametrize("kind", list(VARIANTS))
@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_an_import_encodes_and_decodes_as_pythaes_own_networks(kind, loss, tmp_path):
    theirs = trained_pythae(kind, loss)
    ckpt = import_pythae(saved(theirs, tmp_path / "src"), tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.pkl"))
    served = load_checkpoint(tmp_path / "out").served().model
    x = torch.rand(8, *SHAPE)
    z = torch.randn(8, LATENTS)
    with torch.inference_mode():
        mine = served.encode(x)
        their = theirs.encoder(x)
        torch.testing.assert_close(mine.mean, their.embedding, atol=1e-5, rtol=0)
        torch.testing.assert_close(mine.logvar, their.log_covariance, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            served.decode(z), theirs.decoder(z).reconstruction.view(8, *SHAPE), atol=1e-5, rtol=0
        )
    cfg = ckpt.config
    assert (cfg.likelihood, cfg.gaussian_sigma) == (
        ("bernoulli", 0.1) if loss == "bce" else ("gaussian", 1.0)
    )
    assert ckpt.card.source is not None and ckpt.card.source.repository == (
        "clementchadebec/benchmark_VAE"
    )


def test_the_command_writes_a_folder_and_refuses_to_replace_it(tmp_path, capsys):
    src = saved(trained_pythae("BetaVAE"), tmp_path / "src")
    out = tmp_path / "checkpoints" / "mine"
    assert main(["import", "pythae", str(src), "--out", str(out)]) == 0
    assert "4 latents, 1×16×16" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["objective"]["beta"] == 4.0 and card["objective"]["pythae_model"] == "BetaVAE"
    assert main(["import", "pythae", str(src), "--out", str(out)]) == 2
    assert "exists: refusing to replace it" in capsys.readouterr().err
    # served from the checkpoints folder like any other model
    settings = Settings(checkpoints_dir=out.parent, cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings)) as client:
        assert client.get("/?model=mine").status_code == 200
        png = client.get("/api/models/mine/decode.png", params={"z": "0,0.5,0,-1"})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"


class Marker:
    """Unpickling this writes a file: what a pickled network could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_network_of_its_own_is_refused_naming_its_class_and_its_pickle_never_runs(tmp_path):
    src = saved(trained_pythae("VAE"), tmp_path / "src")
    marker = tmp_path / "ran"
    (src / "encoder.pkl").write_bytes(pickle.dumps(Marker(str(marker))))
    with pytest.raises(ModelImportError, match=r"encoder\.pkl: a network of the model's own"):
        import_pythae(src, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_the_refusal_names_a_class_pickled_by_value(tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    src = saved(trained_pythae("VAE"), tmp_path / "src")

    class MyEncoder(torch.nn.Module):
        pass

    (src / "encoder.pkl").write_bytes(cloudpickle.dumps(MyEncoder()))
    with pytest.raises(ModelImportError, match=r"\(MyEncoder\)"):
        import_pythae(src, tmp_path / "out")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "NotAModel"}, r"model_config\.json: name 'NotAModel' is not a pythae"),
        ({"name": None}, r"model_config\.json: name None is not a pythae"),
        ({"latent_dim": 5}, r"model\.pt: encoder\.head\.weight has shape \(8, 512\), but"),
        ({"input_dim": [1, 16, 12]}, r"input_dim must be \[channels, side, side\]"),
        ({"uses_default_decoder": False}, r"uses_default_decoder is False: .* plugin"),
        ({"reconstruction_loss": "l1"}, r"reconstruction_loss must be mse or bce, got 'l1'"),
    ],
)
def test_a_bad_config_is_refused_in_one_line_naming_the_file(tmp_path, change, message):
    src = saved(trained_pythae("VAE"), tmp_path / "src")
    config = json.loads((src / "model_config.json").read_text())
    (src / "model_config.json").write_text(json.dumps(config | change))
    with pytest.raises(ModelImportError, match=message) as caught:
        import_pythae(src, tmp_path / "out")
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()


def test_missing_or_extra_weights_are_refused_naming_them(tmp_path):
    src = saved(trained_pythae("VAE"), tmp_path / "src")
    state = torch.load(src / "model.pt", weights_only=True)
    del state["model_state_dict"]["encoder.log_var.bias"]
    state["model_state_dict"]["encoder.extra.weight"] = torch.zeros(2)
    torch.save(state, src / "model.pt")
    with pytest.raises(ModelImportError, match=r"missing encoder\.log_var\.bias; not of pythae"):
        import_pythae(src, tmp_path / "out")
    (src / "model.pt").unlink()
    with pytest.raises(ModelImportError, match=r"model\.pt: missing"):
        import_pythae(src, tmp_path / "out")


def test_a_pythae_model_object_is_served_from_python_as_its_import_is(tmp_path):
    import httpx
    from PIL import Image

    from latent_explorer import ServeError, serve

    theirs = trained_pythae("BetaVAE")
    z = torch.tensor([[0.5, -1.0, 0.0, 1.5]])
    with torch.inference_mode():
        expected = theirs.decoder(z).reconstruction.view(*SHAPE[1:]).numpy()
    with serve(models={"from-pythae": theirs}) as explorer:
        r = httpx.get(f"{explorer.url}api/models/from-pythae/decode.png",
                      params={"z": "0.5,-1,0,1.5"}, timeout=30)  # fmt: skip
        assert r.status_code == 200
        shown = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"), dtype=np.float64)
        np.testing.assert_allclose(shown / 255, expected, atol=0.5 / 255 + 1e-6)  # 8-bit PNG
        assert httpx.get(f"{explorer.url}api/models", timeout=30).json()[0]["latent_dim"] == 4
    assert theirs.training is False and next(theirs.parameters()).requires_grad  # left alone
    odd = trained_pythae("VAE")
    odd.model_config.uses_default_decoder = False
    with pytest.raises(ServeError, match=r"^models\['odd'\] \(VAE\): .*uses_default_decoder"):
        serve(models={"odd": odd})


# --- pythae's convolutional benchmark networks -------------------------------------------------

BENCHMARKS = {"MNIST": (1, 28, 28), "CIFAR": (3, 32, 32), "CELEBA": (3, 64, 64)}


def trained_benchmark(
    which: str, kind: str = "VAE", loss: str = "bce", encoder_of: str = "", family: str = "Conv"
):
    """A pythae model of `kind` on its `which` benchmark networks of `family` (Conv or ResNet;
    the encoder's from `encoder_of` where given) after 2 Adam steps, so batch norm's running
    statistics moved."""
    from importlib import import_module

    model_cls, config_cls, settings = VARIANTS[kind]
    shape = BENCHMARKS[which]
    torch.manual_seed(0)
    config = config_cls(input_dim=shape, latent_dim=LATENTS, reconstruction_loss=loss, **settings)
    nets = import_module(f"pythae.models.nn.benchmarks.{(encoder_of or which).lower()}")
    encoder = getattr(nets, f"Encoder_{family}_VAE_{encoder_of or which}")(config)
    nets = import_module(f"pythae.models.nn.benchmarks.{which.lower()}")
    decoder = getattr(nets, f"Decoder_{family}_AE_{which}")(config)
    model = model_cls(config, encoder=encoder, decoder=decoder)
    if encoder_of:
        return model
    x = torch.rand(8, *shape)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        out = model({"data": x}, epoch=1)
        opt.zero_grad()
        (out.autoencoder_loss if kind == "FactorVAE" else out.loss).backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize(
    ("family", "which", "kind", "loss"),
    [("Conv", "MNIST", "VAE", "bce"), ("Conv", "CIFAR", "BetaVAE", "mse"),
     ("Conv", "CELEBA", "BetaTCVAE", "mse"), ("ResNet", "MNIST", "BetaVAE", "bce"),
     ("ResNet", "CIFAR", "VAE", "mse"), ("ResNet", "CELEBA", "FactorVAE", "mse")],
)  # fmt: skip
def test_the_benchmark_networks_import_from_their_names_and_equal_pythaes_own(
    family, which, kind, loss, tmp_path
):
    theirs = trained_benchmark(which, kind, loss, family=family)
    if family == "Conv":  # batch norm's running statistics moved: an import dropping them differs
        assert theirs.encoder.layers[0][1].running_mean.abs().max() > 1e-3
    ckpt = import_pythae(saved(theirs, tmp_path / "src"), tmp_path / "out")
    assert ckpt.config.architecture == f"pythae-{family.lower()}"
    words = "convolutional" if family == "Conv" else "ResNet"
    assert f"{words} benchmark networks" in (ckpt.card.recipe or "")
    served = load_checkpoint(tmp_path / "out").served().model
    shape = BENCHMARKS[which]
    x, z = torch.rand(3, *shape), torch.randn(3, LATENTS)
    with torch.inference_mode():
        mine, their = served.encode(x), theirs.encoder(x)
        torch.testing.assert_close(mine.mean, their.embedding, atol=1e-5, rtol=0)
        torch.testing.assert_close(mine.logvar, their.log_covariance, atol=1e-5, rtol=0)
        pixels = theirs.decoder(z).reconstruction
        torch.testing.assert_close(served.decode(z), pixels, atol=1e-5, rtol=0)


def test_benchmark_networks_that_do_not_pair_or_fit_are_refused_in_one_line(tmp_path):
    mixed = saved(trained_benchmark("CIFAR", encoder_of="MNIST"), tmp_path / "mixed")
    pair = r"encoder\.pkl: Encoder_Conv_VAE_MNIST, decoder\.pkl: Decoder_Conv_AE_CIFAR"
    with pytest.raises(ModelImportError, match=r"one pair of pythae.s benchmark .*" + pair):
        import_pythae(mixed, tmp_path / "out")
    src = saved(trained_benchmark("MNIST"), tmp_path / "src")
    config = json.loads((src / "model_config.json").read_text())
    (src / "model_config.json").write_text(json.dumps(config | {"input_dim": [1, 32, 32]}))
    with pytest.raises(ModelImportError, match=r"input_dim is \[1, 32, 32\], but pythae's MNIST "
                       r"benchmark networks take \[1, 28, 28\]") as caught:  # fmt: skip
        import_pythae(src, tmp_path / "out")
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()


def test_a_class_of_its_own_under_a_benchmarks_name_is_refused(tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    src = saved(trained_benchmark("MNIST"), tmp_path / "src")

    class Encoder_Conv_VAE_MNIST(torch.nn.Module):  # noqa: N801 - the name it borrows
        pass  # not pythae's: no BaseEncoder behind it

    (src / "encoder.pkl").write_bytes(cloudpickle.dumps(Encoder_Conv_VAE_MNIST()))
    with pytest.raises(ModelImportError, match=r"encoder\.pkl: a network of the model's own"):
        import_pythae(src, tmp_path / "out")


def test_a_pythae_model_on_benchmark_networks_is_served_from_python(tmp_path):
    from latent_explorer import serve

    theirs = trained_benchmark("MNIST")
    with serve(models={"bench": theirs}) as explorer:
        import httpx

        info = httpx.get(f"{explorer.url}api/models/bench", timeout=30).json()
        assert (info["latent_dim"], info["channels"], info["image_size"]) == (LATENTS, 1, 28)


# --- VAMP: a VampPrior over learned pseudo-inputs ----------------------------------------------


def half_log_2pi(d: int) -> float:
    """pythae's _log_p_z leaves out each latent's −½ log 2π (its log q(z|x) too, so its KL is
    right): log p(z) = _log_p_z(z) − D/2 · log 2π."""
    return d / 2 * math.log(2 * math.pi)


def their_pseudo_inputs(theirs) -> torch.Tensor:
    k = theirs.number_components
    with torch.no_grad():
        return theirs.pseudo_inputs(torch.eye(k)).reshape(k, *theirs.model_config.input_dim)


def vamp_checks(theirs, served, shape) -> None:
    """μ, pixels, the pseudo-inputs and log p(z) of the import against pythae's own."""
    x, z = torch.rand(3, *shape), 2 * torch.randn(9, LATENTS)
    with torch.inference_mode():
        mine, their = served.model.encode(x), theirs.encoder(x)
        torch.testing.assert_close(mine.mean, their.embedding, atol=1e-5, rtol=0)
        torch.testing.assert_close(served.model.decode(z), theirs.decoder(z).reconstruction.view(
            9, *shape), atol=1e-5, rtol=0)  # fmt: skip
        assert torch.equal(served.pseudo_inputs, their_pseudo_inputs(theirs))
        expected = theirs._log_p_z(z) - half_log_2pi(LATENTS)
        torch.testing.assert_close(served.prior.log_prob(z), expected, atol=1e-5, rtol=0)


def test_a_vamp_import_owns_pythaes_prior_and_keeps_its_settings(tmp_path):
    theirs = trained_pythae("VAMP")
    ckpt = import_pythae(saved(theirs, tmp_path / "src"), tmp_path / "out")
    assert (ckpt.config.prior, ckpt.config.prior_components) == ("vamp", 5)
    kept = ckpt.card.objective
    assert (kept["number_components"], kept["linear_scheduling_steps"]) == (5, 3)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["prior"], config["prior_components"]) == ("vamp", 5)
    served = load_checkpoint(tmp_path / "out").served()
    vamp_checks(theirs, served, SHAPE)
    # the components are the encoder's posteriors of the pseudo-inputs, as pythae computes them
    with torch.inference_mode():
        their = theirs.encoder(their_pseudo_inputs(theirs))
    torch.testing.assert_close(served.prior.means, their.embedding, atol=1e-5, rtol=0)
    # draws of the mixture: their mean is the mean of the component means, their variance per
    # latent the mean of the component variances plus the variance of the component means
    z = inference.sample_model_prior(served, 100_000, seed=4).double()
    means, variances = their.embedding.double(), their.log_covariance.double().exp()
    torch.testing.assert_close(z.mean(0), means.mean(0), atol=0.01, rtol=0)
    expected = variances.mean(0) + means.var(0, unbiased=False)
    torch.testing.assert_close(z.var(0), expected, atol=0, rtol=0.02)
    assert not torch.equal(z[:5].float(), inference.sample_prior(LATENTS, 5, 4))  # not N(0, I)


@pytest.mark.parametrize(("family", "which", "loss"),
                         [("Conv", "MNIST", "bce"), ("ResNet", "CIFAR", "mse")])  # fmt: skip
def test_a_vamp_model_on_benchmark_networks_imports_and_equals_pythaes_own(
    family, which, loss, tmp_path
):
    theirs = trained_benchmark(which, "VAMP", loss, family=family)
    ckpt = import_pythae(saved(theirs, tmp_path / "src"), tmp_path / "out")
    assert ckpt.config.architecture == f"pythae-{family.lower()}"
    vamp_checks(theirs, load_checkpoint(tmp_path / "out").served(), BENCHMARKS[which])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.__setitem__("pseudo_inputs.0.weight", torch.full_like(
            s["pseudo_inputs.0.weight"], math.nan)),
         r"model\.pt: pseudo_inputs\.0\.weight holds NaN or infinite values"),
        (lambda s: s.__setitem__("pseudo_inputs.0.weight", s["pseudo_inputs.0.weight"][:, :4]),
         r"model\.pt: pseudo_inputs\.0\.weight has shape \(256, 4\), but model_config\.json's "
         r"input_dim and number_components make it \(256, 5\)"),
        (lambda s: s.__setitem__("pseudo_inputs.0.bias", torch.zeros(3)),
         r"model\.pt: pseudo_inputs\.0\.bias has shape \(3,\), but"),
        (lambda s: s.pop("pseudo_inputs.0.weight"),
         r"model\.pt: missing pseudo_inputs\.0\.weight \(a VAMP model's pseudo-inputs\)"),
    ],
)  # fmt: skip
def test_bad_pseudo_inputs_are_refused_in_one_line_naming_the_file(tmp_path, change, message):
    src = saved(trained_pythae("VAMP"), tmp_path / "src")
    state = torch.load(src / "model.pt", weights_only=True)
    change(state["model_state_dict"])
    torch.save(state, src / "model.pt")
    with pytest.raises(ModelImportError, match=message) as caught:
        import_pythae(src, tmp_path / "out")
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()
    config = json.loads((src / "model_config.json").read_text())
    (src / "model_config.json").write_text(json.dumps(config | {"number_components": 0}))
    with pytest.raises(ModelImportError, match=r"number_components must be an integer in 1\.\."):
        import_pythae(src, tmp_path / "out")


def test_a_vamp_import_is_served_its_pages_samples_and_elbo_use_its_prior(tmp_path):
    from PIL import Image

    theirs = trained_pythae("VAMP")
    out = tmp_path / "checkpoints" / "vamp"
    import_pythae(saved(theirs, tmp_path / "src"), out)
    served = load_checkpoint(out).served()
    settings = Settings(checkpoints_dir=out.parent, cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings)) as client:
        explore = client.get("/?model=vamp")
        assert explore.status_code == 200
        # the sliders span the prior's own 1st to 99th percentiles
        lo, hi = served.prior.marginal_quantiles([0.01, 0.99]).tolist()
        for d in range(LATENTS):
            tag = re.search(rf'<input type="range" id="z{d}"[^>]*>', explore.text)
            assert tag is not None
            low = float(re.search(r'min="([-0-9.]+)"', tag.group(0)).group(1))
            high = float(re.search(r'max="([-0-9.]+)"', tag.group(0)).group(1))
            assert low <= lo[d] and high >= hi[d] and high - low < (hi[d] - lo[d]) + 0.2
        # the KL bars say what they are for a mixture prior; the prior map says which prior
        legend = " ".join(explore.text.split('class="legend"')[1].split("</p>")[0].split())
        assert "vamp: A mixture prior has no KL per latent" in legend
        map_page = " ".join(client.get("/map?model=vamp").text.split())
        assert "decodings of a z drawn from its prior, a mixture of 5 Gaussians" in map_page
        card = client.get("/models/vamp")
        assert card.status_code == 200
        assert "a mixture of 5 Gaussians (a VampPrior)" in card.text
        assert "/api/models/vamp/pseudo-inputs.png" in card.text
        # the pseudo-inputs' picture is the stored tensor, a grid of 8-bit cells
        png = client.get("/api/models/vamp/pseudo-inputs.png", params={"cols": 5})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        shown = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"), dtype=np.float64)
        stored = served.pseudo_inputs.numpy()  # (5, 1, 16, 16)
        for k in range(5):
            cell = shown[2 : 2 + 16, 2 + k * 18 : 2 + k * 18 + 16] / 255
            np.testing.assert_allclose(cell, stored[k, 0], atol=0.5 / 255 + 1e-6)
        # /sample draws from the mixture: the same z as the prior itself from the seed
        sample = client.get("/api/models/vamp/sample", params={"n": 3, "seed": 11})
        assert sample.status_code == 200
        expected = served.prior.sample(3, torch.Generator().manual_seed(11))
        np.testing.assert_allclose(sample.json()["z"], expected.numpy(), atol=1e-6)
        assert client.get("/api/models/vamp/samples.png").status_code == 200
        assert client.get("/ui/vamp/gallery").status_code == 200
        mapped = client.get("/api/models/vamp/map", params={"n": 50})  # its own prior's draws
        assert mapped.status_code == 200, mapped.text
        np.testing.assert_allclose(
            mapped.json()["prior_z"], served.prior.sample(50, torch.Generator().manual_seed(
                mapped.json()["seed"])).numpy(), atol=1e-4)  # fmt: skip
        # the ELBO of an image: −ELBO = −log p(x|z=μ) + KL(q ‖ p), KL against the mixture
        x = torch.rand(*SHAPE)
        buf = io.BytesIO()
        Image.fromarray((x[0].numpy() * 255).round().astype(np.uint8)).save(buf, format="PNG")
        r = client.post("/api/models/vamp/encode", files={"file": ("x.png", buf.getvalue())})
        assert r.status_code == 200, r.text
        elbo = r.json()["elbo"]
        assert elbo["kl_note"] and "do not sum" in elbo["kl_note"]
        assert elbo["neg_elbo"] == pytest.approx(elbo["recon_nll"] + elbo["kl_total"], abs=1e-4)
        # KL(q ‖ p) against pythae's own log p(z), from 100,000 fresh draws of q(z|x)
        mu, sigma = torch.tensor(r.json()["mu"]), torch.tensor(r.json()["sigma"])
        z = mu + sigma * torch.randn(100_000, LATENTS, generator=torch.Generator().manual_seed(2))
        with torch.inference_mode():
            log_p = theirs._log_p_z(z).double() - half_log_2pi(LATENTS)
        terms = Normal(mu.double(), sigma.double()).log_prob(z.double()).sum(1) - log_p
        allowed = 4 * terms.std() / math.sqrt(KL_SAMPLES)  # the estimate's own error
        assert abs(elbo["kl_total"] - terms.mean().item()) < allowed.item()
        assert "do not sum to the total" in card.text


def test_a_vamp_models_likelihood_bound_weighs_by_pythaes_prior(tmp_path):
    from app.metrics.likelihood import importance_weighted_bound

    theirs = trained_pythae("VAMP")
    import_pythae(saved(theirs, tmp_path / "src"), tmp_path / "out")
    served = load_checkpoint(tmp_path / "out").served()
    x = torch.bernoulli(torch.rand(2, *SHAPE), generator=torch.Generator().manual_seed(1))
    k = 64
    bound = importance_weighted_bound(served.model, x, k, torch.Generator().manual_seed(5))
    # the same draws by hand, every term from pythae's own modules: log p(x|z) its decoder's
    # cross-entropy, log p(z) its _log_p_z (+ the constant it leaves out), log q(z|x) its encoder's
    g = torch.Generator().manual_seed(5)
    with torch.inference_mode():
        for b in range(2):
            out = theirs.encoder(x[b : b + 1])
            mu, logvar = out.embedding[0], out.log_covariance[0]
            z = mu + torch.exp(0.5 * logvar) * torch.randn(k, LATENTS, generator=g)
            pixels = theirs.decoder(z).reconstruction.view(k, -1).clamp(1e-7, 1 - 1e-7)
            target = x[b].view(1, -1)
            log_px = (target * pixels.log() + (1 - target) * (1 - pixels).log()).sum(1)
            log_pz = theirs._log_p_z(z) - half_log_2pi(LATENTS)
            log_qz = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
            by_hand = torch.logsumexp((log_px + log_pz - log_qz).double(), 0) - math.log(k)
            assert bound[b].item() == pytest.approx(by_hand.item(), abs=2e-3)


def test_a_pythae_vamp_object_is_served_from_python_with_its_prior():
    from app.importers.pythae import network_of
    from app.models.interface import NativeModel, describe_config

    theirs = trained_pythae("VAMP")
    network = network_of(theirs)
    served = NativeModel(network, describe_config(network.config))
    z = torch.randn(6, LATENTS)
    with torch.inference_mode():
        expected = theirs._log_p_z(z) - half_log_2pi(LATENTS)
    torch.testing.assert_close(served.prior.log_prob(z), expected, atol=1e-5, rtol=0)


def test_non_finite_pseudo_inputs_in_a_checkpoint_are_refused_naming_them(tmp_path):
    from safetensors.torch import load_file, save_file

    from app.checkpoints import CheckpointError

    import_pythae(saved(trained_pythae("VAMP"), tmp_path / "src"), tmp_path / "out")
    weights = tmp_path / "out" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["pseudo_inputs"][0, 0, 0, 0] = math.inf
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError, match=r"model\.safetensors has NaN or infinite values in "
                       r"pseudo_inputs"):  # fmt: skip
        load_checkpoint(tmp_path / "out")
