"""Screenshots of the explore and compare pages for the README, taken in Debian's Chromium
against a live server on the shipped checkpoints.

    python docs/make_screenshots.py   # docs/explore.png, compare.png, figure2.png, compress.png,
                                      # denoise.png, vaegan.png, interpolate.png, card.png,
                                      # map.png, directions.png
    python docs/make_screenshots.py map   # the last two only
    python docs/make_screenshots.py data  # docs/data-map.png, models.png: data sets, /models
    python docs/make_screenshots.py spatial  # docs/spatial.png: an AutoencoderKL's page
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.settings import Settings  # noqa: E402
from tests.browser_server import launch_chromium, live_server  # noqa: E402

Z = "0.8,-0.4,0.3,1.1,-0.6,0.2,0,0.5,-1.0,0.4"
SHOTS = {
    "explore.png": "/",  # what a new user meets: the landing page as it opens
    "compare.png": f"/compare?a=dsprites-vae&b=dsprites-beta-vae&z={Z}",
}


def map_shots(page: Page, url: str) -> None:
    """The latent map of fashion-vae by t-SNE, coloured by class (the page waits for the
    t-SNE, half a minute on 2 cores), and /compare's direction section."""
    page.goto(url + "/map?model=fashion-vae&method=tsne&n=5000&colour=class")
    done = "document.getElementById('map').dataset.state === 'done'"
    page.wait_for_function(done, timeout=300_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ROOT / "docs" / "map.png"))
    page.goto(url + f"/compare?a=dsprites-vae&b=dsprites-beta-vae&z={Z}")
    section = page.locator("#direction-compare")
    section.scroll_into_view_if_needed()
    page.wait_for_selector("#direction-compare img", timeout=120_000)
    page.wait_for_load_state("networkidle")
    section.screenshot(path=str(ROOT / "docs" / "directions.png"))


def data_shots(page: Page, url: str) -> None:
    """The imported CelebA β-TCVAE's map of the 100 faces of datasets/celeba-100 (its own data
    set by its dataset.json), a face hovered; and /models sorted by MIG."""
    page.goto(url + "/map?model=disvae-btcvae-celeba&colour=z0")
    done = "document.getElementById('map').dataset.state === 'done'"
    page.wait_for_function(done, timeout=300_000)
    page.wait_for_load_state("networkidle")
    box = page.locator("#map-canvas").bounding_box()
    assert box is not None
    for fx, fy in [(x / 10, y / 10) for y in range(3, 8) for x in range(3, 8)]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        if page.locator("#map-tip").is_visible():
            break
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ROOT / "docs" / "data-map.png"))
    page.goto(url + "/models?sort=mig")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ROOT / "docs" / "models.png"))


def spatial_shots(page: Page, url: str) -> None:
    """The shipped AutoencoderKL's page with a region painted over the object (the middle
    cells of its 8×8 grid) and one channel's slider moved, the traversal of that region."""
    page.goto(url + "/?model=shapes-autoencoder-kl")
    page.wait_for_function("document.querySelector('canvas.decoded').dataset.shown")
    box = page.locator("canvas.region").bounding_box()
    assert box is not None
    cell = box["width"] / 8
    for row in (3, 4, 5):  # drag across columns 2-5 of rows 3-5
        page.mouse.move(box["x"] + cell * 2.5, box["y"] + cell * (row + 0.5))
        page.mouse.down()
        page.mouse.move(box["x"] + cell * 5.5, box["y"] + cell * (row + 0.5), steps=6)
        page.mouse.up()
    page.wait_for_load_state("networkidle")
    slider = page.locator("#channel1")
    slider.focus()
    for _ in range(8):  # +1.6 on channel 1, inside the region
        page.keyboard.press("ArrowRight")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ROOT / "docs" / "spatial.png"), full_page=True)


def main() -> None:
    with live_server(Settings()) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        # bypass_csp: Playwright's polling waits evaluate strings, which our CSP (no eval) refuses
        page = browser.new_page(viewport={"width": 1360, "height": 860}, bypass_csp=True)
        if sys.argv[1:] == ["data"]:
            data_shots(page, url)
            return
        if sys.argv[1:] == ["spatial"]:
            spatial_shots(page, url)
            return
        map_shots(page, url)
        if sys.argv[1:] == ["map"]:
            return
        for name, path in SHOTS.items():
            page.goto(url + path)
            page.wait_for_function(
                "[...document.querySelectorAll('canvas.decoded')].every(c => c.dataset.shown)"
            )
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ROOT / "docs" / name))
        # the Figure 2 section of the compare page, loaded when it scrolls into view
        section = page.locator(".figure2").first
        section.scroll_into_view_if_needed()
        loaded = "document.querySelectorAll('.figure2 .figure2-figure svg').length === 2"
        page.wait_for_function(loaded, timeout=120_000)
        section.screenshot(path=str(ROOT / "docs" / "figure2.png"))
        # pages without sliders: wait for what they load after the page
        page.goto(url + "/compress?model=dsprites-beta-vae&index=123456&bits=6")
        page.wait_for_selector(".compress-rd-plots svg", timeout=120_000)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ROOT / "docs" / "compress.png"), full_page=True)
        page.goto(url + "/denoise?index=123456&noise=salt_pepper&level=0.2&seed=1")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ROOT / "docs" / "denoise.png"))
        page.goto(url + "/sharpness?seed=3&index=1234")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ROOT / "docs" / "vaegan.png"), full_page=True)
        # interpolate: a square (A) and a heart (B) from the dataset, encoded by the form
        page.goto(url + "/interpolate?model=dsprites-beta-vae")
        page.fill("input[name=index_a]", "205064")
        page.fill("input[name=index_b]", "707350")
        page.click("#interp-go")
        page.wait_for_selector("#strip-slerp")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ROOT / "docs" / "interpolate.png"))
        page.goto(url + "/models/dsprites-beta-vae")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ROOT / "docs" / "card.png"))
        browser.close()


if __name__ == "__main__":
    main()
