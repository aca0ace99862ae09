"""The JSON/PNG API under /api (documented at /docs). Errors are `{"detail": "..."}` with a 4xx."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field, StrictFloat, StrictInt

from app import imaging, inference
from app.checkpoints.served import ServedModel
from app.inference import DSPRITES, InferenceError, SetImages, TestImages
from app.models.priors import MIXTURE_KL_NOTE
from app.web.deps import (
    DataDep,
    DataPick,
    DataSetsDep,
    ModelDep,
    NoEmptyFields,
    RegistryDep,
    Served,
    ServedDep,
    SettingsDep,
    get_served,
    latent_limit,
)
from app.web.errors import (
    DATA_UNAVAILABLE,
    NOT_FOUND,
    NOT_MODIFIED,
    NotFoundError,
    NotInModelError,
)
from app.web.inputs import (
    check_label,
    check_latent_range,
    check_latents,
    dataset_images,
    dataset_tensor,
    hundredths,
    own_class,
    parse_latents,
)
from app.web.params import DatasetIndex, Label, LatentText, Scale
from app.web.path_strip import latent_doubles, path_latents
from app.web.responses import PNG, cached_image, data_url, etag_for
from app.web.summaries import model_summary
from app.web.uploads import FitField, ImageFile, read_upload

router = APIRouter(prefix="/api", tags=["api"])

MaybeServed = Annotated[Served | None, Depends(get_served)]


def _limit(value: int, limit: int, what: str) -> int:
    if value > limit:
        raise InferenceError(f"{what} is {value}, the limit is {limit}")
    return value


@router.get("/models")
def list_models(
    registry: RegistryDep, settings: SettingsDep, sets: DataSetsDep
) -> list[dict[str, Any]]:
    """Every loaded model: kind, β, latent size, labels, image size and channels, its dataset
    images (drawn from ground truth, a test split, or for a model with neither the served data
    set of its dataset), its card."""
    return [model_summary(ckpt, settings, DataPick(sets)) for ckpt in registry.values()]


@router.get("/models/{name}")
def get_model(model: ModelDep, settings: SettingsDep, sets: DataSetsDep) -> dict[str, Any]:
    """One model's summary and card."""
    return model_summary(model, settings, DataPick(sets))


@router.get(
    "/models/{name}/decode.png", response_class=Response, responses={200: PNG, **NOT_MODIFIED}
)
async def decode_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep, z: LatentText,
    label: Label = None, scale: Scale = 1,
) -> Response:  # fmt: skip
    """Decode one latent vector to an image. The same z always gives the same bytes.
    Concurrent requests are decoded together in one forward pass."""
    zt = parse_latents(z, model, settings, served=served)
    _limit(scale, settings.max_image_scale, "scale")
    check_label(model, label, served)
    etag = etag_for(model, ("decode", zt, label, scale))
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    png = await request.app.state.batcher.decode_png(model, zt, label, scale)
    return Response(png, media_type="image/png", headers=headers)


def _integral(value: Any) -> Any:
    """2.0 → 2: JSON Schema counts a number with no fraction as an integer, so does this body."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class BatchDecode(BaseModel):
    # strict: a JSON string or boolean is not a number here, as the schema says
    z: list[list[StrictFloat]] = Field(
        description="latent vectors, each of the model's latent size",
        json_schema_extra={"x-latent-batch": True},
    )
    label: Annotated[StrictInt | None, BeforeValidator(_integral)] = Field(
        default=None,
        description="class index, for a conditional VAE",
        json_schema_extra={"x-class-index": True},
    )


@router.post("/models/{name}/decode")
def decode_batch(
    model: ModelDep, settings: SettingsDep, served: ServedDep, body: BatchDecode
) -> dict[str, Any]:
    """Decode many latent vectors in one forward pass → PNGs as data URLs, in order."""
    if not body.z:
        raise InferenceError("z must hold at least one latent vector")
    _limit(len(body.z), settings.max_batch, "number of latent vectors")
    lacking: NotInModelError | None = None  # what is wrong for every model is said first
    for i, vector in enumerate(body.z):
        try:
            check_latents(torch.tensor([vector]), model, settings, f"z[{i}]", served)
        except NotInModelError as e:
            lacking = lacking or e
    if lacking is not None:
        raise lacking
    check_label(model, body.label, served)
    zt = torch.tensor(body.z, dtype=torch.float32)
    images = inference.decode_latents(model, zt, body.label)
    return {"images": [data_url(imaging.png_bytes(im)) for im in images]}


def encoding_json(model: ServedModel, x: torch.Tensor, label: int | None) -> dict[str, Any]:
    enc = inference.encode_images(model, x[None], label)
    kl = enc.kl[0]
    return {
        "mu": enc.mu[0].tolist(),
        "sigma": enc.sigma[0].tolist(),
        "input_png": data_url(imaging.png_bytes(x)),
        "reconstruction_png": data_url(imaging.png_bytes(enc.reconstruction[0])),
        "elbo": {
            "recon_nll": enc.recon_nll[0].item(),
            "kl_per_dim": kl.tolist(),
            "kl_total": enc.kl_total[0].item(),
            "neg_elbo": enc.neg_elbo[0].item(),
            # what the KL figures are where they are not closed form against N(0, I)
            "kl_note": None if enc.kl_exact else MIXTURE_KL_NOTE,
        },
    }


LabelField = Annotated[
    int | None,
    Form(
        description="class index, for a conditional VAE",
        json_schema_extra={"x-class-index": True},
    ),
]


@router.post("/models/{name}/encode", dependencies=[NoEmptyFields])
async def encode_upload(
    model: ModelDep,
    settings: SettingsDep,
    file: ImageFile,
    label: LabelField = None,
    served: MaybeServed = None,
    fit: FitField = True,
) -> dict[str, Any]:
    """Encode an uploaded image: μ and σ per latent (σ zeros for the AE), the exact input the
    model saw, its reconstruction, and the ELBO split into reconstruction and KL per latent.
    `fitted` says whether the photo was fitted to the data's form, `notes.fit` how."""
    check_label(model, label, served)
    x, about = await read_upload(model, settings, file, fit)
    return {**encoding_json(model, x, label), **about}


