"""A person's photo of a garment, fitted to the form of the model's data: a dark shoe on a white
table becomes a bright shoe on black, cropped to itself, its longest side 28 (Fashion-MNIST) or
20 (MNIST), centred; each step is named in the notes, and the switch turns it all off."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps

from app.checkpoints import load_checkpoint
from app.data.fashion_mnist import DEFAULT_ROOT, FashionMNIST
from app.imaging import load_upload
from app.photo_fit import FORMS, fit_photo

FASHION, MNIST = FORMS["fashion-mnist"], FORMS["mnist"]
ROOT = Path(__file__).resolve().parent.parent
needs_fashion_mnist = pytest.mark.skipif(
    not DEFAULT_ROOT.is_dir(),
    reason=f"needs the real Fashion-MNIST test images in {DEFAULT_ROOT}: "
    "sudo apt-get install dataset-fashion-mnist",
)
# a shoe seen from the side, heel on the left, on a 600×400 photo, right of and below the centre
SHOE = [(250, 320), (490, 320), (490, 270), (400, 250), (340, 200), (250, 200)]
SHOE_BOX = (250, 200, 491, 321)  # left, top, right, bottom (exclusive): PIL fills the outline too


def photo(
    polygon=SHOE, ground=(235, 232, 228), ink=(50, 40, 35), size=(600, 400), noise=6.0, seed=0
) -> Image.Image:
    """An RGB photo: a filled polygon on a plain ground, with Gaussian noise on every pixel."""
    im = Image.new("RGB", size, ground)
    ImageDraw.Draw(im).polygon(polygon, fill=ink)
    rng = np.random.default_rng(seed)
    noisy = np.asarray(im, dtype=np.float64) + rng.normal(0, noise, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def box_of(a: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the pixels above 0."""
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    return rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def expected_shoe(side: int, box: int, pad: int = 0) -> np.ndarray:
    """Where the shoe should be, drawn independently: the polygon moved to the box's corner,
    scaled so its longest side is `box` pixels, centred by its box in `side`, rendered at 8×
    and reduced, as a 0/1 mask."""
    left, top, right, bottom = SHOE_BOX
    s = box / max(right - left, bottom - top)
    x0, y0 = (side - (right - left) * s) / 2, (side - (bottom - top) * s) / 2
    k = 8
    big = Image.new("L", ((side + 2 * pad) * k,) * 2, 0)
    pts = [(((x - left) * s + x0 + pad) * k, ((y - top) * s + y0 + pad) * k) for x, y in SHOE]
    ImageDraw.Draw(big).polygon(pts, fill=255)
    return np.asarray(big.reduce(k)) >= 128


def test_a_dark_shoe_on_a_white_table_becomes_a_bright_shoe_on_black_filling_28_pixels():
    out, steps = fit_photo(photo(), 28, FASHION)
    assert out is not None, steps
    top, left, h, w = box_of(out)
    width, height = SHOE_BOX[2] - SHOE_BOX[0], SHOE_BOX[3] - SHOE_BOX[1]
    assert (h, w) == (round(28 * height / width), 28), f"box {h}×{w}, steps {steps}"
    assert abs(top + (h - 1) / 2 - 13.5) <= 0.5 and abs(left + (w - 1) / 2 - 13.5) <= 0.5
    # the shoe itself, placed where an independent drawing of the polygon puts it
    shoe = expected_shoe(28, 28)
    got = out >= 128
    assert (got & shoe).sum() / (got | shoe).sum() > 0.9, "fitted shoe is not where it belongs"
    assert out[shoe].mean() > 220 and out.max() == 255, "the shoe is not bright"
    assert (out[:top] == 0).all() and (out[top + h :] == 0).all(), "the ground is not black"
    text = " | ".join(steps)
    # the table's grey: 0.299·235 + 0.587·232 + 0.114·228 (ITU-R 601-2 luma, PIL's "L")
    median = float(text.split("border median ")[1].split(")")[0])
    assert abs(median - 232.4) <= 1, text
    for words in ("grey", "inverted", "241×121 box at (250, 200)",
                  "resized to 28×14", "centred on 28×28", "brightest"):  # fmt: skip
        assert words in text, f"{words!r} missing from the notes: {text}"


def test_a_32_pixel_fashion_model_gets_the_28_pixel_form_padded_with_black():
    out28, _ = fit_photo(photo(), 28, FASHION)
    out32, steps = fit_photo(photo(), 32, FASHION)
    assert out28 is not None and out32 is not None
    assert (out32[2:30, 2:30] == out28).all(), "the 28×28 form is not inside the 32×32 one"
    ring = np.ones((32, 32), bool)
    ring[2:30, 2:30] = False
    assert (out32[ring] == 0).all(), "the 2-pixel border is not black"
    assert any("padded with black to 32×32" in s for s in steps), steps


