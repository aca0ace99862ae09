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
from app.data.sets import ColumnSummary as ColumnSummary
from app.data.sets import DataSets as DataSets
from app.data.sets import Fitting, ImageSet, ImageUnreadable
from app.data.sets import SetSummary as SetSummary
from app.data.sets.builtin import DrawnSet
from app.data.sets.folder import FolderSet
from app.data.test_split import TestSplit as TestSplit
from app.data.test_split import has_test_split as has_test_split
from app.data.test_split import test_split
from app.models.elbo import reconstruction_nll_of_means
from app.models.priors import prior_kl
from app.quoting import quoted

# The data layer's names the web layer uses, re-exported here (the `as` form) so that it reaches
# data through this module alone: DatasetError (a dataset that cannot be opened), GroundTruth and
# DSPRITES (datasets drawn from known factors), TestSplit and has_test_split (held-out images),
# DataSets, SetSummary and ColumnSummary (the data sets a server offers, and what it says of
# each).


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


class UnreadableImage(InferenceError):
    """A data set's image that cannot be decoded: the message names its file."""


class NoClassColumn(InferenceError):
    """A CVAE asked for the class of an image whose data set has no column of its classes."""


class UnknownDataSet(LookupError):
    """A data set name the server does not serve."""


@dataclass(frozen=True)
class SetImages:
    """Any data set's images by index (app/data/sets: a folder, a built-in), each fitted to the
    model's input through `fitting` (its channels and side: grey or colour, resized or padded).
    `classes` are the model's class names (a CVAE): the set's categorical column with exactly
    those categories is where an image's class comes from."""

    set: ImageSet
    fitting: Fitting
    classes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.set.name

    @property
    def noun(self) -> str:
        """What one image is called: "celeba-100 image"."""
        return f"{self.set.name} image"

    @property
    def n_images(self) -> int:
        return len(self.set)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The model's classes where the set has a column of them, else ()."""
        return self.classes if self._class_column() is not None else ()

    @property
    def test_images(self) -> int:
        """How many images the set's test split holds (0 where it has none)."""
        return len(self.set.split_indices("test")) if self.set.split is not None else 0

    def mapped_images(self, whole: bool = False) -> int:
        """How many images a map of the set can show: its test split where it has one (as
        app.studies.latent_map.encoded_rows chooses), else, or when `whole`, all."""
        return len(self.set) if whole else self.test_images or len(self.set)

    @property
    def default_index(self) -> int:
        return 0

    def image(self, index: int) -> np.ndarray:
        """(C, H, W) float32 in [0, 1], fitted; UnreadableImage naming the file where it
        cannot be decoded."""
        if not 0 <= index < self.n_images:
            raise IndexError(f"{self.noun} index must be in 0..{self.n_images - 1}, got {index}")
        x, ok = self.set.fitted(np.array([index], dtype=np.int64), self.fitting)
        if not ok[0]:
            try:
                self.set.native(index)  # the reason, in the data layer's words
            except ImageUnreadable as e:
                raise UnreadableImage(f"data set {self.name}: {e}") from None
            raise UnreadableImage(f"data set {self.name}: image {index} cannot be read")
        return x[0]

    def _class_column(self) -> int | None:
        if not self.classes:
            return None
        for k, c in enumerate(self.set.columns):
            if c.kind == "categorical" and c.categories == self.classes:
                return k
        return None

    def label(self, index: int) -> int:
        """The image's class among the model's, from the set's column of those classes;
        NoClassColumn where the set has none, or the image no value in it."""
        k = self._class_column()
        if k is None:
            raise NoClassColumn(
                f"data set {self.name} has no column of the model's classes "
                f"({', '.join(self.classes) or 'it has none'}): give the class as label"
            )
        code = int(self.set.columns[k].values[index])
        if code < 0:
            column = self.set.columns[k].name
            raise NoClassColumn(f"{self.noun} {index} has no {column}: give the class as label")
        return code

    def of_class(self, label: int) -> np.ndarray:
        """The indices of the images of the model's class `label`, ascending (none where the
        set has no column of its classes)."""
        k = self._class_column()
        if k is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.set.columns[k].values == label)

    def pickable_values(self, most: int = 60) -> list[tuple[str, tuple[str, ...]]]:
        """(column, its categories) of each categorical column with at most `most` categories:
        what a page offers to pick an image by."""
        return [
            (c.name, c.categories)
            for c in self.set.columns
            if c.kind == "categorical" and 0 < len(c.categories) <= most
        ]

    def matching(self, column: str, value: str) -> np.ndarray:
        """The indices of the images whose `column` is `value` (in words, as `values` gives
        it), ascending; InferenceError naming the column or value where there is none."""
        try:
            c = self.set.column(column)
        except KeyError as e:
            raise InferenceError(str(e.args[0])) from None
        if c.kind == "categorical":
            if value not in c.categories:
                shown = ", ".join(c.categories[:20])
                raise InferenceError(
                    f"column {column!r} of data set {self.name} has no value {value!r} "
                    f"(its values: {shown}{', ...' if len(c.categories) > 20 else ''})"
                )
            return np.flatnonzero(c.values == c.categories.index(value))
        try:
            number = float(value)
        except ValueError:
            raise InferenceError(f"column {column!r} holds numbers, not {value!r}") from None
        return np.flatnonzero(c.values == number)

    def values(self, index: int) -> dict[str, str]:
        """The image's value in each column that has one, in words."""
        return {c.name: t for c in self.set.columns if (t := c.value_text(index))}

    def describe(self, index: int) -> str:
        """ "label sneaker; size 0.5"; a folder's image also names its file."""
        text = "; ".join(f"{name} {value}" for name, value in self.values(index).items())
        if isinstance(self.set, FolderSet):
            return f"{self.set.file(index)}{': ' + text if text else ''}"
        return text or "no values"


