"""The rate–distortion study as a server-rendered SVG: quality against bits per pixel for the
VAE's code (k = 1..8 bits per kept latent), JPEG's whole file and JPEG's entropy-coded payload
alone, with the quality of the unquantised μ as the VAE's ceiling.

The x axis is logarithmic: a latent code is a few bytes (~0.005 bpp on 64×64) and JPEG a few
hundred (~0.5 bpp), two decades apart; the top axis gives the same rate in bytes per image.
Plain string building as in app/studies/figure2_svg.py: every number is formatted here, every
piece of text escaped, styling in presentation attributes (no <style>, no style=: the page's CSP is
`style-src 'self'`, and a <style> inside an inlined SVG would restyle the whole page), and no
element ids (the page shows several plots).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.studies.compression import RateDistortion, RatePoint
from app.studies.svg import el as _el
from app.studies.svg import n as _n
from app.studies.svg import text as _text
from app.studies.svg import title as _title

INK, MUTED, GRID = "#1d2330", "#6b7385", "#e6e9ef"
VAE_COLOUR, JPEG_COLOUR, CEILING_COLOUR = "#3b6fd8", "#d9731a", "#8a93a5"
SVG_NS = "http://www.w3.org/2000/svg"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"

# metric → (axis label, tick step choices, value format)
METRICS: dict[str, tuple[str, str]] = {
    "psnr": ("PSNR (dB)", "{:.1f} dB"),
    "ssim": ("SSIM", "{:.3f}"),
    "ms_ssim": ("MS-SSIM (3 scales)", "{:.3f}"),
}

WIDTH, HEIGHT = 560.0, 392.0
LEFT, RIGHT, TOP, BOTTOM = 58.0, 40.0, 58.0, 312.0  # the plot area's edges
# qualities labelled on the plot (every point has a tooltip): the whole files bunch together
PAYLOAD_LABELS, FILE_LABELS = (1, 10, 50, 90), (1, 50, 90)


def _bpp(v: float) -> str:
    return f"{v:.3g}"


class _Axes:
    """Data → SVG coordinates: log₁₀ rate on x, linear quality on y."""

    def __init__(self, rates: Sequence[float], values: Sequence[float], metric: str) -> None:
        positive = [r for r in rates if r > 0] or [1e-3]
        self.x_lo = 10 ** math.floor(math.log10(min(positive)))
        self.x_hi = 10 ** math.ceil(math.log10(max(positive) * 1.001))
        if metric == "psnr":
            step = 5.0 if max(values) - min(values) <= 40 else 10.0
            self.y_lo = step * math.floor(min(values) / step)
            self.y_hi = step * math.ceil(max(values) / step)
        else:  # SSIM and MS-SSIM are at most 1
            step = 0.1 if min(values) >= 0.5 else 0.2
            self.y_lo, self.y_hi = step * math.floor(min(values) / step), 1.0
        if self.y_hi <= self.y_lo:
            self.y_hi = self.y_lo + step
        self.y_step = step

    def x(self, rate: float) -> float:
        r = max(rate, self.x_lo)  # a 0-byte code sits on the axis's left edge
        t = math.log10(r / self.x_lo) / math.log10(self.x_hi / self.x_lo)
        return LEFT + t * (WIDTH - RIGHT - LEFT)

    def y(self, value: float) -> float:
        t = (value - self.y_lo) / (self.y_hi - self.y_lo)
        return BOTTOM - t * (BOTTOM - TOP)


def _axes(ax: _Axes, label: str, pixels: int) -> list[str]:
    parts = []
    n_y = round((ax.y_hi - ax.y_lo) / ax.y_step)
    for i in range(n_y + 1):
        v = ax.y_lo + i * ax.y_step
        y = ax.y(v)
        parts.append(_el("line", {"x1": LEFT, "x2": WIDTH - RIGHT, "y1": y, "y2": y,
                                  "stroke": GRID}))  # fmt: skip
        tick = f"{v:.0f}" if ax.y_step >= 1 else f"{v:.1f}"
        parts.append(_text(LEFT - 6, y + 3.5, tick, **{"text-anchor": "end"}))
    decades = round(math.log10(ax.x_hi / ax.x_lo))
    for d in range(decades + 1):
        base = ax.x_lo * 10**d
        x = ax.x(base)
        parts.append(_el("line", {"x1": x, "x2": x, "y1": TOP, "y2": BOTTOM, "stroke": GRID}))
        parts.append(_text(x, BOTTOM + 15, f"{base:g}", **{"text-anchor": "middle"}))
        if d < decades:
            for m in range(2, 10):
                xm = ax.x(base * m)
                parts.append(_el("line", {"x1": xm, "x2": xm, "y1": BOTTOM, "y2": BOTTOM + 3,
                                          "stroke": MUTED}))  # fmt: skip
    # the same rate in bytes per image along the top: 1, 10, 100, ... bytes where they fit
    lo_bytes, hi_bytes = ax.x_lo * pixels / 8, ax.x_hi * pixels / 8
    b = 10 ** math.ceil(math.log10(lo_bytes))
    while b <= hi_bytes:
        x = ax.x(8 * b / pixels)
        parts.append(_el("line", {"x1": x, "x2": x, "y1": TOP - 3, "y2": TOP, "stroke": MUTED}))
        parts.append(_text(x, TOP - 6, f"{b:g} B", **{"text-anchor": "middle", "fill": MUTED,
                                                      "font-size": 10}))  # fmt: skip
        b *= 10
    parts += [
        _el("rect", {"x": LEFT, "y": TOP, "width": WIDTH - RIGHT - LEFT, "height": BOTTOM - TOP,
                     "fill": "none", "stroke": "#c4c9d4"}),
        _text((LEFT + WIDTH - RIGHT) / 2, BOTTOM + 32, "bits per pixel (log scale)",
              **{"text-anchor": "middle"}),
        _text(14, (TOP + BOTTOM) / 2, label, **{"text-anchor": "middle",
              "transform": f"rotate(-90 14 {_n((TOP + BOTTOM) / 2)})"}),
    ]  # fmt: skip
    return parts


def _series(
    ax: _Axes, points: list[RatePoint], metric: str, name: str, tip: str,
    stroke: dict[str, object], marker: str, labels: dict[int, str],
) -> str:  # fmt: skip
    """One series: a polyline through its points, a marker with a tooltip on each, and text
    labels on some: the VAE's odd k to the left and even k to the right (equal-byte pairs share
    an x), JPEG payloads to the left and whole files to the right."""
    value_format = METRICS[metric][1]
    coords = [(ax.x(p.bpp), ax.y(getattr(p, metric))) for p in points]
    parts = [
        _el("polyline", {"class": f"series {name}", "data-series": name, "fill": "none",
                         "points": " ".join(f"{_n(x)},{_n(y)}" for x, y in coords),
                         "stroke-linejoin": "round", **stroke})
    ]  # fmt: skip
    colour = stroke["stroke"]
    for p, (x, y) in zip(points, coords, strict=True):
        title = _title(tip.format(setting=p.setting) + f": {_bpp(p.bpp)} bpp, "
                       + value_format.format(getattr(p, metric)))  # fmt: skip
        if marker == "circle":
            shape = _el("circle", {"cx": x, "cy": y, "r": 3.5, "fill": colour}, title)
        else:
            fill = colour if marker == "square" else "#fff"
            shape = _el("rect", {"x": x - 3, "y": y - 3, "width": 6, "height": 6, "fill": fill,
                                 "stroke": colour, "stroke-width": 1.2}, title)  # fmt: skip
        parts.append(shape)
        if p.setting in labels:
            left = name == "jpeg-payload" or (name == "vae" and p.setting % 2 == 1)
            parts.append(_text(x + (-6 if left else 6), y + 3.5, labels[p.setting], **{
                "text-anchor": "end" if left else "start", "fill": colour,
                "font-size": 10}))  # fmt: skip
    return _el("g", {"class": f"points {name}"}, *parts)


def _legend(y: float) -> list[str]:
    items = [
        ("vae", VAE_COLOUR, None, "VAE code, k bits per latent (labels: k)"),
        ("jpeg-file", JPEG_COLOUR, None, "JPEG, whole file (labels: quality)"),
        ("jpeg-payload", JPEG_COLOUR, "5 3", "JPEG, scan payload only"),
        ("ceiling", CEILING_COLOUR, "2 3", "VAE from unquantised μ (its ceiling)"),
    ]
    parts = []
    for i, (name, colour, dash, text) in enumerate(items):
        x, yy = LEFT + (i % 2) * 250, y + (i // 2) * 16
        parts.append(_el("line", {"class": f"key {name}", "x1": x, "x2": x + 22, "y1": yy,
                                  "y2": yy, "stroke": colour, "stroke-width": 2,
                                  "stroke-dasharray": dash}))  # fmt: skip
        parts.append(_text(x + 28, yy + 3.5, text))
    return parts


def rate_distortion_svg(rd: RateDistortion, metric: str = "psnr") -> str:
    """One plot of the study: `metric` (psnr, ssim or ms_ssim) against bits per pixel."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    label, value_format = METRICS[metric]
    series = (rd.vae, rd.jpeg_file, rd.jpeg_payload)
    ceiling = getattr(rd.unquantised, metric)
    ax = _Axes([p.bpp for s in series for p in s],
               [getattr(p, metric) for s in series for p in s] + [ceiling], metric)  # fmt: skip
    y_ceiling = ax.y(ceiling)
    subtitle = (
        f"mean over {rd.study.n_images} {rd.dataset} images (seed {rd.study.seed}); code: "
        f"{len(rd.kept)} latents × k bits (model, latents, k: shared state)"
    )
    body = [
        _text(LEFT, 20, f"{rd.model}: {label} against rate", **{"font-weight": 600,
                                                               "font-size": 13}),
        _text(LEFT, 36, subtitle, fill=MUTED, **{"font-size": 10}),
        *_axes(ax, label, rd.pixels),
        _el("line", {"class": "ceiling", "x1": LEFT, "x2": WIDTH - RIGHT, "y1": y_ceiling,
                     "y2": y_ceiling, "stroke": CEILING_COLOUR, "stroke-dasharray": "2 3"},
            _title("decoded from μ itself (float32 latents): " + value_format.format(ceiling))),
        _series(ax, rd.jpeg_payload, metric, "jpeg-payload", "JPEG q{setting}, payload only",
                {"stroke": JPEG_COLOUR, "stroke-width": 1.5, "stroke-dasharray": "5 3"},
                "hollow", {q: f"q{q}" for q in PAYLOAD_LABELS}),
        _series(ax, rd.jpeg_file, metric, "jpeg-file", "JPEG q{setting}, whole file",
                {"stroke": JPEG_COLOUR, "stroke-width": 1.8}, "square",
                {q: f"q{q}" for q in FILE_LABELS}),
        _series(ax, rd.vae, metric, "vae", "VAE code, k = {setting}",
                {"stroke": VAE_COLOUR, "stroke-width": 1.8}, "circle",
                {p.setting: str(p.setting) for p in rd.vae}),
        *_legend(BOTTOM + 52),
    ]  # fmt: skip
    aria = (
        f"Rate–distortion of {rd.model} against JPEG: {label} over bits per pixel (log scale), "
        f"for the VAE code at k = 1 to 8 bits per latent and JPEG whole files and payloads"
    )
    attrs = {"xmlns": SVG_NS, "viewBox": f"0 0 {_n(WIDTH)} {_n(HEIGHT)}", "width": WIDTH,
             "height": HEIGHT, "role": "img", "aria-label": aria, "font-family": FONT,
             "font-size": 11, "fill": INK, "class": f"rate-distortion {metric}"}  # fmt: skip
    return _el("svg", attrs, _title(aria), *body)
