"""VAE-GAN training: the losses move, a stopped run resumes bit for bit (VAE, discriminator and
both optimisers, with or without spectral normalisation), a signal saves, what ships is a plain VAE
folder, a run can start from a trained VAE, the CLI sets the VAE-GAN's options, and what cannot be
done is refused with a message that names the option."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.checkpoints import CheckpointError, load_checkpoint, load_weights
from app.cli import main
from app.models.gan import Discriminator, DiscriminatorConfig
from app.registry import load_registry
from app.training import TrainingError, train, vaegan
from tests.conftest import tiny_args

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = ("model.safetensors", "discriminator.safetensors", "optimizer.safetensors",
             "discriminator-optimizer.safetensors")  # fmt: skip
# the usual fix for a discriminator that wins outright (Miyato et al. 2018): no balance rule
SPECTRAL = (vaegan.VaeGanSettings(balance_margin=0.0), DiscriminatorConfig(spectral_norm=True))


def trainer(args) -> dict:
    return json.loads((args.run_path / "trainer.json").read_text())


def history(args) -> list[dict]:
    return trainer(args)["history"]


def card(args) -> dict:
    return json.loads((args.out / "card.json").read_text())


def largest_singular_value(weight: torch.Tensor) -> float:
    """Of a layer's weight as the matrix (out, in·k·k) that spectral normalisation divides."""
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item()


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys(), a.name
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{a.name}: {k}"


def test_the_discriminator_gives_a_logit_and_the_features_of_layer_l():
    dis = Discriminator(DiscriminatorConfig(channels=3))
    logit, features = dis(torch.rand(5, 3, 64, 64))
    assert logit.shape == (5,) and features.shape == (5, 128 * 8 * 8)  # conv 3 of 4: 8×8
    _, deepest = Discriminator(DiscriminatorConfig(channels=1, feature_layer=4))(
        torch.rand(2, 1, 64, 64)
    )
    assert deepest.shape == (2, 256 * 4 * 4)


def test_the_discriminator_config_round_trips_and_old_ones_load_without_spectral_norm():
    config = DiscriminatorConfig(channels=3, spectral_norm=True)
    assert DiscriminatorConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    saved_before_it_existed = DiscriminatorConfig().to_json()
    del saved_before_it_existed["spectral_norm"]
    assert DiscriminatorConfig.from_json(saved_before_it_existed) == DiscriminatorConfig()


def test_a_spectrally_normalised_discriminator_saves_and_loads_through_safetensors(tmp_path):
    config = DiscriminatorConfig(channels=3, spectral_norm=True)
    torch.manual_seed(0)
    dis = Discriminator(config)
    dis(torch.rand(2, 3, 64, 64))  # a power iteration moves u and v: they are state to save
    state = dis.state_dict()
    assert {"convs.0.parametrizations.weight.original", "convs.0.parametrizations.weight.0._u",
            "convs.0.parametrizations.weight.0._v", "logit.parametrizations.weight.0._u",
            } <= state.keys()  # fmt: skip
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "d.safetensors"))
    torch.manual_seed(1)
    again = Discriminator(config)
    load_weights(again, tmp_path / "d.safetensors")
    x = torch.rand(4, 3, 64, 64)
    for a, b in zip(dis.eval()(x), again.eval()(x), strict=True):
        assert torch.equal(a, b)
    # a discriminator without it is another network: its tensors are refused, named
    with pytest.raises(CheckpointError, match="lacks convs.0.weight"):
        load_weights(Discriminator(DiscriminatorConfig(channels=3)), tmp_path / "d.safetensors")


def test_spectral_norm_divides_each_weight_by_its_largest_singular_value():
    torch.manual_seed(0)
    dis = Discriminator(DiscriminatorConfig(channels=3, spectral_norm=True))
    layers = [*dis.convs, dis.logit]
    with torch.no_grad():
        for layer in layers:
            layer.parametrizations.weight.original.mul_(10)
    for _ in range(3):  # one power iteration per layer per forward pass in training mode
        dis(torch.rand(2, 3, 64, 64))
    dis.eval()
    for layer in layers:
        assert largest_singular_value(layer.parametrizations.weight.original) > 5
        # the power iteration's σ can only fall short of the true one, never overshoot it
        assert 0.999 < largest_singular_value(layer.weight) < 1.03


