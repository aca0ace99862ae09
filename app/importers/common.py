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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.checkpoints import (
    Checkpoint,
    CheckpointError,
    ModelCard,
    load_checkpoint,
    read_bytes,
    read_json,
    save_checkpoint,
)
from app.checkpoints.evaluation import held_out_figures
from app.data.ground_truth import GroundTruth
from app.importers import ModelImportError
from app.models import VAE
from app.quoting import listed

# torch's sentences on how to load a refused file anyway (weights_only set to False, or what it
# names allowlisted), on its defaults and its documentation (torch 2.6–2.13): none is the reason
TORCH_ADVICE = re.compile(
    r"weights only load failed|set to `?False|safe_globals|allowlist|trust|PyTorch \d|"
    r"can still be loaded|recommended steps|file an issue|documentation",
    re.IGNORECASE,
)


def torch_reasons(e: BaseException) -> list[str]:
    """What torch.load refused, in its own words, a sentence each ("Unsupported global: GLOBAL
    exec was not an allowed global by default."), without its advice to load the file some
    other way. torch wraps the weights-only unpickler's error in a message whose shape differs
    by case (a blocked module's has no "WeightsUnpickler error:" before the reason) and raises
    it `from None`: the unpickler's own error is still its __context__."""
    inner = e.__context__
    text = str(inner if isinstance(inner, pickle.UnpicklingError) and str(inner) else e)
    text = text.rsplit("WeightsUnpickler error:", 1)[-1]
    text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(text.split()))  # one line, no terminal bold
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z(`])", text)
    return [s for s in sentences if s and not TORCH_ADVICE.search(s)] or ["no reason given"]


def read_source_file(path: Path, limit: int) -> bytes:
    """The bytes of a file the importer reads, checked as the checkpoint loader checks its own
    (app.checkpoints.check_file): a regular file in its folder (a symlink only where it
    resolves inside it; never a FIFO, which would block the import, or a device, which would
    fill memory) of at most `limit` bytes, its size checked before a byte is read; else a
    ModelImportError naming the file."""
    try:
        return read_bytes(path, limit)
    except CheckpointError as e:
        raise ModelImportError(str(e)) from None


def read_source_json(path: Path, limit: int) -> Any:
    """A JSON file the importer reads, checked as read_source_file checks it, and refused in
    one line where it is not JSON or is nested too deeply to parse."""
    try:
        return read_json(path, limit)
    except CheckpointError as e:
        raise ModelImportError(str(e)) from None


def load_torch_file(path: Path, max_bytes: int, expected: str) -> tuple[Any, str]:
    """A PyTorch file → (what it holds, sha256 of the file), read with
    `torch.load(weights_only=True)`: a pickle that asks for anything but tensors, numbers,
    strings and containers of them is refused before a single object is built, so nothing in
    it runs. `expected` names what the file should be, for the messages."""
    data = read_source_file(path, max_bytes)  # read once: the bytes hashed are the bytes loaded
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        reason = " ".join(torch_reasons(e))
        raise ModelImportError(
            f"{path}: refused: it holds more than tensors ({reason}), and loading "
            f"it would run what it names. Nothing in it was run. {expected}"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure to decode untrusted bytes is this error
        raise ModelImportError(
            f"{path}: not a readable PyTorch file ({type(e).__name__}: {torch_reasons(e)[0]})"
        ) from None
    return obj, digest


def load_state_dict_file(
    path: Path, max_bytes: int, expected: str, inside: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """A PyTorch file of named tensors → (the state dict, sha256 of the file), read by
    load_torch_file. `expected` names what the file should be, for the messages; `inside`: the
    state dict is this entry of a dict (pythae's {"model_state_dict": ...})."""
    obj, digest = load_torch_file(
        path, max_bytes, f"{expected} is a torch.save(model.state_dict()), tensors only"
    )
    if inside is not None:
        if not isinstance(obj, dict) or inside not in obj:
            raise ModelImportError(f"{path}: no {inside!r} in it ({expected})")
        obj = obj[inside]
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


def dataset_figures(model: VAE, truth: GroundTruth, n: int, seed: int) -> dict[str, Any]:
    """The card's held-out figures (app.checkpoints.evaluation) over `n` images drawn from the
    dataset's factors, classes from numpy's default_rng(seed)."""
    classes = truth.sample_classes(np.random.default_rng(seed), n)
    batches = (
        (torch.from_numpy(truth.render(classes[i : i + 512])), None) for i in range(0, n, 512)
    )  # (B, C, H, W) in [0, 1]
    images = (
        f"{truth.name} drawn by latent-explorer, factor classes from numpy.random.default_rng(seed)"
    )
    return held_out_figures(model, batches, images=images, seed=seed).to_json()


def write_imported(out: Path, model: VAE, card: dict[str, Any]) -> Checkpoint:
    """model.safetensors + config.json + card.json + README.md, swapped in whole by
    app.checkpoints.save_checkpoint (a new folder: nothing of an earlier card is kept), then
    loaded back through the strict loader the server uses. The card is checked as loading
    checks it before anything is written. A folder that appeared at `out` while the model was
    converted (output_folder checked before) is still never replaced."""
    if out.exists():
        raise ModelImportError(f"{out} exists: refusing to replace it (choose another --out)")
    save_checkpoint(out, model, ModelCard.from_json(card, out), replaces=True)
    return load_checkpoint(out)


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def output_folder(
    name: str | None, out: Path | None, checkpoints_dir: Path, default: Callable[[], str]
) -> tuple[str, Path]:
    """(the imported model's name, the folder to write): `name`, else `out`'s folder name, else
    `default()`; `out`, else checkpoints_dir/NAME. A name that is not one, or a folder that
    exists already, is refused: an import never replaces a folder."""
    name = name or (Path(out).name if out is not None else default())
    if not MODEL_NAME.fullmatch(name):
        raise ModelImportError(
            f"model name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter "
            "or digit (give one with --name)"
        )
    folder = Path(out) if out is not None else Path(checkpoints_dir) / name
    if folder.exists() or folder.is_symlink():
        raise ModelImportError(f"{folder} exists: refusing to replace it (choose another --out)")
    return name, folder
