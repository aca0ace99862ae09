"""What the explorer does with a loaded model: decode, encode, traverse, interpolate, sample.
Tensors in, tensors out; no HTTP and no image bytes here (those are app/web and app/imaging)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.checkpoints.served import ServedModel
from app.data.base import DatasetError as DatasetError
from app.data.fashion_mnist import INSTALL as FASHION_MNIST_INSTALL
from app.data.fashion_mnist import LABEL_NAMES as FASHION_MNIST_CLASSES
from app.data.ground_truth import DSPRITES as DSPRITES
from app.data.ground_truth import GroundTruth as GroundTruth
from app.data.ground_truth import ground_truth
from app.data.test_split import TestSplit as TestSplit
from app.data.test_split import has_test_split as has_test_split
from app.data.test_split import test_split
from app.models.elbo import reconstruction_nll_of_means

# The data layer's names the web layer uses, re-exported here (the `as` form) so that it reaches
# data through this module alone: DatasetError (a dataset that cannot be opened), GroundTruth and
# DSPRITES (datasets drawn from known factors), TestSplit and has_test_split (held-out images).


class InferenceError(ValueError):
    """A request the model cannot answer (wrong latent length, label out of range, ...)."""


def _labels(ckpt: ServedModel, label: int | None, n: int) -> torch.Tensor | None:
    cfg = ckpt.description
    if cfg.kind != "cvae":
        if label is not None:
            raise InferenceError(f"model {ckpt.name} is a {cfg.kind}: it takes no label")
        return None
    label = 0 if label is None else label
    if not 0 <= label < cfg.n_labels:
        raise InferenceError(
            f"label must be in 0..{cfg.n_labels - 1} ({', '.join(cfg.label_names)}), got {label}"
        )
    return torch.full((n,), label, dtype=torch.long)


def ground_truth_of(model: ServedModel) -> GroundTruth | None:
    """The ground truth the model's images are drawn from, or None where there is none or where
    its renderer's images are not the shape the model takes."""
    return ground_truth(model.description.dataset, model.description.shape)


def has_factors(dataset: str) -> bool:
    """Whether a dataset (`config.dataset`) has known generating factors to score latents
    against, at whatever image size its renderer draws."""
    return ground_truth(dataset) is not None


@dataclass(frozen=True)
class DrawnImages:
    """A ground-truth dataset's images by index, drawn from their factors (dSprites: every one
    of its 737,280 factor combinations)."""

    truth: GroundTruth

    @property
    def name(self) -> str:
        return self.truth.name

    @property
    def noun(self) -> str:
        """What one image is called: "dSprites image"."""
        return f"{self.truth.name} image"

    @property
    def n_images(self) -> int:
        return self.truth.n_images

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.truth.label_names

    @property
    def default_index(self) -> int:
        """Every factor at the middle of its range."""
        return self.truth.middle_index

    def image(self, index: int) -> np.ndarray:
        """(C, H, W) float32 in [0, 1]."""
        return self.truth.image(index)

    def label(self, index: int) -> int:
        """The class a CVAE of this dataset is conditioned on (dSprites: the shape)."""
        return int(self.truth.index_to_classes(index)[0, self.truth.label_factor])

    def describe(self, index: int) -> str:
        return self.truth.describe(self.truth.index_to_classes(index)[0])


@dataclass(frozen=True)
class TestImages:
    """A real dataset's test split by index (Fashion-MNIST: 10,000 images, grey as published):
    held out from training, so what a model makes of them is what it makes of new data."""

    split: TestSplit

    __test__ = False  # not a pytest class, whatever its name

    @property
    def name(self) -> str:
        return self.split.name

    @property
    def noun(self) -> str:
        """What one image is called: "Fashion-MNIST test image"."""
        return f"{self.split.name} test image"

    @property
    def n_images(self) -> int:
        return len(self.split)

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.split.label_names

    @property
    def default_index(self) -> int:
        return 0

    def image(self, index: int) -> np.ndarray:
        """(C, H, W) float32 in [0, 1]."""
        if not 0 <= index < len(self.split):
            raise IndexError(f"{self.noun} index must be in 0..{len(self.split) - 1}, got {index}")
        return self.split.image(index)

    def label(self, index: int) -> int:
        """The image's class, as published."""
        return int(self.split.labels[index])

    def describe(self, index: int) -> str:
        return self.split.label_names[self.label(index)]

    def of_class(self, label: int) -> np.ndarray:
        """The indices of the test images of class `label`, ascending."""
        return np.flatnonzero(self.split.labels == label)


DatasetImages = DrawnImages | TestImages


def dataset_images_of(model: ServedModel, root: Path) -> DatasetImages | None:
    """The images of the model's dataset that can be picked by index: drawn from its ground
    truth, or its dataset's test split read from `root` (Settings.fashion_mnist_dir); None for
    a dataset with neither (an image folder, CelebA) or images not of the model's shape. A
    DatasetError, saying how to install it, when the test split cannot be read."""
    truth = ground_truth_of(model)
    if truth is not None:
        return DrawnImages(truth)
    cfg = model.description
    if not _takes_test_split(model):
        return None
    split = test_split(cfg.dataset, cfg.image_size, root)
    if split is None or tuple(split.images.shape[1:]) != cfg.shape:
        return None
    return TestImages(split)


def _takes_test_split(model: ServedModel) -> bool:
    cfg = model.description
    # Fashion-MNIST, the one test split here, is grey at 28×28 or padded to 32×32
    return has_test_split(cfg.dataset) and cfg.channels == 1 and cfg.image_size in (28, 32)


