"""What every importer does, whatever it imports: read a PyTorch file as tensors and nothing
else, measure a model on its dataset where we can draw that dataset, and write the checkpoint
folder whole, with the importer's own README (a model trained elsewhere is not "trained by
latent-explorer", which is what a trained folder's README says)."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from app.data.ground_truth import GroundTruth
from app.importers import ModelImportError
from app.models import VAE
from app.models.elbo import kl_per_dim, reconstruction_nll

ACTIVE_KL = 0.1  # nats: a latent above this mean KL is in use (DESIGN.md)


def listed(names: list[str], most: int = 5) -> str:
    """The first `most` names, and how many more."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _unpickling_reason(e: pickle.UnpicklingError) -> str:
    """The line of torch's message that says what the file asked for ("Unsupported global:
    GLOBAL builtins.exec …"), without its advice to load the file unsafely."""
    text = str(e)
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return (found.group(1) if found else text.strip().splitlines()[0]).strip()


def load_state_dict_file(
    path: Path, max_bytes: int, expected: str
) -> tuple[dict[str, torch.Tensor], str]:
    """A PyTorch file of named tensors → (the state dict, sha256 of the file), read with
    `torch.load(weights_only=True)`: a pickle that asks for anything but tensors is refused
    before a single object is built, so nothing in it runs. `expected` names what the file
    should be, for the messages."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ModelImportError(
            f"{path}: {size / 2**20:.0f} MiB is far more than {expected} should be"
        )
    data = path.read_bytes()  # read once: the bytes hashed are the bytes loaded
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise ModelImportError(
            f"{path}: refused: it holds more than tensors ({_unpickling_reason(e)}), and loading "
            f"it would run what it names. Nothing in it was run. {expected} is a "
            "torch.save(model.state_dict()), tensors only"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure to decode untrusted bytes is this error
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelImportError(
            f"{path}: not a readable PyTorch file ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(obj, dict):
        raise ModelImportError(
            f"{path}: holds a {type(obj).__name__}, not a state dict (names → tensors)"
        )
    odd = [
        str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)
    ]
    if odd:
        raise ModelImportError(f"{path}: entries that are not named tensors: {listed(odd)}")
    return obj, digest


@torch.no_grad()
def dataset_figures(model: VAE, truth: GroundTruth, n: int, seed: int) -> dict[str, Any]:
    """Mean −log p(x|z) (z = μ) and KL per latent over `n` images drawn from the dataset's
    factors (classes from numpy's default_rng(seed)), as our own cards' "eval" has them."""
    cfg = model.config
    classes = truth.sample_classes(np.random.default_rng(seed), n)
    recon = torch.zeros((), dtype=torch.float64)
    kl = torch.zeros(cfg.latent_dim, dtype=torch.float64)
    for i in range(0, n, 512):
        x = torch.from_numpy(truth.render(classes[i : i + 512]))  # (B, C, H, W) in [0, 1]
        mu, logvar = model.encode(x)
        assert logvar is not None  # a vae
        nll = reconstruction_nll(model.decode(mu), x, cfg.likelihood, cfg.gaussian_sigma)  # (B,)
        recon += nll.double().sum()
        kl += kl_per_dim(mu, logvar).double().sum(dim=0)
    recon, kl = recon / n, kl / n
    return {
        "eval_images": n,
        "seed": seed,
        "images": f"{truth.name} drawn by latent-explorer, factor classes from "
        "numpy.random.default_rng(seed)",
        "recon_nll": round(float(recon), 4),
        "kl_per_dim": [round(float(v), 4) for v in kl],
        "kl_total": round(float(kl.sum()), 4),
        "neg_elbo": round(float(recon + kl.sum()), 4),
        "active_latents": int((kl > ACTIVE_KL).sum()),
    }


def write_imported(out: Path, model: VAE, card: dict[str, Any], readme: str) -> Checkpoint:
    """model.safetensors + config.json + card.json + this README.md, swapped in whole by
    app.checkpoints.save_checkpoint (a new folder: nothing of an earlier card is kept), then
    loaded back through the strict loader the server uses."""
    save_checkpoint(out, model, card, replaces=True, readme=readme)
    return load_checkpoint(out)
