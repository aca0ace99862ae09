"""The JSON/PNG API under /api (documented at /docs). Errors are `{"detail": "..."}` with a 4xx."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app import imaging, inference
from app.checkpoints import Checkpoint
from app.data.ground_truth import DSPRITES, GroundTruth, ground_truth
from app.inference import InferenceError
from app.settings import Settings
from app.web.deps import ModelDep, RegistryDep, SettingsDep
from app.web.errors import NotFoundError, UploadTooLargeError

router = APIRouter(prefix="/api", tags=["api"])

PNG = {"content": {"image/png": {}}, "description": "a PNG image"}
LatentText = Annotated[
    str, Query(description="comma-separated latent values, one per latent dimension")
]
Label = Annotated[int | None, Query(description="class index, for a conditional VAE")]
Scale = Annotated[int, Query(ge=1, description="nearest-neighbour enlargement")]


def model_summary(ckpt: Checkpoint) -> dict[str, Any]:
    cfg = ckpt.config
    return {
        "name": ckpt.name,
        "kind": cfg.kind,
        "beta": cfg.beta,
        "objective": cfg.objective,
        "latent_dim": cfg.latent_dim,
        "labels": list(cfg.label_names),
        "image_size": cfg.image_size,
        "channels": cfg.channels,
        "dataset": cfg.dataset,
        "factors": list(cfg.factor_names),
        # how many dataset images can be drawn by index (None: no ground truth to draw from)
        "dataset_images": truth.n_images if (truth := ground_truth(cfg.dataset)) else None,
        "dataset_name": truth.name if truth else None,
        "latent_order": inference.latent_order(ckpt),
        "card": ckpt.card,
    }


def parse_latents(text: str, ckpt: Checkpoint, settings: Settings, name: str = "z") -> torch.Tensor:
    """'0.1,-2,3' → (D,) tensor, or an InferenceError naming what is wrong."""
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    values = []
    for i, p in enumerate(parts):
        try:
            values.append(float(p))
        except ValueError:
            raise InferenceError(f"{name}[{i}] is {p!r}, not a number") from None
    d = ckpt.config.latent_dim
    if len(values) != d:
        raise InferenceError(
            f"{name} must have {d} values for model {ckpt.name}, got {len(values)}"
        )
    z = torch.tensor(values, dtype=torch.float32)
    check_range(z[None], settings, ckpt, name)
    return z


def check_range(z: torch.Tensor, settings: Settings, ckpt: Checkpoint, name: str = "z") -> None:
    """Refuse non-finite values, and values far outside where the model's codes live: the
    N(0, I) prior for a VAE (MAX_ABS_LATENT), anywhere short of absurd for an AE (MAX_ABS_CODE)."""
    if not torch.isfinite(z).all():
        raise InferenceError(f"{name} must be finite numbers (no NaN or infinity)")
    limit = settings.max_abs_code if ckpt.config.kind == "ae" else settings.max_abs_latent
    worst = z.abs().max().item() if z.numel() else 0.0
    if worst > limit:
        raise InferenceError(f"{name} values must lie within ±{limit:g}, got {worst:g}")


def _limit(value: int, limit: int, what: str) -> int:
    if value > limit:
        raise InferenceError(f"{what} is {value}, the limit is {limit}")
    return value


def etag_for(ckpt: Checkpoint, key: tuple[Any, ...]) -> str:
    """A strong validator: the model's weight digest and everything the bytes depend on."""
    text = "|".join(
        k.numpy().tobytes().hex() if isinstance(k, torch.Tensor) else str(k) for k in key
    )
    return '"' + hashlib.sha1(f"{ckpt.digest}|{text}".encode()).hexdigest()[:20] + '"'


def cached_image(
    request: Request,
    ckpt: Checkpoint,
    key: tuple[Any, ...],
    render_bytes: Callable[[], bytes],
    media_type: str = "image/png",
) -> Response:
    """An image that is a pure function of (model weights, request): ETag + long caching, and a
    304 when the browser already has it (the bytes are not even rendered then)."""
    etag = etag_for(ckpt, key)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(render_bytes(), media_type=media_type, headers=headers)


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@router.get("/models")
def list_models(registry: RegistryDep) -> list[dict[str, Any]]:
    """Every loaded model: kind, β, latent size, labels, image size and channels, its card."""
    return [model_summary(ckpt) for ckpt in registry.values()]


@router.get("/models/{name}")
def get_model(model: ModelDep) -> dict[str, Any]:
    """One model's summary and card."""
    return model_summary(model)


