"""Every page of three kinds of model in Chromium — a shipped model trained here, an imported
CelebA model with no data set here, and an 8-latent plugin with no data at all — answers every
request it makes itself with a 2xx/3xx and leaves nothing loading: once the network is idle, no
htmx request is in flight and no placeholder ("Computing…", "Finding the directions…", "loading
the map…") is left on the page (each section that
loads when scrolled into view scrolled to, as a person reading down the page would)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser_server import live_server
from tests.eight_latent_plugin import served_plugin

# what each lazily loaded part of a page says until it arrives (templates/), as a JS regex
WAITING = ("Computing", "Finding the directions", "Loading the scores", "Loading reconstructions",
           "loading the map")  # fmt: skip
PLACEHOLDERS = "/" + "|".join(WAITING) + "/i"
MODELS = ("dsprites-beta-vae", "disvae-btcvae-celeba", "my-conv-vae")
PAGES = ("/?model={m}", "/map?model={m}", "/models/{m}", "/compare?a={m}", "/interpolate?model={m}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_plugin(tmp_path_factory.mktemp("plugin"), "eight_latent_plugin") as (settings, _):
        with live_server(settings) as url:
            yield url


@pytest.mark.parametrize("model", MODELS)
def test_every_page_answers_its_own_requests_and_leaves_nothing_loading(browser, server, model):
    # bypass_csp: Playwright's polling waits evaluate strings, which our CSP (no eval) refuses
    context = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    try:
        for path in PAGES:
            page = context.new_page()
            failed: list[str] = []
            errors: list[str] = []
            page.on("response", lambda r, f=failed: f.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)  # fmt: skip
            page.on("pageerror", lambda e, f=errors: f.append(str(e)))
            url = path.format(m=model)
            page.goto(url)
            page.wait_for_load_state("networkidle", timeout=60_000)
            # what loads when scrolled into view (htmx's `intersect`) is part of the page too
            for element in page.locator("[hx-trigger~=intersect]").element_handles():
                # as a person scrolling down the page; one swapped out meanwhile has loaded
                if element.evaluate("e => e.isConnected"):
                    element.scroll_into_view_if_needed()
            # every placeholder replaced by what it waits for within 10 s (a Figure 2 takes
            # seconds the first time)
            try:
                page.wait_for_function(f"!{PLACEHOLDERS}.test(document.body.innerText)",
                                       timeout=10_000)  # fmt: skip
            except PlaywrightTimeout:
                text = page.evaluate("document.body.innerText")
                left = [line for line in text.splitlines()
                        if re.search("|".join(WAITING), line, re.IGNORECASE)]  # fmt: skip
                pytest.fail(f"{url}: still loading after 10 s: {left}")
            try:  # and every request htmx made for it answered
                page.wait_for_function(
                    "document.querySelectorAll('.htmx-request').length === 0", timeout=10_000
                )
            except PlaywrightTimeout:
                pytest.fail(f"{url}: an htmx request still in flight after 10 s")
            assert failed == [] and errors == [], (url, failed, errors)
            page.close()
    finally:
        context.close()
