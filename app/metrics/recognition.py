"""Are a model's reconstructions recognisably their inputs? Read back the factors from the picture.

For each test sprite, the reconstruction (decoded from z = μ, CVAEs given the true shape) is
compared with every dSprites image at the sprite's own position: 3 shapes × 6 scales × 40
orientations, 720 renders. The closest one in squared error names the shape, scale and angle
the reconstruction shows. A reconstruction is recognisable when that read-back agrees with the
input: the same shape, the scale within one step (of six), and the angle within 15° once the
shape's symmetry is allowed for (a square repeats every 90°, an ellipse every 180°, a heart only
every 360°). Position is fixed by construction; it is checked separately, as the distance
between the input's and the reconstruction's centroids.

This is a lenient judge in one way: a blob that is closest to the right ellipse counts. It is a
strict one in another: at the smallest scale a square and a heart differ by a few pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from app.checkpoints.served import ServedModel
from app.data.dsprites import FACTOR_SIZES, FACTOR_VALUES, render
from app.inference import encode_images

# a shape's rotational symmetry, radians (square, ellipse, heart)
SYMMETRY = (np.pi / 2, np.pi, 2 * np.pi)
ANGLE_TOLERANCE = np.deg2rad(15)


@dataclass
class Recognition:
    n: int
    shape: float  # share of reconstructions whose closest sprite has the input's shape
    scale: float  # … whose scale is within one step of the input's
    angle: float  # … whose angle is within 15° of the input's, modulo the shape's symmetry
    all_three: float  # … with all three right at once
    centroid_px: float  # mean distance between input and reconstruction centroids, pixels
    by_shape: dict[str, float]  # all_three for each shape


def _angle_error(a: np.ndarray, b: np.ndarray, shape: np.ndarray) -> np.ndarray:
    period = np.asarray(SYMMETRY)[shape]
    d = np.mod(a - b, period)
    return np.minimum(d, period - d)


def _centroids(img: np.ndarray) -> np.ndarray:
    """(B, 64, 64) intensities → (B, 2) centroid (row, column) in pixels."""
    rows, cols = np.mgrid[: img.shape[1], : img.shape[2]]
    mass = img.sum(axis=(1, 2)).clip(min=1e-6)
    centre = np.stack([(img * rows).sum(axis=(1, 2)), (img * cols).sum(axis=(1, 2))], axis=1)
    return centre / mass[:, None]


def candidates(pos_x: int, pos_y: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (shape, scale, orientation) at one position: (720, 5) classes, (720, 4096) pixels."""
    s, c, o = np.meshgrid(*(np.arange(n) for n in FACTOR_SIZES[:3]), indexing="ij")
    classes = np.stack(
        [s.ravel(), c.ravel(), o.ravel(), np.full(s.size, pos_x), np.full(s.size, pos_y)], axis=1
    )
    return classes, render(classes).reshape(len(classes), -1).astype(np.float32)


def recognise(ckpt: ServedModel, n: int = 512, seed: int = 0) -> Recognition:
    """Reconstruct n random sprites (drawn from `seed`) and read their factors back."""
    rng = np.random.default_rng(seed)
    classes = np.stack([rng.integers(0, k, n) for k in FACTOR_SIZES], axis=1)
    images = render(classes).astype(np.float32)  # (n, 64, 64)
    recon = np.empty_like(images)
    x = torch.from_numpy(images)[:, None]
    if ckpt.description.kind == "cvae":
        for shape in range(3):
            idx = np.flatnonzero(classes[:, 0] == shape)
            if len(idx):
                recon[idx] = encode_images(ckpt, x[idx], label=shape).reconstruction[:, 0].numpy()
    else:
        recon = encode_images(ckpt, x).reconstruction[:, 0].numpy()
    found = np.empty_like(classes)
    for i in range(n):
        cand, pixels = candidates(classes[i, 3], classes[i, 4])
        found[i] = cand[np.argmin(((pixels - recon[i].ravel()) ** 2).sum(axis=1))]
    shape_ok = found[:, 0] == classes[:, 0]
    scale_ok = np.abs(found[:, 1] - classes[:, 1]) <= 1
    angles = FACTOR_VALUES[2]
    angle_ok = _angle_error(angles[found[:, 2]], angles[classes[:, 2]], classes[:, 0]) <= (
        ANGLE_TOLERANCE + 1e-9
    )
    ok = shape_ok & scale_ok & angle_ok
    dist = np.linalg.norm(_centroids(images) - _centroids(recon), axis=1)
    names = ("square", "ellipse", "heart")
    return Recognition(
        n=n,
        shape=float(shape_ok.mean()),
        scale=float(scale_ok.mean()),
        angle=float(angle_ok.mean()),
        all_three=float(ok.mean()),
        centroid_px=float(dist.mean()),
        by_shape={names[s]: float(ok[classes[:, 0] == s].mean()) for s in range(3)},
    )
