"""`latent-explorer evaluate`: every metric on a tiny trained model, written into its card.json
without touching the weights, reproducible from the evaluation seed; clear errors otherwise."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.checkpoints import CARD, CONFIG, WEIGHTS, ModelCard, load_checkpoint
from app.cli import main
from app.metrics.evaluate import (
    METRICS,
    EvaluationError,
    EvaluationSettings,
    evaluate,
    evaluate_checkpoint,
)
from app.registry import load_registry
from app.training import TrainArgs, train

LIBRARY_DCI = {"dci_disentanglement", "dci_completeness", "dci_informativeness"}
SMALL = EvaluationSettings(  # the library's DCI boosts 100 stages per class: few points
    seeds=(0, 1),
    points=150,
    test_points=75,
    beta_vae_points=(30, 15),
    factor_vae_votes=(30, 15),
    pairs=8,
)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "checkpoints" / folder.name
    shutil.copytree(folder, out)
    return out


def test_evaluating_writes_every_score_into_the_card(trained, tmp_path):
    folder = copy_of(trained["tiny-vae"], tmp_path)
    weights, config = (folder / WEIGHTS).read_bytes(), (folder / CONFIG).read_bytes()
    card_before = json.loads((folder / CARD).read_text())

    evaluate_checkpoint(folder, SMALL, progress=False)

    card = json.loads((folder / CARD).read_text())
    m = card["metrics"]
    assert {k: card[k] for k in card_before} == card_before  # the rest of the card is kept
    assert m["step"] == card["steps"] == 150
    assert m["digest"] == load_checkpoint(folder).digest
    assert m["seeds"] == [0, 1]
    assert m["factors"] == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert list(m["scores"]) == list(METRICS)
    for name, s in m["scores"].items():
        assert set(s) == {"mean", "std", "values", "settings"}, name
        # the library's DCI (minutes of gradient boosting) runs on the first seed only
        seeds = (
            1 if name in ("dci_disentanglement", "dci_completeness", "dci_informativeness") else 2
        )
        assert len(s["values"]) == seeds and all(math.isfinite(v) for v in s["values"]), name
        assert math.isfinite(s["mean"]) and s["std"] >= 0, name
        assert s["settings"], name
    assert 0 <= m["scores"]["active_latents"]["mean"] <= 10
    assert all(0 <= m["scores"][k]["mean"] <= 1 for k in METRICS if k != "active_latents")
    mi = np.array(m["mi_matrix"])
    assert mi.shape == (10, 5) and np.isfinite(mi).all() and (mi >= 0).all()
    assert m["wall_time_s"] > 0
    # the weights and config are untouched, and the folder still loads, alone and in a registry
    assert (folder / WEIGHTS).read_bytes() == weights
    assert (folder / CONFIG).read_bytes() == config
    assert load_checkpoint(folder).card.to_json()["metrics"] == m
    assert list(load_registry(folder.parent)) == ["tiny-vae"]
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp files


def test_the_same_seed_gives_the_same_numbers(trained):
    ckpt = load_checkpoint(trained["tiny-vae"]).served()
    # (the library's DCI is seeded from the seed too: tests/test_reference_scores_server.py
    # computes it twice, in the background and by evaluate, and gets the same numbers)
    settings = EvaluationSettings(
        seeds=(3,), points=300, test_points=150, only=("mig", "sap", "dci_et_disentanglement",
                                                      "active_latents"),
    )  # fmt: skip
    first, again = evaluate(ckpt, settings, False), evaluate(ckpt, settings, False)
    assert first["scores"] == again["scores"] and first["mi_matrix"] == again["mi_matrix"]
    other = evaluate(ckpt, EvaluationSettings(seeds=(4,), points=300, test_points=150,
                                              only=settings.only), False)  # fmt: skip
    assert other["mi_matrix"] != first["mi_matrix"]  # another seed draws other images


def test_the_autoencoder_has_no_active_latents_score(trained):
    ckpt = load_checkpoint(trained["tiny-ae"]).served()
    m = evaluate(ckpt, EvaluationSettings(seeds=(0,), points=300, only=("active_latents", "mig")),
                 False)  # fmt: skip
    assert list(m["scores"]) == ["mig"]  # no KL without a posterior
    assert "AE's code" in m["scores"]["mig"]["settings"]


def test_a_cvae_is_given_the_true_shape(trained):
    m = evaluate(load_checkpoint(trained["tiny-cvae"]).served(),
                 EvaluationSettings(seeds=(0,), points=300, only=("mig",)), False)  # fmt: skip
    assert "true shape label" in m["scores"]["mig"]["settings"]


def test_a_later_training_save_keeps_the_metrics_as_stale(trained, tmp_path):
    folder = copy_of(trained["tiny-vae"], tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained["tiny-vae"].parent.parent / "runs-tiny-vae", run)
    evaluate_checkpoint(folder, EvaluationSettings(seeds=(0,), points=300, only=("mig",)), False)
    metrics = load_checkpoint(folder).card.to_json()["metrics"]
    args = TrainArgs(out=folder, run_dir=run, steps=155, resume=True, eval_images=256, command="t")
    assert train(args) == 0
    ckpt = load_checkpoint(folder).served()
    assert ckpt.card.to_json()["steps"] == 155  # the card is the new run's...
    # ...but the scores survive, tied to the weights they were computed on, which the UI then
    # marks as stale (test_figure2) until `evaluate` runs again
    assert ckpt.card.to_json()["metrics"] == metrics and metrics["digest"] != ckpt.digest


def test_a_resumed_save_keeps_the_record_of_a_rename_and_of_repairs(trained, tmp_path):
    folder = copy_of(trained["tiny-vae"], tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained["tiny-vae"].parent.parent / "runs-tiny-vae", run)
    card = json.loads((folder / CARD).read_text())
    history = {
        "renamed_from": {"name": "old-name", "why": "the name went to another model"},
        "repaired": [{"date": "2026-12-01", "what": "segments rebuilt", "from": "git log"}],
    }
    (folder / CARD).write_text(json.dumps({**card, **history}))
    args = TrainArgs(out=folder, run_dir=run, steps=155, resume=True, eval_images=256, command="t")
    assert train(args) == 0
    again = load_checkpoint(folder).card.to_json()
    assert again["steps"] == 155
    assert {k: again[k] for k in history} == history


def test_only_updates_the_scores_it_names(trained, tmp_path, capsys):
    folder = copy_of(trained["tiny-vae"], tmp_path)
    common = ["evaluate", str(folder), "--seeds", "1", "--points", "300", "--no-progress"]
    assert main([*common, "--only", "mig,active_latents"]) == 0
    out = capsys.readouterr().out
    assert "mig" in out and "settings:" in out and "card.json" in out
    assert main([*common, "--only", "sap"]) == 0
    scores = json.loads((folder / CARD).read_text())["metrics"]["scores"]
    assert list(scores) == ["active_latents", "mig", "sap"]


def test_the_cli_names_what_is_wrong(trained, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "no-such-model")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err

    folder = copy_of(trained["tiny-vae"], tmp_path)
    assert main(["evaluate", str(folder), "--only", "mig,accuracy"]) == 2
    assert "unknown metric accuracy" in capsys.readouterr().err

    config = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(json.dumps({**config, "dataset": "folder:faces"}))
    assert main(["evaluate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "trained on 'folder:faces', whose images have no known factors" in err
    assert "metrics" not in json.loads((folder / CARD).read_text())


def test_settings_are_checked():
    with pytest.raises(EvaluationError, match="seeds"):
        EvaluationSettings(seeds=())


def test_a_colour_shapes_model_is_scored_on_its_own_six_factors(tmp_path):
    """The metrics follow the model's ground truth: six factors of the colour shapes, three
    channels, the shape as a CVAE's label."""
    from tests.conftest import tiny_args

    for kind in ("vae", "cvae"):
        args = tiny_args(tmp_path / kind, kind=kind, dataset="shapes3d", steps=10, batch_size=16)
        assert train(args) == 0
        # all but the library's DCI (minutes of boosting at any size worth scoring)
        fast = dataclasses.replace(SMALL, only=tuple(m for m in METRICS if m not in LIBRARY_DCI))
        metrics = evaluate(load_checkpoint(args.out).served(), fast, progress=False)
        assert metrics["factors"] == [
            "floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"
        ]  # fmt: skip
        assert np.asarray(metrics["mi_matrix"]).shape == (10, 6)
        scores = metrics["scores"]
        assert set(scores) == set(METRICS) - LIBRARY_DCI
        assert "6 factors, shape included" in scores["mig"]["settings"]
        assert "chance 0.17" in scores["beta_vae"]["settings"]
        assert all(0 <= scores[m]["mean"] <= 1 for m in scores if m != "active_latents")
    assert "true shape label" in scores["mig"]["settings"]


