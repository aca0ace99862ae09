"""VAE-GAN training: the losses move, a stopped run resumes bit for bit (VAE, discriminator and
both optimisers), a signal saves, what ships is a plain VAE folder, and what cannot be done is
refused with a message that names the option."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from app import vaegan
from app.checkpoints import load_checkpoint
from app.models.gan import Discriminator, DiscriminatorConfig
from app.registry import load_registry
from app.training import TrainingError, train
from tests.conftest import tiny_args

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = ("model.safetensors", "discriminator.safetensors", "optimizer.safetensors",
             "discriminator-optimizer.safetensors")  # fmt: skip


def history(args) -> list[dict]:
    return json.loads((args.run_path / "trainer.json").read_text())["history"]


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
        ({"gamma": 5.0}, "--gamma does not apply to --kind vaegan"),
        ({"compile": True}, "--compile does not apply to --kind vaegan"),
    ],
)
def test_options_a_vaegan_cannot_take_are_refused(tmp_path, options, message):
    with pytest.raises(TrainingError, match=message):
        train(tiny_args(tmp_path / "vg", kind="vaegan", **options))
    assert not (tmp_path / "vg").exists()


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
