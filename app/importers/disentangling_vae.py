"""A model of YannDubs/disentangling-vae as one of our checkpoint folders
(`latent-explorer import disentangling-vae SRC`).

Their `results/NAME/` folder holds `model.pt` (`torch.save(model.state_dict())`) and `specs.json`
(the training settings). Their "Burgess" network is ours (Burgess et al. 2018, app/models/vae.py)
under other names, read two ways differently:

- the encoder's last layer interleaves its outputs (`out.view(-1, D, 2).unbind(-1)`: row 2i is
  μ_i, row 2i+1 is log σ²_i); ours reads the first D rows as μ and the next D as log σ²;
- their decoder ends in a sigmoid; ours returns its input, the logits of the Bernoulli likelihood
  they trained with, which is ours too.

model.pt is read with `torch.load(weights_only=True)`, which refuses a pickle that needs anything
but tensors before it builds a single object: nothing in the file runs. Every tensor name, shape
and value is checked before anything is written, and the folder appears whole or not at all.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from app.checkpoints import Checkpoint
from app.data.ground_truth import ground_truth
from app.importers import ModelImportError
from app.importers.common import (
    dataset_figures,
    load_state_dict_file,
    output_folder,
    read_source_file,
    read_source_json,
    write_imported,
)
from app.importers.disvae_losses import LOSS_KEYS, map_loss
from app.importers.train_losses_log import TRAIN_LOG, training_kl
from app.models import VAE, ConfigError, ModelConfig
from app.models.elbo import ACTIVE_KL
from app.quoting import listed

REPOSITORY = "YannDubs/disentangling-vae"
URL = "https://github.com/YannDubs/disentangling-vae"
WEIGHTS_FILE = "model.pt"
SPECS_FILE = "specs.json"
LICENSE_FILE = "LICENSE"  # the repository's, two folders above results/NAME
MAX_WEIGHTS_BYTES = 64 * 2**20  # their Burgess network is ~2 MB; a file far larger is not one
MAX_SPECS_BYTES = 2**20  # their specs.json is ~750 bytes
MAX_LICENSE_BYTES = 2**20  # their MIT notice is ~1.3 kB
EVAL_IMAGES = 4096  # dataset images for the card's KL per latent, as our own cards have
EVAL_SEED = 0

# --- their names → ours ---------------------------------------------------------------------

# their convolutions in the order their forward applies them: conv_64 exists only at 64×64 and
# comes last in the encoder; convT_64 likewise, and comes first in the decoder
ENCODER_CONVS = ("conv1", "conv2", "conv3", "conv_64")
DECODER_DECONVS = ("convT_64", "convT1", "convT2", "convT3")
HEAD = "encoder.mu_logvar_gen"
IMAGE_SIZES = (32, 64)  # the sizes their Burgess network is built for


def layer_table(image_size: int) -> dict[str, str]:
    """Their layer names → ours, for the Burgess network at `image_size`; each layer has a
    `.weight` and a `.bias`. Our Sequential stacks put a ReLU after each layer, hence every
    other index."""
    convs = ENCODER_CONVS if image_size == 64 else ENCODER_CONVS[:3]
    deconvs = DECODER_DECONVS if image_size == 64 else DECODER_DECONVS[1:]
    return {
        **{f"encoder.{theirs}": f"encoder.convs.{2 * i}" for i, theirs in enumerate(convs)},
        "encoder.lin1": "encoder.dense.0",
        "encoder.lin2": "encoder.dense.2",
        HEAD: "encoder.head",  # rows reordered by deinterleave
        "decoder.lin1": "decoder.dense.0",
        "decoder.lin2": "decoder.dense.2",
        "decoder.lin3": "decoder.dense.4",
        **{f"decoder.{theirs}": f"decoder.deconvs.{2 * i}" for i, theirs in enumerate(deconvs)},
    }


def deinterleave(rows: torch.Tensor) -> torch.Tensor:
    """Their head's rows (μ_0, log σ²_0, μ_1, log σ²_1, …) → ours (μ_0 … μ_{D−1}, log σ²_0 …):
    (2D, …) → (2D, …)."""
    return torch.cat([rows[0::2], rows[1::2]])


# --- reading their folder -------------------------------------------------------------------


# how they trained, as our cards name it ← as specs.json does
TRAINING = {"epochs": "epochs", "batch_size": "batch_size", "learning_rate": "lr", "seed": "seed"}


@dataclass(frozen=True)
class Specs:
    """What we use of specs.json, checked."""

    channels: int
    image_size: int
    latent_dim: int
    loss: str
    hyperparameters: dict[str, float]  # the ones the loss reads, as specs.json names them
    dataset: str
    training: dict[str, float]  # TRAINING's keys that specs.json records
    experiment: str | None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_specs(src: Path) -> Specs:
    """specs.json → Specs, or a ModelImportError naming the field that is missing or wrong."""
    path = src / SPECS_FILE
    if not os.path.lexists(path):
        raise ModelImportError(
            f"{src}: {SPECS_FILE} is missing (disentangling-vae writes it beside model.pt)"
        )
    data = read_source_json(path, MAX_SPECS_BYTES)
    if not isinstance(data, dict):
        raise ModelImportError(f"{path}: expected a JSON object, got {type(data).__name__}")

    def need(key: str, ok: bool, what: str) -> Any:
        if key not in data:
            raise ModelImportError(f"{path}: lacks {key} ({what})")
        if not ok:
            raise ModelImportError(f"{path}: {key} must be {what}, got {data[key]!r}")
        return data[key]

    model_type = need("model_type", isinstance(data.get("model_type"), str), "a string")
    if model_type != "Burgess":
        raise ModelImportError(
            f"{path}: model_type {model_type!r} cannot be imported: only 'Burgess' (Burgess et al. "
            "2018), the network latent-explorer builds, is"
        )
    img: list[int] = need("img_size", isinstance(data.get("img_size"), list)
                          and len(data["img_size"]) == 3 and all(map(_is_int, data["img_size"])),
                          "[channels, height, width]")  # fmt: skip
    channels, height, width = img
    if channels not in (1, 3) or height != width or height not in IMAGE_SIZES:
        raise ModelImportError(
            f"{path}: img_size {img} cannot be built: the Burgess network takes 1 or 3 channels "
            f"of {' or '.join(f'{s}×{s}' for s in IMAGE_SIZES)} pixels"
        )
    latent_dim = need("latent_dim", _is_int(data.get("latent_dim")) and data["latent_dim"] >= 1,
                      "a positive integer")  # fmt: skip
    loss = need("loss", isinstance(data.get("loss"), str), "a string")
    if loss not in LOSS_KEYS:
        raise ModelImportError(
            f"{path}: unknown loss {loss!r}: disentangling-vae's losses are {', '.join(LOSS_KEYS)}"
        )
    hyper = {k: need(k, _is_number(data.get(k)), f"a number, which the {loss} loss uses")
             for k in LOSS_KEYS[loss]}  # fmt: skip
    rec_dist = need("rec_dist", isinstance(data.get("rec_dist"), str), "a string")
    if rec_dist != "bernoulli":
        raise ModelImportError(
            f"{path}: rec_dist {rec_dist!r} cannot be imported: only 'bernoulli' is, whose "
            "cross-entropy on the decoder's logits is our Bernoulli likelihood"
        )
    dataset = need("dataset", isinstance(data.get("dataset"), str)
                   and re.fullmatch(r"[A-Za-z0-9_-]+", data["dataset"]) is not None,
                   "a dataset name")  # fmt: skip
    dataset = dataset.lower()
    truth = ground_truth(dataset)
    if truth is not None and (channels, height) != (truth.channels, 64):
        raise ModelImportError(
            f"{path}: img_size {img} does not fit dataset {dataset!r}, whose images are "
            f"{truth.channels}×64×64"
        )
    training = {ours: data[key] for ours, key in TRAINING.items() if _is_number(data.get(key))}
    experiment = data.get("experiment")
    return Specs(
        channels=channels,
        image_size=height,
        latent_dim=latent_dim,
        loss=loss,
        hyperparameters=hyper,
        dataset=dataset,
        training=training,
        experiment=experiment if isinstance(experiment, str) else None,
    )


def read_weights(src: Path) -> tuple[dict[str, torch.Tensor], str]:
    """model.pt → (their state dict, sha256 of the file), through the weights-only loader."""
    path = src / WEIGHTS_FILE
    if not os.path.lexists(path):
        raise ModelImportError(
            f"{src}: {WEIGHTS_FILE} is missing (disentangling-vae saves "
            "torch.save(model.state_dict()) there)"
        )
    return load_state_dict_file(path, MAX_WEIGHTS_BYTES, "disentangling-vae's model.pt")


def convert_state_dict(
    theirs: dict[str, torch.Tensor], config: ModelConfig, where: str = WEIGHTS_FILE
) -> dict[str, torch.Tensor]:
    """Their state dict → ours for `config`'s network, every name, shape and value checked:
    a ModelImportError names each tensor that is missing, extra, misshapen or not finite."""
    table = layer_table(config.image_size)
    names = {f"{t}.{p}": f"{o}.{p}" for t, o in table.items() for p in ("weight", "bias")}
    expected = VAE(config).state_dict()
    # the table is ours: a name it misses is our bug, not the file's
    assert set(names.values()) == set(expected), sorted(set(expected) ^ set(names.values()))
    network = (
        f"the Burgess network for {config.channels}×{config.image_size}×{config.image_size} "
        f"images and {config.latent_dim} latents (specs.json)"
    )
    missing = [k for k in names if k not in theirs]
    extra = [k for k in theirs if k not in names]
    misshapen = [
        f"{k} is {tuple(theirs[k].shape)}, needs {tuple(expected[names[k]].shape)}"
        for k in names
        if k in theirs and theirs[k].shape != expected[names[k]].shape
    ]
    not_float = [k for k in names if k in theirs and not theirs[k].is_floating_point()]
    problems = []
    if missing:
        problems.append(f"lacks {listed(missing)}")
    if extra:
        problems.append(f"has tensors {network} does not: {listed(extra)}")
    if misshapen:
        problems.append(listed(misshapen, 3))
    if not_float:
        problems.append(f"holds integers, not weights, in {listed(not_float)}")
    if problems:
        raise ModelImportError(f"{where} does not fit {network}: " + "; ".join(problems))
    not_finite = [k for k in names if not torch.isfinite(theirs[k]).all()]
    if not_finite:
        raise ModelImportError(f"{where}: NaN or infinite weights in {listed(not_finite)}")
    ours = {}
    for k, o in names.items():
        t = theirs[k].detach().to(torch.float32)
        ours[o] = (deinterleave(t) if k.startswith(HEAD + ".") else t).contiguous()
    return ours


# --- what the card says ---------------------------------------------------------------------


def default_name(specs: Specs, folder: str) -> str:
    """disvae-<loss>-<dataset> and whatever the folder's name adds to their <loss>_<dataset>,
    as it is: results/btcvae_celeba → disvae-btcvae-celeba (the names their published folders
    are shipped under), btcvae_celeba_a-5 → disvae-btcvae-celeba_a-5 (one name per folder of
    variants trained beside it); a folder named otherwise keeps its name after a dash."""
    ours = f"disvae-{specs.loss.lower()}-{specs.dataset.replace('_', '-')}"
    theirs = f"{specs.loss}_{specs.dataset}".lower()
    if folder.lower().startswith(theirs):
        return ours + folder[len(theirs) :]
    return f"{ours}-{folder}"


def read_licence(src: Path) -> dict[str, Any]:
    """The repository's LICENSE (SRC/../../LICENSE, results/NAME being two levels down): its
    name, copyright lines and full text, which MIT asks to keep with every copy."""
    path = src.resolve().parent.parent / LICENSE_FILE
    text = None
    if os.path.lexists(path):  # checked as every file read is: one linked elsewhere is refused
        try:
            text = read_source_file(path, MAX_LICENSE_BYTES).decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is None:
        return {
            "name": None,
            "text": None,
            # the folder as their repository names it: not this machine's path to it
            "note": f"no readable LICENSE at {source_folder(src)}/../../{LICENSE_FILE}: the "
            f"licence of these weights is not recorded here. {REPOSITORY} publishes its code "
            "under the MIT licence; keep its notice with any copy",
        }
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    return {
        "name": "MIT" if first == "MIT License" else first or None,
        "copyright": [line.strip() for line in text.splitlines() if "Copyright" in line],
        "text": text,
        "file": "LICENSE",
    }


DATA_TERMS = {
    "celeba": "CelebA (Liu et al. 2015): its images are released for non-commercial research "
    "purposes only, and this model learned from them",
}


def source_folder(src: Path) -> str:
    """ "results/NAME" for their layout, else the folder's own name."""
    src = src.resolve()
    return f"{src.parent.name}/{src.name}" if src.parent.name == "results" else src.name