def test_scores_are_not_written_over_weights_saved_while_they_were_computed(tmp_path):
    """A training run that saves over the folder while `evaluate` runs: nothing is written, and
    the error says why; with the weights left alone the result lands in the card."""
    import torch

    from app.checkpoints import load_checkpoint, save_checkpoint
    from app.metrics.evaluate import EvaluationError, score_into_card
    from app.models import VAE, ModelConfig

    folder = tmp_path / "m"
    torch.manual_seed(0)
    save_checkpoint(folder, VAE(ModelConfig(image_size=32)), ModelCard(name="m"))

    def write(path, result):
        from app.checkpoints.card_file import update_card

        return update_card(path, lambda card: card.updated(scored=result))

    def score_while_a_run_saves(served):
        torch.manual_seed(1)
        save_checkpoint(folder, VAE(ModelConfig(image_size=32)), ModelCard(name="m"))
        return {"digest": served.digest, "value": 1}

    with pytest.raises(EvaluationError, match="the weights changed while they were scored"):
        score_into_card(folder, score_while_a_run_saves, write, "scores")
    assert "scored" not in load_checkpoint(folder).card.to_json()
    score_into_card(folder, lambda served: {"digest": served.digest, "value": 2}, write, "scores")
    assert load_checkpoint(folder).card.to_json()["scored"]["value"] == 2


def test_the_cli_shows_the_boosting_factor_by_factor_while_it_runs(trained, tmp_path, capsys):
    folder = copy_of(trained["tiny-vae"], tmp_path)
    argv = ["evaluate", str(folder), "--seeds", "2", "--points", "100", "--only",
            "dci_disentanglement,dci_et_disentanglement"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    # the progress bar (stderr) names each factor's boosting as it starts, on the first seed only
    for k in range(1, 6):
        assert f"seed 0 (1/2): DCI (gradient boosting), factor {k} of 5" in captured.err
    assert "seed 1 (2/2): DCI (gradient boosting)" not in captured.err
    scores = json.loads((folder / CARD).read_text())["metrics"]["scores"]
    assert len(scores["dci_disentanglement"]["values"]) == 1
    assert len(scores["dci_et_disentanglement"]["values"]) == 2
    assert "GradientBoostingClassifier" in scores["dci_disentanglement"]["settings"]
    assert "seed 0 only" in scores["dci_disentanglement"]["settings"]
