"""Procedural dSprites: DeepMind's 737,280 sprites, drawn on demand from their factors.

The five ground-truth factors and their values are exactly those of the official
`dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` (Matthey et al. 2017). The geometry was fitted to
the published `dsprites.gif`: a pixel is on when its centre lies inside the shape, the sprite
centre is at (16 + 32·posX, 16 + 32·posY) px (posX the column, posY the row), and rotation is
counter-clockwise as displayed.

Nothing here materialises the 3 GB array: `render` draws any batch of factor tuples, vectorised
over the batch and the 64×64 pixel centres.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

IMAGE_SIZE = 64
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_SIZES = np.array([3, 6, 40, 32, 32], dtype=np.int64)
N_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280
# index = Σ class_i · stride_i, the official file's row order (its constant colour factor dropped).
FACTOR_STRIDES = np.array([245760, 40960, 1024, 32, 1], dtype=np.int64)

FACTOR_VALUES: tuple[np.ndarray, ...] = (
    np.arange(3, dtype=np.float64),  # shape as a class (the official file stores 1, 2, 3)
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),  # both ends included: 0 and 2π draw the same image
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)

# Shape geometry in pixels at scale 1 (fitted to dsprites.gif).
SQUARE_SIDE = 19.2
ELLIPSE_SEMI_AXES = (12.7, 7.2)  # horizontal × vertical at orientation 0
HEART_SCALE = (0.6, 0.648)  # px per unit of the classic heart curve, across × up
HEART_LIFT = 1.5  # px up, so the heart's bounding box is centred like the other shapes


@dataclass(frozen=True)
class Factors:
    """A batch of factor class indices, shape (B, 5), columns as in FACTOR_NAMES."""

    classes: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """(B, 5) float factor values (shape stays a class index)."""
        return np.stack(
            [FACTOR_VALUES[i][self.classes[:, i]] for i in range(len(FACTOR_NAMES))], axis=1
        )


def index_to_classes(index: np.ndarray | int) -> np.ndarray:
    """Flat index in [0, 737280) → (B, 5) factor classes."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    if idx.size and (idx.min() < 0 or idx.max() >= N_IMAGES):
        raise ValueError(f"dSprites index must be in [0, {N_IMAGES}), got {idx.min()}..{idx.max()}")
    return (idx[:, None] // FACTOR_STRIDES) % FACTOR_SIZES


def classes_to_index(classes: np.ndarray) -> np.ndarray:
    """(B, 5) factor classes → flat index."""
    classes = np.atleast_2d(np.asarray(classes, dtype=np.int64))
    if (classes < 0).any() or (classes >= FACTOR_SIZES).any():
        raise ValueError(f"factor classes out of range; sizes are {FACTOR_SIZES.tolist()}")
    return classes @ FACTOR_STRIDES


def sample_classes(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly random factor tuples, (n, 5) int64."""
    return rng.integers(0, FACTOR_SIZES, size=(n, len(FACTOR_SIZES)))


def heart_curve(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classic heart: x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t (lobes up)."""
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return x, y


# The heart has no closed-form inside test, so it is rasterised once, finely, in curve units.
_HEART_LUT_STEP = 0.02  # curve units per LUT cell: 0.012 px at scale 1, far below a pixel
_HEART_X0, _HEART_Y0 = -17.0, -18.0
_HEART_SHAPE = (1550, 1700)  # rows over y ∈ [-18, 13], columns over x ∈ [-17, 17]


@cache
def _heart_lut() -> np.ndarray:
    """Boolean (rows=y, cols=x) mask of the heart's interior, by even-odd ray casting."""
    px, py = heart_curve(np.linspace(0, 2 * np.pi, 2001))
    ys = _HEART_Y0 + (np.arange(_HEART_SHAPE[0]) + 0.5) * _HEART_LUT_STEP
    xs = _HEART_X0 + (np.arange(_HEART_SHAPE[1]) + 0.5) * _HEART_LUT_STEP
    inside = np.zeros(_HEART_SHAPE, dtype=bool)
    x0, y0, x1, y1 = px[:-1], py[:-1], px[1:], py[1:]
    for row, y in enumerate(ys):
        crosses = (y0 > y) != (y1 > y)
        if not crosses.any():
            continue
        xc = x0[crosses] + (y - y0[crosses]) * (x1[crosses] - x0[crosses]) / (
            y1[crosses] - y0[crosses]
        )
        # a point is inside when an odd number of edges cross the ray to its right
        inside[row] = (xs[:, None] < xc[None, :]).sum(axis=1) % 2 == 1
    return inside


def _inside_heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    col = np.floor((u - _HEART_X0) / _HEART_LUT_STEP).astype(np.int64)
    row = np.floor((v - _HEART_Y0) / _HEART_LUT_STEP).astype(np.int64)
    ok = (col >= 0) & (col < _HEART_SHAPE[1]) & (row >= 0) & (row < _HEART_SHAPE[0])
    out = np.zeros(u.shape, dtype=bool)
    out[ok] = _heart_lut()[row[ok], col[ok]]
    return out


_CENTRES = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5  # pixel i covers [i, i+1)
# Every sprite lies within 14 px of its centre (the square's half-diagonal at scale 1 is 13.6),
# and centres lie in [16, 48]: a 32-pixel window from floor(centre) − 16 holds the whole sprite
# and never leaves the canvas, so only a quarter of the pixels are tested.
WINDOW = 32


def _check(classes: np.ndarray) -> np.ndarray:
    classes = np.atleast_2d(np.asarray(classes, dtype=np.int64))
    if (classes < 0).any() or (classes >= FACTOR_SIZES).any():
        raise ValueError(f"factor classes out of range; sizes are {FACTOR_SIZES.tolist()}")
    return classes


def draw(classes: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Which pixels the sprites cover: (B, 5) factor classes and each sprite's pixel columns
    `xs` (B, W) and rows `ys` (B, H), whole numbers → (B, H, W) bool."""
    classes = _check(classes)
    shape = classes[:, 0]
    scale = FACTOR_VALUES[1][classes[:, 1]].astype(np.float32)[:, None, None]
    theta = FACTOR_VALUES[2][classes[:, 2]]
    cx = (16 + 32 * FACTOR_VALUES[3][classes[:, 3]]).astype(np.float32)[:, None, None]
    cy = (16 + 32 * FACTOR_VALUES[4][classes[:, 4]]).astype(np.float32)[:, None, None]
    cos = np.cos(theta).astype(np.float32)[:, None, None]
    sin = np.sin(theta).astype(np.float32)[:, None, None]

    dx = (xs.astype(np.float32) + np.float32(0.5))[:, None, :] - cx  # (B, 1, W): right is +
    dy = cy - (ys.astype(np.float32) + np.float32(0.5))[:, :, None]  # (B, H, 1): up is +
    # rotate the pixel centres by −θ into the sprite's own frame: the sprite turns by +θ (CCW)
    u = cos * dx + sin * dy  # (B, H, W)
    v = cos * dy - sin * dx

    out = np.zeros(u.shape, dtype=bool)
    for k in range(len(SHAPE_NAMES)):
        sel = np.flatnonzero(shape == k)
        if sel.size == 0:
            continue
        uk, vk, sk = u[sel], v[sel], scale[sel]
        if k == 0:
            half = SQUARE_SIDE / 2 * sk
            mask = (np.abs(uk) <= half) & (np.abs(vk) <= half)
        elif k == 1:
            a, b = ELLIPSE_SEMI_AXES
            mask = (uk / (a * sk)) ** 2 + (vk / (b * sk)) ** 2 <= 1
        else:
            mask = _inside_heart(
                uk / (HEART_SCALE[0] * sk), (vk - HEART_LIFT * sk) / (HEART_SCALE[1] * sk)
            )
        out[sel] = mask
    return out


def render(classes: np.ndarray) -> np.ndarray:
    """Draw a batch of sprites: (B, 5) factor classes → (B, 64, 64) uint8 in {0, 1}. A pixel is
    on when its centre lies inside the shape; only the window around each sprite is tested."""
    classes = _check(classes)
    b = len(classes)
    x0 = np.floor(16 + 32 * FACTOR_VALUES[3][classes[:, 3]].astype(np.float32)).astype(np.int64)
    y0 = np.floor(16 + 32 * FACTOR_VALUES[4][classes[:, 4]].astype(np.float32)).astype(np.int64)
    steps = np.arange(WINDOW)
    xs = x0[:, None] - WINDOW // 2 + steps  # (B, W) columns, inside [0, 64)
    ys = y0[:, None] - WINDOW // 2 + steps
    out = np.zeros((b, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    out[np.arange(b)[:, None, None], ys[:, :, None], xs[:, None, :]] = draw(classes, xs, ys)
    return out