# --- the import -----------------------------------------------------------------------------

COMMIT = re.compile(r"[0-9a-fA-F]{7,40}")


def import_disentangling_vae(
    src: Path,
    out: Path | None = None,
    *,
    name: str | None = None,
    commit: str | None = None,
    checkpoints_dir: Path = Path("checkpoints"),
    command: str | None = None,
    eval_images: int = EVAL_IMAGES,
) -> Checkpoint:
    """Convert their `results/NAME` folder `src` into our checkpoint folder `out` (default
    `checkpoints_dir/NAME`, NAME `name` or disvae-<loss>-<dataset>) and load it back. `commit`:
    the repository commit `src` comes from, recorded as given (unknown when None). A folder
    that exists at `out` is refused; on any error nothing is written."""
    src = Path(src)
    if not src.is_dir():
        raise ModelImportError(f"{src}: no such folder (expected disentangling-vae's results/NAME)")
    if commit is not None and not COMMIT.fullmatch(commit):
        raise ModelImportError(
            f"--commit must be a git commit hash (7–40 hex digits), got {commit!r}"
        )
    specs = read_specs(src)
    name, out = output_folder(
        name, out, checkpoints_dir, lambda: default_name(specs, src.resolve().name)
    )

    theirs, digest = read_weights(src)
    truth = ground_truth(specs.dataset)
    objective = map_loss(specs.loss, specs.hyperparameters)
    try:
        config = ModelConfig(
            kind="vae",
            latent_dim=specs.latent_dim,
            beta=objective.beta,
            objective=objective.name,
            channels=specs.channels,
            image_size=specs.image_size,
            likelihood="bernoulli",  # their rec_dist, checked in read_specs
            dataset=specs.dataset,
            factor_names=truth.factor_names if truth is not None else (),
        )
    except ConfigError as e:
        raise ModelImportError(f"{src / SPECS_FILE}: {e}") from e
    model = VAE(config)
    model.load_state_dict(convert_state_dict(theirs, config, str(src / WEIGHTS_FILE)), strict=True)
    model.eval()

    folder = source_folder(src)
    card: dict[str, Any] = {
        "name": name,
        "recipe": f"{objective.recipe}; trained by {REPOSITORY} ({folder}), imported",
        "objective": {
            "objective": objective.name,
            "loss": specs.loss,
            **specs.hyperparameters,
            "rec_dist": "bernoulli",
        },
        "dataset": specs.dataset,
        **specs.training,  # epochs, batch_size, learning_rate, seed: as our cards name them
        "source": {
            "repository": REPOSITORY,
            "url": URL,
            "commit": commit.lower() if commit else None,
            "folder": folder,
            "experiment": specs.experiment,
            "imported": datetime.now(UTC).date().isoformat(),
            "model_pt_sha256": digest,
        },
        "licence": read_licence(src),
    }
    if specs.dataset in DATA_TERMS:
        card["data_licence"] = DATA_TERMS[specs.dataset]
    if command:
        card["command"] = command
    if truth is not None and eval_images > 0:
        figures = dataset_figures(model, truth, eval_images, EVAL_SEED)
        card["eval"] = figures
        card["kl_per_dim"] = figures["kl_per_dim"]
        card["active_latents"] = figures["active_latents"]
    elif (trained := training_kl(src / TRAIN_LOG, specs.latent_dim)) is not None:
        # no images of its data here: the order of its latents from their training log instead
        trained["active_latents"] = sum(v > ACTIVE_KL for v in trained["kl_per_dim"])
        card["eval"] = trained
        card["kl_per_dim"] = trained["kl_per_dim"]
        card["active_latents"] = trained["active_latents"]

    return write_imported(out, model, card)