def test_an_mnist_digit_fits_a_20_pixel_box_centred_by_its_mass():
    out, steps = fit_photo(photo(), 28, MNIST)
    assert out is not None, steps
    _, _, h, w = box_of(out)
    assert max(h, w) == 20, f"box {h}×{w}"
    ys, xs = np.indices(out.shape)
    mass = out.astype(np.float64)
    cy, cx = (ys * mass).sum() / mass.sum(), (xs * mass).sum() / mass.sum()
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6, f"centre of mass ({cx}, {cy})"
    # disentangling-vae showed its MNIST models the 28×28 digits scaled to 32 (Resize(32))
    out32, steps32 = fit_photo(photo(), 32, MNIST)
    assert out32 is not None
    _, _, h32, w32 = box_of(out32)
    assert max(h32, w32) in (23, 24), f"box {h32}×{w32} at 32 (20·32/28 = 22.9, plus blur)"
    assert any("scaled to 32×32" in s for s in steps32), steps32


def test_a_photo_on_a_dark_ground_is_not_inverted():
    # a light shirt with a darker band across it, on a dark cloth
    shirt = [(150, 80), (450, 80), (450, 330), (150, 330)]
    im = photo(polygon=shirt, ground=(20, 22, 25), ink=(225, 225, 225))
    ImageDraw.Draw(im).rectangle((150, 180, 450, 230), fill=(120, 120, 120))
    out, steps = fit_photo(im, 28, FASHION)
    assert out is not None, steps
    assert any("background dark" in s and "kept" in s for s in steps), steps
    assert not any("inverted" in s for s in steps), steps
    # 300×250 → 28×23, rows 2..24; the band (rows 100..150 of 250) stays darker than the shirt
    top, _, h, _ = box_of(out)
    band = out[top + round(h * 110 / 251) : top + round(h * 140 / 251)]
    rest = out[top + 1 : top + round(h * 80 / 251)]
    assert band.mean() < 0.75 * rest.mean(), (band.mean(), rest.mean())


def test_an_odd_pixel_left_over_goes_above_and_left_as_in_fashion_mnist():
    # 300×250 → 28×23 and 250×300 → 23×28: 5 rows (columns) left over, 3 above (left), 2 below
    for w, h, expected in ((300, 250, (3, 0, 23, 28)), (250, 300, (0, 3, 28, 23))):
        square = [(150, 75), (150 + w - 1, 75), (150 + w - 1, 75 + h - 1), (150, 75 + h - 1)]
        out, steps = fit_photo(photo(polygon=square), 28, FASHION)
        assert out is not None and box_of(out) == expected, (box_of(out), steps)


def test_the_light_parts_of_a_dark_object_on_white_become_its_dark_parts():
    im = photo(ink=(40, 40, 40))
    ImageDraw.Draw(im).rectangle((260, 290, 480, 310), fill=(150, 150, 150))  # a light sole
    out, _ = fit_photo(im, 28, FASHION)
    assert out is not None
    s = 28 / 241  # the sole's rows, (290..310 − 200)·s + 7
    sole = out[round(90 * s) + 7 + 1 : round(110 * s) + 7, 3:25]
    body = out[7 + round(75 * s) : 7 + round(85 * s), 3:25]
    assert sole.mean() < 0.8 * body.mean(), (sole.mean(), body.mean())


def test_a_uniform_photo_has_no_object_and_is_resized_plainly_with_a_note():
    im = Image.new("RGB", (300, 200), (128, 128, 128))
    out, steps = fit_photo(im, 28, FASHION)
    assert out is None and "no object found" in steps[-1], steps
    x, notes = load_upload(png(im), 28, 1, 10**7, FASHION)
    plain, _ = load_upload(png(im), 28, 1, 10**7)
    assert notes["fitted"] is False and "no object found" in notes["fit"][-1]
    assert (x == plain).all() and (x * 255).round().eq(128).all()


def test_a_transparent_cut_out_is_fitted_as_if_on_white():
    im = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    ImageDraw.Draw(im).polygon(SHOE, fill=(50, 40, 35, 255))
    out, steps = fit_photo(im, 28, FASHION)
    assert out is not None and any("transparent pixels made white" in s for s in steps), steps
    got, shoe = out >= 128, expected_shoe(28, 28)
    assert (got & shoe).sum() / (got | shoe).sum() > 0.9


