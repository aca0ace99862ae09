"""The shipped checkpoints are real: they load, reconstruct held-out sprites, say how they were
trained, read back as the sprite they were given, the β model uses fewer latents than the β=1
model and is the disentangled one, and the denoising autoencoder undoes noise the plain models
reproduce."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from app.checkpoints import load_checkpoint
from app.data.dsprites import render, sample_classes

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("dsprites-ae", "dsprites-vae", "dsprites-beta-vae", "dsprites-cvae", "dsprites-dae")
# how often a reconstruction reads back as the input's shape, scale (±1 step) and angle (±15°)
# (app.metrics.recognition): the β model gives up some of the angle for its disentangled code
RECOGNISED = {"dsprites-ae": 0.9, "dsprites-vae": 0.9, "dsprites-cvae": 0.9,
              "dsprites-beta-vae": 0.6}  # fmt: skip


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reconstructs_held_out_sprites(name):
    ckpt = load_checkpoint(ROOT / "checkpoints" / name).served()
    assert (ckpt.path / "model.safetensors").stat().st_size <= 5 * 1024 * 1024
    classes = sample_classes(np.random.default_rng(12345), 256)  # not the training stream
    x = torch.from_numpy(render(classes)[:, None]).float()
    labels = torch.from_numpy(classes[:, 0]) if ckpt.description.kind == "cvae" else None
    with torch.no_grad():
        recon = ckpt.model.decode(ckpt.model.encode(x, labels).mean, labels) > 0.5
    truth = x > 0.5
    iou = ((recon & truth).flatten(1).sum(1) / (recon | truth).flatten(1).sum(1)).numpy()
    # recognisably the input: the sprite in the same place, with the same size (median IoU),
    # and hardly any image lost entirely
    assert np.median(iou) > 0.6, (name, np.median(iou))
    assert (iou > 0.3).mean() > 0.9, (name, (iou > 0.3).mean())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_says_how_it_was_trained(name):
    card = load_checkpoint(ROOT / "checkpoints" / name).card.to_json()
    commands = card.get("commands", [card["command"]])  # the first began it, others resumed it
    assert all(c.startswith("latent-explorer train") for c in commands)
    assert any(f"--out checkpoints/{name}" in c for c in commands)
    # a run stopped by a signal ships the step it reached; --resume takes it to target_steps
    assert 1000 < card["steps"] <= card["target_steps"]
    for key in ("seed", "wall_time_s", "device", "final_train_loss", "eval", "batch_size"):
        assert card[key] is not None, key


@pytest.mark.parametrize("name", sorted(RECOGNISED))
def test_shipped_reconstructions_read_back_as_the_input_sprite(name):
    from app.metrics.recognition import recognise

    r = recognise(load_checkpoint(ROOT / "checkpoints" / name).served(), n=128, seed=7)
    assert r.all_three >= RECOGNISED[name], r
    assert r.shape >= 0.85 and r.scale >= 0.95 and r.centroid_px < 0.5, r


def _kl_bars(card: dict) -> list[float]:
    return sorted(card["kl_per_dim"], reverse=True)


def test_the_beta_model_uses_visibly_fewer_latents_than_beta_1():
    vae = load_checkpoint(ROOT / "checkpoints" / "dsprites-vae").card.to_json()
    beta = load_checkpoint(ROOT / "checkpoints" / "dsprites-beta-vae").card.to_json()
    # "visibly", as the cards' KL bars show it (4,096 held-out images): at least two fewer
    # latents carry a nat or more, and no more are active (above 0.1 nats)
    assert sum(k >= 1.0 for k in _kl_bars(beta)) <= sum(k >= 1.0 for k in _kl_bars(vae)) - 2
    assert beta["active_latents"] <= vae["active_latents"]


def test_the_beta_model_carries_less_information_than_beta_1():
    vae = load_checkpoint(ROOT / "checkpoints" / "dsprites-vae").card.to_json()
    beta = load_checkpoint(ROOT / "checkpoints" / "dsprites-beta-vae").card.to_json()
    assert beta["eval"]["kl_total"] < 0.8 * vae["eval"]["kl_total"]


def test_the_beta_model_is_the_disentangled_one():
    """What the disentangled model is shipped for, on the cards' `latent-explorer evaluate`
    figures: 5 ± 1 active latents, MIG ≥ 0.30 over all five factors and at least twice β=1's."""
    vae = load_checkpoint(ROOT / "checkpoints" / "dsprites-vae").card.to_json()["metrics"]
    beta = load_checkpoint(ROOT / "checkpoints" / "dsprites-beta-vae").card.to_json()["metrics"]
    assert 4 <= beta["scores"]["active_latents"]["mean"] <= 6
    assert beta["scores"]["mig"]["mean"] >= 0.30
    assert beta["scores"]["mig"]["mean"] >= 2 * vae["scores"]["mig"]["mean"]


