"""Procedural 3D Shapes: a coloured object in a two-walled room, drawn on demand from its factors.

The six factors and their values are those of DeepMind's 3D Shapes (Burgess & Kim 2018,
`3dshapes.h5`), in the file's order, so an index here names the same factor tuple as there. The
pictures are our own: a pinhole camera looks into the corner of a room (floor and two walls) at an
object standing in its middle, lit by one distant light (a small disc, so the cast shadow has a
soft edge) with Lambertian shading. As in 3D Shapes, orientation swings the camera around the
object, so the room's corner moves across the image and a cube turns its faces, while a sphere
looks the same.

Hue only recolours, so every pixel is a fixed mix of the floor, wall and object colours:
Σ_region weight·hsv(hue, 1, 1), where a weight is that region's supersampled coverage times its
shading. The weights depend on shape, scale and orientation alone (4·8·15 = 480 geometries); each
is ray-cast once, on first use (about 3 s for all of them on one core), and `render` then only
blends three colours per pixel.
"""

from __future__ import annotations

import colorsys
import threading
from dataclasses import dataclass
from functools import cache

import numpy as np

from app.data.base import Batch

IMAGE_SIZE = 64
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")  # 3D Shapes calls the capsule "pill"
FACTOR_SIZES = np.array([10, 10, 10, 8, 4, 15], dtype=np.int64)
N_IMAGES = int(np.prod(FACTOR_SIZES))  # 480,000
# index = Σ class_i · stride_i, the row order of 3dshapes.h5: orientation varies fastest.
FACTOR_STRIDES = np.array([48000, 4800, 480, 60, 15, 1], dtype=np.int64)

FACTOR_VALUES: tuple[np.ndarray, ...] = (
    np.linspace(0.0, 1.0, 10, endpoint=False),  # hue 1 would be hue 0 again
    np.linspace(0.0, 1.0, 10, endpoint=False),
    np.linspace(0.0, 1.0, 10, endpoint=False),
    np.linspace(0.75, 1.25, 8),
    np.arange(4, dtype=np.float64),  # shape as a class
    np.linspace(-30.0, 30.0, 15),  # degrees
)

# --- the scene, in world units: y is up, the floor is y = 0, the object stands on the origin ---
CAMERA_DISTANCE = 4.2  # horizontally from the object's axis
CAMERA_HEIGHT = 2.0
CAMERA_TARGET_HEIGHT = 0.55  # the camera looks at this point above the object's foot
VERTICAL_FOV_DEG = 38.0
CORNER_DISTANCE = 2.2  # the walls meet this far behind the object, each at 45° to the view
# Light, in the camera's frame (x right, y up, z towards the camera), so it swings with the
# camera: from the upper left and a little in front, the shadow falls behind and to the right.
LIGHT_DIRECTION = (-0.35, 1.0, 0.75)
LIGHT_SPREAD_DEG = 4.0  # the light's angular radius: how soft the shadow's edge is
AMBIENT = 0.35  # so faces turned away from the light stay readable
DIFFUSE = 1.0 - AMBIENT
SUPERSAMPLE = 4  # 4×4 rays per pixel: anti-aliased edges, a soft shadow; ~5 ms a geometry
EPS = 1e-6

# Object sizes at scale 1 (3D Shapes' objects are about as tall as they are wide).
CUBE_SIDE = 1.0
CYLINDER_RADIUS, CYLINDER_HEIGHT = 0.5, 1.0
SPHERE_RADIUS = 0.55
CAPSULE_RADIUS, CAPSULE_HEIGHT = 0.36, 1.2

FLOOR, WALL, OBJECT = 0, 1, 2  # the regions, each coloured by its own hue factor
N_GEOMETRIES = 4 * 8 * 15