@router.get("/models/{name}/encode", responses=DATA_UNAVAILABLE)
def encode_dataset_image(
    model: ModelDep, settings: SettingsDep, index: DatasetIndex, data: DataDep,
    label: Label = None, served: MaybeServed = None,
) -> dict[str, Any]:  # fmt: skip
    """Encode image `index` of the model's dataset: dSprites (0 ≤ index < 737,280), with its
    factor classes, or Fashion-MNIST's test split (0 ≤ index < 10,000; a 503 saying how to
    install it where it is not), with its class; or with `data=NAME` image `index` of that data
    set, fitted to the model's input, with its column values (an image that cannot be decoded:
    a 422 naming its file). For a CVAE the label defaults to the image's own class (a 404 from
    a data set with no column of the model's classes: give the label)."""
    images = dataset_images(model, settings, served, index, data)
    x = dataset_tensor(images, index, served=served)
    check_label(model, label, served)
    if label is None:
        label = own_class(model, images, index)
    about: dict[str, Any]
    if isinstance(images, SetImages):
        about = {"values": images.values(index)}
    elif isinstance(images, TestImages):
        own = images.label(index)
        about = {"split": "test", "class": own, "class_name": images.label_names[own]}
    else:
        truth = images.truth
        classes = truth.index_to_classes(index)[0]
        about = {
            "factors": dict(zip(truth.factor_names, classes.tolist(), strict=True)),
            "shape": truth.label_names[classes[truth.label_factor]],
        }
    return {
        **encoding_json(model, x, label),
        "index": index,
        "dataset": images.name,
        "description": f"{images.noun} {index:,}: {images.describe(index)}",
        **about,
        "label": label,
    }


@router.get(
    "/models/{name}/dataset/{index}.png",
    response_class=Response,
    responses={200: PNG, **NOT_MODIFIED, **DATA_UNAVAILABLE},
)
def dataset_image_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep, data: DataDep,
    index: Annotated[
        int,  # past the model's dataset the image does not exist: a 404, as for any path
        Path(description="an image of the model's dataset (see `encode`)",
             json_schema_extra={"minimum": 0, "x-dataset-index": True}),
    ],
    scale: Scale = 1,
) -> Response:  # fmt: skip
    """Image `index` of the model's dataset as the model sees it: drawn from its factors
    (dSprites) or from its dataset's test split, grey as published (Fashion-MNIST, at the
    model's 28×28 or padded to 32×32), or with `data=NAME` that data set's image fitted to the
    model's input; a 503 saying how to install the test split where it is not."""
    _limit(scale, settings.max_image_scale, "scale")
    images = dataset_images(model, settings, served, index, data)
    x = dataset_tensor(images, index, served=served)
    return cached_image(
        request,
        model,
        ("dataset", data.name, images.name, images.n_images, index, scale),
        lambda: imaging.png_bytes(x, scale),
    )