def test_a_large_photo_is_reduced_first_and_its_box_reported_in_its_own_pixels():
    big = [(x * 4, y * 4) for x, y in SHOE]
    out, steps = fit_photo(photo(polygon=big, size=(2400, 1600)), 28, FASHION)
    assert out is not None
    assert any("reduced 3×" in s for s in steps), steps
    box = next(s for s in steps if s.startswith("cropped"))
    w, h = (int(n) for n in box.split("'s ")[1].split(" box")[0].split("×"))
    assert abs(w - 964) <= 3 and abs(h - 484) <= 3, box  # 241·4, 121·4
    assert box_of(out)[2:] == (14, 28)


def test_the_same_photo_always_fits_to_the_same_pixels():
    a, _ = load_upload(png(photo()), 28, 1, 10**7, FASHION)
    b, _ = load_upload(png(photo()), 28, 1, 10**7, FASHION)
    assert (a == b).all()


# --- an image already in the data's form is left as it is -------------------------------------


def drawn(polygons: list[tuple[list[tuple[float, float]], int]], k: int = 8) -> np.ndarray:
    """Polygons ((x, y) in 28-pixel units, level) drawn at k× and area-reduced to 28×28: edges
    anti-aliased into faint levels, as the datasets' own images have them."""
    big = Image.new("L", (28 * k, 28 * k), 0)
    draw = ImageDraw.Draw(big)
    for points, level in polygons:
        draw.polygon([(x * k, y * k) for x, y in points], fill=level)
    return np.asarray(big.reduce(k))