def index_to_classes(index: np.ndarray | int) -> np.ndarray:
    """Flat index in [0, 480000) → (B, 6) factor classes."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    if idx.size and (idx.min() < 0 or idx.max() >= N_IMAGES):
        raise ValueError(
            f"3D Shapes index must be in [0, {N_IMAGES}), got {idx.min()}..{idx.max()}"
        )
    return (idx[:, None] // FACTOR_STRIDES) % FACTOR_SIZES


def classes_to_index(classes: np.ndarray) -> np.ndarray:
    """(B, 6) factor classes → flat index."""
    classes = _checked(classes)
    return classes @ FACTOR_STRIDES


def sample_classes(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly random factor tuples, (n, 6) int64."""
    return rng.integers(0, FACTOR_SIZES, size=(n, len(FACTOR_SIZES)))


def _checked(classes: np.ndarray) -> np.ndarray:
    classes = np.atleast_2d(np.asarray(classes, dtype=np.int64))
    if classes.shape[1] != len(FACTOR_SIZES):
        raise ValueError(f"expected {len(FACTOR_SIZES)} factors per row, got {classes.shape[1]}")
    if (classes < 0).any() or (classes >= FACTOR_SIZES).any():
        raise ValueError(f"factor classes out of range; sizes are {FACTOR_SIZES.tolist()}")
    return classes


# --- ray casting: vectorised over N rays, origins o and unit directions d both (N, 3) ---------

Hit = tuple[np.ndarray, np.ndarray]  # (N,) distance along each ray (inf: missed), (N, 3) normal


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _nearest(hits: list[Hit]) -> Hit:
    """The closest of several (t, normal) candidates per ray; t = inf where none hits."""
    ts = np.stack([t for t, _ in hits])
    k = np.argmin(ts, axis=0)
    rows = np.arange(ts.shape[1])
    return ts[k, rows], np.stack([n for _, n in hits])[k, rows]