DatasetImages = DrawnImages | TestImages | SetImages


def set_images(model: ServedModel, image_set: ImageSet) -> SetImages:
    """`image_set` as `model` sees it. Opens the set (a DatasetError where a built-in is not
    installed: Fashion-MNIST's files)."""
    cfg = model.description
    len(image_set)  # noqa: B018 - reads a lazily opened set now, so its error is said here
    fitting = image_set.fitting_for(cfg.channels, cfg.image_size)
    return SetImages(image_set, fitting, cfg.label_names if cfg.kind == "cvae" else ())


def largest_set(sets: DataSets) -> int:
    """The most images of a served set, for the schema's bound on an image index, without
    reading any: a folder's are listed and a drawn set's counted; Fashion-MNIST's 70,000, read
    on first use, are fewer than dSprites', always served."""
    return max((len(s) for s in sets.values() if isinstance(s, FolderSet | DrawnSet)), default=0)


def dataset_images_of(
    model: ServedModel, root: Path, sets: DataSets | None = None, name: str | None = None
) -> DatasetImages | None:
    """The images of a data set that can be picked by index, as the model sees them.

    With no `name`: the model's own, drawn from its ground truth or its dataset's test split
    read from `root` (Settings.fashion_mnist_dir); for a model with neither (an imported CelebA
    model, a plugin) the set of `sets` its dataset names (`DataSets.default_for`), if any; else
    None (also for images not of the model's shape). With a `name`: that set of `sets`, fitted
    to the model (UnknownDataSet where there is none of that name).

    A DatasetError, saying how to install it, when the data cannot be read."""
    if name is not None:
        if sets is None or name not in sets:
            known = ", ".join(sets or ()) or "none"
            raise UnknownDataSet(f"unknown data set {quoted(name)}; served: {known}")
        return set_images(model, sets[name])
    truth = ground_truth_of(model)
    if truth is not None:
        return DrawnImages(truth)
    cfg = model.description
    if _takes_test_split(model):
        split = test_split(cfg.dataset, cfg.image_size, root)
        if split is None or tuple(split.images.shape[1:]) != cfg.shape:
            return None
        return TestImages(split)
    default = sets.default_for(cfg.dataset) if sets is not None and cfg.dataset else None
    return set_images(model, default) if default is not None else None


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
    # (B, D) KL per latent, nats (zeros for the AE): against N(0, I) in closed form, summing to
    # kl_total; against another prior, each latent's marginal KL (app.models.priors.prior_kl)
    kl: torch.Tensor
    kl_total: torch.Tensor  # (B,) KL(q(z|x) ‖ p(z)), nats
    kl_exact: bool = True  # closed form; False: estimated by Monte Carlo (a mixture prior)

    @property
    def neg_elbo(self) -> torch.Tensor:
        """The loss's two terms added up: −log p(x|z) + KL (with z = μ for the first)."""
        return self.recon_nll + self.kl_total


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
    kl = prior_kl(posterior.mean, posterior.logvar, ckpt.prior)
    return Encoding(
        posterior.mean, posterior.std, reconstruction, nll, kl.per_latent, kl.total, kl.exact
    )


def latent_order(ckpt: ServedModel) -> list[int]:
    """Latents by mean KL over data, most informative first (the card's figures); the AE, which
    has no KL, keeps its natural order."""
    kl = ckpt.kl
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
    """n draws of z ~ N(0, I), reproducible from the seed. A model's own prior (which need not
    be N(0, I)): sample_model_prior."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


def sample_model_prior(ckpt: ServedModel, n: int, seed: int) -> torch.Tensor:
    """n draws (n, D) of z from the model's own prior, reproducible from the seed: for N(0, I)
    the same values as sample_prior(latent_dim, n, seed)."""
    return ckpt.prior.sample(n, torch.Generator().manual_seed(seed)).float()