@router.get("/models/{name}/decode.png", response_class=Response, responses={200: PNG})
async def decode_png(
    request: Request, model: ModelDep, settings: SettingsDep, z: LatentText,
    label: Label = None, scale: Scale = 1,
) -> Response:  # fmt: skip
    """Decode one latent vector to an image. The same z always gives the same bytes.
    Concurrent requests are decoded together in one forward pass."""
    zt = parse_latents(z, model, settings)
    _limit(scale, settings.max_image_scale, "scale")
    inference.check_label(model, label)
    etag = etag_for(model, ("decode", zt, label, scale))
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    png = await request.app.state.batcher.decode_png(model, zt, label, scale)
    return Response(png, media_type="image/png", headers=headers)


class BatchDecode(BaseModel):
    z: list[list[float]] = Field(description="latent vectors, each of the model's latent size")
    label: int | None = None


@router.post("/models/{name}/decode")
def decode_batch(model: ModelDep, settings: SettingsDep, body: BatchDecode) -> dict[str, Any]:
    """Decode many latent vectors in one forward pass → PNGs as data URLs, in order."""
    if not body.z:
        raise InferenceError("z must hold at least one latent vector")
    _limit(len(body.z), settings.max_batch, "number of latent vectors")
    d = model.config.latent_dim
    bad = [i for i, v in enumerate(body.z) if len(v) != d]
    if bad:
        raise InferenceError(f"z[{bad[0]}] has {len(body.z[bad[0]])} values, model needs {d}")
    zt = torch.tensor(body.z, dtype=torch.float32)
    check_range(zt, settings, model)
    images = inference.decode_latents(model, zt, body.label)
    return {"images": [data_url(imaging.png_bytes(im)) for im in images]}


def _encoding_json(model: Checkpoint, x: torch.Tensor, label: int | None) -> dict[str, Any]:
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
            "kl_total": kl.sum().item(),
            "neg_elbo": enc.neg_elbo[0].item(),
        },
    }


@router.post("/models/{name}/encode")
async def encode_upload(
    model: ModelDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="a PNG or JPEG image")],
    label: Annotated[int | None, Form()] = None,
) -> dict[str, Any]:
    """Encode an uploaded image: μ and σ per latent (σ zeros for the AE), the exact input the
    model saw, its reconstruction, and the ELBO split into reconstruction and KL per latent."""
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise UploadTooLargeError(
            f"file is larger than the upload limit of {settings.max_upload_bytes:,} bytes"
        )
    cfg = model.config
    x, notes = imaging.load_upload(data, cfg.image_size, cfg.channels, settings.max_upload_pixels)
    return {**_encoding_json(model, x, label), "notes": notes}


def dataset_of(model: Checkpoint) -> GroundTruth:
    """The model's training data as a drawable dataset, or an InferenceError (422) saying it has
    none (a model trained on an image folder)."""
    truth = ground_truth(model.config.dataset)
    if truth is None:
        raise InferenceError(
            f"model {model.name} was trained on {model.config.dataset}, whose images cannot be "
            "drawn by index: it has no dataset images to start from"
        )
    return truth


def dataset_tensor(truth: GroundTruth, index: int, what: str = "index") -> torch.Tensor:
    """Dataset image `index` as the (C, H, W) float tensor a model sees; a bad index is an
    InferenceError naming the range."""
    if not 0 <= index < truth.n_images:
        raise InferenceError(
            f"{what}: {truth.name} index must be in 0..{truth.n_images - 1}, got {index}"
        )
    return torch.from_numpy(truth.image(index))


@router.get("/models/{name}/encode")
def encode_dataset_image(
    model: ModelDep, index: Annotated[int, Query(ge=0)], label: Label = None
) -> dict[str, Any]:
    """Encode image `index` of the model's dataset (dSprites: 0 ≤ index < 737,280); its factor
    classes are returned too. For a CVAE the label defaults to the image's own class."""
    truth = dataset_of(model)
    x = dataset_tensor(truth, index)
    classes = truth.index_to_classes(index)[0]
    if model.config.kind == "cvae" and label is None:
        label = int(classes[truth.label_factor])
    factors = dict(zip(truth.factor_names, classes.tolist(), strict=True))
    return {
        **_encoding_json(model, x, label),
        "index": index,
        "dataset": truth.name,
        "factors": factors,
        "shape": truth.label_names[classes[truth.label_factor]],
        "label": label,
    }


