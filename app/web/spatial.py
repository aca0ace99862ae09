"""A spatial latent (an AutoencoderKL's C × h × w) as a person can move it: its channels shown as
images beside the picture, one slider per channel adding to that channel over a region the person
paints (or the whole image), and a traversal per channel.

A region is a mask over the latent's h × w cells, written as hexadecimal digits of its bits in
row-major order, the first cell the highest bit of the first digit ("f" × h·w/4 is every cell).
Values stay in hundredths end to end, as on the flat pages: tile k of a channel sweep is
bit-identical to `decode.png` at the z the page writes for that position, so the drag paints from
the sweep fetched when the slider is grabbed (or before).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app import imaging, inference
from app.checkpoints.served import ServedModel
from app.inference import InferenceError
from app.settings import Settings
from app.web.api import Hundredths, sweep_values
from app.web.deps import DataPick, ModelDep, ServedDep, SettingsDep, latent_limit
from app.web.errors import NOT_MODIFIED, NotFoundError
from app.web.inputs import check_latent_range, hundredths, parse_latents
from app.web.params import LatentText
from app.web.responses import PNG, cached_image
from app.web.sliders import Start, landing_start
from app.web.summaries import model_summary

router = APIRouter(prefix="/api", tags=["api"])

# a channel sweep's ~60 decodes split over the cores, each thread's torch on one (OpenMP's count
# is per thread), each image still decoded alone: the same bytes as one thread's, in half the
# time on two cores, so the next channel's strip is back before a hand reaches its slider
SWEEP_THREADS = max(1, min(4, os.cpu_count() or 1))
_sweep_pool = ThreadPoolExecutor(
    SWEEP_THREADS, thread_name_prefix="channel-sweep", initializer=torch.set_num_threads,
    initargs=(1,),
)  # fmt: skip


def decoded_on_threads(model: ServedModel, zs: torch.Tensor) -> torch.Tensor:
    """inference.decode_latents of zs's rows, split over SWEEP_THREADS threads."""
    parts = zs.tensor_split(SWEEP_THREADS)
    return torch.cat(list(_sweep_pool.map(lambda z: inference.decode_latents(model, z), parts)))


SPAN = 3.0  # each channel slider spans ±3: the scaled latents are roughly unit-variance
# 61 positions: an AutoencoderKL decodes a 64×64 image in ~6 ms on a core, so a sweep of a channel
# takes ~0.35 s, and the channels' sweeps are back within a second of a change (at the flat
# sliders' 0.05 it would be twice that)
STEP = 0.2
TRAVERSE_COLUMNS = 7  # −span … span

MaskText = Annotated[
    str | None,
    Query(
        max_length=4096,
        pattern=r"^[0-9a-fA-F]*$",
        description="the region: h·w bits as hexadecimal, row-major, first cell highest "
        "(default: every cell)",
    ),
]
Channel = Annotated[int, Query(ge=0, description="the latent channel the slider moves")]


def spatial_shape(ckpt: ServedModel) -> tuple[int, int, int]:
    """(C, h, w) of a spatial model; a 404 naming why for a flat one."""
    shape = ckpt.description.latent_shape
    if len(shape) != 3:
        raise NotFoundError(
            f"model {ckpt.name} has a flat latent of {ckpt.description.latent_dim} values, not "
            "channels over a grid: its sliders are on its explore page"
        )
    return (shape[0], shape[1], shape[2])


