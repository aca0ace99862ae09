"""The procedural renderer draws DeepMind's dSprites geometry."""

from __future__ import annotations

import numpy as np
import pytest

from app.data.dsprites import (
    FACTOR_SIZES,
    N_IMAGES,
    classes_to_index,
    draw,
    index_to_classes,
    render,
    sample_classes,
)


def centroid(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(img)
    return cols.mean(), rows.mean()


def test_there_are_737280_images_and_index_round_trips():
    assert N_IMAGES == 737_280
    rng = np.random.default_rng(1)
    idx = rng.integers(0, N_IMAGES, 5000)
    assert np.array_equal(classes_to_index(index_to_classes(idx)), idx)
    assert index_to_classes(0).tolist() == [[0, 0, 0, 0, 0]]
    assert index_to_classes(N_IMAGES - 1).tolist() == [(FACTOR_SIZES - 1).tolist()]
    # strides are the official file's: the last factor (pos_y) varies fastest
    assert index_to_classes(1).tolist() == [[0, 0, 0, 0, 1]]
    assert index_to_classes(32).tolist() == [[0, 0, 0, 1, 0]]
    with pytest.raises(ValueError, match="index must be in"):
        index_to_classes(N_IMAGES)


def test_images_are_binary_64x64():
    imgs = render(sample_classes(np.random.default_rng(0), 64))
    assert imgs.shape == (64, 64, 64) and imgs.dtype == np.uint8
    assert set(np.unique(imgs)) <= {0, 1}
    assert (imgs.reshape(64, -1).sum(1) > 50).all()


def test_pos_x_moves_the_centroid_right_and_pos_y_moves_it_down():
    for shape in range(3):
        xs = [centroid(render([[shape, 3, 7, px, 10]])[0])[0] for px in range(32)]
        ys = [centroid(render([[shape, 3, 7, 10, py]])[0])[1] for py in range(32)]
        assert np.all(np.diff(xs) > 0), xs
        assert np.all(np.diff(ys) > 0), ys
        # centre at 16 + 32·pos px; centroid is within a pixel of it for the symmetric shapes
    for shape in (0, 1):
        cx, cy = centroid(render([[shape, 5, 0, 31, 0]])[0])
        assert abs(cx - 48) < 0.6 and abs(cy - 16) < 0.6


def test_scale_grows_the_area_and_areas_match_the_official_sprites():
    for shape, official in ((0, 360), (1, 290), (2, 225)):
        areas = [render([[shape, s, 0, 16, 16]])[0].sum() for s in range(6)]
        assert np.all(np.diff(areas) > 0), areas
        assert abs(areas[-1] - official) / official < 0.05, (shape, areas[-1])


def test_rotation_keeps_the_area_within_a_few_pixels():
    for shape in range(3):
        areas = render([[shape, 5, o, 16, 16] for o in range(40)]).reshape(40, -1).sum(1)
        # pixel quantisation of a turning outline moves a few boundary pixels in or out
        assert np.abs(areas - areas.mean()).max() <= 8, (shape, areas)


def test_orientation_zero_and_two_pi_draw_the_same_image():
    a, b = render([[2, 4, 0, 10, 20], [2, 4, 39, 10, 20]])
    assert np.array_equal(a, b)


def test_rotation_is_counter_clockwise_as_displayed():
    # the ellipse's long axis is horizontal at 0; a quarter turn later it stands vertical
    flat = render([[1, 5, 0, 16, 16]])[0]
    quarter = render([[1, 5, 10, 16, 16]])[0]  # 10/39 of 2π ≈ 92°
    assert np.ptp(np.nonzero(flat)[1]) > np.ptp(np.nonzero(flat)[0])
    assert np.ptp(np.nonzero(quarter)[0]) > np.ptp(np.nonzero(quarter)[1])
    # the heart's lobes point up at 0; after a small CCW turn its tip (bottom) swings right
    tip0 = _lowest_col(render([[2, 5, 0, 16, 16]])[0])
    tip1 = _lowest_col(render([[2, 5, 3, 16, 16]])[0])
    assert tip1 > tip0


def _lowest_col(img: np.ndarray) -> float:
    rows, cols = np.nonzero(img)
    return cols[rows == rows.max()].mean()


def test_heart_lobes_point_up_at_orientation_zero():
    img = render([[2, 5, 0, 16, 16]])[0]
    rows, _ = np.nonzero(img)
    top, bottom = rows.min(), rows.max()
    width_at = lambda r: img[r].sum()  # noqa: E731
    assert width_at(top + 3) < width_at(top + 6) and width_at(bottom - 1) <= 3
    # two lobes: the row near the top has two separate runs of pixels
    runs = np.count_nonzero(np.diff(np.concatenate([[0], img[top + 1], [0]])) == 1)
    assert runs == 2


def test_the_three_shapes_differ():
    sq, el, he = render([[0, 5, 0, 16, 16], [1, 5, 0, 16, 16], [2, 5, 0, 16, 16]])
    for a, b in ((sq, el), (sq, he), (el, he)):
        assert (a != b).sum() > 50


def test_out_of_range_factors_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        render([[3, 0, 0, 0, 0]])


def test_the_window_around_each_sprite_draws_what_the_whole_canvas_does():
    # render tests only the 32×32 window around each sprite; testing all 64×64 pixel centres
    # must light the same pixels, at the corners of the position grid and the largest scale too
    rng = np.random.default_rng(3)
    corners = np.stack(
        np.meshgrid(range(3), [0, 5], range(0, 40, 3), [0, 1, 15, 30, 31], [0, 1, 16, 30, 31],
                    indexing="ij"),
        axis=-1,
    ).reshape(-1, 5)  # fmt: skip
    classes = np.concatenate([sample_classes(rng, 3000), corners])
    canvas = np.broadcast_to(np.arange(64), (len(classes), 64))
    whole = draw(classes, canvas, canvas)
    assert whole.sum(axis=(1, 2)).min() > 0
    np.testing.assert_array_equal(render(classes), whole.astype(np.uint8))