@router.get("/dsprites/{index}.png", response_class=Response, responses={200: PNG})
def dsprites_image(index: int, scale: Scale = 1) -> Response:
    """dSprites image number `index` (0 ≤ index < 737,280), drawn by our renderer."""
    if not 0 <= index < DSPRITES.n_images:
        raise NotFoundError(f"dSprites index must be in 0..{DSPRITES.n_images - 1}, got {index}")
    img = torch.from_numpy(DSPRITES.image(index))
    return Response(
        imaging.png_bytes(img, min(scale, 8)),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/models/{name}/traverse.png", response_class=Response, responses={200: PNG})
def traverse_png(
    request: Request, model: ModelDep, settings: SettingsDep, z: LatentText,
    label: Label = None,
    steps: Annotated[int, Query(ge=2)] = 7,
    span: Annotated[float, Query(gt=0, le=10)] = 3.0,
    scale: Scale = 1,
) -> Response:  # fmt: skip
    """One row per latent (most informative first, by mean KL), columns sweeping it from −span
    to +span with the others held at z: the β-VAE paper's Figure 2, rows 4–8."""
    zt = parse_latents(z, model, settings)
    _limit(steps, settings.max_traverse_steps, "steps")
    _limit(scale, settings.max_image_scale, "scale")
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


def sweep_values(span: float, step: float, limit: int) -> list[float]:
    """The positions of a slider from −span to +span in steps of `step`: k/100 for whole numbers
    k of hundredths, which is how the page writes z into a decode URL (two decimals), so a sweep's
    tiles and single decodes agree bit for bit."""
    hundredths = {"step": step * 100, "span": span * 100}
    for name, h in hundredths.items():
        if h < 1 or abs(h - round(h)) > 1e-6:
            raise InferenceError(f"{name} must be a multiple of 0.01, got {h / 100:g}")
    step_h, span_h = round(hundredths["step"]), round(hundredths["span"])
    if 2 * span_h % step_h:
        raise InferenceError(f"step {step:g} does not divide the range −{span:g}…{span:g} evenly")
    n = _limit(2 * span_h // step_h + 1, limit, "number of slider positions")
    return [(k * step_h - span_h) / 100 for k in range(n)]


@router.get("/models/{name}/sweep.png", response_class=Response, responses={200: PNG})
def sweep_png(
    request: Request, model: ModelDep, settings: SettingsDep, z: LatentText,
    dim: Annotated[int, Query(ge=0, description="the latent the slider moves")],
    label: Label = None,
    span: Annotated[float, Query(gt=0, le=10)] = 3.0,
    step: Annotated[float, Query(gt=0)] = 0.05,
) -> Response:  # fmt: skip
    """Every position of one slider at once: a strip of image-size tiles, no padding, tile k
    decoded from z with z[dim] = −span + k·step. Each tile is bit-identical to `decode.png` at
    that z, so the page fetches this when a slider is grabbed and paints the drag from it."""
    zt = parse_latents(z, model, settings)
    if dim >= model.config.latent_dim:
        raise InferenceError(f"dim must be below {model.config.latent_dim}, got {dim}")
    inference.check_label(model, label)
    values = sweep_values(span, step, settings.max_sweep_positions)
    key = ("sweep", zt, dim, label, span, step)

    def render_strip() -> bytes:
        zs = zt.repeat(len(values), 1)
        zs[:, dim] = torch.tensor(values, dtype=torch.float32)
        images = inference.decode_latents(model, zs, label)
        return imaging.png_bytes(imaging.grid(images, 1, len(values), pad=0))

    return cached_image(request, model, key, render_strip)


@router.get(
    "/models/{name}/interpolate.{fmt}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/gif": {}}}},
)
def interpolate(
    request: Request, model: ModelDep, settings: SettingsDep,
    fmt: Literal["png", "gif"], z0: LatentText, z1: LatentText,
    steps: Annotated[int, Query(ge=2)] = 8,
    method: Literal["linear", "slerp"] = "linear",
    label: Label = None, scale: Scale = 1,
) -> Response:  # fmt: skip
    """Decode the path from z0 to z1: a strip (PNG) or an animation that plays there and back
    (GIF). `slerp` follows the great circle instead of the straight line."""
    a, b = parse_latents(z0, model, settings, "z0"), parse_latents(z1, model, settings, "z1")
    _limit(steps, settings.max_interpolate_steps, "steps")
    _limit(scale, settings.max_image_scale, "scale")
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
    n: Annotated[int, Query(ge=1)] = 1,
    seed: Annotated[int, Query(ge=0, lt=2**63)] = 0,
) -> dict[str, Any]:  # fmt: skip
    """n latent vectors drawn from the prior N(0, I), reproducible from the seed."""
    _limit(n, settings.max_batch, "n")
    return {"z": inference.sample_prior(model.config.latent_dim, n, seed).tolist(), "seed": seed}