def parse_mask(text: str | None, ckpt: ServedModel) -> torch.Tensor:
    """The region's hexadecimal text → a (h·w,) bool tensor (every cell where none is given)."""
    _, h, w = spatial_shape(ckpt)
    cells = h * w
    if text is None:
        return torch.ones(cells, dtype=torch.bool)
    digits = -(-cells // 4)
    if len(text) != digits:
        raise InferenceError(
            f"mask must be {digits} hexadecimal digits ({h}×{w} cells), got {len(text)}"
        )
    bits = bin(int(text, 16))[2:].zfill(digits * 4)[:cells]
    return torch.tensor([b == "1" for b in bits], dtype=torch.bool)


def channel_plane(ckpt: ServedModel, channel: int, mask: torch.Tensor) -> torch.Tensor:
    """The flattened z direction that adds 1 to `channel` inside the region (D,), as integers."""
    c, h, w = spatial_shape(ckpt)
    if channel >= c:
        raise NotFoundError(f"model {ckpt.name} has {c} latent channels: no channel {channel}")
    plane = torch.zeros(c, h * w, dtype=torch.int64)
    plane[channel] = mask.long()
    return plane.flatten()


def in_hundredths(z: torch.Tensor) -> torch.Tensor:
    """z written with two decimals (as every URL of these pages writes it) → int64 hundredths."""
    return torch.round(z.double() * 100).long()


def from_hundredths(zh: torch.Tensor) -> torch.Tensor:
    """Hundredths → float32 as the parser reads "k/100" text: k/100 in double, then rounded."""
    return (zh.double() / 100).float()


@router.get(
    "/models/{name}/channel-sweep.png",
    response_class=Response,
    responses={200: PNG, **NOT_MODIFIED},
)
def channel_sweep_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep, z: LatentText,
    channel: Channel, mask: MaskText = None,
    lo: Annotated[float, Query(json_schema_extra=Hundredths)] = -SPAN,
    hi: Annotated[float, Query(json_schema_extra=Hundredths)] = SPAN,
    step: Annotated[float, Query(gt=0, json_schema_extra=Hundredths)] = STEP,
) -> Response:  # fmt: skip
    """Every position of one channel slider: a strip of image-size tiles, tile k decoded from
    z + (lo + k·step) on `channel` inside the region `mask`, up to hi (at most 241 tiles). z is
    the picture without this slider's own offset; each tile is bit-identical to `decode.png` at
    the z the explore page writes for that position, so the drag paints from the strip."""
    zt = parse_latents(z, model, settings, served=served)
    plane = channel_plane(model, channel, parse_mask(mask, model))
    values = sweep_values(lo, hi, step, settings.max_sweep_positions)
    base = in_hundredths(zt)
    zs = torch.stack([from_hundredths(base + round(v * 100) * plane) for v in values])
    check_latent_range(zs, model, settings, "z with the channel's offset", served)
    key = ("channel-sweep", zt, channel, mask, tuple(values))
    return cached_image(
        request, model, key,
        lambda: imaging.png_bytes(imaging.grid(decoded_on_threads(model, zs), 1, len(zs), 0)),
    )  # fmt: skip


@router.get(
    "/models/{name}/channel-traverse.png",
    response_class=Response,
    responses={200: PNG, **NOT_MODIFIED},
)
def channel_traverse_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep, z: LatentText,
    mask: MaskText = None,
    span: Annotated[float, Query(gt=0, le=10, json_schema_extra=Hundredths)] = SPAN,
) -> Response:  # fmt: skip
    """A traversal per channel: row c decodes z + t on channel c inside the region, for
    TRAVERSE_COLUMNS values of t from −span to span."""
    zt = parse_latents(z, model, settings, served=served)
    region = parse_mask(mask, model)
    c, _, _ = spatial_shape(model)
    hundredths(span, "span")
    span_h = round(span * 100)
    ts = [round(-span_h + 2 * span_h * k / (TRAVERSE_COLUMNS - 1)) for k in range(TRAVERSE_COLUMNS)]
    base = in_hundredths(zt)
    planes = [channel_plane(model, ch, region) for ch in range(c)]  # one per row
    zs = torch.stack([from_hundredths(base + t * plane) for plane in planes for t in ts])
    check_latent_range(zs, model, settings, "z with a channel's offset", served)
    key = ("channel-traverse", zt, mask, span)
    return cached_image(
        request, model, key,
        lambda: imaging.png_bytes(
            imaging.grid(decoded_on_threads(model, zs), c, TRAVERSE_COLUMNS)
        ),
    )  # fmt: skip


def spatial_context(
    ckpt: ServedModel, settings: Settings, data: DataPick, z: str | None
) -> dict[str, object]:
    """What templates/spatial.html needs of the model: its shape, its starting z (the URL's,
    else an encoded data set image where there is one), the slider range and the limit of any
    value. A z in the URL that does not fit is left for the data set's with a warning."""
    c, h, w = spatial_shape(ckpt)
    landing, warning = landing_start(ckpt, settings, data), None
    start: Start | None = landing
    values = landing.z
    if z:
        try:
            values = parse_latents(z, ckpt, settings).tolist()
            start = None
        except InferenceError as e:
            warning = f"the z in the address was not used: {e}"
    limit = latent_limit(ckpt, settings)
    values = [max(-limit, min(limit, round(v, 2))) for v in values]
    return {
        "model": model_summary(ckpt, settings, data),
        "shape": (c, h, w),
        "start": start,
        "warning": warning,
        "z": ",".join(f"{v:.2f}" for v in values),
        "span": SPAN,
        "step": STEP,
        "limit": limit,
        "channels": range(c),
    }