@pytest.mark.parametrize("dataset", ["shapes3d", "dsprites"])
def test_losses_are_finite_and_the_discriminator_learns(tmp_path, dataset):
    args = tiny_args(tmp_path / "vg", kind="vaegan", dataset=dataset, steps=30, log_every=3)
    assert train(args) == 0
    entries = history(args)
    assert len(entries) == 10
    for e in entries:
        for key in ("d_loss", "g_loss", "feature", "kl", "recon"):
            assert math.isfinite(e[key]), (key, e)
    d_losses = [e["d_loss"] for e in entries]
    # 3·log 2 ≈ 2.08 when D cannot tell at all; it learns to, so its loss leaves that value
    assert max(d_losses) - min(d_losses) > 0.2, d_losses
    assert min(d_losses) < 1.8, d_losses


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 12-step VAE-GAN run to compare stopped-and-resumed runs with."""
    args = tiny_args(tmp_path_factory.mktemp("straight") / "vg", kind="vaegan", steps=12)
    assert train(args) == 0
    return args


@pytest.fixture(scope="module")
def straight_spectral(tmp_path_factory):
    """The same uninterrupted run with a spectrally normalised discriminator, no balance rule."""
    args = tiny_args(tmp_path_factory.mktemp("spectral") / "vg", kind="vaegan", steps=12)
    assert vaegan.train(args, *SPECTRAL) == 0
    return args


def _assert_same_run(a, b) -> None:
    assert_same_tensors(a.out / "model.safetensors", b.out / "model.safetensors")
    for name in RUN_FILES:
        assert_same_tensors(a.run_path / name, b.run_path / name)
    ta = json.loads((a.run_path / "trainer.json").read_text())
    tb = json.loads((b.run_path / "trainer.json").read_text())
    assert ta["step"] == tb["step"] and ta["optimizers"] == tb["optimizers"]
    assert ta["paused_steps"] == tb["paused_steps"]

    # a run that reaches its target logs that step too, so compare the regular entries
    def regular(h):
        return [e for e in h if e["step"] % 5 == 0]

    assert regular(ta["history"]) == regular(tb["history"])


def test_resume_is_bit_exact_against_an_uninterrupted_run(tmp_path, straight):
    first = tiny_args(tmp_path / "vg", kind="vaegan", steps=7)
    assert train(first) == 0
    # no --kind: the run folder says it is a VAE-GAN's, and its identity comes from there
    second = tiny_args(tmp_path / "vg", steps=12, resume=True)
    assert train(second) == 0
    _assert_same_run(straight, second)
    card = json.loads((second.out / "card.json").read_text())
    assert card["steps"] == 12 and card["commands"] == ["test", "test"]


def test_a_spectrally_normalised_run_resumes_bit_exactly_with_its_own_settings(
    tmp_path, straight_spectral
):
    first = tiny_args(tmp_path / "vg", kind="vaegan", steps=7)
    assert vaegan.train(first, *SPECTRAL) == 0
    # what the resumed run is handed is ignored: the run folder's settings and network win
    second = tiny_args(tmp_path / "vg", kind="vaegan", steps=12, resume=True)
    assert vaegan.train(second, vaegan.VaeGanSettings(gamma=5.0), DiscriminatorConfig()) == 0
    _assert_same_run(straight_spectral, second)
    saved = trainer(second)
    assert saved["discriminator"]["spectral_norm"] is True
    assert saved["vaegan"]["balance_margin"] == 0 and saved["vaegan"]["gamma"] == 0.01
    assert saved["paused_steps"] == {"discriminator": 0, "gan": 0}  # no balance rule
    tensors = load_file(str(second.run_path / "discriminator.safetensors"))
    assert "convs.3.parametrizations.weight.0._v" in tensors and "convs.3.weight" not in tensors
    assert "spectral normalisation in the discriminator" in card(second)["recipe"]


def test_a_trained_spectrally_normalised_discriminator_has_layers_of_spectral_norm_one(
    straight_spectral,
):
    config = DiscriminatorConfig.from_json(trainer(straight_spectral)["discriminator"])
    dis = Discriminator(config)
    load_weights(dis, straight_spectral.run_path / "discriminator.safetensors")
    layers = [*dis.convs, dis.logit]
    dis.eval()  # σ from the saved u and v
    # one power iteration per step follows σ as the weights move, a little behind: each layer's
    # largest singular value is near 1 (the estimate can only fall short, so not below it)
    for layer in layers:
        assert 0.999 < largest_singular_value(layer.weight) < 1.5
    dis.train()
    with torch.no_grad():
        for _ in range(50):  # power iterations on fixed weights
            dis(torch.rand(1, 1, 64, 64))
    dis.eval()
    for layer in layers:
        assert largest_singular_value(layer.weight) == pytest.approx(1, abs=0.01)


def test_a_signal_saves_and_stops_and_the_run_resumes_exactly(tmp_path, straight, monkeypatch):
    real = vaegan.prefetch

    def sigterm_at_step_4(dataset, args, rank, start, stop):
        for d in real(dataset, args, rank, start, stop):
            if d.step == 4:
                signal.raise_signal(signal.SIGTERM)  # as `kill` would, caught by the stop flag
            yield d

    monkeypatch.setattr(vaegan, "prefetch", sigterm_at_step_4)
    args = tiny_args(tmp_path / "vg", kind="vaegan", steps=12)
    assert train(args) == 128 + signal.SIGTERM
    assert json.loads((args.out / "card.json").read_text())["steps"] == 5
    assert json.loads((args.run_path / "trainer.json").read_text())["step"] == 5
    monkeypatch.setattr(vaegan, "prefetch", real)
    resumed = tiny_args(tmp_path / "vg", kind="vaegan", steps=12, resume=True)
    assert train(resumed) == 0
    _assert_same_run(straight, resumed)
    segments = json.loads((resumed.out / "card.json").read_text())["segments"]
    assert [(s["from_step"], s["to_step"]) for s in segments] == [(0, 5), (5, 12)]


def test_the_shipped_folder_is_a_plain_vae_without_the_discriminator(straight, tmp_path):
    out = straight.out
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "card.json", "config.json", "model.safetensors"
    ]  # fmt: skip
    tensors = load_file(str(out / "model.safetensors"))
    assert all(k.startswith(("encoder.", "decoder.")) for k in tensors), sorted(tensors)
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "vae" and config["objective"] == "vaegan"
    card = json.loads((out / "card.json").read_text())
    assert card["recipe"].startswith("VAE-GAN (Larsen et al. 2016), γ=")
    assert card["eval"]["kl_per_dim"] and card["device"].startswith("cpu")
    # the discriminator and the optimisers are in the run folder only
    run_tensors = load_file(str(straight.run_path / "discriminator.safetensors"))
    assert any(k.startswith("convs.") for k in run_tensors)
    shutil.copytree(out, tmp_path / "served" / "vg")
    registry = load_registry(tmp_path / "served")
    assert list(registry) == ["vg"] and registry["vg"].config.kind == "vae"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"objective": "tc"}, "--objective does not apply to --kind vaegan"),
        ({"objective": "capacity"}, "--objective does not apply to --kind vaegan"),
        ({"denoise": True}, "--denoise does not apply to --kind vaegan"),
        ({"gamma": 5.0}, "--gamma does not apply to --kind vaegan: .* γ is --gan-gamma"),
        ({"compile": True}, "--compile does not apply to --kind vaegan"),
    ],
)
def test_options_a_vaegan_cannot_take_are_refused(tmp_path, options, message):
    with pytest.raises(TrainingError, match=message):
        train(tiny_args(tmp_path / "vg", kind="vaegan", **options))
    assert not (tmp_path / "vg").exists()


def test_init_from_starts_the_vaegan_from_a_trained_vae(tmp_path):
    source = tiny_args(tmp_path / "beta-vae", beta=4.0, steps=3, seed=1)
    assert train(source) == 0
    args = tiny_args(tmp_path / "vg", kind="vaegan", beta=4.0, steps=1, init_from=source.out)
    assert train(args) == 0
    start = load_file(str(source.out / "model.safetensors"))
    after = load_file(str(args.out / "model.safetensors"))
    # Adam's first step moves each weight by lr·g/(|g| + ε): less than the learning rate
    for k in start:
        assert (after[k] - start[k]).abs().max() <= vaegan.DEFAULT_LR * 1.01, k
    first = card(args)
    assert first["initialised_from"]["name"] == "beta-vae"
    assert first["initialised_from"]["steps"] == 3
    assert first["recipe"].endswith("; initialised from beta-vae (β-VAE, β=4, 3 steps)")
    # resumed, it carries on without loading the source again, and still says where it began
    assert train(tiny_args(tmp_path / "vg", steps=2, resume=True)) == 0
    assert card(args)["initialised_from"] == first["initialised_from"]
    assert trainer(args)["initialised_from"] == first["initialised_from"]
    with pytest.raises(TrainingError, match="latent_dim 10 there, 6 here"):
        train(tiny_args(tmp_path / "other", kind="vaegan", latents=6, init_from=source.out))


def test_torchrun_is_refused(tmp_path, monkeypatch):
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    with pytest.raises(TrainingError, match="single process, but this is one of 2 torchrun"):
        train(tiny_args(tmp_path / "vg", kind="vaegan"))


def test_resuming_a_plain_vae_as_a_vaegan_says_so(tmp_path):
    assert train(tiny_args(tmp_path / "plain", steps=2)) == 0
    with pytest.raises(TrainingError, match="not a VAE-GAN run"):
        train(tiny_args(tmp_path / "plain", kind="vaegan", steps=4, resume=True))
    with pytest.raises(TrainingError, match="no run to resume"):
        train(tiny_args(tmp_path / "never", kind="vaegan", resume=True))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "app", "train", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_the_cli_trains_a_vaegan_and_names_what_it_refuses(tmp_path):
    out = tmp_path / "ck"
    common = ["--out", str(out), "--run-dir", str(tmp_path / "run"), "--batch-size", "8",
              "--eval-images", "32"]  # fmt: skip
    done = _cli("--kind", "vaegan", "--steps", "2", "--log-every", "1", *common)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "D=" in done.stderr and "G=" in done.stderr and "feat=" in done.stderr
    assert load_checkpoint(out).config.objective == "vaegan"
    refused = _cli("--kind", "vaegan", "--objective", "tc", "--steps", "2", *common)
    assert refused.returncode == 2
    assert "--objective does not apply to --kind vaegan" in refused.stderr
    assert "Traceback" not in refused.stderr


GAN_OPTIONS = [["--gan-gamma", "0.1"], ["--pixel-weight", "0"], ["--balance-margin", "0"],
               ["--spectral-norm"], ["--gan-optimizer", "rmsprop"]]  # fmt: skip


@pytest.mark.parametrize("option", GAN_OPTIONS, ids=lambda o: o[0])
def test_the_cli_refuses_the_vaegan_options_without_kind_vaegan(tmp_path, capsys, option):
    out = tmp_path / "ck"
    assert main(["train", "--out", str(out), "--run-dir", str(tmp_path / "run"), *option]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"latent-explorer train: error: {option[0]} applies only to --kind vaegan"
    assert not out.exists() and not (tmp_path / "run").exists()


def test_the_cli_refuses_a_negative_vaegan_weight(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--kind", "vaegan", "--out", str(tmp_path / "ck"), "--gan-gamma", "-1"])
    assert exit_.value.code == 2
    assert "argument --gan-gamma: must be a finite number ≥ 0, got -1" in capsys.readouterr().err


def test_the_cli_trains_a_spectrally_normalised_vaegan_without_the_balance_rule(tmp_path, caplog):
    args = tiny_args(tmp_path / "ck", run_dir=tmp_path / "run")
    common = ["train", "--out", str(args.out), "--run-dir", str(args.run_path), "--steps", "3"]
    options = ["--spectral-norm", "--balance-margin", "0", "--gan-gamma", "0.05",
               "--pixel-weight", "2", "--gan-optimizer", "rmsprop"]  # fmt: skip
    assert main([*common, "--kind", "vaegan", *options, "--batch-size", "8",
                 "--eval-images", "64"]) == 0  # fmt: skip
    assert sorted(p.name for p in args.out.iterdir()) == [
        "README.md", "card.json", "config.json", "model.safetensors"
    ]  # fmt: skip
    shipped = load_file(str(args.out / "model.safetensors"))
    assert all(k.startswith(("encoder.", "decoder.")) for k in shipped), sorted(shipped)
    settings = {"gamma": 0.05, "pixel_weight": 2.0, "balance_margin": 0.0, "optimizer": "rmsprop"}
    assert trainer(args)["vaegan"] == settings
    shipped_card = card(args)
    assert shipped_card["objective"] == {"objective": "vaegan", "beta": 1.0,
                                         "kl_warmup_steps": 0, **settings}  # fmt: skip
    assert shipped_card["vaegan"]["discriminator"]["spectral_norm"] is True
    assert shipped_card["vaegan"]["paused_steps"] == {"discriminator": 0, "gan": 0}
    assert shipped_card["recipe"] == (
        "VAE-GAN (Larsen et al. 2016), γ=0.05, plus 2× the VAE's pixel reconstruction term, "
        "spectral normalisation in the discriminator (Miyato et al. 2018); RMSProp"
    )
    assert all(math.isfinite(v) for e in history(args) for v in e.values())
    # a resumed run keeps its own settings, and says what it ignores
    with caplog.at_level(logging.WARNING, logger="app.cli"):
        assert main([*common, "--resume", "--balance-margin", "0.5"]) == 0
    assert "--balance-margin ignored: a resumed run keeps the VAE-GAN settings" in caplog.text
    assert trainer(args)["vaegan"] == settings
