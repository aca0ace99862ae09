"""`latent-explorer import disentangling-vae`: a model of YannDubs/disentangling-vae becomes one of
our checkpoint folders that computes what theirs computes, its card says where it came from and
under which licence, and a file that is not what it should be is refused with nothing written and
nothing in it run.

The fixtures are made here: random weights for their Burgess network under their names, saved as
they save them (torch.save of the state dict) beside a specs.json like theirs. Their forward pass
is written out below with torch.nn.functional from their code's description, independently of the
importer's name table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.checkpoints import load_checkpoint
from app.cli import main
from app.data.ground_truth import DSPRITES
from app.importers import ModelImportError
from app.importers.disentangling_vae import import_disentangling_vae

COMMIT = "f0452191bab6d94eba0b4e6a065f74dcfd54ac52"
LICENSE = """MIT License

Original work Copyright (c) 2018 Schlumberger
(Heavily) Modified work Copyright 2019 Yann Dubois, Aleco Kastanos, Dave Lines, Bart Melman

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software (the licence text, shortened for the test).
"""
DSPRITES_FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")


# --- their network, as disvae/models/encoders.py and decoders.py build it ---------------------


def their_shapes(channels: int, size: int, latent_dim: int) -> dict[str, tuple[int, ...]]:
    """Their state dict's names and shapes: 32 hidden channels, 4×4 kernels, 256 hidden units;
    conv_64 and convT_64 only at 64×64."""
    conv, lin = (32, 32, 4, 4), lambda o, i: (o, i)
    shapes: dict[str, tuple[int, ...]] = {
        "encoder.conv1.weight": (32, channels, 4, 4),
        "encoder.conv2.weight": conv,
        "encoder.conv3.weight": conv,
        "encoder.lin1.weight": lin(256, 512),
        "encoder.lin2.weight": lin(256, 256),
        "encoder.mu_logvar_gen.weight": lin(2 * latent_dim, 256),
        "decoder.lin1.weight": lin(256, latent_dim),
        "decoder.lin2.weight": lin(256, 256),
        "decoder.lin3.weight": lin(512, 256),
        "decoder.convT1.weight": conv,
        "decoder.convT2.weight": conv,
        "decoder.convT3.weight": (32, channels, 4, 4),  # ConvTranspose2d: (in, out, k, k)
    }
    if size == 64:
        shapes["encoder.conv_64.weight"] = conv
        shapes["decoder.convT_64.weight"] = conv
    for name, shape in list(shapes.items()):
        out_features = shape[1] if ".convT" in name else shape[0]
        shapes[name.replace(".weight", ".bias")] = (out_features,)
    return shapes


def their_weights(
    channels: int, size: int, latent_dim: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random weights of a sensible scale (std √2/√fan-in after He et al. 2015; a transposed
    convolution of stride 2 sums a quarter of its 4×4 taps per output), so that activations
    neither vanish nor saturate the sigmoid, and biases that are not zero."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in their_shapes(channels, size, latent_dim).items():
        if name.endswith(".bias"):
            sd[name] = 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = shape[0] * 4 if ".convT" in name else math.prod(shape[1:])
            sd[name] = torch.randn(shape, generator=g) * math.sqrt(2 / fan_in)
    return sd


def their_encode(sd: dict[str, torch.Tensor], x: torch.Tensor, latent_dim: int):
    """EncoderBurgess.forward: conv1, conv2, conv3, then conv_64 at 64×64, each ReLU; lin1,
    lin2 with ReLU; mu_logvar_gen read interleaved."""
    convs = ["conv1", "conv2", "conv3"] + (["conv_64"] if x.shape[-1] == 64 else [])
    h = x
    for c in convs:
        w, b = sd[f"encoder.{c}.weight"], sd[f"encoder.{c}.bias"]
        h = F.relu(F.conv2d(h, w, b, stride=2, padding=1))
    h = h.reshape(x.shape[0], -1)
    h = F.relu(F.linear(h, sd["encoder.lin1.weight"], sd["encoder.lin1.bias"]))
    h = F.relu(F.linear(h, sd["encoder.lin2.weight"], sd["encoder.lin2.bias"]))
    out = F.linear(h, sd["encoder.mu_logvar_gen.weight"], sd["encoder.mu_logvar_gen.bias"])
    mu, logvar = out.view(-1, latent_dim, 2).unbind(-1)
    return mu, logvar


def their_decode(sd: dict[str, torch.Tensor], z: torch.Tensor, size: int) -> torch.Tensor:
    """DecoderBurgess.forward: lin1, lin2, lin3 with ReLU, view (32, 4, 4); convT_64 first at
    64×64, convT1, convT2 with ReLU, convT3 then a sigmoid."""
    h = F.relu(F.linear(z, sd["decoder.lin1.weight"], sd["decoder.lin1.bias"]))
    h = F.relu(F.linear(h, sd["decoder.lin2.weight"], sd["decoder.lin2.bias"]))
    h = F.relu(F.linear(h, sd["decoder.lin3.weight"], sd["decoder.lin3.bias"]))
    h = h.view(z.shape[0], 32, 4, 4)
    for c in (["convT_64"] if size == 64 else []) + ["convT1", "convT2"]:
        w, b = sd[f"decoder.{c}.weight"], sd[f"decoder.{c}.bias"]
        h = F.relu(F.conv_transpose2d(h, w, b, stride=2, padding=1))
    w, b = sd["decoder.convT3.weight"], sd["decoder.convT3.bias"]
    return torch.sigmoid(F.conv_transpose2d(h, w, b, stride=2, padding=1))


# --- their results/NAME folder --------------------------------------------------------------


def their_specs(channels: int, size: int, loss: str, dataset: str, latent_dim: int = 10) -> dict:
    """specs.json as their main.py writes it: every loss's hyperparameters, whichever it used."""
    return {
        "batch_size": 64, "betaB_G": 100, "betaB_finC": 25, "betaB_initC": 0, "betaH_B": 4,
        "btcvae_A": 1, "btcvae_B": 6.4, "btcvae_G": 1, "checkpoint_every": 10, "dataset": dataset,
        "epochs": 30, "eval_batchsize": 1000, "experiment": f"{loss}_{dataset}", "factor_G": 6.4,
        "img_size": [channels, size, size], "is_eval_only": False, "is_metrics": False,
        "latent_dim": latent_dim, "log_level": "info", "loss": loss, "lr": 0.0005,
        "lr_disc": 5e-05, "model_type": "Burgess", "name": f"{loss}_{dataset}", "no_cuda": False,
        "no_progress_bar": True, "no_test": False, "rec_dist": "bernoulli", "reg_anneal": 10000,
        "seed": 1234,
    }  # fmt: skip