@pytest.mark.parametrize(
    ("noise", "level"), [("gaussian", 0.3), ("salt_pepper", 0.2), ("mask", 0.25)]
)
def test_the_denoising_autoencoder_undoes_what_the_plain_models_reproduce(noise, level):
    from app.data.corruption import corrupt
    from app.studies.quality import psnr

    names = ("dsprites-dae", "dsprites-ae", "dsprites-vae")
    models = [load_checkpoint(ROOT / "checkpoints" / n).served() for n in names]
    clean = render(sample_classes(np.random.default_rng(54321), 128))[:, None].astype(np.float32)
    noisy = corrupt(clean, noise, level, np.random.default_rng(1))
    x, y = torch.from_numpy(clean), torch.from_numpy(noisy)
    after = {}
    for ckpt in models:  # mean PSNR over the batch, each image against its clean self
        with torch.no_grad():
            out = ckpt.model.decode(ckpt.model.encode(y).mean)
        after[ckpt.name] = float(psnr(out, x).mean())
    before = float(psnr(y, x).mean())
    assert after["dsprites-dae"] > after["dsprites-ae"] + 1.0, (after, before)
    assert after["dsprites-dae"] > after["dsprites-vae"] + 1.0, (after, before)
    assert after["dsprites-dae"] > before, (after, before)


# --- the cards tell the truth about how each model was trained ------------------------------

# trained here: an imported model's card records its "source" instead of a run of ours
# (tests/test_import_disentangling_vae.py holds those to their own record)
ALL_SHIPPED = sorted(p.parent.name for p in (ROOT / "checkpoints").glob("*/card.json")
                     if "source" not in json.loads(p.read_text(encoding="utf-8")))  # fmt: skip
UNRECORDED = "not recorded"


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _commands(segment: dict) -> list[str]:
    return segment.get("commands") or [segment["command"]]


@pytest.mark.parametrize("name", ALL_SHIPPED)
def test_shipped_card_says_where_every_step_was_trained(name):
    card = _read(ROOT / "checkpoints" / name / "card.json")
    segments = card["segments"]
    assert segments[0]["from_step"] == 0
    for a, b in zip(segments, segments[1:], strict=False):
        assert a["to_step"] == b["from_step"], (a, b)
    assert sum(s["to_step"] - s["from_step"] for s in segments) == card["steps"]
    for s in segments:
        assert re.fullmatch(r"cpu \(\d+ cores?, \d+ threads?\)|cuda \(.+\)", s["device"]), s
        assert s["torch"] and s["torch"] != UNRECORDED, s
    # every command the run was given made the steps of one segment, in the order given
    assert [c for s in segments for c in _commands(s)] == card["commands"]
    walls = [s["wall_time_s"] for s in segments]
    known = sum(w for w in walls if w is not None)
    if None in walls:
        assert known < card["wall_time_s"]
    else:
        assert known == pytest.approx(card["wall_time_s"], abs=0.1)
    # (that a --resume carries the segments on is tested on runs trained in test_training.py;
    # the shipped run folders are not in the repository)


# where the runs' history puts them: the GPU models began on the CPU, and the disentangled model
# trained on the GPU but for the last step, taken on the CPU under the shipped folder's name
MOVED = {
    "dsprites-ae": [("cpu", 8000), ("cuda", 42000)],
    "dsprites-cvae": [("cpu", 10000), ("cuda", 35000)],
    "shapes-beta4-vae": [("cpu", 11516), ("cuda", 48484)],
    "dsprites-beta-vae": [("cuda", 51089), ("cpu", 1)],
}


@pytest.mark.parametrize("name", sorted(MOVED))
def test_runs_that_moved_between_cpu_and_gpu_say_so(name):
    card = _read(ROOT / "checkpoints" / name / "card.json")
    steps: list[tuple[str, int]] = []
    for s in card["segments"]:
        kind, n = s["device"].split(" ")[0], s["to_step"] - s["from_step"]
        if steps and steps[-1][0] == kind:
            steps[-1] = (kind, steps[-1][1] + n)
        else:
            steps.append((kind, n))
    assert steps == MOVED[name]


def _sha256_of_weights(folder: Path) -> str:
    """As app.checkpoints.weights_digest: each tensor's name, then its bytes, names sorted."""
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for key, tensor in sorted(load_file(str(folder / "model.safetensors")).items()):
        h.update(key.encode())
        h.update(tensor.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_the_vaegan_names_its_parent_as_it_is_now_called_and_by_its_weights():
    card = _read(ROOT / "checkpoints" / "shapes-vaegan" / "card.json")
    parent = card["initialised_from"]
    assert parent["name"] == "shapes-beta4-vae" and parent["path"] == "checkpoints/shapes-beta4-vae"
    assert parent["digest"] == _sha256_of_weights(ROOT / "checkpoints" / "shapes-beta4-vae")
    assert "; initialised from shapes-beta4-vae (β-VAE, β=4, 60,000 steps)" in card["recipe"]
    # re-running a recorded command starts from that parent, not from today's shapes-beta-vae
    commands = [*card["commands"], *(c for s in card["segments"] for c in _commands(s))]
    assert all("--init-from checkpoints/shapes-beta4-vae " in c for c in commands), commands


def test_no_shipped_model_page_or_readme_says_a_ae_or_1_threads():
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    bad = re.compile(r"\bA AE\b|\b1 threads\b|\b1 cores\b")
    with TestClient(create_app(Settings(checkpoints_dir=ROOT / "checkpoints"))) as client:
        for name in ALL_SHIPPED:
            page = client.get(f"/models/{name}")
            assert page.status_code == 200, name
            assert not bad.search(page.text), (name, bad.search(page.text))
            assert not bad.search((ROOT / "checkpoints" / name / "README.md").read_text()), name
            # the page names where each segment ran, and is not the card.json dumped
            for s in _read(ROOT / "checkpoints" / name / "card.json")["segments"]:
                assert s["device"] in page.text, (name, s["device"])
            assert '"from_step"' not in page.text and "&#34;from_step&#34;" not in page.text