def held_out_class_names(model: ServedModel) -> tuple[str, ...]:
    """The classes of the test split the model's dataset images come from, from its dataset's
    name alone: nothing is read, so a split that is not installed still names them; () for a
    model without one."""
    return FASHION_MNIST_CLASSES if _takes_test_split(model) else ()


def dataset_problem(error: DatasetError) -> str:
    """What a DatasetError says is wrong, without the install hint written for the trainer (a
    page says in its own words how to install a test split for serving)."""
    return str(error).removesuffix(f"; {FASHION_MNIST_INSTALL}")


def prepare_for_serving(ckpt: ServedModel) -> ServedModel:
    """Frozen weights in channels-last layout where the model is a torch module: the transposed
    convolutions of our networks run about 1.4× (one image) to 1.7× (a batch) faster on CPU, with
    the same bits."""
    if isinstance(ckpt.model, torch.nn.Module):
        for p in ckpt.model.parameters():
            p.requires_grad_(False)
        ckpt.model.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return ckpt


def check_label(ckpt: ServedModel, label: int | None) -> None:
    """Raise InferenceError if `label` does not fit the model (see _labels)."""
    _labels(ckpt, label, 1)


def check_latents(ckpt: ServedModel, z: torch.Tensor) -> None:
    d = ckpt.description.latent_dim
    if z.ndim != 2 or z.shape[1] != d:
        got = z.shape[-1] if z.ndim else 0
        raise InferenceError(f"z must have {d} values for model {ckpt.name}, got {got}")
    if not torch.isfinite(z).all():
        raise InferenceError("z must be finite numbers (no NaN or infinity)")


@torch.inference_mode()
def decode_latents(ckpt: ServedModel, z: torch.Tensor, label: int | None = None) -> torch.Tensor:
    """z (B, D) → images (B, C, H, W) in [0, 1] (the decoder's pixel means)."""
    check_latents(ckpt, z)
    labels = _labels(ckpt, label, z.shape[0])
    return ckpt.model.decode(z.float(), labels)


@dataclass
class Encoding:
    mu: torch.Tensor  # (B, D)
    sigma: torch.Tensor  # (B, D), zeros for the deterministic AE
    reconstruction: torch.Tensor  # (B, C, H, W) decoded from z = μ
    recon_nll: torch.Tensor  # (B,) −log p(x | z = μ), nats
    kl: torch.Tensor  # (B, D) KL(q(z|x) ‖ N(0, I)) per latent, nats (zeros for the AE)

    @property
    def neg_elbo(self) -> torch.Tensor:
        """The loss's two terms added up: −log p(x|z) + Σ KL (with z = μ for the first)."""
        return self.recon_nll + self.kl.sum(dim=1)


@torch.inference_mode()
def encode_images(ckpt: ServedModel, x: torch.Tensor, label: int | None = None) -> Encoding:
    """x (B, C, H, W) in [0, 1] → μ, σ, the reconstruction and the ELBO's terms."""
    cfg = ckpt.description
    if tuple(x.shape[1:]) != cfg.shape:
        raise InferenceError(
            f"images must be {'×'.join(map(str, cfg.shape))}, got {'×'.join(map(str, x.shape[1:]))}"
        )
    labels = _labels(ckpt, label, x.shape[0])
    posterior = ckpt.model.encode(x, labels)
    reconstruction = ckpt.model.decode(posterior.mean, labels)
    nll = reconstruction_nll_of_means(reconstruction, x, cfg.likelihood, cfg.gaussian_sigma)
    return Encoding(posterior.mean, posterior.std, reconstruction, nll, posterior.kl())


def latent_order(ckpt: ServedModel) -> list[int]:
    """Latents by mean KL over data, most informative first (the card's figures); the AE, which
    has no KL, keeps its natural order."""
    kl = ckpt.card.kl
    d = ckpt.description.latent_dim
    if not kl or len(kl) != d:
        return list(range(d))
    return sorted(range(d), key=lambda i: -kl[i])


def traversal_latents(z: torch.Tensor, dims: list[int], values: torch.Tensor) -> torch.Tensor:
    """z (D,) → (len(dims)·len(values), D): row r sweeps latent dims[r] over `values`, every
    other latent held at z (the β-VAE paper's Figure 2, rows 4–8)."""
    out = z.repeat(len(dims) * len(values), 1)
    for r, d in enumerate(dims):
        out[r * len(values) : (r + 1) * len(values), d] = values
    return out


def interpolate_latents(
    z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str
) -> torch.Tensor:
    """(D,), (D,) → (steps, D) from z0 to z1 inclusive. `slerp` follows the great circle
    (Shoemake 1985), keeping the norm typical of N(0, I) samples instead of shrinking through
    the origin as a straight line does."""
    t = torch.linspace(0, 1, steps)[:, None]
    if method == "linear":
        return (1 - t) * z0 + t * z1
    if method != "slerp":
        raise InferenceError(f"method must be linear or slerp, got {method!r}")
    n0, n1 = z0.norm(), z1.norm()
    if n0 == 0 or n1 == 0:
        return (1 - t) * z0 + t * z1
    cos = torch.clamp((z0 @ z1) / (n0 * n1), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6 or math.isclose(omega.item(), math.pi, abs_tol=1e-6):
        return (1 - t) * z0 + t * z1  # parallel or opposite: no unique great circle
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * z0 + (torch.sin(t * omega) / so) * z1


def sample_prior(latent_dim: int, n: int, seed: int) -> torch.Tensor:
    """n draws of z ~ N(0, I), reproducible from the seed."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
