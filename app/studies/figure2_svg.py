"""Figure 2 and the latent × factor mutual information as server-rendered SVG documents.

Plain string building: every number is formatted here and every piece of text goes through
`escape`/`quoteattr`. Styling is in presentation attributes, not a <style> element, because the
pages inline these SVGs and a <style> inside one would restyle the whole page. No element ids
for the same reason (two figures sit side by side on /compare).

Colour scales. Heat-maps and response curves share one symmetric range ±m per figure, m the
largest |mean μ_i| anywhere in it, on a diverging blue–white–red map (red high, as in the paper):
an unused latent then reads as white and flat, not as amplified noise, which a per-column scale
would show. The mutual information is coloured by MI / H(factor) ∈ [0, 1], so factors with 3 and
40 values are comparable (as in MIG); the tooltips give the nats.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Sequence

import numpy as np
import torch

from app import imaging
from app.data.dsprites import FACTOR_NAMES, FACTOR_VALUES, SHAPE_NAMES
from app.studies.figure2 import FOLDS, NEIGHBOURS, Figure2Data, shape_view
from app.studies.svg import el as _el
from app.studies.svg import n as _n
from app.studies.svg import text as _text
from app.studies.svg import title as _title

# Square red, ellipse green, heart blue, as in the paper's figure.
SHAPE_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")
# ColorBrewer RdBu (11 classes), reversed so that red is high.
DIVERGING = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
             "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f")  # fmt: skip
# ColorBrewer Blues (9 classes), low to high.
SEQUENTIAL = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
              "#08519c", "#08306b")  # fmt: skip
INK, MUTED, LINE = "#1d2330", "#6b7385", "#dde1e8"
SVG_NS = "http://www.w3.org/2000/svg"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"


def _hex_to_rgb(colours: tuple[str, ...]) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=float)


def colour_map(t: np.ndarray, colours: tuple[str, ...]) -> np.ndarray:
    """t in [0, 1] (any shape) → uint8 RGB (..., 3), piecewise linear between the anchors."""
    anchors = _hex_to_rgb(colours)
    t = np.clip(np.nan_to_num(np.asarray(t, dtype=float)), 0, 1)
    xs = np.linspace(0, 1, len(colours))
    rgb = np.stack([np.interp(t, xs, anchors[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def _hex(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def _png_href(rgb_or_image: np.ndarray | torch.Tensor) -> str:
    """(H, W, 3) uint8 colours or a (C, H, W) float image in [0, 1] → a PNG data URI."""
    if isinstance(rgb_or_image, np.ndarray):
        rgb_or_image = torch.from_numpy(rgb_or_image).permute(2, 0, 1).float() / 255
    png = imaging.png_bytes(rgb_or_image)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    attrs = {"xmlns": SVG_NS, "viewBox": f"0 0 {_n(width)} {_n(height)}", "width": width,
             "height": height, "role": "img", "aria-label": label, "font-family": FONT,
             "font-size": 11, "fill": INK}  # fmt: skip
    return _el("svg", attrs, _title(label), *body)


def _fmt_value(v: float) -> str:
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.01 or v == 0:
        return f"{v:.2f}"
    return f"{v:.0e}"


def _signed(v: float) -> str:
    return "0" if abs(v) < 0.05 else f"{v:+.1f}".replace("-", "−")


def latent_label(dim: int, names: Sequence[str] = ()) -> str:
    """How a tooltip names a latent: "z3", or "z3 (skin colour)" where the card names it."""
    name = names[dim] if dim < len(names) else ""
    return f"z{dim} ({name})" if name else f"z{dim}"


# --- Figure 2 ---------------------------------------------------------------------------------

LEFT, TOP, PITCH, CELL = 100.0, 22.0, 72.0, 64.0  # label column, header, column pitch, tile size
PLOT_H, GAP, FRAME_GAP = 44.0, 10.0, 2.0
# a latent's name under its column's header: up to 4 lines of 12 characters at 10 px, which
# fits the column's 72 px; the band is there only when the model names a latent
NAME_CHARS, NAME_LINES, NAME_LINE = 12, 4, 11.0


def name_lines(name: str) -> list[str]:
    """A latent's name wrapped to the column: at most NAME_LINES lines, the last cut with "…"
    where the name needs more (the column's tooltip has it whole)."""
    lines = textwrap.wrap(name, NAME_CHARS, break_on_hyphens=False)
    if len(lines) > NAME_LINES:
        lines = lines[:NAME_LINES]
        lines[-1] = lines[-1][: NAME_CHARS - 1] + "…"
    return lines


def _curve(values: np.ndarray, x0: float, y0: float, m: float) -> str:
    """One response curve (n,) as a polyline in a CELL × PLOT_H box, y from −m (bottom) to +m."""
    xs = np.linspace(x0 + 3, x0 + CELL - 3, len(values))
    ys = y0 + PLOT_H / 2 - (values / m) * (PLOT_H / 2 - 2)
    return " ".join(f"{_n(x)},{_n(y)}" for x, y in zip(xs, ys, strict=True))


def _plot(per_shape: np.ndarray, x0: float, y0: float, m: float, what: str, dim: str) -> str:
    parts = [
        _el("rect", {"x": x0, "y": y0, "width": CELL, "height": PLOT_H, "fill": "#fafbfc",
                     "stroke": LINE}),
        _el("line", {"x1": x0, "x2": x0 + CELL, "y1": y0 + PLOT_H / 2, "y2": y0 + PLOT_H / 2,
                     "stroke": "#c4c9d4", "stroke-dasharray": "2 2"}),
    ]  # fmt: skip
    for shape, (name, colour) in enumerate(zip(SHAPE_NAMES, SHAPE_COLOURS, strict=True)):
        values = per_shape[shape]
        tip = f"{dim} against {what}, {name}: mean μ from {values.min():.2f} to {values.max():.2f}"
        parts.append(
            _el("polyline", {"class": f"curve {name}", "points": _curve(values, x0, y0, m),
                             "fill": "none", "stroke": colour, "stroke-width": 1.5,
                             "stroke-linejoin": "round"}, _title(tip))
        )  # fmt: skip
    return "".join(parts)


def _column(data: Figure2Data, dim: int, x0: float, rows: dict[str, float], m: float,
            names: Sequence[str]) -> str:  # fmt: skip
    active = data.active[dim]
    kl = "" if data.kl is None else f", mean KL {data.kl[dim]:.2f} nats"
    var = float(data.variance[dim])
    heat = data.position[dim]
    z = latent_label(dim, names)
    parts = [
        _title(f"{z}: Var(μ) {var:.3g}{kl}{'' if active else ' (unused)'}"),
        _text(x0 + CELL / 2, TOP - 8, f"z{dim}", **{"text-anchor": "middle",
                                                     "font-weight": 600, "font-size": 13}),
    ]  # fmt: skip
    for k, line in enumerate(name_lines(names[dim] if dim < len(names) else "")):
        parts.append(_text(x0 + CELL / 2, TOP + 8 + k * NAME_LINE, line, **{
            "class": "latent-name", "text-anchor": "middle", "font-size": 10}))  # fmt: skip
    parts += [
        _el("image", {"class": "heatmap", "x": x0, "y": rows["position"], "width": CELL,
                      "height": CELL, "preserveAspectRatio": "none",
                      "image-rendering": "pixelated",
                      "href": _png_href(colour_map(heat / (2 * m) + 0.5, DIVERGING))},
            _title(f"{z}: mean μ over the 32×32 positions, {heat.min():.2f} to "
                   f"{heat.max():.2f} (x right, y down)")),
        _el("rect", {"x": x0, "y": rows["position"], "width": CELL, "height": CELL,
                     "fill": "none", "stroke": LINE}),
        _plot(data.scale[dim], x0, rows["scale"], m, "scale", z),
        _plot(data.orientation[dim], x0, rows["rotation"], m, "rotation", z),
    ]  # fmt: skip
    for k, value in enumerate(data.traversal_values):
        y = rows["traversal"] + k * (CELL + FRAME_GAP)
        parts.append(
            _el("image", {"class": "traversal", "x": x0, "y": y, "width": CELL, "height": CELL,
                          "image-rendering": "pixelated",
                          "href": _png_href(data.traversal[dim, k])},
                _title(f"{z} = {value:+.2f}, the others at μ of the dataset image"))
        )  # fmt: skip
    top = float(data.variance.max()) or 1.0
    y = rows["variance"]
    parts += [
        _el("rect", {"x": x0, "y": y, "width": CELL, "height": 5, "fill": "#e3e7ee"}),
        _el("rect", {"x": x0, "y": y, "width": max(1.0, CELL * var / top), "height": 5,
                     "fill": "#3b6fd8"}),
        _text(x0 + CELL / 2, y + 18, _fmt_value(var), **{"class": "variance",
              "text-anchor": "middle", "font-variant-numeric": "tabular-nums"}),
    ]  # fmt: skip
    attrs = {"class": "latent" if active else "latent inactive", "data-latent": dim,
             "data-variance": f"{var:.6g}", "opacity": None if active else 0.35}  # fmt: skip
    return _el("g", attrs, *parts)


def _row_label(y: float, title: str, note: str) -> str:
    return _text(LEFT - 8, y, title, **{"text-anchor": "end", "font-weight": 600}) + _text(
        LEFT - 8, y + 12, note, **{"text-anchor": "end", "fill": MUTED, "font-size": 10}
    )


def _legend(y: float, m: float) -> str:
    parts = []
    x = LEFT
    for name, colour in zip(SHAPE_NAMES, SHAPE_COLOURS, strict=True):
        parts.append(_el("line", {"x1": x, "x2": x + 16, "y1": y, "y2": y, "stroke": colour,
                                  "stroke-width": 2}))  # fmt: skip
        parts.append(_text(x + 20, y + 3.5, name))
        x += 30 + 6.5 * len(name)
    x += 34
    steps = 11
    for k in range(steps):
        colour = _hex(colour_map(np.array(k / (steps - 1)), DIVERGING))
        parts.append(_el("rect", {"x": x + 8 * k, "y": y - 5, "width": 8, "height": 10,
                                  "fill": colour}))  # fmt: skip
    parts += [
        _text(x - 4, y + 3.5, f"−{m:.2g}", **{"text-anchor": "end"}),
        _text(x + 8 * steps + 4, y + 3.5, f"+{m:.2g}"),
        _text(
            x + 8 * steps + 34,
            y + 3.5,
            "mean μ, one scale for every column",
            fill=MUTED,
        ),
    ]
    return "".join(parts)


def figure_svg(data: Figure2Data, name: str, latent_names: Sequence[str] = ()) -> str:
    """The figure as a standalone SVG document: one column per latent, most varied first, each
    named under its header where `latent_names` (one per latent, "" for none) names it."""
    order = data.order
    steps = len(data.traversal_values)
    lines = max((len(name_lines(n)) for n in latent_names), default=0)
    rows: dict[str, float] = {"position": TOP + (lines * NAME_LINE + 4 if lines else 0)}
    rows["scale"] = rows["position"] + CELL + GAP
    rows["rotation"] = rows["scale"] + PLOT_H + GAP
    rows["traversal"] = rows["rotation"] + PLOT_H + GAP + 2
    rows["variance"] = rows["traversal"] + steps * (CELL + FRAME_GAP) + 6
    legend_y = rows["variance"] + 40
    width, height = LEFT + PITCH * len(order), legend_y + 14
    m = float(max(np.abs(data.position).max(), np.abs(data.scale).max(),
                  np.abs(data.orientation).max())) or 1.0  # fmt: skip

    middle = rows["traversal"] + steps * (CELL + FRAME_GAP) / 2
    body = [
        _row_label(rows["position"] + CELL / 2 - 4, "position", "x →, y ↓"),
        _row_label(rows["scale"] + PLOT_H / 2 - 4, "scale", "0.5 → 1"),
        _row_label(rows["rotation"] + PLOT_H / 2 - 4, "rotation", "0 → 2π"),
        _row_label(rows["variance"] + 6, "Var(μ)", "learned variance"),
        _text(14, middle, "traversal", **{"font-weight": 600, "text-anchor": "middle",
                                          "transform": f"rotate(-90 14 {_n(middle)})"}),
    ]  # fmt: skip
    for k, value in enumerate(data.traversal_values):
        y = rows["traversal"] + k * (CELL + FRAME_GAP) + CELL / 2 + 3.5
        body.append(_text(LEFT - 8, y, f"z = {_signed(value)}", **{"text-anchor": "end",
                                                                 "fill": MUTED}))  # fmt: skip
    for col, dim in enumerate(order):
        body.append(_column(data, dim, LEFT + PITCH * col, rows, m, latent_names))
    body.append(_legend(legend_y, m))
    s = data.sampling
    label = (
        f"Figure 2 for {name}: each latent's mean μ against position, scale and rotation, a "
        f"traversal of dSprites image {s.traversal_image}, and its learned variance Var(μ) "
        f"(columns most varied first; {s.per_position}, {s.per_scale} and {s.per_orientation} "
        f"images per cell, Var(μ) over {s.n_data} images, seed {s.seed})"
    )
    return _svg(width, height, label, body)


# --- mutual information -----------------------------------------------------------------------

MI_LEFT, MI_TOP, MI_W, MI_H = 100.0, 22.0, 40.0, 24.0


def mi_svg(data: Figure2Data, name: str, latent_names: Sequence[str] = ()) -> str:
    """Factors × latents (columns in the figure's order), coloured by MI / H(factor)."""
    return mi_matrix_svg(
        data.mi, data.factor_entropy, FACTOR_NAMES, [len(v) for v in FACTOR_VALUES],
        data.order, data.active,
        f"MI / H(factor), 20-bin μ, {data.sampling.n_data} images",
        f"Mutual information between {name}'s latents and the dSprites factors", latent_names,
    )  # fmt: skip


def mi_matrix_svg(
    mi: np.ndarray, factor_entropy: np.ndarray, factors: Sequence[str], sizes: Sequence[int],
    order: Sequence[int], active: Sequence[bool], caption: str, label: str,
    latent_names: Sequence[str] = (),
) -> str:  # fmt: skip
    """The heat-map of any latent × factor MI matrix (D, K) in nats: factors as rows, latents as
    columns in `order`, coloured by MI / H(factor); inactive latents dimmed; a named latent's
    name in its cells' tooltips."""
    h = np.where(factor_entropy > 0, factor_entropy, 1.0)
    norm = mi / h[None, :]  # (D, K)
    body = []
    for col, dim in enumerate(order):
        x = MI_LEFT + col * MI_W
        body.append(_text(x + MI_W / 2, MI_TOP - 7, f"z{dim}", **{
            "text-anchor": "middle", "font-weight": 600,
            "opacity": None if active[dim] else 0.45}))  # fmt: skip
    for row, factor in enumerate(factors):
        y = MI_TOP + row * MI_H
        body.append(_text(MI_LEFT - 8, y + MI_H / 2 + 3.5, factor, **{"text-anchor": "end"}))
        for col, dim in enumerate(order):
            x, v = MI_LEFT + col * MI_W, float(norm[dim, row])
            tip = (
                f"{latent_label(dim, latent_names)} · {factor}: {mi[dim, row]:.3f} nats, "
                f"{v:.0%} of "
                f"H({factor}) = {factor_entropy[row]:.2f} nats ({sizes[row]} values)"
            )
            cell = _el("rect", {"class": "mi", "x": x, "y": y, "width": MI_W - 1,
                                "height": MI_H - 1, "data-latent": dim, "data-factor": factor,
                                "fill": _hex(colour_map(np.array(v), SEQUENTIAL))},
                       _title(tip))  # fmt: skip
            value = _text(x + MI_W / 2 - 0.5, y + MI_H / 2 + 3.5, f"{v:.2f}".lstrip("0"), **{
                "text-anchor": "middle", "font-size": 10, "pointer-events": "none",
                "fill": "#fff" if v > 0.55 else INK})  # fmt: skip
            body.append(_el("g", {"opacity": None if active[dim] else 0.45}, cell, value))
    y = MI_TOP + len(factors) * MI_H + 16
    for k in range(11):
        colour = _hex(colour_map(np.array(k / 10), SEQUENTIAL))
        body.append(_el("rect", {"x": MI_LEFT + 8 * k, "y": y - 5, "width": 8, "height": 10,
                                 "fill": colour}))  # fmt: skip
    body += [
        _text(MI_LEFT - 4, y + 3.5, "0", **{"text-anchor": "end"}),
        _text(MI_LEFT + 92, y + 3.5, f"1  {caption}", fill=MUTED),
    ]
    width = MI_LEFT + MI_W * len(order) + 4
    return _svg(width, y + 12, label, body)


# --- where shape lives ------------------------------------------------------------------------

PANEL, PANEL_GAP, SHAPE_TOP, SHAPE_LEFT = 150.0, 34.0, 40.0, 30.0
SHAPE_POINTS = 900  # dots per panel, from the i.i.d. sample
DOT_ROUNDS = 4  # each shape's dots go down in this many interleaved layers, so none hides a shape


def _dots(xs: np.ndarray, ys: np.ndarray) -> str:
    """A path of zero-length segments: with round caps each is a dot (a tenth of the bytes of
    one <circle> per point)."""
    return "".join(f"M{_n(x)} {_n(y)}h0" for x, y in zip(xs, ys, strict=True))


def _panel(mu: np.ndarray, shapes: np.ndarray, a: int, b: int, x0: float, r: float,
           read_back: float, names: Sequence[str]) -> str:  # fmt: skip
    """One scatter: μ_a across, μ_b up, both over ±r (points beyond sit on the frame)."""

    def to_px(v: np.ndarray, flip: bool) -> np.ndarray:
        t = (np.clip(v, -r, r) + r) / (2 * r)
        return (SHAPE_TOP + (1 - t) * PANEL) if flip else (x0 + t * PANEL)

    xs, ys = to_px(mu[:, a], False), to_px(mu[:, b], True)
    mid_x, mid_y = x0 + PANEL / 2, SHAPE_TOP + PANEL / 2
    parts = [
        _title(f"{latent_label(b, names)} against {latent_label(a, names)}"),
        _el("rect", {"x": x0, "y": SHAPE_TOP, "width": PANEL, "height": PANEL, "fill": "none",
                     "stroke": LINE}),
        _el("path", {"d": f"M{_n(x0)} {_n(mid_y)}h{_n(PANEL)}M{_n(mid_x)} {_n(SHAPE_TOP)}"
                          f"v{_n(PANEL)}", "stroke": LINE}),
        _text(mid_x, SHAPE_TOP - 22, f"z{b} against z{a}", **{"text-anchor": "middle",
                                                             "font-weight": 600}),
        _text(mid_x, SHAPE_TOP - 8, f"shape from both: {read_back:.0%}",
              **{"text-anchor": "middle", "fill": MUTED, "font-size": 10}),
        _text(mid_x, SHAPE_TOP + PANEL + 13, f"z{a} →", **{"text-anchor": "middle"}),
    ]  # fmt: skip
    rounds = np.arange(len(shapes)) % DOT_ROUNDS
    for k in range(DOT_ROUNDS):
        for s, (name, colour) in enumerate(zip(SHAPE_NAMES, SHAPE_COLOURS, strict=True)):
            pick = (shapes == s) & (rounds == k)
            if pick.any():
                parts.append(_el("path", {"class": "dots", "data-shape": name,
                                          "d": _dots(xs[pick], ys[pick]), "stroke": colour,
                                          "stroke-width": 3, "stroke-linecap": "round",
                                          "stroke-opacity": 0.6, "fill": "none"}))  # fmt: skip
    return _el("g", {"class": "shape-panel", "data-latents": f"{a} {b}"}, *parts)


def shape_svg(data: Figure2Data, name: str, latent_names: Sequence[str] = ()) -> str:
    """Where shape lives: the latents sharing most information with shape, in pairs, one dot
    per image coloured by its shape, with how well shape reads back from each pair and from
    each latent alone (app.studies.figure2.shape_view)."""
    view = shape_view(data)
    mu = data.sample_mu[:SHAPE_POINTS]
    shapes = data.sample_factors[:SHAPE_POINTS, 0]
    latents = view.latents
    r = max(3.0, float(np.percentile(np.abs(mu[:, latents]), 99.5)))  # latents: never empty
    body = []
    for k, (a, b) in enumerate(view.pairs):
        body.append(_panel(mu, shapes, a, b, SHAPE_LEFT + k * (PANEL + PANEL_GAP), r,
                           view.pairs[(a, b)], latent_names))  # fmt: skip
    width = SHAPE_LEFT + max(1, len(view.pairs)) * (PANEL + PANEL_GAP)
    y = SHAPE_TOP + PANEL + 34
    if not view.pairs:
        body.append(_text(SHAPE_LEFT, SHAPE_TOP, "one latent: no pair to plot"))
    x = SHAPE_LEFT
    for shape_name, colour in zip(SHAPE_NAMES, SHAPE_COLOURS, strict=True):
        body.append(_el("circle", {"cx": x + 4, "cy": y - 3.5, "r": 4, "fill": colour}))
        body.append(_text(x + 12, y, shape_name))
        x += 24 + 6.5 * len(shape_name)
    body.append(_text(x + 10, y, f"axes ±{r:.2g}, same for every panel", fill=MUTED))
    alone = ", ".join(f"z{i} {v:.0%}" for i, v in view.single.items())
    how = f"chance {view.chance:.0%}; {NEIGHBOURS}-NN, {FOLDS}-fold"
    body.append(_text(SHAPE_LEFT, y + 18, f"shape from one latent alone: {alone} ({how})",
                      fill=MUTED))  # fmt: skip
    label = (
        f"Where shape lives in {name}: the {len(latents)} latents sharing most information with "
        f"shape, plotted in pairs, one dot per dSprites image coloured by its shape"
    )
    return _svg(max(width, 460.0), y + 26, label, body)