def make_results(
    root: Path,
    channels: int = 1,
    size: int = 64,
    loss: str = "btcvae",
    dataset: str = "chairs",
    weights: dict[str, torch.Tensor] | None = None,
    license: bool = True,
    name: str | None = None,
    train_log: str | None = None,
) -> Path:
    """root/repo/results/NAME/ (default <loss>_<dataset>) with model.pt and specs.json, and
    train_losses.log where given; root/repo/LICENSE."""
    folder = root / "repo" / "results" / (name or f"{loss}_{dataset}")
    folder.mkdir(parents=True)
    sd = their_weights(channels, size, 10) if weights is None else weights
    torch.save(sd, folder / "model.pt")
    (folder / "specs.json").write_text(json.dumps(their_specs(channels, size, loss, dataset)))
    if train_log is not None:
        (folder / "train_losses.log").write_text(train_log)
    if license:
        (root / "repo" / "LICENSE").write_text(LICENSE)
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- the imported model computes what theirs computes ---------------------------------------


@pytest.mark.parametrize(
    ("channels", "size", "dataset"),
    [(1, 64, "chairs"), (3, 64, "celeba"), (1, 32, "mnist"), (3, 32, "cifar10")],
)
def test_imported_model_encodes_and_decodes_as_theirs_does(tmp_path, channels, size, dataset):
    weights = their_weights(channels, size, 10, seed=size + channels)
    src = make_results(tmp_path, channels, size, dataset=dataset, weights=weights)
    ckpt = import_disentangling_vae(src, tmp_path / "out")
    assert ckpt.path == tmp_path / "out"
    cfg = ckpt.config
    assert (cfg.kind, cfg.latent_dim, cfg.channels, cfg.image_size, cfg.likelihood) == (
        "vae", 10, channels, size, "bernoulli",
    )  # fmt: skip
    assert cfg.dataset == dataset and cfg.factor_names == ()

    x = torch.rand(6, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, logvar = ckpt.model.encode(x)
        want_mu, want_logvar = their_encode(weights, x, 10)
        assert not torch.allclose(want_mu, want_logvar, atol=1e-3)  # the two halves differ
        torch.testing.assert_close(mu, want_mu, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(logvar, want_logvar, atol=1e-5, rtol=1e-4)

        z = torch.randn(6, 10, generator=torch.Generator().manual_seed(2))
        want = their_decode(weights, z, size)
        assert want.std() > 0.1  # the images vary: a wrong layer order would show
        torch.testing.assert_close(torch.sigmoid(ckpt.model.decode(z)), want, atol=1e-5, rtol=1e-4)
        served = torch.sigmoid(ckpt.model.decode(z, batch_invariant=True))
        torch.testing.assert_close(served, want, atol=1e-5, rtol=1e-4)


def test_a_dsprites_model_gets_our_factor_names_and_its_kl_per_latent_on_our_sprites(tmp_path):
    weights = their_weights(1, 64, 10, seed=7)
    src = make_results(tmp_path, loss="betaH", dataset="dsprites", weights=weights)
    ckpt = import_disentangling_vae(src, tmp_path / "out", eval_images=300)
    assert ckpt.config.dataset == "dsprites"
    assert ckpt.config.factor_names == DSPRITES_FACTORS
    assert (ckpt.config.objective, ckpt.config.beta) == ("beta", 4.0)

    ev = ckpt.card.to_json()["eval"]
    assert ev["eval_images"] == 300
    classes = DSPRITES.sample_classes(np.random.default_rng(ev["seed"]), 300)
    x = torch.from_numpy(DSPRITES.render(classes))
    with torch.no_grad():
        mu, logvar = their_encode(weights, x, 10)
        kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(dim=0)
        recon = F.binary_cross_entropy(their_decode(weights, mu, 64), x, reduction="sum") / 300
    assert ckpt.card.to_json()["kl_per_dim"] == pytest.approx(kl.tolist(), abs=2e-4)
    assert ev["kl_total"] == pytest.approx(kl.sum().item(), abs=1e-3)
    assert ev["recon_nll"] == pytest.approx(recon.item(), rel=1e-4)
    assert ckpt.card.to_json()["active_latents"] == int((kl > 0.1).sum())


# their loss → our objective and the KL weight (disvae/models/losses.py, get_loss_f)
LOSSES = {
    "VAE": ("beta", 1.0, {"reg_anneal"}),  # rec + KL, KL ramped up: our β=1 with warm-up
    "betaH": ("beta", 4.0, {"betaH_B", "reg_anneal"}),
    "betaB": ("capacity", 1.0, {"betaB_initC", "betaB_finC", "betaB_G", "reg_anneal"}),
    "factor": ("factor", 1.0, {"factor_G", "lr_disc", "reg_anneal"}),  # KL weight 1, γ·TC
    "btcvae": ("btcvae", 6.4, {"btcvae_A", "btcvae_B", "btcvae_G", "reg_anneal"}),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_loss_maps_to_an_objective_and_keeps_only_its_own_hyperparameters(tmp_path, loss):
    src = make_results(tmp_path, loss=loss, dataset="mnist", size=32)
    card = import_disentangling_vae(src, tmp_path / "out").card.to_json()
    objective, beta, keys = LOSSES[loss]
    cfg = load_checkpoint(tmp_path / "out").config
    assert (cfg.objective, cfg.beta) == (objective, beta)
    specs = their_specs(1, 32, loss, "mnist")
    assert card["objective"] == {
        "objective": objective, "loss": loss, **{k: specs[k] for k in keys},
        "rec_dist": "bernoulli",
    }  # fmt: skip
    assert "over the first 10,000 steps" in card["recipe"]  # reg_anneal, each loss's ramp


# --- where it came from, and its licence ----------------------------------------------------


def test_card_and_readme_record_the_source_and_the_mit_notice(tmp_path):
    src = make_results(tmp_path, channels=3, loss="btcvae", dataset="celeba")
    ckpt = import_disentangling_vae(src, tmp_path / "out", commit=COMMIT)
    card = ckpt.card.to_json()
    assert card["source"] == {
        "repository": "YannDubs/disentangling-vae",
        "url": "https://github.com/YannDubs/disentangling-vae",
        "commit": COMMIT,
        "folder": "results/btcvae_celeba",
        "experiment": "btcvae_celeba",
        "imported": datetime.now(UTC).date().isoformat(),
        "model_pt_sha256": hashlib.sha256((src / "model.pt").read_bytes()).hexdigest(),
    }
    assert (card["epochs"], card["batch_size"], card["learning_rate"], card["seed"]) == (
        30, 64, 0.0005, 1234,
    )  # fmt: skip
    assert card["licence"]["name"] == "MIT"
    assert card["licence"]["text"] == LICENSE
    assert card["licence"]["copyright"] == LICENSE.splitlines()[2:4]
    assert "non-commercial research" in card["data_licence"]
    assert "kl_per_dim" not in card  # no CelebA here to measure it on

    readme = (tmp_path / "out" / "README.md").read_text()
    assert LICENSE.strip() in readme and "license: mit" in readme
    assert f"commit `{COMMIT}`" in readme and "non-commercial research" in readme
    assert "by latent-explorer" not in readme  # it was trained elsewhere


def test_without_a_licence_file_or_a_commit_the_card_says_so(tmp_path):
    src = make_results(tmp_path, license=False)
    card = import_disentangling_vae(src, tmp_path / "out").card.to_json()
    assert card["source"]["commit"] is None
    assert card["licence"]["text"] is None and card["licence"]["name"] is None
    assert "no readable LICENSE" in card["licence"]["note"]
    assert "data_licence" not in card  # chairs: no terms recorded for it


def test_the_licence_note_names_the_source_folder_not_this_machines_path(tmp_path):
    src = make_results(tmp_path, license=False)
    import_disentangling_vae(src, tmp_path / "out")
    card_text = (tmp_path / "out" / "card.json").read_text()
    note = json.loads(card_text)["licence"]["note"]
    assert "results/btcvae_chairs/../../LICENSE" in note
    for written in (card_text, (tmp_path / "out" / "README.md").read_text()):
        assert str(tmp_path) not in written and str(src.resolve()) not in written


def test_the_model_page_shows_the_source_and_the_licence(tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    src = make_results(tmp_path, channels=3, dataset="celeba")
    import_disentangling_vae(src, tmp_path / "served" / "imported", commit=COMMIT)
    with TestClient(create_app(Settings(checkpoints_dir=tmp_path / "served"))) as client:
        page = client.get("/models/imported")
    assert page.status_code == 200
    text = page.text
    assert "Trained 30 epochs × 64 by YannDubs/disentangling-vae, imported" in text
    assert "results/btcvae_celeba" in text and COMMIT in text
    assert "MIT: Original work Copyright (c) 2018 Schlumberger" in text
    assert "non-commercial research" in text
    assert "How this model was trained is not recorded" not in text


# --- a model of data not here: its KL per latent from their training log --------------------

# train_losses.log as their LossesLogger writes it (disvae/training.py): "Epoch,Loss,Value", then
# each loss's mean over the epoch, one row each; btcvae's rows, the last two of 30 epochs
THEIR_TRAIN_LOG = """Epoch,Loss,Value
28,recon_loss,6573.568754650298
28,loss,6462.125449528769
28,mi_loss,42.63537870134626
28,tc_loss,-24.2736395275782
28,dw_kl_loss,1.27260327623004
28,kl_loss,14.61
28,kl_loss_0,3.1
28,kl_loss_1,0.2
28,kl_loss_2,2.9
28,kl_loss_3,0.4
28,kl_loss_4,1.0
28,kl_loss_5,2.2
28,kl_loss_6,1.8
28,kl_loss_7,0.6
28,kl_loss_8,2.4
28,kl_loss_9,0.01
29,recon_loss,6567.773220486111
29,loss,6456.463526165675
29,mi_loss,42.65221907600524
29,tc_loss,-24.25659379504976
29,dw_kl_loss,1.2802955300088912
29,kl_loss,13.6424
29,kl_loss_0,0.05001234
29,kl_loss_1,2.2499876
29,kl_loss_2,0.0020004
29,kl_loss_3,4.500031
29,kl_loss_4,1.20003
29,kl_loss_5,0.29998
29,kl_loss_6,0.00041
29,kl_loss_7,3.74996
29,kl_loss_8,0.09002
29,kl_loss_9,1.50004
"""
LAST_EPOCH_KL = [0.05, 2.25, 0.002, 4.5, 1.2, 0.3, 0.0004, 3.75, 0.09, 1.5]  # epoch 29
BY_KL = [3, 7, 1, 9, 4, 5, 8, 0, 2, 6]  # latents by LAST_EPOCH_KL, most first
ABOVE_ONE_TENTH = [1, 3, 4, 5, 7, 9]  # latents over 0.1 nats


def test_a_model_of_data_not_here_takes_its_kl_per_latent_from_its_last_epoch_of_training(
    tmp_path,
):
    from app.inference import latent_order

    src = make_results(tmp_path, channels=3, dataset="celeba", train_log=THEIR_TRAIN_LOG)
    ckpt = import_disentangling_vae(src, tmp_path / "out")
    card = ckpt.card.to_json()
    assert card["kl_per_dim"] == pytest.approx(LAST_EPOCH_KL, abs=1e-4)
    assert card["active_latents"] == len(ABOVE_ONE_TENTH)
    assert card["eval"]["epoch"] == 29 and card["eval"]["file"] == "train_losses.log"
    assert "last epoch's training KL per latent" in card["eval"]["source"]
    assert "epoch 29" in card["eval"]["source"]
    assert latent_order(ckpt.served()) == BY_KL  # the explore page's slider order
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "0.05, 2.25, 0.00, 4.50, 1.20, 0.30, 0.00, 3.75, 0.09, 1.50" in readme


def test_the_compress_api_of_an_imported_model_of_data_not_here_answers(tmp_path):
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from app.main import create_app
    from app.settings import Settings

    src = make_results(tmp_path, channels=3, dataset="celeba", train_log=THEIR_TRAIN_LOG)
    import_disentangling_vae(src, tmp_path / "served" / "imported")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    with TestClient(create_app(Settings(checkpoints_dir=tmp_path / "served"))) as client:
        r = client.post(
            "/api/models/imported/compress", files={"file": ("face.png", png.getvalue())}
        )
    assert r.status_code == 200, r.text
    assert r.json()["kept_latents"] == ABOVE_ONE_TENTH


BROKEN_LOGS = {
    "a latent the model lacks": (
        THEIR_TRAIN_LOG + "29,kl_loss_10,0.5\n", "kl_loss_10, but the model has 10 latents"),
    "the last epoch cut short": (
        THEIR_TRAIN_LOG.replace("29,kl_loss_9,1.50004\n", ""), "epoch 29 lacks kl_loss_9"),
    "a value not a number": (
        THEIR_TRAIN_LOG.replace("29,kl_loss_3,4.500031", "29,kl_loss_3,n/a"),
        "line 27: kl_loss_3 is 'n/a', not a KL"),
    "a negative KL": (
        THEIR_TRAIN_LOG.replace("29,kl_loss_3,4.500031", "29,kl_loss_3,-4.5"),
        "line 27: kl_loss_3 is '-4.5', not a KL"),
    "not their log": ("step,kl\n1,2\n", "not disentangling-vae's Epoch,Loss,Value"),
    "no KL per latent": ("Epoch,Loss,Value\n0,loss,1.5\n", "no kl_loss_0"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN_LOGS))
def test_a_training_log_that_does_not_fit_is_refused_naming_the_problem(tmp_path, case):
    log, message = BROKEN_LOGS[case]
    src = make_results(tmp_path, train_log=log)
    before = listing(tmp_path)
    with pytest.raises(ModelImportError, match="train_losses.log") as e:
        import_disentangling_vae(src, tmp_path / "out")
    assert message in str(e.value)
    assert listing(tmp_path) == before


# --- refused, with nothing written and nothing run ------------------------------------------


class RunsCode:
    """Unpickling this runs `code` (pickle calls exec with it): what a model.pt must not do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_model_pt_that_would_run_code_is_refused_and_nothing_runs(tmp_path, how):
    src = make_results(tmp_path)
    marker = tmp_path / "ran"
    payload = {**their_weights(1, 64, 10), "extra": RunsCode(f"open({str(marker)!r}, 'w')")}
    if how == "torch.save":
        torch.save(payload, src / "model.pt")
    else:
        (src / "model.pt").write_bytes(pickle.dumps(payload))
    before = listing(tmp_path)

    with pytest.raises(ModelImportError, match="holds more than tensors") as e:
        import_disentangling_vae(src, tmp_path / "out")
    assert "Nothing in it was run" in str(e.value)
    assert "weights_only=False" not in str(e.value)  # no advice to load it unsafely
    assert not marker.exists()
    assert listing(tmp_path) == before

    # the file is live: an unsafe load would have run it
    if how == "torch.save":
        torch.load(src / "model.pt", weights_only=False)
    else:
        pickle.loads((src / "model.pt").read_bytes())
    assert marker.exists()


class CallsSystem:
    """Unpickling this calls os.system, whose module torch's weights-only loader blocks
    outright (its message then carries no "WeightsUnpickler error:" before the reason)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (lambda marker: RunsCode(f"open({str(marker)!r}, 'w')"), "exec"),
        (lambda marker: CallsSystem(f"touch {marker}"), f"{os.system.__module__}.system"),
    ],
    ids=["exec", "os.system"],
)
def test_a_refused_pickle_is_named_by_what_it_asks_for_without_advice_to_load_it(
    tmp_path, payload, refused
):
    src = make_results(tmp_path)
    marker = tmp_path / "ran"
    torch.save({**their_weights(1, 64, 10), "x": payload(marker)}, src / "model.pt")
    with pytest.raises(ModelImportError, match="holds more than tensors") as e:
        import_disentangling_vae(src, tmp_path / "out")
    message = str(e.value)
    assert f"GLOBAL {refused} " in message  # the global the file asked for
    for advice in ("weights_only", "safe_globals", "trust", "allowlist", "PyTorch 2.6"):
        assert advice not in message  # nothing that tells how to load it anyway
    assert "\n" not in message and "\x1b" not in message  # one line, no terminal escapes
    assert not marker.exists() and not (tmp_path / "out").exists()


def _missing_file(name: str):
    return lambda src: (src / name).unlink()


def _weights(change):
    def apply(src: Path) -> None:
        sd = torch.load(src / "model.pt", weights_only=True)
        change(sd)
        torch.save(sd, src / "model.pt")

    return apply


def _specs(change):
    def apply(src: Path) -> None:
        specs = json.loads((src / "specs.json").read_text())
        change(specs)
        (src / "specs.json").write_text(json.dumps(specs))

    return apply


def _nan(sd):
    sd["decoder.convT2.weight"][0, 0, 1, 1] = float("nan")


def _set(key, value):
    return lambda d: d.update({key: value})


BROKEN = {
    "no model.pt": (_missing_file("model.pt"), "model.pt is missing"),
    "no specs.json": (_missing_file("specs.json"), "specs.json is missing"),
    "specs.json not JSON": (
        lambda s: (s / "specs.json").write_text("{"), "not valid JSON"),
    "model.pt not PyTorch": (
        lambda s: (s / "model.pt").write_bytes(b"PK\x03\x04 cut"), "not a readable PyTorch file"),
    "a wrong shape": (
        _weights(_set("encoder.lin1.weight", torch.zeros(256, 100))),
        r"encoder.lin1.weight is \(256, 100\), needs \(256, 512\)"),
    "a missing tensor": (
        _weights(lambda sd: sd.pop("encoder.conv_64.bias")), "lacks encoder.conv_64.bias"),
    "an extra tensor": (
        _weights(_set("decoder.convT4.weight", torch.zeros(1))), "does not: decoder.convT4.weight"),
    "a NaN weight": (_weights(_nan), "NaN or infinite weights in decoder.convT2.weight"),
    "not a state dict": (
        lambda s: torch.save([torch.zeros(1)], s / "model.pt"), "holds a list, not a state dict"),
    "an unknown model_type": (
        _specs(_set("model_type", "Higgins")), "model_type 'Higgins' cannot be imported"),
    "an img_size it cannot build": (
        _specs(_set("img_size", [1, 128, 128])), r"img_size \[1, 128, 128\] cannot be built"),
    "a latent size that does not fit": (
        _specs(_set("latent_dim", 6)), r"mu_logvar_gen.weight is \(20, 256\), needs \(12, 256\)"),
    "an unknown loss": (_specs(_set("loss", "annealedVAE")), "unknown loss 'annealedVAE'"),
    "a hyperparameter missing": (_specs(lambda d: d.pop("btcvae_B")), "lacks btcvae_B"),
    "another rec_dist": (
        _specs(_set("rec_dist", "laplace")), "rec_dist 'laplace' cannot be imported"),
    "dSprites in colour": (
        _specs(lambda d: d.update(dataset="dsprites", img_size=[3, 64, 64])),
        "does not fit dataset 'dsprites'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_folder_is_refused_naming_the_problem_and_nothing_is_written(tmp_path, case):
    src = make_results(tmp_path)
    breakage, message = BROKEN[case]
    breakage(src)
    before = listing(tmp_path)
    with pytest.raises(ModelImportError, match=message):
        import_disentangling_vae(src, tmp_path / "checkpoints" / "out")
    assert listing(tmp_path) == before  # no folder, no temporary one beside it


# what a folder handed over by a stranger may hold in place of each file the importer reads;
# each is refused as the checkpoint loader refuses its own files, before a byte is read
HUGE = 100 * 2**20  # sparse: over every file's limit (model.pt's is 64 MiB) without using disk


def _fifo(path: Path) -> str:
    path.unlink()
    os.mkfifo(path)
    return f"{path.name} is a FIFO, not a file"


def _symlink_outside(path: Path) -> str:
    outside = path.parents[3] / "elsewhere" / path.name  # tmp_path/elsewhere: beside repo/
    outside.parent.mkdir(exist_ok=True)
    outside.write_bytes(path.read_bytes())  # the right content: only where it lies is wrong
    path.unlink()
    path.symlink_to(outside)
    return f"{path.name}: a symlink to {outside}, outside the folder"


def _dev_zero(path: Path) -> str:
    path.unlink()
    path.symlink_to("/dev/zero")
    return f"{path.name}: a symlink to /dev/zero, outside the folder"


def _too_large(path: Path) -> str:
    with path.open("r+b") as f:
        f.truncate(HUGE)
    return f"{path.name} is {HUGE:,} bytes; the limit is"


def _deep_json(path: Path) -> str:
    path.write_text("[" * 200_000 + "]" * 200_000)
    return f"{path.name} is nested too deeply"


HOSTILE = {
    f"{name} {how.__name__[1:]}": (name, how)
    for name in ("specs.json", "model.pt", "LICENSE", "train_losses.log")
    for how in (_fifo, _symlink_outside, _dev_zero, _too_large)
} | {"specs.json deep_json": ("specs.json", _deep_json)}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_refused_naming_it_before_it_is_read_and_nothing_is_written(
    tmp_path, case
):
    name, how = HOSTILE[case]
    src = make_results(tmp_path, train_log=THEIR_TRAIN_LOG)  # chairs: its KL comes from the log
    message = how(src.parents[1] / name if name == "LICENSE" else src / name)
    before = listing(tmp_path)
    with pytest.raises(ModelImportError) as e:
        import_disentangling_vae(src, tmp_path / "checkpoints" / "out")
    assert message in str(e.value)
    assert listing(tmp_path) == before


def test_an_existing_out_folder_is_refused_and_left_as_it_was(tmp_path):
    src = make_results(tmp_path)
    out = tmp_path / "checkpoints" / "taken"
    out.mkdir(parents=True)
    (out / "card.json").write_text('{"name": "taken"}')
    before = listing(tmp_path)
    with pytest.raises(ModelImportError, match="taken exists: refusing to replace it"):
        import_disentangling_vae(src, out)
    assert listing(tmp_path) == before
    assert (out / "card.json").read_text() == '{"name": "taken"}'


# --- the command line -----------------------------------------------------------------------


def test_cli_imports_into_checkpoints_under_a_name_from_the_loss_and_dataset(
    tmp_path, monkeypatch, capsys
):
    src = make_results(tmp_path, loss="betaH", dataset="mnist", size=32)
    monkeypatch.chdir(tmp_path)
    assert main(["import", "disentangling-vae", str(src), "--commit", COMMIT]) == 0
    out = tmp_path / "checkpoints" / "disvae-betah-mnist"
    assert str(out.relative_to(tmp_path)) in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt.card.to_json()["name"] == "disvae-betah-mnist"
    assert ckpt.card.to_json()["source"]["commit"] == COMMIT
    assert ckpt.card.to_json()["command"] == (
        f"latent-explorer import disentangling-vae {src} --commit {COMMIT}"
    )


def test_cli_error_is_one_line_on_stderr_and_exit_status_2(tmp_path, capsys):
    src = make_results(tmp_path)
    (src / "model.pt").unlink()
    assert main(["import", "disentangling-vae", str(src), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latent-explorer import: error: ") and "model.pt is missing" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_commit_that_is_not_a_hash(tmp_path, capsys):
    src = make_results(tmp_path)
    argv = [
        "import",
        "disentangling-vae",
        str(src),
        "--out",
        str(tmp_path / "o"),
        "--commit",
        "main",
    ]
    assert main(argv) == 2
    assert "--commit must be a git commit hash" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# their 13 published results/ folders (commit f0452191) → the names they are shipped under
PUBLISHED_NAMES = {
    "VAE_celeba": "disvae-vae-celeba", "VAE_dsprites": "disvae-vae-dsprites",
    "VAE_mnist": "disvae-vae-mnist", "betaB_celeba": "disvae-betab-celeba",
    "betaB_dsprites": "disvae-betab-dsprites", "betaH_celeba": "disvae-betah-celeba",
    "betaH_dsprites": "disvae-betah-dsprites", "btcvae_celeba": "disvae-btcvae-celeba",
    "btcvae_chairs": "disvae-btcvae-chairs", "btcvae_dsprites": "disvae-btcvae-dsprites",
    "btcvae_mnist": "disvae-btcvae-mnist", "factor_celeba": "disvae-factor-celeba",
    "factor_dsprites": "disvae-factor-dsprites",
}  # fmt: skip
# variants trained beside them (their repository's btcvae α sweep): the suffix kept as it is
VARIANT_NAMES = {
    "btcvae_celeba_a5": "disvae-btcvae-celeba_a5",
    "btcvae_celeba_a-5": "disvae-btcvae-celeba_a-5",
    "btcvae_celeba_a0": "disvae-btcvae-celeba_a0",
    "my run": "disvae-btcvae-celeba-my run",  # not a valid name: --name is asked for
}


def test_the_default_name_comes_from_the_folder_one_name_per_folder(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for folder, name in {**PUBLISHED_NAMES, **VARIANT_NAMES}.items():
        loss, dataset = ("btcvae", "celeba") if folder == "my run" else folder.split("_")[:2]
        channels, size = (3, 64) if dataset == "celeba" else (1, 32 if dataset == "mnist" else 64)
        src = make_results(tmp_path, channels, size, loss, dataset, name=folder)
        if folder == "my run":
            with pytest.raises(ModelImportError, match=f"model name '{name}'.*--name"):
                import_disentangling_vae(src, checkpoints_dir=checkpoints, eval_images=0)
            continue
        ckpt = import_disentangling_vae(src, checkpoints_dir=checkpoints, eval_images=0)
        assert (ckpt.path, ckpt.card.to_json()["name"]) == (checkpoints / name, name)
    assert len(list(checkpoints.iterdir())) == len(PUBLISHED_NAMES) + 3


# --- the shipped imports (checkpoints/disvae-*) ---------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_IMPORTS = {  # folder → their results/ folder
    "disvae-vae-dsprites": "VAE_dsprites",
    "disvae-betah-dsprites": "betaH_dsprites",
    "disvae-betab-dsprites": "betaB_dsprites",
    "disvae-factor-dsprites": "factor_dsprites",
    "disvae-btcvae-dsprites": "btcvae_dsprites",
    "disvae-vae-celeba": "VAE_celeba",
    "disvae-betah-celeba": "betaH_celeba",
    "disvae-btcvae-celeba": "btcvae_celeba",
    "disvae-btcvae-mnist": "btcvae_mnist",
}


@pytest.mark.parametrize("name", sorted(SHIPPED_IMPORTS))
def test_shipped_import_loads_and_records_its_source_and_licence(name):
    ckpt = load_checkpoint(ROOT / "checkpoints" / name)
    card = ckpt.card.to_json()
    assert card["name"] == name
    assert card["source"]["repository"] == "YannDubs/disentangling-vae"
    assert card["source"]["folder"] == f"results/{SHIPPED_IMPORTS[name]}"
    assert card["source"]["commit"] == COMMIT
    assert card["licence"]["name"] == "MIT" and card["licence"]["text"].startswith("MIT License")
    assert "Copyright 2019 Yann Dubois" in (ROOT / "checkpoints" / name / "README.md").read_text()
    dataset = name.rsplit("-", 1)[1]
    assert ckpt.config.dataset == dataset
    assert ("non-commercial research" in card.get("data_licence", "")) == (dataset == "celeba")
    size = 32 if dataset == "mnist" else 64
    assert (ckpt.config.image_size, ckpt.config.channels) == (size, 3 if dataset == "celeba" else 1)


@pytest.mark.parametrize("name", [n for n in sorted(SHIPPED_IMPORTS) if n.endswith("-dsprites")])
def test_shipped_dsprites_imports_reconstruct_our_sprites(name):
    ckpt = load_checkpoint(ROOT / "checkpoints" / name)
    assert ckpt.config.factor_names == DSPRITES_FACTORS
    x = torch.from_numpy(DSPRITES.render(DSPRITES.sample_classes(np.random.default_rng(5), 128)))
    with torch.no_grad():
        mu, _ = ckpt.model.encode(x)
        pixels = torch.sigmoid(ckpt.model.decode(mu))
    # the sprite's pixels come back: each image's on-pixels mostly on, its background off
    on = (pixels * x).flatten(1).sum(1) / x.flatten(1).sum(1)
    off = (pixels * (1 - x)).flatten(1).sum(1) / (1 - x).flatten(1).sum(1)
    assert on.median() > 0.75 and off.median() < 0.01, (on.median(), off.median())


def test_shipped_capacity_import_spends_the_capacity_it_was_trained_to():
    # betaB: γ·|KL − C| with C raised to betaB_finC = 25 nats drives the KL to 25 (Burgess et
    # al. 2018), so on dSprites, if our sprites are theirs, the KL measured here is 25
    ckpt = load_checkpoint(ROOT / "checkpoints" / "disvae-betab-dsprites")
    assert ckpt.card.to_json()["objective"]["betaB_finC"] == 25
    x = torch.from_numpy(DSPRITES.render(DSPRITES.sample_classes(np.random.default_rng(6), 1024)))
    with torch.no_grad():
        mu, logvar = ckpt.model.encode(x)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)  # (B,) nats
    assert kl.mean().item() == pytest.approx(25, abs=1.0)
