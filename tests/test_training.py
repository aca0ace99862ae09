"""The training loop and CLI: losses fall, runs resume exactly, signals save, DDP agrees."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from app.checkpoints import load_checkpoint, weights_digest
from app.training import TrainArgs, TrainingError, train
from app.training.common import describe_segments
from tests.conftest import tiny_args

ROOT = Path(__file__).resolve().parent.parent


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_loss_falls_for_every_kind(tmp_path):
    for kind in ("ae", "vae", "cvae"):
        args = tiny_args(tmp_path / kind, kind=kind, steps=60, log_every=5)
        assert train(args) == 0
        history = json.loads((args.run_path / "trainer.json").read_text())["history"]
        first = sum(h["loss"] for h in history[:2]) / 2
        last = sum(h["loss"] for h in history[-2:]) / 2
        assert last < 0.7 * first, (kind, first, last)


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tmp_path):
    straight = tiny_args(tmp_path / "straight", steps=24, beta=4.0)
    assert train(straight) == 0

    first_half = tiny_args(tmp_path / "halves", steps=12, beta=4.0)
    assert train(first_half) == 0
    assert json.loads((first_half.out / "card.json").read_text())["steps"] == 12
    # resume with only the new length: the run's identity (β, seed, batch) comes from its state
    second_half = tiny_args(tmp_path / "halves", steps=24, resume=True)
    assert train(second_half) == 0
    card = json.loads((second_half.out / "card.json").read_text())
    assert card["steps"] == 24 and card["objective"]["beta"] == 4.0
    assert card["commands"] == ["test", "test"] and card["command"] == "test"

    a, b = _weights(straight.out), _weights(second_half.out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the optimiser really was restored: without it the weights would differ
    fresh_opt = tiny_args(tmp_path / "noopt", steps=12, beta=4.0)
    assert train(fresh_opt) == 0
    os.remove(fresh_opt.run_path / "optimizer.safetensors")
    with pytest.raises(TrainingError, match="optimizer.safetensors is missing"):
        train(tiny_args(tmp_path / "noopt", steps=24, resume=True))


def test_the_card_keeps_where_each_segment_of_a_resumed_run_trained(tmp_path):
    assert train(tiny_args(tmp_path / "m", steps=6, command="first")) == 0
    assert train(tiny_args(tmp_path / "m", steps=10, resume=True, command="second")) == 0
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    segments = card["segments"]
    assert [(s["from_step"], s["to_step"], s["command"]) for s in segments] == [
        (0, 6, "first"),
        (6, 10, "second"),
    ]
    assert all(s["device"].startswith("cpu (") and s["wall_time_s"] > 0 for s in segments)
    assert card["wall_time_s"] == pytest.approx(sum(s["wall_time_s"] for s in segments), abs=0.2)
    assert card["trained_on"] == f"10 steps on {segments[0]['device']}"


def test_a_run_saved_before_segments_were_kept_resumes_with_its_earlier_steps_unrecorded(tmp_path):
    assert train(tiny_args(tmp_path / "old", steps=6)) == 0
    trainer_json = tmp_path / "run-old" / "trainer.json"
    trainer = json.loads(trainer_json.read_text())
    del trainer["segments"]  # as every run saved before this record existed
    trainer_json.write_text(json.dumps(trainer))
    assert train(tiny_args(tmp_path / "old", steps=9, resume=True)) == 0
    card = json.loads((tmp_path / "old" / "card.json").read_text())
    first, second = card["segments"]
    assert (first["from_step"], first["to_step"], first["device"]) == (0, 6, "not recorded")
    assert first["wall_time_s"] == trainer["wall_time_s"]
    assert (second["from_step"], second["to_step"]) == (6, 9)
    assert card["trained_on"] == f"6 steps on a device not recorded, 3 on {second['device']}"


def test_segments_on_one_device_are_counted_together():
    def seg(a: int, b: int, device: str) -> dict:
        return {"from_step": a, "to_step": b, "device": device}

    gpu, cpu = "cuda (NVIDIA H100)", "cpu (2 cores, 1 threads)"
    segments = [
        seg(0, 8000, cpu),
        seg(8000, 30000, gpu),
        seg(30000, 50000, gpu),
        seg(50000, 50000, cpu),
    ]
    assert describe_segments(segments) == f"8,000 steps on {cpu}, 42,000 on {gpu}"
    # a run whose only segment took no steps still says where it was
    assert describe_segments([seg(5, 5, cpu)]) == f"0 steps on {cpu}"


def test_resume_keeps_the_runs_save_interval_unless_one_is_given(tmp_path, monkeypatch):
    from app.cli import main
    from app.training import loop

    saved_at: list[int] = []
    save_run = loop.save_run

    def recording(run, model, optimizer, trainer):
        saved_at.append(trainer["step"])
        return save_run(run, model, optimizer, trainer)

    monkeypatch.setattr(loop, "save_run", recording)
    run = ["train", "--out", str(tmp_path / "m"), "--run-dir", str(tmp_path / "runs" / "m"),
           "--batch-size", "8", "--eval-images", "64", "--log-every", "2"]  # fmt: skip
    assert main([*run, "--steps", "4", "--save-every", "2"]) == 0
    assert saved_at == [2, 4]  # every 2 steps, and the last
    assert main([*run, "--steps", "8", "--resume"]) == 0
    assert saved_at[2:] == [6, 8]  # still every 2: the run's own interval
    assert main([*run, "--steps", "12", "--resume", "--save-every", "3"]) == 0
    assert saved_at[4:] == [9, 12]  # one given on resume is taken, and kept from then on
    assert main([*run, "--steps", "16", "--resume"]) == 0
    assert saved_at[6:] == [15, 16]


def test_resume_without_a_run_says_so(tmp_path):
    with pytest.raises(TrainingError, match="no run to resume"):
        train(tiny_args(tmp_path / "never", resume=True))


def test_a_cvae_label_changes_its_output(trained):
    ckpt = load_checkpoint(trained["tiny-cvae"])
    assert ckpt.config.label_names == ("square", "ellipse", "heart")
    z = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = [torch.sigmoid(ckpt.model.decode(z, torch.full((3,), c))) for c in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert (images[i] - images[j]).abs().mean() > 1e-3


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "app", *args], env=env, text=True, **kw)


def test_sigterm_saves_and_stops_and_resume_picks_up(tmp_path):
    out, run = tmp_path / "ck", tmp_path / "run"
    proc = _cli(
        "train",
        "--out",
        str(out),
        "--run-dir",
        str(run),
        "--steps",
        "100000",
        "--batch-size",
        "8",
        "--eval-images",
        "64",
        "--log-every",
        "1",
        stderr=subprocess.PIPE,
    )
    # wait until the progress bar reports a few steps, then ask it to stop
    seen = ""
    while "5/100000" not in seen:
        ch = proc.stderr.read(1)
        assert ch, f"training exited early: {seen[-500:]}"
        seen += ch
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    card = json.loads((out / "card.json").read_text())
    stopped_at = card["steps"]
    assert 5 <= stopped_at < 100000
    assert json.loads((run / "trainer.json").read_text())["step"] == stopped_at

    resumed = _cli(
        "train",
        "--out",
        str(out),
        "--run-dir",
        str(run),
        "--resume",
        "--steps",
        str(stopped_at + 3),
        "--eval-images",
        "64",
        stderr=subprocess.DEVNULL,
    )
    assert resumed.wait(timeout=120) == 0
    assert json.loads((out / "card.json").read_text())["steps"] == stopped_at + 3


def test_cli_errors_are_one_clear_line(tmp_path):
    proc = _cli(
        "train",
        "--kind",
        "cvae",
        "--dataset",
        str(tmp_path / "missing.npz"),
        "--out",
        str(tmp_path / "x"),
        stderr=subprocess.PIPE,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "missing.npz: no such file" in err and "Traceback" not in err


def test_two_ddp_ranks_end_with_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "app",
        "train",
        "--out",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--eval-images",
        "64",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((out / "card.json").read_text())
    assert card["world_size"] == 2 and card["images_seen"] == 6 * 8 * 2
    digests = card["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert weights_digest(load_checkpoint(out).model) == digests[0]


def test_each_ddp_rank_draws_its_own_data():
    from app.data import open_dataset
    from app.training.stream import step_data

    ds = open_dataset("dsprites")
    r0, r1 = (step_data(ds, 0, rank, 5, 8, 10) for rank in (0, 1))
    again = step_data(ds, 0, 0, 5, 8, 10)
    assert not torch.equal(r0.x, r1.x) and torch.equal(r0.x, again.x)
    assert torch.equal(r0.eps, again.eps)


@pytest.mark.parametrize("workers", [2, 5])
def test_render_workers_hand_over_the_same_batches_in_step_order(workers):
    from app.data import open_dataset
    from app.training.stream import prefetch

    ds = open_dataset("dsprites")
    one = TrainArgs(out=Path("x"), batch_size=8, render_workers=1)
    many = TrainArgs(out=Path("x"), batch_size=8, render_workers=workers, prefetch=2)
    a = list(prefetch(ds, one, 0, 3, 14))
    b = list(prefetch(ds, many, 0, 3, 14))
    assert [d.step for d in b] == list(range(3, 14)) == [d.step for d in a]
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p.x, q.x) and torch.equal(p.eps, q.eps)
    assert not torch.equal(b[0].x, b[1].x)
    assert list(prefetch(ds, many, 0, 7, 7)) == []
    # stopping early (the loop breaks on SIGTERM) leaves no thread behind
    stream = prefetch(ds, many, 0, 0, 1000)
    assert next(stream).step == 0
    stream.close()


def test_train_args_scale_the_learning_rate_with_the_batch():
    assert TrainArgs(out=Path("x")).learning_rate == pytest.approx(5e-4)
    assert TrainArgs(out=Path("x"), batch_size=256).learning_rate == pytest.approx(1e-3)
    assert TrainArgs(out=Path("x"), batch_size=256, lr=3e-4).learning_rate == 3e-4


def test_trains_on_a_folder_of_colour_images_with_a_gaussian_likelihood(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("red", "blue"):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(4):
            arr = rng.integers(0, 60, (48, 80, 3), dtype=np.uint8)
            arr[..., 0 if label == "red" else 2] += 180
            Image.fromarray(arr).save(tmp_path / "pics" / label / f"{i}.png")
    args = tiny_args(
        tmp_path / "ck",
        dataset=str(tmp_path / "pics"),
        kind="cvae",
        steps=20,
        batch_size=8,
        eval_images=16,
    )
    assert train(args) == 0
    ckpt = load_checkpoint(args.out)
    assert ckpt.config.channels == 3 and ckpt.config.likelihood == "gaussian"
    assert ckpt.config.label_names == ("blue", "red")
    with torch.no_grad():
        out = torch.sigmoid(ckpt.model.decode(torch.zeros(2, 10), torch.tensor([0, 1])))
    assert out.shape == (2, 3, 64, 64)


def _wait_for_step(proc: subprocess.Popen, step: int) -> None:
    """Read the progress bar until it shows `step` (or later) of the 100000-step run."""
    seen = ""
    while True:
        ch = proc.stderr.read(1)
        assert ch, f"training exited early: {seen[-500:]}"
        seen += ch
        done = re.search(r"(\d+)/100000 $", seen[-30:]) if ch == " " else None
        if done and int(done.group(1)) >= step:
            return


def test_sigkill_at_random_moments_never_loses_the_last_checkpoint(tmp_path):
    """SIGKILL cannot be caught: whatever the process was doing (often writing a checkpoint,
    which happens every other step here), the previous checkpoint and run must load whole, and
    --resume must continue from where the saved state says."""
    out, run = tmp_path / "ck", tmp_path / "run"
    rng = np.random.default_rng(0)
    saved = 0
    for attempt in range(4):
        resume = ["--resume"] if (run / "trainer.json").exists() else []
        proc = _cli(
            "train", "--out", str(out), "--run-dir", str(run), "--steps", "100000",
            "--batch-size", "8", "--eval-images", "32", "--log-every", "1", "--save-every", "2",
            *resume, stderr=subprocess.PIPE,
        )  # fmt: skip
        _wait_for_step(proc, saved + int(rng.integers(3, 9)))
        proc.kill()
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        # the last checkpoint and the resumable state are whole, whatever moment it died at
        ckpt = load_checkpoint(out)
        state = json.loads((run / "trainer.json").read_text())
        assert state["step"] >= saved, attempt  # never behind what was saved before
        assert ckpt.card.to_json()["steps"] <= state["step"]
        saved = state["step"]
    finished = _cli(
        "train", "--out", str(out), "--run-dir", str(run), "--resume",
        "--steps", str(saved + 2), "--eval-images", "32", stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert finished.wait(timeout=120) == 0
    assert json.loads((out / "card.json").read_text())["steps"] == saved + 2
    assert not list(tmp_path.glob(".ck.tmp-*"))  # a half-written temp folder is cleaned up


def test_the_gaussian_sigma_is_the_models_and_is_checked(tmp_path):
    from app.models import ConfigError, ModelConfig

    args = tiny_args(tmp_path / "colour", dataset="shapes3d", steps=4, gaussian_sigma=0.3)
    assert train(args) == 0
    ckpt = load_checkpoint(args.out)
    assert ckpt.config.likelihood == "gaussian" and ckpt.config.gaussian_sigma == 0.3
    with pytest.raises(ConfigError, match="gaussian_sigma must be > 0, got 0.0"):
        ModelConfig(channels=3, likelihood="gaussian", gaussian_sigma=0.0)


def test_init_from_starts_a_new_objective_on_a_trained_network(tmp_path):
    source = tiny_args(tmp_path / "source", steps=12)
    assert train(source) == 0
    source_weights = _weights(source.out)

    # a learning rate of 1e-12 leaves the weights where they started, to within 1e-9
    still = tiny_args(tmp_path / "still", steps=1, objective="tc", beta=6.0, lr=1e-12,
                      init_from=source.out)  # fmt: skip
    assert train(still) == 0
    after = _weights(still.out)
    for k in source_weights:
        assert torch.allclose(after[k], source_weights[k], atol=1e-9, rtol=0), k
    fresh = _weights(_trained(tmp_path / "fresh", steps=1, objective="tc", beta=6.0, lr=1e-12))
    assert any(not torch.allclose(fresh[k], source_weights[k]) for k in source_weights)

    card = json.loads((still.out / "card.json").read_text())
    record = card["initialised_from"]
    assert record["name"] == "source" and record["steps"] == 12
    assert record["digest"] == load_checkpoint(source.out).digest
    assert card["recipe"] == (
        "β-TCVAE, β=6; initialised from source (VAE, β=1 (negative ELBO), 12 steps)"
    )


def test_a_resumed_initialised_run_matches_an_uninterrupted_one(tmp_path):
    source = tiny_args(tmp_path / "source", steps=8)
    assert train(source) == 0
    straight = tiny_args(tmp_path / "straight", steps=12, beta=4.0, init_from=source.out)
    assert train(straight) == 0
    halves = tiny_args(tmp_path / "halves", steps=6, beta=4.0, init_from=source.out)
    assert train(halves) == 0
    # resuming must not load the source again: the run's own weights carry on
    assert train(tiny_args(tmp_path / "halves", steps=12, resume=True)) == 0
    a, b = _weights(straight.out), _weights(halves.out)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    card = json.loads((halves.out / "card.json").read_text())
    assert card["initialised_from"]["name"] == "source" and card["steps"] == 12


def test_init_from_a_different_network_names_the_difference(tmp_path):
    source = tiny_args(tmp_path / "source", steps=2)
    assert train(source) == 0
    with pytest.raises(TrainingError, match=r"latent_dim 10 there, 6 here"):
        train(tiny_args(tmp_path / "other", steps=2, latents=6, init_from=source.out))
    with pytest.raises(TrainingError, match=r"cannot initialise from .*nowhere"):
        train(tiny_args(tmp_path / "other", steps=2, init_from=tmp_path / "nowhere"))


def _trained(out: Path, **kw) -> Path:
    args = tiny_args(out, **kw)
    assert train(args) == 0
    return args.out