@router.get("/dsprites/{index}.png", response_class=Response, responses={200: PNG, **NOT_FOUND})
def dsprites_image(
    index: Annotated[
        int,  # bounds stated, not checked here: past them the image does not exist, a 404
        Path(json_schema_extra={"minimum": 0, "maximum": DSPRITES.n_images - 1}),
    ],
    scale: Annotated[int, Query(ge=1, description="nearest-neighbour enlargement (8 at most)")] = 1,
) -> Response:
    """dSprites image number `index` (0 ≤ index < 737,280), drawn by our renderer."""
    if not 0 <= index < DSPRITES.n_images:
        raise NotFoundError(f"dSprites index must be in 0..{DSPRITES.n_images - 1}, got {index}")
    img = torch.from_numpy(DSPRITES.image(index))
    return Response(
        imaging.png_bytes(img, min(scale, 8)),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get(
    "/models/{name}/traverse.png", response_class=Response, responses={200: PNG, **NOT_MODIFIED}
)
def traverse_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep, z: LatentText,
    label: Label = None,
    steps: Annotated[
        int, Query(ge=2, json_schema_extra={"x-maximum": "max_traverse_steps"})
    ] = 7,
    span: Annotated[float, Query(gt=0, le=10)] = 3.0,
    scale: Scale = 1,
) -> Response:  # fmt: skip
    """One row per latent (most informative first, by mean KL), columns sweeping it from −span
    to +span with the others held at z: the β-VAE paper's Figure 2, rows 4–8."""
    zt = parse_latents(z, model, settings, served=served)
    _limit(steps, settings.max_traverse_steps, "steps")
    _limit(scale, settings.max_image_scale, "scale")
    check_label(model, label, served)
    dims = inference.latent_order(model)
    values = torch.linspace(-span, span, steps)
    images = inference.decode_latents(model, inference.traversal_latents(zt, dims, values), label)
    key = ("traverse", zt, label, steps, span, scale)
    return cached_image(
        request,
        model,
        key,
        lambda: imaging.png_bytes(imaging.grid(images, len(dims), steps), scale),
    )


def sweep_values(lo: float, hi: float, step: float, limit: int) -> list[float]:
    """The positions of a slider from lo toward hi in steps of `step`, not past hi, at most
    `limit` of them: k/100 for whole numbers k of hundredths, which is how the page writes z
    into a decode URL (two decimals), so a sweep's tiles and single decodes agree bit for bit."""
    lo_h, hi_h, step_h = hundredths(lo, "lo"), hundredths(hi, "hi"), hundredths(step, "step")
    n = min(abs(hi_h - lo_h) // step_h + 1, limit)
    direction = 1 if hi_h >= lo_h else -1
    return [(lo_h + direction * k * step_h) / 100 for k in range(n)]


Hundredths = {"multipleOf": 0.01}  # what `hundredths` takes, for the schema


@router.get(
    "/models/{name}/sweep.png", response_class=Response, responses={200: PNG, **NOT_MODIFIED}
)
def sweep_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep, z: LatentText,
    dim: Annotated[
        int,
        Query(ge=0, description="the latent the slider moves",
              json_schema_extra={"x-latent-index": True}),
    ],
    label: Label = None,
    span: Annotated[
        float, Query(gt=0, le=10, description="lo and hi default to −span and span",
                     json_schema_extra=Hundredths)
    ] = 3.0,
    step: Annotated[float, Query(gt=0, json_schema_extra=Hundredths)] = 0.05,
    lo: Annotated[
        float | None,
        Query(description="the first tile's value (default −span)",
              json_schema_extra={**Hundredths, "x-latent-value": True}),
    ] = None,
    hi: Annotated[
        float | None,
        Query(description="where the tiles stop (default span)",
              json_schema_extra={**Hundredths, "x-latent-value": True}),
    ] = None,
) -> Response:  # fmt: skip
    """Every position of one slider at once: a strip of image-size tiles, no padding, tile k
    decoded from z with z[dim] = lo + k·step (toward hi: lo − k·step when hi is below lo), up
    to hi and at most 241 tiles (MAX_SWEEP_POSITIONS; the strip's width says how many). An AE's
    sliders span its own codes, not ±3. Each tile is bit-identical to `decode.png` at that z,
    so the page fetches this before a slider is grabbed and paints the drag from it."""
    zt = parse_latents(z, model, settings, served=served)
    if dim >= model.description.latent_dim:
        error = InferenceError if dim >= served.latent_dims[1] else NotInModelError
        raise error(f"dim must be below {model.description.latent_dim}, got {dim}")
    check_label(model, label, served)
    hundredths(span, "span")
    lo, hi = -span if lo is None else lo, span if hi is None else hi
    check_latent_range(torch.tensor([lo, hi]), model, settings, "lo and hi", served)
    values = sweep_values(lo, hi, step, settings.max_sweep_positions)
    key = ("sweep", zt, dim, label, lo, hi, step)

    def render_strip() -> bytes:
        zs = zt.repeat(len(values), 1)
        zs[:, dim] = torch.tensor(values, dtype=torch.float32)
        images = inference.decode_latents(model, zs, label)
        return imaging.png_bytes(imaging.grid(images, 1, len(values), pad=0))

    return cached_image(request, model, key, render_strip)