def _plane(o: np.ndarray, d: np.ndarray, point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """t where rays meet a plane from its front (the side its normal points to); inf otherwise."""
    facing = d @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((point - o) @ normal) / facing
    return np.where((facing < 0) & (t > EPS), t, np.inf)


def _sphere(o: np.ndarray, d: np.ndarray, centre: np.ndarray, radius: float) -> Hit:
    oc = o - centre
    b = _dot(oc, d)
    disc = b * b - (_dot(oc, oc) - radius**2)
    t = -b - np.sqrt(np.maximum(disc, 0.0))  # the near root: rays start outside
    t = np.where((disc >= 0) & (t > EPS), t, np.inf)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    return t, (p - centre) / radius


def _cylinder_side(o: np.ndarray, d: np.ndarray, radius: float, y0: float, y1: float) -> Hit:
    """The curved side of an upright cylinder on the y axis between heights y0 and y1."""
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - radius**2
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y = o[:, 1] + t * d[:, 1]
    t = np.where((disc >= 0) & (a > 0) & (t > EPS) & (y >= y0) & (y <= y1), t, np.inf)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    n = np.stack([p[:, 0], np.zeros_like(t), p[:, 2]], axis=1) / radius
    return t, n


def _cap(o: np.ndarray, d: np.ndarray, radius: float, height: float) -> Hit:
    """The flat top of an upright cylinder: a disc facing up."""
    t = _plane(o, d, np.array([0.0, height, 0.0]), np.array([0.0, 1.0, 0.0]))
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    t = np.where(p[:, 0] ** 2 + p[:, 2] ** 2 <= radius**2, t, np.inf)
    return t, np.broadcast_to(np.array([0.0, 1.0, 0.0]), o.shape)


def _slabs(
    o: np.ndarray, d: np.ndarray, half_width: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where rays enter and leave the three slabs of an upright box standing on the floor
    around the y axis: (N, 3) entry and exit t per axis."""
    lo = np.array([-half_width, 0.0, -half_width])
    hi = np.array([half_width, height, half_width])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / d, (hi - o) / d
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    # a ray parallel to a slab (0/0 = nan when it lies in a face): no limit along that axis
    return np.where(np.isnan(near), -np.inf, near), np.where(np.isnan(far), np.inf, far)


def _box(o: np.ndarray, d: np.ndarray, half: float) -> Hit:
    """A cube of half-side `half`, its faces along the world axes."""
    near, far = _slabs(o, d, half, 2 * half)
    axis = np.argmax(near, axis=1)
    t_near, t_far = near.max(axis=1), far.min(axis=1)
    t = np.where((t_near <= t_far) & (t_near > EPS), t_near, np.inf)
    n = np.zeros_like(o)
    rows = np.arange(len(o))
    n[rows, axis] = -np.sign(d[rows, axis])  # the face that the ray entered through
    return t, n


def _may_hit_any_object(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Whether rays pass through the box that holds every shape at the largest scale: the exact
    tests then only see these. Origins inside the box count (a floor point by a small object)."""
    scale = float(FACTOR_VALUES[3][-1])
    half_width = max(CUBE_SIDE / 2, CYLINDER_RADIUS, SPHERE_RADIUS, CAPSULE_RADIUS) * scale
    height = max(CUBE_SIDE, CYLINDER_HEIGHT, 2 * SPHERE_RADIUS, CAPSULE_HEIGHT) * scale
    near, far = _slabs(o, d, half_width, height)
    t_far = far.min(axis=1)
    return (near.max(axis=1) <= t_far) & (t_far > 0)


def _object(shape: int, scale: float, o: np.ndarray, d: np.ndarray) -> Hit:
    if shape == 0:
        return _box(o, d, CUBE_SIDE / 2 * scale)
    if shape == 1:
        r, h = CYLINDER_RADIUS * scale, CYLINDER_HEIGHT * scale
        return _nearest([_cylinder_side(o, d, r, 0.0, h), _cap(o, d, r, h)])
    if shape == 2:
        r = SPHERE_RADIUS * scale
        return _sphere(o, d, np.array([0.0, r, 0.0]), r)
    r, h = CAPSULE_RADIUS * scale, CAPSULE_HEIGHT * scale
    return _nearest([
        _cylinder_side(o, d, r, r, h - r),
        _sphere(o, d, np.array([0.0, r, 0.0]), r),
        _sphere(o, d, np.array([0.0, h - r, 0.0]), r),
    ])  # fmt: skip


def _room(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where rays leave the room, which region they land on, and its normal. The room is convex
    (the floor's and two walls' half-spaces), so the exit is the nearest plane ahead."""
    corner = np.array([0.0, 0.0, -CORNER_DISTANCE])
    normals = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    ts = np.stack([_plane(o, d, corner, n) for n in normals])
    k = np.argmin(ts, axis=0)
    return ts[k, np.arange(len(k))], np.minimum(k, WALL), normals[k]


def _camera(azimuth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera position and the rotation from camera to world coordinates (columns right, up,
    backwards), orbiting the object's axis by `azimuth_deg` (positive: to the camera's right)."""
    a = np.radians(azimuth_deg)
    eye = np.array([CAMERA_DISTANCE * np.sin(a), CAMERA_HEIGHT, CAMERA_DISTANCE * np.cos(a)])
    back = eye - np.array([0.0, CAMERA_TARGET_HEIGHT, 0.0])
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    return eye, np.stack([right, up, back], axis=1)


def _light_directions(to_world: np.ndarray) -> np.ndarray:
    """SUPERSAMPLE² unit light directions spread over a small disc around LIGHT_DIRECTION, one
    per ray of a pixel: an area light, so the cast shadow gets a soft edge."""
    s = SUPERSAMPLE
    main = np.asarray(LIGHT_DIRECTION) / np.linalg.norm(LIGHT_DIRECTION)
    side = np.cross(main, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    other = np.cross(main, side)
    # a Fermat spiral: evenly spread over the disc without a grid's aligned rows
    k = np.arange(s * s)
    radius = np.tan(np.radians(LIGHT_SPREAD_DEG)) * np.sqrt((k + 0.5) / (s * s))
    angle = k * np.pi * (3 - np.sqrt(5))
    dirs = main + radius[:, None] * (np.cos(angle)[:, None] * side + np.sin(angle)[:, None] * other)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return dirs @ to_world.T


@dataclass(frozen=True)
class _RoomView:
    """The camera's rays at one azimuth and where they land in the empty, unshadowed room."""

    eye: np.ndarray  # (3,)
    d: np.ndarray  # (N, 3) unit ray directions, N = (64·SUPERSAMPLE)², row-major
    light: np.ndarray  # (N, 3) each ray's direction to the light
    pixel: np.ndarray  # (N,) the flat pixel each ray falls in
    region: np.ndarray  # (N,) FLOOR or WALL
    shade: np.ndarray  # (N,) Lambertian shading, before the object casts its shadow
    near: np.ndarray  # indices of the rays that pass near enough to meet any object
    shadowable: np.ndarray  # indices of the rays landing in light that any object could block
    shadow_points: np.ndarray  # (len(shadowable), 3) where they land


def _room_view(azimuth_deg: float) -> _RoomView:
    s = SUPERSAMPLE
    n = IMAGE_SIZE * s
    half = np.tan(np.radians(VERTICAL_FOV_DEG) / 2)
    coords = ((np.arange(n) + 0.5) / n * 2 - 1) * half  # sub-pixel centres on the image plane
    x, y = np.meshgrid(coords, -coords)  # rows run downwards
    eye, to_world = _camera(azimuth_deg)
    d = np.stack([x.ravel(), y.ravel(), -np.ones(n * n)], axis=1) @ to_world.T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    row, col = np.divmod(np.arange(n * n), n)
    light = _light_directions(to_world)[(row % s) * s + col % s]  # one per ray of a pixel
    t, region, normal = _room(np.broadcast_to(eye, d.shape), d)
    lambert = np.maximum(_dot(normal, light), 0.0)
    lit = np.flatnonzero(lambert > 0)
    points = eye + t[lit, None] * d[lit]  # shadow rays test only the object: no self-hits
    towards = _may_hit_any_object(points, light[lit])
    return _RoomView(
        eye=eye,
        d=d,
        light=light,
        pixel=(row // s) * IMAGE_SIZE + col // s,
        region=region,
        shade=AMBIENT + DIFFUSE * lambert,
        near=np.flatnonzero(_may_hit_any_object(np.broadcast_to(eye, d.shape), d)),
        shadowable=lit[towards],
        shadow_points=points[towards],
    )


def _trace_in(view: _RoomView, shape: int, scale: float) -> np.ndarray:
    o = np.broadcast_to(view.eye, view.d.shape)
    region, shade = view.region.copy(), view.shade.copy()

    # The object is convex, so it only shadows the room: cast rays from floor and walls.
    lit = view.shadowable
    t_block, _ = _object(shape, scale, view.shadow_points, view.light[lit])
    shade[lit[np.isfinite(t_block)]] = AMBIENT

    near = view.near
    t_obj, n_obj = _object(shape, scale, o[near], view.d[near])
    # the room is behind the object from every camera position, so any hit is in front
    front = np.isfinite(t_obj)
    hit = near[front]
    region[hit] = OBJECT
    shade[hit] = AMBIENT + DIFFUSE * np.maximum(_dot(n_obj[front], view.light[hit]), 0.0)

    # average each pixel's SUPERSAMPLE² rays, per region
    sums = np.bincount(view.pixel * 3 + region, weights=shade, minlength=IMAGE_SIZE**2 * 3)
    return (sums / SUPERSAMPLE**2).astype(np.float32).reshape(IMAGE_SIZE, IMAGE_SIZE, 3)


def _trace(azimuth_deg: float, objects: list[tuple[int, float]]) -> np.ndarray:
    """Per-pixel weights of the floor, wall and object colours for each (shape, scale) seen
    from one azimuth, (len(objects), 64, 64, 3) float32 in [0, 1]: each region's share of the
    pixel's SUPERSAMPLE² rays, times its shading. The room is cast once for all of them."""
    view = _room_view(azimuth_deg)
    return np.stack([_trace_in(view, shape, scale) for shape, scale in objects])


class _GeometryTables:
    """The 480 traced weight maps, each filled the first time a batch needs it."""

    def __init__(self) -> None:
        self.weights = np.zeros((N_GEOMETRIES, IMAGE_SIZE * IMAGE_SIZE, 3), dtype=np.float32)
        self.ready = np.zeros(N_GEOMETRIES, dtype=bool)
        self.lock = threading.Lock()  # a metrics thread and a render-ahead thread may share it

    def get(self, geometry: np.ndarray) -> np.ndarray:
        if not self.ready[geometry].all():
            with self.lock:
                missing = np.unique(geometry[~self.ready[geometry]])
                shape, rest = np.divmod(missing, 8 * 15)
                scale, orientation = np.divmod(rest, 15)
                for o in np.unique(orientation):
                    todo = orientation == o
                    objects = [
                        (int(k), float(FACTOR_VALUES[3][c]))
                        for k, c in zip(shape[todo], scale[todo], strict=True)
                    ]
                    traced = _trace(float(FACTOR_VALUES[5][o]), objects)
                    self.weights[missing[todo]] = traced.reshape(len(objects), -1, 3)
                self.ready[missing] = True
        return self.weights[geometry]


@cache
def _tables() -> _GeometryTables:
    return _GeometryTables()


@cache
def _hue_colours() -> np.ndarray:
    """(10, 3) RGB of each hue class at full saturation and value."""
    return np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in FACTOR_VALUES[0]], np.float32)


def render(classes: np.ndarray) -> np.ndarray:
    """Draw a batch of scenes: (B, 6) factor classes → (B, 64, 64, 3) uint8 RGB."""
    classes = _checked(classes)
    geometry = classes[:, 4] * (8 * 15) + classes[:, 3] * 15 + classes[:, 5]
    weights = _tables().get(geometry)  # (B, 4096, 3) floor, wall, object
    colours = _hue_colours()[classes[:, :3]] * 255  # (B, 3 regions, 3 RGB)
    rgb = np.matmul(weights, colours)  # (B, 4096, 3)
    rgb += 0.5  # round, not truncate
    return rgb.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3)


def contact_sheet(n_rows: int, n_cols: int, seed: int, zoom: int = 2) -> np.ndarray:
    """A grid of random scenes, enlarged `zoom`× (nearest) with 2 px white gutters, (H, W, 3)
    uint8: a quick look at what the dataset draws. docs/shapes3d.png is (8, 8, seed=0)."""
    images = render(sample_classes(np.random.default_rng(seed), n_rows * n_cols))
    images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
    size, gap = IMAGE_SIZE * zoom, 2
    sheet = np.full((n_rows * (size + gap) + gap, n_cols * (size + gap) + gap, 3), 255, np.uint8)
    for k, img in enumerate(images):
        y, x = (gap + (size + gap) * i for i in divmod(k, n_cols))
        sheet[y : y + size, x : x + size] = img
    return sheet


class ProceduralShapes3D:
    """3D Shapes, every batch rendered on demand from uniformly random factors."""

    name = "shapes3d"
    channels = 3
    image_size = IMAGE_SIZE
    binary = False
    label_names: tuple[str, ...] = SHAPE_NAMES  # a CVAE on 3D Shapes is conditioned on the shape
    factor_names: tuple[str, ...] = FACTOR_NAMES

    def __len__(self) -> int:
        return N_IMAGES

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        classes = sample_classes(rng, n)
        images = np.ascontiguousarray(render(classes).transpose(0, 3, 1, 2))  # (B, 3, 64, 64)
        return Batch(images=images, labels=classes[:, 4], factors=classes)
