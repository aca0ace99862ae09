"""`latent-explorer import lightning CKPT --config YAML`: checkpoints written by Lightning's own
`Trainer` (lightning is a test extra) for a module laid out as AntixK/PyTorch-VAE's
`VAEXperiment` around its `VanillaVAE` or `BetaVAE`, after a few training steps; the import's μ,
log σ² and pixels against that module's own forward passes; bad checkpoints and YAMLs refused in
one line naming the file.

`VanillaVAE` below is PyTorch-VAE's network as its models/vanilla_vae.py builds it (Apache-2.0,
AntixK), reduced to what the test calls: the module the checkpoint comes from, written
independently of app/models/vae.py."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from torch import nn

from app.checkpoints import load_checkpoint
from app.cli import main
from app.importers import ModelImportError
from app.importers.lightning import import_lightning
from app.main import create_app
from app.models import ConfigError, ModelConfig
from app.settings import Settings

L = pytest.importorskip("lightning")

LATENTS = 6
KLD_WEIGHT = 0.00025


class VanillaVAE(nn.Module):
    def __init__(self, in_channels: int, latent_dim: int, hidden_dims=None, **kwargs) -> None:
        super().__init__()
        hidden_dims = list(hidden_dims or [32, 64, 128, 256, 512])
        modules = []
        for h_dim in hidden_dims:
            modules.append(nn.Sequential(
                nn.Conv2d(in_channels, out_channels=h_dim, kernel_size=3, stride=2, padding=1),
                nn.BatchNorm2d(h_dim), nn.LeakyReLU()))  # fmt: skip
            in_channels = h_dim
        self.encoder = nn.Sequential(*modules)
        self.fc_mu = nn.Linear(hidden_dims[-1] * 4, latent_dim)
        self.fc_var = nn.Linear(hidden_dims[-1] * 4, latent_dim)
        self.decoder_input = nn.Linear(latent_dim, hidden_dims[-1] * 4)
        hidden_dims.reverse()
        modules = []
        for i in range(len(hidden_dims) - 1):
            modules.append(nn.Sequential(
                nn.ConvTranspose2d(hidden_dims[i], hidden_dims[i + 1], kernel_size=3, stride=2,
                                   padding=1, output_padding=1),
                nn.BatchNorm2d(hidden_dims[i + 1]), nn.LeakyReLU()))  # fmt: skip
        self.decoder = nn.Sequential(*modules)
        self.final_layer = nn.Sequential(
            nn.ConvTranspose2d(hidden_dims[-1], hidden_dims[-1], kernel_size=3, stride=2,
                               padding=1, output_padding=1),
            nn.BatchNorm2d(hidden_dims[-1]), nn.LeakyReLU(),
            nn.Conv2d(hidden_dims[-1], out_channels=3, kernel_size=3, padding=1),
            nn.Tanh())  # fmt: skip

    def encode(self, x):
        result = torch.flatten(self.encoder(x), start_dim=1)
        return [self.fc_mu(result), self.fc_var(result)]

    def decode(self, z):
        result = self.decoder_input(z).view(-1, 512, 2, 2)
        return self.final_layer(self.decoder(result))

    def forward(self, x):
        mu, log_var = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return self.decode(z), x, mu, log_var


class VAEXperiment(L.LightningModule):
    """PyTorch-VAE's experiment.py: the network as self.model, its loss with M_N = kld_weight."""

    def __init__(self, model: nn.Module, beta: float = 1.0) -> None:
        super().__init__()
        self.model, self.beta = model, beta

    def training_step(self, batch, batch_idx):
        recons, x, mu, log_var = self.model(batch[0])
        kld = torch.mean(-0.5 * torch.sum(1 + log_var - mu**2 - log_var.exp(), dim=1), dim=0)
        return F.mse_loss(recons, x) + self.beta * KLD_WEIGHT * kld

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.005)


