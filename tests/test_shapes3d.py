"""The procedural 3D Shapes renderer draws a lit room with an object, from DeepMind's factors."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from app.data import open_dataset
from app.data.shapes3d import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    FACTOR_VALUES,
    N_IMAGES,
    SHAPE_NAMES,
    classes_to_index,
    contact_sheet,
    index_to_classes,
    render,
    sample_classes,
)

FLOOR_HUE, WALL_HUE, OBJECT_HUE, SCALE, SHAPE, ORIENTATION = range(6)
# floor, wall, object hue, scale, shape, orientation: a mid-sized cube seen straight on
BASE = (0, 0, 0, 4, 0, 7)


def scene(**factors: int) -> list[int]:
    classes = list(BASE)
    for name, value in factors.items():
        classes[FACTOR_NAMES.index(name)] = value
    return classes


def region(classes: list[int], factor: int) -> np.ndarray:
    """(64, 64) bool: the pixels whose colour follows hue `factor` (red → cyan flips every
    channel, so any pixel with some of that region in it changes)."""
    a, b = list(classes), list(classes)
    a[factor], b[factor] = 0, 5
    red, cyan = render([a, b])
    return (red != cyan).any(axis=-1)


def test_there_are_480000_scenes_and_index_round_trips():
    assert N_IMAGES == 480_000
    idx = np.random.default_rng(1).integers(0, N_IMAGES, 5000)
    assert np.array_equal(classes_to_index(index_to_classes(idx)), idx)
    assert index_to_classes(0).tolist() == [[0] * 6]
    assert index_to_classes(N_IMAGES - 1).tolist() == [(FACTOR_SIZES - 1).tolist()]
    # 3dshapes.h5's row order: orientation fastest, then shape, scale, and the three hues
    assert index_to_classes(1).tolist() == [[0, 0, 0, 0, 0, 1]]
    assert index_to_classes(15).tolist() == [[0, 0, 0, 0, 1, 0]]
    assert index_to_classes(60).tolist() == [[0, 0, 0, 1, 0, 0]]
    assert index_to_classes(480).tolist() == [[0, 0, 1, 0, 0, 0]]
    assert index_to_classes(48_000).tolist() == [[1, 0, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match="index must be in"):
        index_to_classes(N_IMAGES)


def test_factor_values_are_those_of_3d_shapes():
    assert FACTOR_NAMES == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert SHAPE_NAMES == ("cube", "cylinder", "sphere", "capsule")
    for hue in FACTOR_VALUES[:3]:
        assert np.allclose(hue, np.arange(10) / 10)
    assert np.allclose(FACTOR_VALUES[SCALE], np.linspace(0.75, 1.25, 8))
    assert np.allclose(FACTOR_VALUES[ORIENTATION], np.linspace(-30, 30, 15))


def test_images_are_64x64_rgb_uint8_and_the_same_every_time():
    classes = sample_classes(np.random.default_rng(0), 48)
    images = render(classes)
    assert images.shape == (48, 64, 64, 3) and images.dtype == np.uint8
    assert np.array_equal(images, render(classes))
    # an image does not depend on the batch it is drawn in
    assert np.array_equal(images[7], render(classes[7])[0])


def test_out_of_range_factors_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        render([[0, 0, 0, 0, 4, 0]])
    with pytest.raises(ValueError, match="6 factors"):
        render([[0, 0, 0, 0, 0]])


def test_each_hue_recolours_only_its_own_region():
    for orientation in (0, 7, 14):
        classes = scene(orientation=orientation)
        floor, wall, obj = (region(classes, f) for f in (FLOOR_HUE, WALL_HUE, OBJECT_HUE))
        assert (floor | wall | obj).all()  # every pixel shows floor, wall or object
        # the floor fills the bottom rows, the walls the top rows, the object the centre
        assert floor[-4:].all() and not (wall | obj)[-4:].any()
        assert wall[:4].all() and not (floor | obj)[:4].any()
        assert obj[32, 32] and not (floor | wall)[32, 32]
        # regions only share the anti-aliased pixels along their borders
        for a, b in ((floor, wall), (floor, obj), (wall, obj)):
            assert (a & b).sum() < 0.25 * min(a.sum(), b.sum())
        assert 150 < obj.sum() < 900


def test_hues_are_full_saturation_hsv_colours_dimmed_by_shading():
    # a bottom pixel is pure floor: its colour is hsv(hue, 1, 1) times one shading factor
    classes = [scene(floor_hue=h) for h in range(10)]
    pixels = render(classes)[:, 63, 32].astype(float)
    shade = pixels.max(axis=1) / 255
    assert np.ptp(shade) < 0.01 and 0.5 < shade[0] < 1
    for h, pixel in enumerate(pixels):
        expected = np.array(colorsys.hsv_to_rgb(h / 10, 1, 1)) * 255 * shade[h]
        assert np.abs(pixel - expected).max() <= 1.5, (h, pixel, expected)


def test_scale_grows_the_object():
    for shape in range(4):
        areas = [region(scene(shape=shape, scale=s), OBJECT_HUE).sum() for s in range(8)]
        assert np.all(np.diff(areas) > 0), (SHAPE_NAMES[shape], areas)
        # scale spans 0.75..1.25, so the area grows by about (1.25 / 0.75)² ≈ 2.8
        assert 2.2 < areas[-1] / areas[0] < 3.4, (SHAPE_NAMES[shape], areas)


def test_the_four_shapes_have_distinct_silhouettes():
    masks = [region(scene(shape=k, scale=7), OBJECT_HUE) for k in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert (masks[i] ^ masks[j]).sum() > 40, (SHAPE_NAMES[i], SHAPE_NAMES[j])
    # the capsule stands taller than it is wide; the sphere is about as tall as it is wide
    rows, cols = np.nonzero(masks[3])
    assert np.ptp(rows) > 1.4 * np.ptp(cols)
    rows, cols = np.nonzero(masks[2])
    assert abs(np.ptp(rows) - np.ptp(cols)) <= 2


def test_orientation_turns_a_cube_but_not_a_sphere():
    def object_pixels(shape: int, orientation: int) -> np.ndarray:
        """The pixels that show the object alone (its hue changes them, the room's hues do not),
        the rest zeroed: edge pixels mix in the room, and the room moves with the camera."""
        classes = scene(shape=shape, orientation=orientation, object_hue=3)
        obj = region(classes, OBJECT_HUE)
        room = region(classes, FLOOR_HUE) | region(classes, WALL_HUE)
        return np.where((obj & ~room)[..., None], render(classes)[0], 0)

    sphere = [object_pixels(2, o) for o in (0, 7, 14)]
    cube = [object_pixels(0, o) for o in (0, 7, 14)]
    assert (sphere[0].max(axis=-1) > 0).sum() > 300
    for other in sphere[1:]:
        assert np.abs(other.astype(int) - sphere[0]).max() <= 1
    for other in cube[1:]:
        assert (np.abs(other.astype(int) - cube[0]).max(axis=-1) > 20).sum() > 30
    # the camera swings round the room too: the corner between the walls moves
    walls = [render([scene(shape=2, orientation=o)])[0] for o in (0, 14)]
    assert (walls[0] != walls[1]).any(axis=-1).sum() > 300


def test_the_image_is_a_scene_not_noise():
    images = render(sample_classes(np.random.default_rng(2), 32)).astype(int)
    step = np.abs(np.diff(images, axis=2)).max(axis=-1)  # between horizontal neighbours
    assert (step <= 8).mean() > 0.85  # noise would give about 0.03
    # and it is not blank either: floor, walls and object give several distinct colours
    assert all(len(np.unique(img.reshape(-1, 3), axis=0)) > 20 for img in images)


def test_open_dataset_samples_are_a_pure_function_of_the_rng():
    ds = open_dataset("shapes3d")
    assert ds.name == "shapes3d" and ds.channels == 3 and ds.image_size == 64
    assert not ds.binary and ds.label_names == SHAPE_NAMES and ds.factor_names == FACTOR_NAMES
    assert len(ds) == N_IMAGES
    a = ds.sample(np.random.default_rng(3), 16)
    b = ds.sample(np.random.default_rng(3), 16)
    assert a.images.shape == (16, 3, 64, 64) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and np.array_equal(a.factors, b.factors)
    assert a.factors is not None
    assert np.array_equal(a.images, render(a.factors).transpose(0, 3, 1, 2))
    assert np.array_equal(a.labels, a.factors[:, SHAPE])
    c = ds.sample(np.random.default_rng(4), 16)
    assert not np.array_equal(a.images, c.images)


def test_contact_sheet_tiles_enlarged_scenes():
    sheet = contact_sheet(2, 3, seed=0)
    assert sheet.shape == (2 * 130 + 2, 3 * 130 + 2, 3) and sheet.dtype == np.uint8
    first = render(sample_classes(np.random.default_rng(0), 6))[0]
    assert np.array_equal(sheet[2:130:2, 2:130:2], first)
