"""What the API says of a model and the pages show: its description, its dataset images and
its card, as one JSON object."""

from __future__ import annotations

from typing import Any

from app import inference
from app.checkpoints.served import ServedModel
from app.inference import DatasetImages, InferenceError, SetImages, TestImages
from app.models.elbo import ACTIVE_KL
from app.models.priors import MIXTURE_KL_NOTE
from app.settings import Settings
from app.web.deps import DataPick
from app.web.errors import NotFoundError
from app.web.inputs import images_of


def _summary_images(
    ckpt: ServedModel, settings: Settings | None, data: DataPick | None
) -> tuple[DatasetImages | None, str | None]:
    """The model's dataset images and, where they are not installed, why: with the settings,
    a test split too (read from the data folder), and with a data pick the set it names (or
    for a model with no data of its own, the set of its dataset); without, ground truth only."""
    if settings is None:
        truth = inference.ground_truth_of(ckpt)
        return (inference.DrawnImages(truth) if truth else None), None
    try:
        return images_of(ckpt, settings, data), None
    except (InferenceError, NotFoundError) as e:
        return None, str(e)


def model_summary(
    ckpt: ServedModel, settings: Settings | None = None, data: DataPick | None = None
) -> dict[str, Any]:
    """What the API says of a model and the pages show. With the settings, a model whose
    dataset has a test split (Fashion-MNIST) counts its test images as its dataset images;
    with a data pick, the images are those of the set it names."""
    cfg = ckpt.description
    images, missing = _summary_images(ckpt, settings, data)
    return {
        "name": ckpt.name,
        "kind": cfg.kind,
        "beta": cfg.beta,
        "objective": cfg.objective,
        "latent_dim": cfg.latent_dim,
        # a spatial latent's [channels, height, width] (z is it flattened), else null
        "latent_shape": list(cfg.latent_shape) or None,
        "labels": list(cfg.label_names),
        "image_size": cfg.image_size,
        "height": cfg.height,
        "width": cfg.width,
        "channels": cfg.channels,
        "latent_names": [cfg.latent_name(i) for i in range(cfg.latent_dim)],
        "dataset": cfg.dataset,
        "factors": list(cfg.factor_names),
        # how many dataset images can be picked by index (None: none to draw from, or not
        # installed: `dataset_missing` says how to install them)
        "dataset_images": images.n_images if images else None,
        "dataset_name": images.name if images else None,
        "dataset_split": "test" if isinstance(images, TestImages) else None,
        "dataset_classes": list(images.label_names) if isinstance(images, TestImages) else [],
        "dataset_missing": missing,
        # the data set the images come from, where they are a served set's (data=NAME)
        "dataset_set": images.name if isinstance(images, SetImages) else None,
        # a data set's categorical columns and their values, to pick an image by
        "dataset_values": images.pickable_values() if isinstance(images, SetImages) else [],
        "latent_order": inference.latent_order(ckpt),
        # the factors it was trained on, where known ("dSprites", "colour shapes"): what the
        # Figure 2 section shows for it (None: nothing applies)
        "ground_truth": truth.name if (truth := inference.ground_truth_of(ckpt)) else None,
        # latents in use: the card's count, else from the KL measured here on its data set
        "active_latents": ckpt.card.active_latents
        if ckpt.card.active_latents is not None
        else (sum(k > ACTIVE_KL for k in ckpt.kl) if ckpt.kl else None),
        "kl_measured_on": ckpt.kl_measured_on,
        # p(z) in words ("the standard normal N(0, I)", "a mixture of 50 Gaussians (a VampPrior)")
        # and, for a prior other than N(0, I), what its per-latent KL figures are (else null)
        "prior": ckpt.prior.described if cfg.stochastic else None,
        "prior_symbol": ckpt.prior.symbol if cfg.stochastic else None,  # what `z ~` reads
        "kl_note": None if ckpt.prior.kind == "normal" else MIXTURE_KL_NOTE,
        "card": ckpt.card.to_json(),
    }
