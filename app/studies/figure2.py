"""The β-VAE paper's Figure 2 (Higgins et al. 2017, Fig. 7 of the ICLR version) for a model
trained on dSprites: how each latent's posterior mean μ_i responds to the ground-truth factors.

Per latent i, from μ of images drawn by our renderer with a fixed seed:

    position     mean μ_i over each of the 32×32 (pos_x, pos_y) cells          (D, 32, 32)
    scale        mean μ_i per (shape, scale)                                   (D, 3, 6)
    orientation  mean μ_i per (shape, orientation)                             (D, 3, 40)
    variance     Var(μ_i) over data, the "learned variance" columns are sorted by (D,)
    mi           mutual information (nats) of the 20-bin discretised μ_i with each factor (D, 5)

The response curves use common random numbers: every cell of a sweep averages over the *same*
draws of the other factors (one shared set per sweep), so the difference between two cells is
the factor's effect and not sampling noise, and a latent that ignores a factor draws a flat
line. Each cell's mean is still an unbiased estimate of the paper's average over the other
factors. Variance and mutual information need data as it is, so they come from a separate
i.i.d. uniform sample of the dataset.

`shape_view` reads the same sample for the explorer's "where shape lives" view: which latents
share most information with shape, and whether shape reads back from one of them alone or only
from a pair (on dSprites it is a pair: the symmetric shapes turn in planes of their own, and
the scale latent codes the area drawn, which differs by shape).

Nothing here knows about HTTP; `figure2_data` caches per model weights (the registry is
read-only, so a digest never goes stale) and computes once however many threads ask at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from app import inference
from app.checkpoints.served import ServedModel
from app.data.dsprites import FACTOR_SIZES, classes_to_index, index_to_classes
from app.data.ground_truth import DSPRITES, ground_truth
from app.inference import InferenceError
from app.metrics.evaluate import ImageEncoder
from app.metrics.scores import discretize, entropy, mutual_info_matrix
from app.models.elbo import ACTIVE_KL
from app.studies.cache import SharedResults

N_SHAPES, N_SCALES, N_ORIENTATIONS, N_POS = (int(s) for s in FACTOR_SIZES[:4])
ACTIVE_VARIANCE = 0.05  # the AE has no KL: FactorVAE's pruning threshold on Var(code) instead
MI_BINS = 20  # disentanglement_lib's histogram discretisation, as app.metrics uses
# A dataset image for the traversal rows: a heart (it turns through the full 360°), scale 0.8,
# upright, centred. Shape, scale, orientation, pos_x, pos_y as class indices.
TRAVERSAL_IMAGE = int(classes_to_index(np.array([2, 3, 0, 16, 16]))[0])


@dataclass(frozen=True)
class Sampling:
    """How many images each part of the figure averages over. The defaults (8,160 images) take
    about 3–4 s for one model on one CPU core; the tests pass far fewer."""

    per_position: int = 3  # shared draws of (shape, scale, orientation) per 32×32 cell: 3,072
    per_scale: int = 32  # shared draws of (orientation, position) per (shape, scale): 576
    per_orientation: int = 12  # shared draws of (scale, position) per (shape, orientation): 1,440
    n_data: int = 3072  # i.i.d. images for Var(μ) and the mutual information
    traversal_steps: int = 5  # rows 4–8 of the paper: −3σ … +3σ of the prior
    traversal_span: float = 3.0
    traversal_image: int = TRAVERSAL_IMAGE
    seed: int = 0
    batch_size: int = 256


@dataclass(frozen=True)
class Figure2Data:
    position: np.ndarray  # (D, 32, 32) mean μ_i, indexed [i, pos_y (row), pos_x (column)]
    scale: np.ndarray  # (D, 3, 6) mean μ_i per shape and scale
    orientation: np.ndarray  # (D, 3, 40) mean μ_i per shape and orientation
    variance: np.ndarray  # (D,) Var(μ_i) over the i.i.d. sample
    kl: np.ndarray | None  # (D,) mean KL(q(z_i|x) ‖ N(0, 1)) over that sample; None for the AE
    mi: np.ndarray  # (D, K) mutual information in nats, latent × factor
    factor_entropy: np.ndarray  # (K,) entropy of each factor in the sample, nats
    sample_mu: np.ndarray  # (n_data, D) μ of the i.i.d. sample
    sample_factors: np.ndarray  # (n_data, 5) its factor classes
    traversal: torch.Tensor  # (D, steps, C, H, W): row i sweeps latent i from −span to +span
    traversal_values: list[float]
    sampling: Sampling

    @property
    def latent_dim(self) -> int:
        return int(self.variance.shape[0])

    @property
    def order(self) -> list[int]:
        """Latents by learned variance, most varied first (ties by index)."""
        return sorted(range(self.latent_dim), key=lambda i: (-float(self.variance[i]), i))

    @property
    def active(self) -> list[bool]:
        """A latent is used when its mean KL is above 0.1 nats; for the AE (no KL), when
        Var(μ_i) is above 0.05."""
        if self.kl is not None:
            return [bool(k > ACTIVE_KL) for k in self.kl]
        return [bool(v > ACTIVE_VARIANCE) for v in self.variance]


def check_dsprites(ckpt: ServedModel) -> None:
    """Figure 2 needs the dSprites factors: raise InferenceError (a 422) for any other model."""
    cfg = ckpt.description
    if ground_truth(cfg.dataset, cfg.shape) is not DSPRITES or cfg.channels != 1:
        data = f"was trained on {cfg.dataset}" if cfg.dataset else "names no data set"
        raise InferenceError(
            f"model {ckpt.name} {data}, not dSprites: Figure 2 plots latents against the "
            "dSprites factors (shape, scale, orientation, position), which it was not trained on"
        )


# --- the stratified designs -----------------------------------------------------------------


def _sweep(fixed: dict[int, np.ndarray], bases: np.ndarray) -> np.ndarray:
    """Every combination of the swept factors' classes (in `fixed`, outermost first) with every
    row of `bases` (the other factors' classes, shared by all cells): (cells·n, 5) classes,
    ordered so that a reshape to (*sizes, n) gives the cells."""
    sizes = [len(v) for v in fixed.values()]
    cells = np.stack(np.meshgrid(*fixed.values(), indexing="ij"), axis=-1).reshape(-1, len(fixed))
    out = np.repeat(bases[None], len(cells), axis=0)  # (cells, n, 5)
    for j, factor in enumerate(fixed):
        out[:, :, factor] = cells[:, j, None]
    return out.reshape(int(np.prod(sizes)) * len(bases), len(FACTOR_SIZES))


def _bases(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniform factor tuples with the shapes balanced (square, ellipse, heart, square, ...)."""
    out = rng.integers(0, FACTOR_SIZES, size=(n, len(FACTOR_SIZES)))
    out[:, 0] = np.arange(n) % N_SHAPES
    return out


def designs(s: Sampling) -> dict[str, np.ndarray]:
    """The factor classes of every image the figure encodes, by part, from the seed alone."""
    rng = np.random.default_rng(s.seed)
    shapes, pos = np.arange(N_SHAPES), np.arange(N_POS)
    return {
        # pos_y outer, pos_x inner: the mean reshapes to (32 rows, 32 columns)
        "position": _sweep({4: pos, 3: pos}, _bases(rng, s.per_position)),
        "scale": _sweep({0: shapes, 1: np.arange(N_SCALES)}, _bases(rng, s.per_scale)),
        "orientation": _sweep(
            {0: shapes, 2: np.arange(N_ORIENTATIONS)}, _bases(rng, s.per_orientation)
        ),
        "data": rng.integers(0, FACTOR_SIZES, size=(s.n_data, len(FACTOR_SIZES))),
    }


# --- encoding -------------------------------------------------------------------------------


@torch.inference_mode()
def _traversal(ckpt: ServedModel, s: Sampling) -> tuple[torch.Tensor, list[float]]:
    """Rows 4–8 of the paper: latent i swept over ±span (the prior's σ is 1) with the others
    held at μ of one dataset image → (D, steps, C, H, W)."""
    classes = index_to_classes(s.traversal_image)  # (1, 5)
    label = int(classes[0, 0]) if ckpt.description.kind == "cvae" else None
    mu, _ = ImageEncoder(ckpt).encode(classes)
    d = mu.shape[1]
    values = torch.linspace(-s.traversal_span, s.traversal_span, s.traversal_steps)
    z = inference.traversal_latents(torch.from_numpy(mu[0]).float(), list(range(d)), values)
    images = inference.decode_latents(ckpt, z, label)  # (D·steps, C, H, W)
    return images.reshape(d, s.traversal_steps, *images.shape[1:]), values.tolist()


def compute_figure2(ckpt: ServedModel, s: Sampling | None = None) -> Figure2Data:
    """Everything the figure plots, from the model and the seed. Uncached: see figure2_data."""
    check_dsprites(ckpt)
    s = s or Sampling()
    parts = designs(s)
    encoder = ImageEncoder(ckpt, batch_size=s.batch_size)
    mu, kl = encoder.encode(np.concatenate(list(parts.values())))
    bounds = np.cumsum([len(p) for p in parts.values()])[:-1]
    mus = dict(zip(parts, np.split(mu, bounds), strict=True))  # part → (N_part, D)
    kls = dict(zip(parts, np.split(kl, bounds), strict=True)) if kl is not None else None
    d = mu.shape[1]

    def cell_means(part: str, *sizes: int) -> np.ndarray:
        m = mus[part].reshape(*sizes, -1, d).mean(axis=-2)  # (*sizes, D): mean over the draws
        return np.moveaxis(m, -1, 0)  # (D, *sizes)

    data = mus["data"]  # the i.i.d. sample: the sweeps over-represent their own cells
    traversal, values = _traversal(ckpt, s)
    return Figure2Data(
        position=cell_means("position", N_POS, N_POS),
        scale=cell_means("scale", N_SHAPES, N_SCALES),
        orientation=cell_means("orientation", N_SHAPES, N_ORIENTATIONS),
        variance=data.var(axis=0),
        kl=None if kls is None else kls["data"].mean(axis=0),
        mi=mutual_info_matrix(discretize(data, MI_BINS), parts["data"]),
        factor_entropy=entropy(parts["data"]),
        sample_mu=data,
        sample_factors=parts["data"],
        traversal=traversal,
        traversal_values=values,
        sampling=s,
    )


# --- where shape lives -----------------------------------------------------------------------

SHAPE_LATENTS = 3  # the latents the shape view plots against each other, in pairs
NEIGHBOURS = 15  # the k-NN that reads shape back from one or two latents
FOLDS = 3


@dataclass(frozen=True)
class ShapeView:
    """How shape is held: in one latent, or only in a pair. Read-back is the share of held-out
    images whose shape a 15-nearest-neighbour vote on those latents' μ gets right (3-fold
    cross-validation on the i.i.d. sample); `chance` is the commonest shape's share."""

    latents: list[int]  # up to 3 latents sharing most information with shape, most first
    single: dict[int, float]  # read-back from each latent alone
    pairs: dict[tuple[int, int], float]  # read-back from each pair of them
    chance: float


def _read_back(codes: np.ndarray, shapes: np.ndarray) -> float:
    k = min(NEIGHBOURS, len(shapes) * (FOLDS - 1) // FOLDS)
    return float(cross_val_score(KNeighborsClassifier(k), codes, shapes, cv=FOLDS).mean())


def shape_view(data: Figure2Data) -> ShapeView:
    """The used latents with most mutual information with shape (all latents, if fewer than
    two are used), and how well shape reads back from each and from each pair."""
    by_mi = sorted(range(data.latent_dim), key=lambda i: (-float(data.mi[i, 0]), i))
    used = [i for i in by_mi if data.active[i]]
    latents = (used if len(used) >= 2 else by_mi)[:SHAPE_LATENTS]
    mu, shapes = data.sample_mu, data.sample_factors[:, 0]
    pairs = [(a, b) for n, a in enumerate(latents) for b in latents[n + 1 :]]
    return ShapeView(
        latents=latents,
        single={i: _read_back(mu[:, [i]], shapes) for i in latents},
        pairs={p: _read_back(mu[:, list(p)], shapes) for p in pairs},
        chance=float(np.bincount(shapes).max() / len(shapes)),
    )


# --- the per-model cache --------------------------------------------------------------------

MAX_CACHED = 16  # (weights, sampling) pairs kept: a few per shipped model at most
_results: SharedResults[Figure2Data] = SharedResults(MAX_CACHED)


def figure2_data(ckpt: ServedModel, s: Sampling | None = None) -> Figure2Data:
    """compute_figure2, cached by the weights' digest: the first caller computes, callers that
    arrive meanwhile wait for its result instead of computing again. A failure is not cached."""
    check_dsprites(ckpt)
    sampling = s or Sampling()
    if not ckpt.digest:  # a ServedModel built by hand, not loaded: nothing names its weights
        return compute_figure2(ckpt, sampling)
    return _results.get((ckpt.digest, sampling), lambda: compute_figure2(ckpt, sampling))


def clear_cache() -> None:
    _results.clear()
