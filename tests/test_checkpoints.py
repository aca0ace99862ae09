"""Checkpoint folders: safetensors + JSON only, atomic writes, strict loads with clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.checkpoints import CheckpointError, ModelCard, load_checkpoint, save_checkpoint
from app.checkpoints import files as folders
from app.models import VAE, ModelConfig


def _x(n: int = 4) -> torch.Tensor:
    return (torch.rand(n, 1, 64, 64, generator=torch.Generator().manual_seed(3)) > 0.7).float()


def test_folder_has_the_hugging_face_layout_and_no_pickles(trained):
    folder = trained["tiny-vae"]
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "card.json", "README.md"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for n in names)
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "vae" and config["latent_dim"] == 10 and config["beta"] == 4.0
    card = json.loads((folder / "card.json").read_text())
    assert card["steps"] == 150 and card["seed"] == 0 and len(card["kl_per_dim"]) == 10
    assert card["recipe"] == "β-VAE, β=4" and card["device"].startswith("cpu")
    # optimiser state is kept apart from the shipped weights
    assert "optimizer.safetensors" not in names


def test_round_trip_gives_identical_outputs(trained, tmp_path):
    ckpt = load_checkpoint(trained["tiny-vae"])
    save_checkpoint(tmp_path / "copy", ckpt.model, ckpt.card)
    again = load_checkpoint(tmp_path / "copy")
    assert again.config == ckpt.config and again.card == ckpt.card
    with torch.no_grad():
        a = ckpt.model(_x())
        b = again.model(_x())
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


def test_hub_mixin_loads_the_same_folder(trained):
    """A folder works with huggingface_hub's from_pretrained on a local path, unchanged."""
    ours = load_checkpoint(trained["tiny-ae"]).model
    hub = VAE.from_pretrained(str(trained["tiny-ae"]), strict=True)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, hub.state_dict()[k])


def test_an_interrupted_save_leaves_the_previous_checkpoint_whole(trained, tmp_path, monkeypatch):
    target = tmp_path / "m"
    shutil.copytree(trained["tiny-vae"], target)
    before = load_checkpoint(target)
    other = VAE(before.config)  # different (fresh) weights

    def crash_after_weights(self, save_directory, **kw):
        checkpoints_save(self, save_directory, **kw)
        raise KeyboardInterrupt("killed mid-save")

    checkpoints_save = VAE.save_pretrained
    monkeypatch.setattr(VAE, "save_pretrained", crash_after_weights)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(target, other, ModelCard(steps=999))
    monkeypatch.undo()
    after = load_checkpoint(target)
    assert after.card == before.card
    for k, v in before.model.state_dict().items():
        assert torch.equal(v, after.model.state_dict()[k])
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no half-written folder left behind


def test_a_crash_between_the_two_renames_is_recovered(trained, tmp_path, monkeypatch):
    """Where RENAME_EXCHANGE is unavailable the swap takes two renames; the backup survives."""
    target = tmp_path / "m"
    shutil.copytree(trained["tiny-vae"], target)
    before = load_checkpoint(target)
    monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    real_rename = folders.os.rename

    def rename(src, dst):
        real_rename(src, dst)
        if Path(dst).name.endswith(".old"):
            raise SystemExit("power cut")

    monkeypatch.setattr(folders.os, "rename", rename)
    with pytest.raises(SystemExit):
        save_checkpoint(target, VAE(before.config), ModelCard(steps=1))
    monkeypatch.undo()
    assert not target.exists()
    assert load_checkpoint(target).card == before.card  # restored from the backup


def test_weights_that_do_not_match_the_config_give_an_error_naming_the_mismatch(trained, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(trained["tiny-vae"], target)
    config = json.loads((target / "config.json").read_text())
    config["latent_dim"] = 12
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(target)
    msg = str(e.value)
    assert "weights do not match config.json" in msg
    assert "encoder.head.weight is (20, 256)" in msg and "needs (24, 256)" in msg


def test_missing_and_extra_tensors_are_named(trained, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(trained["tiny-vae"], target)
    tensors = load_file(str(target / "model.safetensors"))
    tensors.pop("decoder.dense.0.bias")
    tensors["surprise"] = torch.zeros(1)
    save_file(tensors, str(target / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match="lacks decoder.dense.0.bias.*does not describe: surprise"
    ):
        load_checkpoint(target)


def test_truncated_weights_and_bad_configs_are_clear_errors(trained, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(trained["tiny-vae"], target)
    data = (target / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(target)

    shutil.rmtree(target)
    shutil.copytree(trained["tiny-vae"], target)
    (target / "config.json").write_text('{"kind": "gan"}')
    with pytest.raises(CheckpointError, match="kind must be one of ae, vae, cvae, got 'gan'"):
        load_checkpoint(target)
    (target / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_checkpoint(target)
    (target / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_checkpoint(target)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_checkpoint(tmp_path / "nope")


def test_config_rejects_unknown_fields_and_wrong_types():
    good = ModelConfig().to_json()
    assert ModelConfig.from_json(good) == ModelConfig()
    with pytest.raises(ValueError, match="unknown fields: evil"):
        ModelConfig.from_json({**good, "evil": 1})
    with pytest.raises(ValueError, match="latent_dim must be int"):
        ModelConfig.from_json({**good, "latent_dim": "10"})
    with pytest.raises(ValueError, match="label_names must be a list of strings"):
        ModelConfig.from_json({**good, "kind": "cvae", "label_names": "ab"})