def mass_centre(a: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(a.shape)
    m = a.astype(np.float64)
    return (ys * m).sum() / m.sum(), (xs * m).sum() / m.sum()


def largest_change(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_a_garment_already_in_fashion_mnist_form_is_left_as_it_is():
    # a dress with a darker belt: rows 0..27 (28 tall), columns 8..20 (13 wide: the odd pixel of
    # the 15 left over on its left, as most Fashion-MNIST images have it), its brightest 255
    dress = [(11.0, 0), (17.7, 0), (20.4, 28), (8.3, 28)]
    belt = [(9.9, 10), (18.8, 10), (19.2, 13), (9.6, 13)]
    x = drawn([(dress, 255), (belt, 150)])
    top, left, h, w = box_of(x)
    faint = x[(x > 0) & (x < 32)]
    assert (top, left, h, w, x.max()) == (0, 8, 28, 13, 255) and faint.size > 5  # as intended
    out, steps = fit_photo(Image.fromarray(x), 28, FASHION)
    assert out is not None and largest_change(out, x) <= 1, steps
    # for a 32-pixel model: padded with black, and a padded one (the input the page shows) kept
    for given in (x, np.pad(x, 2)):
        out32, steps = fit_photo(Image.fromarray(given), 32, FASHION)
        assert out32 is not None and largest_change(out32, np.pad(x, 2)) <= 1, steps


def test_a_digit_already_in_mnist_form_is_left_as_it_is():
    # a 7, rows 4..23 (PIL fills a polygon's outline too, so it ends a little above row 24), its
    # centre of mass (not its box) then moved to the centre by whole pixels, as MNIST's were
    seven = drawn([([(7.4, 4), (20.6, 4), (20.6, 7), (7.4, 7)], 255),
                   ([(17.6, 7), (20.6, 7), (12.6, 23.8), (9.6, 23.8)], 255)])  # fmt: skip
    cy, cx = mass_centre(seven)
    x = np.roll(seven, (round(13.5 - cy), round(13.5 - cx)), axis=(0, 1))
    cy, cx = mass_centre(x)
    top, left, h, w = box_of(x)
    assert max(h, w) == 20 and abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5  # as intended
    assert abs(left + (w - 1) / 2 - 13.5) >= 1, "its box is centred too: nothing to tell apart"
    out, steps = fit_photo(Image.fromarray(x), 28, MNIST)
    assert out is not None and largest_change(out, x) <= 1, steps


@needs_fashion_mnist
def test_every_fashion_mnist_test_image_is_left_as_it_is():
    images = FashionMNIST(split="test", image_size=28).images[:, 0]
    changed = {}
    for i, x in enumerate(images):
        out, steps = fit_photo(Image.fromarray(x), 28, FASHION)
        change = 255 if out is None else largest_change(out, x)
        if change > 1:
            changed[i] = (change, steps)
    assert not changed, f"{len(changed)} of {len(images)} changed, e.g. {list(changed.items())[:3]}"


@needs_fashion_mnist
def test_a_test_image_pasted_on_a_photo_is_fitted_back_near_the_image_itself():
    """100 test images (10 a class), each inverted, enlarged 12× and pasted at a random place on
    a noisy white 640×480 photo: fashion-vae's μ of the fitted photo lies a median 0.71 from its
    μ of the test image itself (1.12 when an odd pixel left over went below and right, where
    Fashion-MNIST does not put it), against 4.0 between a test image and one of another class."""
    test = FashionMNIST(split="test", image_size=28)
    idx = np.concatenate([np.flatnonzero(test.labels == c)[:10] for c in range(10)])
    images = test.images[idx, 0]
    rng = np.random.default_rng(0)
    fitted = []
    for x in images:
        big = np.asarray(Image.fromarray(255 - x).resize((336, 336), Image.Resampling.BICUBIC))
        canvas = np.full((480, 640), 255.0)
        top, left = rng.integers(0, 480 - 336 + 1), rng.integers(0, 640 - 336 + 1)
        canvas[top : top + 336, left : left + 336] = big
        canvas += rng.normal(0, 6, canvas.shape)
        out, steps = fit_photo(Image.fromarray(np.clip(canvas.round(), 0, 255).astype(np.uint8)),
                               28, FASHION)  # fmt: skip
        assert out is not None, steps
        fitted.append(out)
    model = load_checkpoint(ROOT / "checkpoints" / "fashion-vae").served().model

    def mu(batch: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return model.encode(torch.from_numpy(batch).float()[:, None] / 255).mean

    own, back = mu(images), mu(np.stack(fitted))
    gap = (back - own).norm(dim=1).median().item()
    apart = (own - own.roll(10, dims=0)).norm(dim=1).median().item()  # beside another class
    assert gap < 0.9 and gap < apart / 4, (gap, apart)


# --- through the API and the page ------------------------------------------------------------


def encode(client, data: bytes, model: str = "tiny-fashion-vae", **form):
    r = client.post(
        f"/api/models/{model}/encode", files={"file": ("shoe.png", data, "image/png")}, data=form
    )
    assert r.status_code == 200, r.text
    return r.json()


def seen(body) -> np.ndarray:
    """The input the model saw, as the response shows it."""
    raw = base64.b64decode(body["input_png"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("L"))


def test_encoding_a_photo_fits_it_by_default_and_fit_false_is_the_plain_resize(fashion_client):
    data = png(photo())
    fitted = encode(fashion_client, data)
    plain = encode(fashion_client, data, fit="false")
    assert fitted["fitted"] is True and plain["fitted"] is False
    steps = " | ".join(fitted["notes"]["fit"])
    for words in ("inverted", "cropped to the object's 241×121 box", "resized to 28×14"):
        assert words in steps, f"{words!r} missing: {steps}"
    assert "fit" not in plain["notes"]
    # off: the photo centre-cropped to a square and area-resampled, as every upload was before
    expected = ImageOps.fit(photo().convert("L"), (28, 28), method=Image.Resampling.BOX)
    assert (seen(plain) == np.asarray(expected)).all()
    # on: the shoe bright on a black ground, in rows 7..20
    image = seen(fitted)
    assert box_of(image)[::2] == (7, 14) and image.max() == 255
    assert fitted["mu"] != plain["mu"]


def test_fit_is_ignored_for_a_model_whose_data_has_no_form(client):
    body = client.post(
        "/api/models/tiny-vae/encode",
        files={"file": ("shoe.png", png(photo()), "image/png")},
        data={"fit": "true"},
    ).json()
    assert body["fitted"] is False and "fit" not in body["notes"]


def test_the_explore_page_offers_the_switch_and_shows_the_steps(fashion_client):
    page = fashion_client.get("/", params={"model": "tiny-fashion-vae"}).text
    assert 'id="upload-fit"' in page and "checked" in page.split('id="upload-fit"')[1][:20]
    files = {"file": ("shoe.png", png(photo()), "image/png")}
    on = fashion_client.post("/ui/tiny-fashion-vae/encode", files=files, data={"fit": "true"})
    assert "Fitted to the data" in on.text and "inverted" in on.text
    off = fashion_client.post("/ui/tiny-fashion-vae/encode", files=files)  # box unticked
    assert off.status_code == 200 and "Fitted to the data" not in off.text


def test_the_explore_page_has_no_switch_for_data_without_a_form(client):
    assert 'id="upload-fit"' not in client.get("/", params={"model": "tiny-vae"}).text
