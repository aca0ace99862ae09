"""Pictures for the README from the shipped checkpoints: reconstructions of the same held-out
dSprites images by every model, a per-latent KL chart (SVG), the colour-shapes β-VAE's
traversal of its active latents, and where shape lives in the β=1 and the disentangled model
(the explorer's own SVG), the Fashion-MNIST models' test images, reconstructions, prior samples
and class grid; then the README's tables of shipped models and metrics.

    python docs/make_figures.py   # writes docs/reconstructions.png, docs/kl.svg,
                                  # docs/shapes-traversal.png, docs/shape-*.svg and
                                  # docs/fashion.png, prints the tables
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from app import imaging
from app.checkpoints import load_checkpoint
from app.data import open_dataset
from app.data.dsprites import render
from app.inference import decode_latents, encode_images, latent_order, traversal_latents
from app.studies import figure2, figure2_svg

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("dsprites-ae", "dsprites-vae", "dsprites-beta-vae", "dsprites-cvae", "dsprites-dae")
# in the tables too (their figures are dSprites pictures, so only the tables have them)
COLOUR_MODELS = ("shapes-beta-vae", "shapes-beta4-vae", "shapes-vaegan")
# shape, scale, orientation, pos_x, pos_y: a spread of all three shapes, sizes, angles, places
EXAMPLES = np.array([
    [0, 5, 0, 5, 6], [1, 2, 8, 26, 10], [2, 5, 0, 16, 16], [0, 0, 5, 10, 25], [1, 5, 30, 20, 20],
    [2, 3, 12, 28, 4], [0, 3, 20, 3, 28], [1, 0, 0, 16, 2], [2, 1, 25, 6, 12], [2, 5, 35, 24, 26],
])  # fmt: skip


def reconstructions(scale: int = 2, gap: int = 4) -> Image.Image:
    x = torch.from_numpy(render(EXAMPLES)[:, None]).float()
    rows = [x]
    for name in MODELS:
        ckpt = load_checkpoint(ROOT / "checkpoints" / name)
        labels = torch.from_numpy(EXAMPLES[:, 0]) if ckpt.config.kind == "cvae" else None
        with torch.no_grad():
            decoded, *_ = ckpt.model(x, labels)
        rows.append(torch.sigmoid(decoded))
    n, size = len(EXAMPLES), 64 * scale
    sheet = Image.new("L", (n * (size + gap) + gap, len(rows) * (size + gap) + gap), 255)
    for r, row in enumerate(rows):
        for c in range(n):
            tile = Image.fromarray((row[c, 0].numpy() * 255).astype(np.uint8))
            tile = tile.resize((size, size), Image.Resampling.NEAREST)
            sheet.paste(tile, (gap + c * (size + gap), gap + r * (size + gap)))
    return sheet


def shapes_traversal(name: str = "shapes-beta-vae", steps: int = 8, span: float = 2.5) -> bytes:
    """The explorer's traversal grid (as `traverse.png` draws it) of one held-out colour scene
    (seed 5), its active latents only (mean KL > 0.1 nats), most informative first: a PNG."""
    ckpt = load_checkpoint(ROOT / "checkpoints" / name).served()
    scene = open_dataset("shapes3d").sample(np.random.default_rng(5), 1).images
    z = encode_images(ckpt, torch.from_numpy(scene).float() / 255.0).mu[0]
    dims = [d for d in latent_order(ckpt) if ckpt.card.kl[d] > 0.1]
    images = decode_latents(ckpt, traversal_latents(z, dims, torch.linspace(-span, span, steps)))
    return imaging.png_bytes(imaging.grid(images, len(dims), steps), 2)


def celeba_figure4(
    name: str = "disvae-btcvae-celeba", steps: int = 7, span: float = 3.0, scale: int = 2
) -> Image.Image:
    """The lecture's Figure 4 on real faces: each named latent of an imported CelebA model swept
    over ±span from z = 0 (we have no CelebA images to start from), the rest held at 0, with the
    names its card gives them, in latent order."""
    ckpt = load_checkpoint(ROOT / "checkpoints" / name).served()
    d = ckpt.description
    dims = [i for i in range(d.latent_dim) if d.latent_name(i)]
    z = torch.zeros(d.latent_dim)
    images = decode_latents(ckpt, traversal_latents(z, dims, torch.linspace(-span, span, steps)))
    tile, gap, label_w, head = d.height * scale, 4, 330, 28
    sheet = Image.new(
        "RGB", (label_w + steps * (tile + gap), head + len(dims) * (tile + gap) + gap), "white"
    )
    draw = ImageDraw.Draw(sheet)
    try:  # a font with arrows, where the system has it
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype(
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 16
        )
        arrow = "→"
    except OSError:
        font, arrow = ImageFont.load_default(size=16), "->"
    for c, v in enumerate(torch.linspace(-span, span, steps).tolist()):
        draw.text(
            (label_w + c * (tile + gap) + tile // 2 - 16, 6), f"{v:+.0f}", fill="black", font=font
        )
    draw.text((8, 6), "latent: what it does     z =", fill="black", font=font)
    for r, dim in enumerate(dims):
        y = head + r * (tile + gap)
        text = f"z{dim}: {d.latent_name(dim)}".replace("→", arrow)
        draw.text((8, y + tile // 2 - 10), text, fill="black", font=font)
        for c in range(steps):
            arr = imaging.to_uint8(images[r * steps + c : r * steps + c + 1])[0]
            im = Image.fromarray(arr).resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(im, (label_w + c * (tile + gap), y))
    return sheet


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def fashion_figure(scale: int = 3, seed: int = 0, grid_rows: int = 3) -> Image.Image:
    """The Fashion-MNIST models at a glance: the first test image of each class, its
    reconstruction (decode of μ) by each model, samples from the prior (z ~ N(0, I), seed
    `seed`), and the CVAE's class grid (rows: one z each from the prior; columns: the ten
    labels)."""
    from app.data.test_split import test_split
    from app.settings import Settings

    names = ("fashion-vae", "fashion-beta-vae", "fashion-cvae")
    served = {n: load_checkpoint(ROOT / "checkpoints" / n).served() for n in names}
    split = test_split("fashion-mnist", 28, Settings().fashion_mnist_dir)
    assert split is not None
    idx = [split.first_of_class(c) for c in range(10)]
    x = torch.from_numpy(np.stack([split.image(i) for i in idx]))
    labels = torch.tensor([int(split.labels[i]) for i in idx])
    rows: list[tuple[str, torch.Tensor]] = [("test images", x)]
    with torch.no_grad():
        for n, s in served.items():
            lab = labels if s.description.kind == "cvae" else None
            rows.append((f"{n}: reconstruction", s.model.decode(s.model.encode(x, lab).mean, lab)))
        g = torch.Generator().manual_seed(seed)
        cvae = served["fashion-cvae"].model
        for r in range(grid_rows):
            z = torch.randn(1, cvae.description.latent_dim, generator=g).expand(10, -1)
            rows.append((f"fashion-cvae: one z, ten labels ({r + 1})", cvae.decode(z, labels)))
        for n in names[:2]:  # below these rows, the columns are not classes
            z = torch.randn(10, served[n].description.latent_dim, generator=g)
            rows.append((f"{n}: samples of the prior", served[n].model.decode(z)))
    tile, gap, label_w, head = 28 * scale, 4, 330, 26
    sheet = Image.new("L", (label_w + 10 * (tile + gap), 2 * head + len(rows) * (tile + gap)), 255)
    draw, font = ImageDraw.Draw(sheet), _font(15)
    for c, name in enumerate(split.label_names):
        draw.text((label_w + c * (tile + gap), 6), name[:11], fill=0, font=_font(12))
    for r, (text, images) in enumerate(rows):
        y = head + r * (tile + gap) + (head if r >= len(rows) - 2 else 0)
        if r == len(rows) - 2:
            draw.text((label_w, y - head + 4), "samples: z ~ N(0, I), any garment", fill=0,
                      font=_font(12))  # fmt: skip
        draw.text((6, y + tile // 2 - 9), text, fill=0, font=font)
        for c in range(10):
            arr = (images[c, 0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            im = Image.fromarray(arr).resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(im, (label_w + c * (tile + gap), y))
    return sheet


def kl_svg(width: int = 640, bar_h: int = 14) -> str:
    stochastic = ("dsprites-vae", "dsprites-beta-vae", "dsprites-cvae")  # the AEs have no KL
    cards = {name: load_checkpoint(ROOT / "checkpoints" / name).card for name in stochastic}
    top = max(max(c["kl_per_dim"]) for c in cards.values())
    parts, y = [], 10
    for name, card in cards.items():
        kl = sorted(card["kl_per_dim"], reverse=True)
        parts.append(
            f'<text x="0" y="{y + 12}" font-weight="bold">{name} '
            f"({card['active_latents']} of {len(kl)} latents above 0.1 nats)</text>"
        )
        y += 20
        for i, v in enumerate(kl):
            w = max(1.0, (width - 220) * v / top)
            colour = "#3b6fd8" if v > 0.1 else "#b8bfcc"
            parts.append(
                f'<rect x="40" y="{y}" width="{w:.1f}" height="{bar_h - 3}" '
                f'fill="{colour}"/><text x="0" y="{y + 10}">#{i + 1}</text>'
                f'<text x="{46 + w:.1f}" y="{y + 10}">{v:.2f}</text>'
            )
            y += bar_h
        y += 14
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
        f'font-family="sans-serif" font-size="11">{"".join(parts)}</svg>\n'
    )


def shipped_table() -> str:
    """The README's table of shipped models, from their cards."""
    rows = [
        "| model | recipe | steps × batch | wall time, device | −log p(x\\|z) | KL (nats) "
        "| latents > 0.1 nats |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in MODELS + COLOUR_MODELS:
        c = load_checkpoint(ROOT / "checkpoints" / name).card
        ev = c.eval
        assert ev is not None and ev.recon_nll is not None and c.wall_time_s is not None
        kl = f"{ev.kl_total:.1f}" if ev.kl_total is not None else "–"
        active = f"{ev.active_latents} of 10" if ev.active_latents is not None else "–"
        rows.append(
            f"| `{name}` | {c.recipe} | {c.steps:,} × {c.batch_size} "
            f"| {c.wall_time_s / 60:.0f} min, {c.trained_on or c.device} "
            f"| {ev.recon_nll:.1f} | {kl} "
            f"| {active} |"
        )
    return "\n".join(rows)


# the scores as disentanglement_lib computes them, under the papers' names (DCI on one seed)
METRIC_COLUMNS = {
    "active_latents": "active", "mig": "MIG", "beta_vae": "β-VAE", "factor_vae": "FactorVAE",
    "dci_disentanglement": "DCI D", "dci_completeness": "DCI C", "dci_informativeness": "DCI I",
    "sap": "SAP", "modularity": "modularity", "explicitness": "explicitness",
}  # fmt: skip
# the library's DCI and SAP beside our variants of them, on the same seed-0 images (DCI) or seeds
VARIANT_COLUMNS = (
    ("dci_disentanglement", "dci_et_disentanglement", "DCI D"),
    ("dci_completeness", "dci_et_completeness", "DCI C"),
    ("dci_informativeness", "dci_et_informativeness", "DCI I"),
    ("sap", "sap_tree", "SAP"),
)


# the disentangling-vae models on dSprites, scored with the same settings as ours
ZOO_DSPRITES = tuple(
    f"disvae-{loss}-dsprites" for loss in ("vae", "betah", "betab", "factor", "btcvae")
)


def metrics_table(models: tuple[str, ...] = MODELS + COLOUR_MODELS) -> str:
    """The README's table of disentanglement metrics, mean ± std over the evaluation seeds, from
    the cards (`latent-explorer evaluate` writes them)."""
    rows = [
        "| model | " + " | ".join(METRIC_COLUMNS.values()) + " |",
        "|---|" + "---|" * len(METRIC_COLUMNS),
    ]
    for name in models:
        ckpt = load_checkpoint(ROOT / "checkpoints" / name)
        m = ckpt.card.metrics
        if m is None or m.digest != ckpt.digest:
            rows.append(f"| `{name}` | " + " | ".join(["–"] * len(METRIC_COLUMNS)) + " |")
            continue
        cells = []
        for key in METRIC_COLUMNS:
            s = m.scores.get(key)
            cells.append("–" if s is None else _score(s.mean, s.std, len(s.values)))
        rows.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _score(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.2f}" if seeds == 1 else f"{mean:.2f} ± {std:.2f}"


def variants_table(models: tuple[str, ...]) -> str:
    """The library's DCI and SAP beside our faster variants, model by model: library / ours
    (ours − library)."""
    rows = [
        "| model | "
        + " | ".join(f"{label}: library / ours" for *_, label in VARIANT_COLUMNS)
        + " |",
        "|---|" + "---|" * len(VARIANT_COLUMNS),
    ]
    for name in models:
        ckpt = load_checkpoint(ROOT / "checkpoints" / name)
        m = ckpt.card.metrics
        cells = []
        for library, ours, _ in VARIANT_COLUMNS:
            a = m.scores.get(library) if m is not None else None
            b = m.scores.get(ours) if m is not None else None
            if a is None or b is None:
                cells.append("–")
                continue
            cells.append(f"{a.mean:.3f} / {b.mean:.3f} ({b.mean - a.mean:+.3f})")
        rows.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def print_tables() -> None:
    print(shipped_table())
    print()
    print(metrics_table())
    print()
    print(metrics_table(("dsprites-vae", "dsprites-beta-vae", *ZOO_DSPRITES)))
    print()
    print(variants_table(MODELS + COLOUR_MODELS + ZOO_DSPRITES))


if __name__ == "__main__" and sys.argv[1:] == ["--tables"]:  # the tables alone, from the cards
    print_tables()
elif __name__ == "__main__":
    reconstructions().save(ROOT / "docs" / "reconstructions.png", optimize=True)
    (ROOT / "docs" / "kl.svg").write_text(kl_svg())
    (ROOT / "docs" / "shapes-traversal.png").write_bytes(shapes_traversal())
    celeba_figure4().save(ROOT / "docs" / "figure4-celeba.png", optimize=True)
    fashion_figure().save(ROOT / "docs" / "fashion.png", optimize=True)
    for name in ("dsprites-vae", "dsprites-beta-vae"):
        data = figure2.compute_figure2(load_checkpoint(ROOT / "checkpoints" / name).served())
        (ROOT / "docs" / f"shape-{name}.svg").write_text(figure2_svg.shape_svg(data, name))
    print_tables()