def yaml_text(name: str = "VanillaVAE", **model_params) -> str:
    params = {"name": name, "in_channels": 3, "latent_dim": LATENTS} | model_params
    lines = "\n".join(f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {v}"
                      for k, v in params.items())  # fmt: skip
    return (
        f"model_params:\n{lines}\n\ndata_params:\n  data_path: 'Data/'\n  patch_size: 64\n\n"
        f"exp_params:\n  LR: 0.005\n  kld_weight: {KLD_WEIGHT}\n  manual_seed: 1265\n"
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(the module after 3 Lightning steps in eval mode, its last.ckpt, its vae.yaml)."""
    folder = tmp_path_factory.mktemp("lightning")
    torch.manual_seed(0)
    module = VAEXperiment(VanillaVAE(3, LATENTS))
    images = torch.rand(24, 3, 64, 64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=8)
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, loader)
    ckpt = folder / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    config = folder / "vae.yaml"
    config.write_text(yaml_text())
    return module.eval(), ckpt, config


def test_an_import_encodes_and_decodes_as_the_module_it_came_from(trained, tmp_path):
    module, ckpt, config = trained
    # batch norm's running statistics moved in training: an import that dropped them would differ
    assert module.model.encoder[0][1].running_mean.abs().max() > 1e-3
    imported = import_lightning(ckpt, config, tmp_path / "out")
    served = load_checkpoint(tmp_path / "out").served().model
    torch.manual_seed(1)
    x, z = torch.rand(5, 3, 64, 64), torch.randn(5, LATENTS)
    with torch.inference_mode():
        mu, log_var = module.model.encode(x)
        posterior = served.encode(x)
        torch.testing.assert_close(posterior.mean, mu, atol=1e-5, rtol=0)
        torch.testing.assert_close(posterior.logvar, log_var, atol=1e-5, rtol=0)
        theirs = module.model.decode(z)
        assert theirs.min() < 0  # tanh outputs below 0 exist, and are served as black
        torch.testing.assert_close(served.decode(z), theirs.clamp(0, 1), atol=1e-5, rtol=0)
        one = served.decode(z[2:3])  # alone or in a batch: the same bytes
        assert torch.equal(one, served.decode(z)[2:3])
    cfg, card = imported.config, imported.card
    assert (cfg.architecture, cfg.hidden_dims, cfg.image_size) == (
        "pytorch-vae", (32, 64, 128, 256, 512), 64)  # fmt: skip
    # their MSE mean over 3·64·64 values + kld_weight·KL is the −ELBO of σ² = N·kld_weight/2
    assert cfg.gaussian_sigma == pytest.approx(math.sqrt(3 * 64 * 64 * KLD_WEIGHT / 2))
    assert cfg.beta == 1.0 and cfg.likelihood == "gaussian"
    source = card.to_json()["source"]
    assert source["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert source["global_step"] == 3 and source["lightning_version"] == L.__version__


def test_the_elbo_terms_are_scored_as_a_gaussian_of_the_clamped_means(trained, tmp_path):
    module, ckpt, config = trained
    served = load_checkpoint(import_lightning(ckpt, config, tmp_path / "out").path).served()
    x, z = torch.rand(2, 3, 64, 64), torch.randn(2, LATENTS)
    sigma = served.model.description.gaussian_sigma
    with torch.inference_mode():
        means = module.model.decode(z).clamp(0, 1)
        expected = torch.distributions.Normal(means, sigma).log_prob(x).flatten(1).sum(1)
        got = served.model.log_likelihood(x, z)
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-6)


def test_the_command_writes_a_folder_that_serves_and_refuses_to_replace_it(
    trained, tmp_path, capsys
):
    _, ckpt, config = trained
    out = tmp_path / "checkpoints" / "celeba-vanilla"
    argv = ["import", "lightning", str(ckpt), "--config", str(config), "--out", str(out)]
    assert main(argv) == 0
    assert f"{LATENTS} latents, 3×64×64" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["objective"]["pytorch_vae_model"] == "VanillaVAE"
    assert card["command"].startswith("latent-explorer import lightning ")
    assert main(argv) == 2
    assert "exists: refusing to replace it" in capsys.readouterr().err
    settings = Settings(checkpoints_dir=out.parent, cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings)) as client:
        assert client.get("/?model=celeba-vanilla").status_code == 200
        png = client.get("/api/models/celeba-vanilla/decode.png", params={"z": "0,1,0,0,-1,0"})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"


def test_a_beta_vae_carries_its_beta_and_its_capacity_objective(trained, tmp_path):
    _, ckpt, _ = trained  # BetaVAE's networks are VanillaVAE's: the same tensors load
    for loss_type, objective, beta in (("H", "beta", 10.0), ("B", "capacity", 1000.0)):
        yml = tmp_path / f"{loss_type}.yaml"
        yml.write_text(yaml_text("BetaVAE", loss_type=loss_type, beta=10.0, gamma=1000.0))
        cfg = import_lightning(ckpt, yml, tmp_path / loss_type).config
        assert (cfg.objective, cfg.beta) == (objective, beta)


def _edited(ckpt: Path, tmp_path: Path, change) -> Path:
    saved = torch.load(ckpt, weights_only=True)
    change(saved)
    out = tmp_path / "edited.ckpt"
    torch.save(saved, out)
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["state_dict"].pop("model.fc_var.bias"), r"missing model\.fc_var\.bias$"),
        (lambda s: s["state_dict"].update({"model.extra.weight": torch.zeros(2)}),
         r"not of VanillaVAE's networks: model\.extra\.weight$"),
        (lambda s: s["state_dict"].update({"other.weight": torch.zeros(2)}),
         r"not of VanillaVAE's networks: other\.weight$"),
        (lambda s: s["state_dict"]["model.fc_mu.weight"].fill_(math.nan), r"NaN or infinite"),
        (lambda s: s.pop("state_dict"), r"no 'state_dict' in it \(not a Lightning checkpoint\)"),
    ],
)  # fmt: skip
def test_a_checkpoint_with_other_tensors_is_refused_naming_them(trained, tmp_path, change, message):
    _, ckpt, config = trained
    edited = _edited(ckpt, tmp_path, change)
    with pytest.raises(ModelImportError, match=message) as caught:
        import_lightning(edited, config, tmp_path / "out")
    assert str(caught.value).startswith(f"{edited}: ") and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


class Marker:
    """Unpickling this writes a file: what a pickled object in a checkpoint could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_and_nothing_runs(trained, tmp_path):
    _, ckpt, config = trained
    marker = tmp_path / "ran"
    edited = tmp_path / "evil.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    saved["hyper_parameters"] = Marker(str(marker))
    edited.write_bytes(pickle.dumps(saved))  # torch.load reads plain pickles too
    with pytest.raises(ModelImportError, match=r"evil\.ckpt: refused: .*Nothing in it was run"):
        import_lightning(edited, config, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (yaml_text("VQVAE"), r"model_params\.name 'VQVAE' is not a PyTorch-VAE model imported"),
        (yaml_text(in_channels=1), r"in_channels must be 3 .*got 1"),
        (yaml_text(latent_dim=7), r"last\.ckpt: model\.fc_mu\.weight has shape \(6, 2048\), but"),
        (yaml_text(hidden_dims=[32, 64, 128, 256, 256]),
         r"model\.encoder\.4\.0\.weight has shape \(512, 256, 3, 3\), but .* \(256, 256, 3, 3\)"),
        (yaml_text(hidden_dims=[32, 64]), r"image_size must be 8: 2 stride-2 convolutions"),
        (yaml_text().replace("patch_size: 64", "patch_size: 48"), r"image_size must be 64"),
        (yaml_text().replace(f"kld_weight: {KLD_WEIGHT}", "kld_weight: -1"),
         r"exp_params\.kld_weight must be a number > 0"),
        (yaml_text(hidden_dims=[64] * 9), r"hidden_dims must list 1\.\.8 widths, got 9"),
        ("model_params: [1, 2\n", r"vae\.yaml: not YAML"),
        ("model_params: !!python/object/apply:os.system ['true']\n", r"vae\.yaml: not YAML"),
    ],
)  # fmt: skip
def test_a_bad_config_is_refused_in_one_line_naming_the_file(trained, tmp_path, text, message):
    _, ckpt, _ = trained
    yml = tmp_path / "vae.yaml"
    yml.write_text(text)
    with pytest.raises(ModelImportError, match=message) as caught:
        import_lightning(ckpt, yml, tmp_path / "out")
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()
    assert str(caught.value).startswith((f"{yml}: ", f"{ckpt}: "))