OptionalLatents = Annotated[
    str | None,
    Query(
        description="comma-separated latent values, one per latent dimension (optional)",
        json_schema_extra={"x-latent-vector": True},
    ),
]
PathT = Annotated[
    float, Query(ge=-10, le=10, description="a value of t", json_schema_extra=Hundredths)
]


@router.get(
    "/models/{name}/path.png", response_class=Response, responses={200: PNG, **NOT_MODIFIED}
)
def path_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep, z: LatentText,
    v: Annotated[
        str,
        Query(description="the direction: comma-separated, one value per latent dimension",
              json_schema_extra={"x-latent-vector": True}),
    ],
    label: Label = None, lo: PathT = -1.0, hi: PathT = 1.0,
    step: Annotated[float, Query(gt=0, json_schema_extra=Hundredths)] = 0.01,
    lower: OptionalLatents = None, upper: OptionalLatents = None,
) -> Response:  # fmt: skip
    """Every position of a direction slider at once: a strip of image-size tiles, no padding,
    tile k decoded at z + t·v for t = lo + k·step (toward hi, not past it, at most 241 tiles:
    MAX_SWEEP_POSITIONS), each component rounded to hundredths as the page writes z into a
    decode URL and held within lower..upper (the sliders' ranges; default the model's whole
    latent range). Each tile is bit-identical to `decode.png` at that z, so the page fetches
    this when a direction is chosen and paints the drag from it."""
    parse_latents(z, model, settings, served=served)
    parse_latents(v, model, settings, "v", served)
    bounds = []
    for name, text, default in (("lower", lower, -1.0), ("upper", upper, 1.0)):
        if text is None:
            limit = latent_limit(model, settings)
            bounds.append(np.full(model.description.latent_dim, default * limit))
        else:
            parse_latents(text, model, settings, name, served)
            bounds.append(latent_doubles(text))
    check_label(model, label, served)
    ts = sweep_values(lo, hi, step, settings.max_sweep_positions)
    zs = path_latents(latent_doubles(z), latent_doubles(v), ts, *bounds)
    key = ("path", zs, label)  # the tiles' z: what the bytes depend on

    def render_strip() -> bytes:
        images = inference.decode_latents(model, zs, label)
        return imaging.png_bytes(imaging.grid(images, 1, len(ts), pad=0))

    return cached_image(request, model, key, render_strip)


@router.get(
    "/models/{name}/interpolate.{fmt}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/gif": {}}}, **NOT_MODIFIED},
)
def interpolate(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep,
    fmt: Literal["png", "gif"], z0: LatentText, z1: LatentText,
    steps: Annotated[
        int, Query(ge=2, json_schema_extra={"x-maximum": "max_interpolate_steps"})
    ] = 8,
    method: Literal["linear", "slerp"] = "linear",
    label: Label = None, scale: Scale = 1,
) -> Response:  # fmt: skip
    """Decode the path from z0 to z1: a strip (PNG) or an animation that plays there and back
    (GIF). `slerp` follows the great circle instead of the straight line."""
    a = parse_latents(z0, model, settings, "z0", served)
    b = parse_latents(z1, model, settings, "z1", served)
    _limit(steps, settings.max_interpolate_steps, "steps")
    _limit(scale, settings.max_image_scale, "scale")
    check_label(model, label, served)
    images = inference.decode_latents(
        model, inference.interpolate_latents(a, b, steps, method), label
    )
    key = ("interpolate", a, b, steps, method, label, scale, fmt)
    if fmt == "gif":
        return cached_image(
            request, model, key, lambda: imaging.gif_bytes(images, scale), media_type="image/gif"
        )
    return cached_image(
        request, model, key, lambda: imaging.png_bytes(imaging.grid(images, 1, steps), scale)
    )


@router.get("/models/{name}/sample")
def sample(
    model: ModelDep, settings: SettingsDep,
    n: Annotated[int, Query(ge=1, json_schema_extra={"x-maximum": "max_batch"})] = 1,
    seed: Annotated[int, Query(ge=0, lt=2**63)] = 0,
) -> dict[str, Any]:  # fmt: skip
    """n latent vectors drawn from the model's prior (N(0, I), or the mixture of a model that
    owns one: a VampPrior), reproducible from the seed."""
    _limit(n, settings.max_batch, "n")
    return {
        "z": inference.sample_model_prior(model, n, seed).tolist(),
        "seed": seed,
    }