def test_the_pytorch_vae_config_is_checked_and_keeps_older_configs_as_they_were():
    cfg = ModelConfig(architecture="pytorch-vae", hidden_dims=(8, 16), image_size=8, channels=3,
                      likelihood="gaussian")  # fmt: skip
    assert ModelConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    assert cfg.to_json()["hidden_dims"] == [8, 16]
    assert "hidden_dims" not in ModelConfig().to_json()  # every conv and mlp config unchanged
    for bad, message in (
        ({"hidden_dims": (8,)}, r"hidden_dims is for the pytorch-vae architecture"),
        ({"architecture": "pytorch-vae", "hidden_dims": (8,), "image_size": 4, "channels": 1,
          "likelihood": "gaussian"}, r"channels must be 3"),
        ({"architecture": "pytorch-vae", "hidden_dims": (8,), "image_size": 4, "channels": 3},
         r"a vae with a gaussian likelihood"),
        ({"architecture": "pytorch-vae", "hidden_dims": (2000,), "image_size": 4, "channels": 3,
          "likelihood": "gaussian"}, r"each of hidden_dims must be an integer in 1\.\.1,024"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            ModelConfig(**bad)
    with pytest.raises(ConfigError, match=r"hidden_dims must be a list of integers"):
        ModelConfig.from_json(cfg.to_json() | {"hidden_dims": [8, True]})
