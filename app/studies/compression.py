"""The VAE as an image codec, against JPEG (the lecture's learned-compression comparison).

The code of an image is a byte string, and its length is the rate:

    μ = encoder(x)                        the posterior mean, as everywhere in the explorer
    keep the model's active latents       mean KL over data > 0.1 nats (the card's kl_per_dim);
                                          the AE has no KL, so all of its latents are kept
    u_i = Φ((μ_i − loc_i) / scale_i)      each kept μ_i through a Gaussian CDF into (0, 1) ...
    q_i = ⌊u_i · 2^k⌋                     ... quantised uniformly to k bits (k = 1..8)
    code = bits of (label, q_0, q_1, …)   packed MSB first; a CVAE's class costs ⌈log₂ n⌉ bits

and decoding takes each q_i to the bin centre, μ̂_i = loc_i + scale_i · Φ⁻¹((q_i + ½) / 2^k),
puts the inactive latents at 0 and runs the decoder. Equal-probability bins under a Gaussian
spend the bits where the latents' values are: a VAE's aggregate posterior is close to its
N(0, 1) prior, so for the VAE and CVAE loc = 0, scale = 1 and the codec needs no data at all.
Measured on the shipped β=1 and β=4 models (256 images): fitting loc/scale to the data changes
PSNR by under 0.1 dB at every k, a quantile (empirical-CDF) quantiser by under 0.3 dB, and a
uniform quantiser over the data's 0.5–99.5 % range loses up to 1.3 dB at k ≤ 3 — so the prior
it is. The AE has no prior (its latents sit anywhere, at any scale), so its loc and scale are
the mean and standard deviation of μ_i over 2,048 dataset images drawn with a fixed seed.

What the decoder must already know — the model, which latents are kept, their loc/scale and k —
is shared codec state, like a JPEG decoder's Huffman and quantisation tables, and is not counted
in the rate. JPEG (Pillow, optimised Huffman tables) carries its tables in every file: its
headers alone are ~170 bytes for a 64×64 grey image, far above a few-byte latent code, so both
the whole file and its entropy-coded scan payload are reported.

Quality is measured on 8-bit images in [0, 1] (what a codec hands back): PSNR, SSIM
(Wang et al. 2004) and MS-SSIM (Wang et al. 2003), implemented here; see their docstrings.

Nothing here knows about HTTP. `rate_distortion` caches the study per model weights (the
registry is read-only) and computes once however many threads ask at once.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from app import inference
from app.checkpoints.served import ServedModel
from app.data.ground_truth import GroundTruth, ground_truth
from app.data.test_split import TestSplit
from app.inference import InferenceError
from app.models.elbo import ACTIVE_KL
from app.models.interface import ModelDescription
from app.studies.cache import SharedResults
from app.studies.quality import Quality, psnr, quality, to_8bit

BITS = range(1, 9)  # bits per kept latent
JPEG_QUALITIES = range(1, 96)  # Pillow's useful range; above 95 it only grows the file
STUDY_QUALITIES = (1, 5, 10, 20, 30, 50, 70, 90)


class CompressionError(InferenceError):
    """A compression request that cannot be answered (bits out of range, no dataset, ...)."""


class LatentUsageUnknown(CompressionError):
    """A model whose card says nothing of how much each latent is used (no KL per latent: a
    plugin's, or a card written without it), so there is no code to make: this model cannot
    answer, whatever the request (the API's 404)."""


def check_bits(bits: int) -> int:
    if bits not in BITS:
        raise CompressionError(f"bits must be in {BITS[0]}..{BITS[-1]} per latent, got {bits}")
    return bits


# --- the code -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """Shared codec state: what encoder and decoder both know and the code does not carry."""

    latent_dim: int
    kept: tuple[int, ...]  # the latents the code carries, in ascending order
    loc: tuple[float, ...]  # per kept latent: μ_i is standardised by loc and scale before Φ
    scale: tuple[float, ...]
    label_bits: int = 0  # a CVAE's class, ⌈log₂ n_labels⌉ bits at the front of the code

    def n_bits(self, bits: int) -> int:
        return self.label_bits + len(self.kept) * bits

    def n_bytes(self, bits: int) -> int:
        return -(-self.n_bits(bits) // 8)


def active_latents(ckpt: ServedModel) -> list[int]:
    """Latents whose mean KL (the card's kl_per_dim) is above 0.1 nats; all of them for the AE,
    which has no KL (nor a prior that would decode an unused latent at 0)."""
    kl = ckpt.kl
    d = ckpt.description.latent_dim
    if ckpt.description.kind == "ae":
        return list(range(d))
    if not kl or len(kl) != d:
        raise LatentUsageUnknown(
            f"model {ckpt.name}'s card has no kl_per_dim for its {d} latents, so which latents "
            "it uses is unknown; run `latent-explorer evaluate` or retrain to write it"
        )
    return [i for i in range(d) if kl[i] > ACTIVE_KL]


def _label_bits(cfg: ModelDescription) -> int:
    return math.ceil(math.log2(cfg.n_labels)) if cfg.kind == "cvae" else 0


CALIBRATION_IMAGES, CALIBRATION_SEED = 2048, 1  # the AE's loc/scale; the study uses seed 0


def _make_codec(ckpt: ServedModel) -> Codec:
    cfg = ckpt.description
    kept = active_latents(ckpt)
    if cfg.stochastic:
        loc, scale = [0.0] * len(kept), [1.0] * len(kept)
    else:
        try:
            x, labels = study_images(cfg, CALIBRATION_IMAGES, CALIBRATION_SEED)
        except CompressionError:
            raise CompressionError(
                f"model {ckpt.name} is an AE, whose latents have no prior: its codec fits each "
                f"latent's range to dataset images, and {cfg.dataset} cannot be drawn here"
            ) from None
        mu = encode_mu(ckpt, x, labels)[:, kept].double()
        loc, scale = mu.mean(dim=0).tolist(), mu.std(dim=0).clamp(min=1e-6).tolist()
    return Codec(cfg.latent_dim, tuple(kept), tuple(loc), tuple(scale), _label_bits(cfg))


_codecs: dict[tuple[str, str], Codec] = {}
_codecs_lock = threading.Lock()


def codec_for(ckpt: ServedModel) -> Codec:
    """The model's codec state, built once per weights (the AE's from 2,048 encoded images)."""
    if not ckpt.digest:  # a ServedModel built by hand, not loaded: nothing names its weights
        return _make_codec(ckpt)
    key = (ckpt.digest, ckpt.name)
    with _codecs_lock:  # held while building: one AE calibration at a time, ~0.3 s
        if key not in _codecs:
            _codecs[key] = _make_codec(ckpt)
        return _codecs[key]


def quantise(mu: torch.Tensor, codec: Codec, bits: int) -> torch.Tensor:
    """μ (N, D) → bin indices (N, n_kept) in 0..2^k − 1."""
    check_bits(bits)
    kept = list(codec.kept)
    z = (mu[:, kept].double() - torch.tensor(codec.loc, dtype=torch.float64)) / torch.tensor(
        codec.scale, dtype=torch.float64
    )
    u = torch.special.ndtr(z)  # Φ: (0, 1), ends included in float64 far out
    return (u * 2**bits).floor().clamp(0, 2**bits - 1).long()


def dequantise(q: torch.Tensor, codec: Codec, bits: int) -> torch.Tensor:
    """Bin indices (N, n_kept) → latents (N, D): kept ones at the bin centre, the rest at 0."""
    u = (q.double() + 0.5) / 2**bits
    kept = torch.special.ndtri(u) * torch.tensor(codec.scale, dtype=torch.float64) + torch.tensor(
        codec.loc, dtype=torch.float64
    )
    z = torch.zeros(q.shape[0], codec.latent_dim, dtype=torch.float64)
    z[:, list(codec.kept)] = kept
    return z.float()


def pack_code(q: torch.Tensor, bits: int, label: int = 0, label_bits: int = 0) -> bytes:
    """One image's bin indices (n_kept,) → bytes: the label, then each index in `bits` bits,
    most significant bit first, zero-padded to a whole byte."""
    value, n_bits = label, label_bits
    for v in q.tolist():
        value, n_bits = (value << bits) | int(v), n_bits + bits
    n_bytes = -(-n_bits // 8)
    return (value << (8 * n_bytes - n_bits)).to_bytes(n_bytes, "big")


def unpack_code(code: bytes, codec: Codec, bits: int) -> tuple[torch.Tensor, int]:
    """bytes → (bin indices (n_kept,), label): the inverse of pack_code."""
    check_bits(bits)
    if len(code) != codec.n_bytes(bits):
        raise CompressionError(
            f"a {bits}-bit code for this model is {codec.n_bytes(bits)} bytes, got {len(code)}"
        )
    value = int.from_bytes(code, "big") >> (8 * len(code) - codec.n_bits(bits))  # drop padding
    fields = [(value >> (bits * j)) & (2**bits - 1) for j in range(len(codec.kept))][::-1]
    label = value >> (bits * len(codec.kept))
    return torch.tensor(fields, dtype=torch.long), label


@torch.inference_mode()
def encode_mu(ckpt: ServedModel, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """x (N, C, H, W) → μ (N, D), in batches of 256."""
    out = []
    for start in range(0, len(x), 256):
        lab = None if labels is None else labels[start : start + 256]
        out.append(ckpt.model.encode(x[start : start + 256], lab).mean)
    return torch.cat(out)


@torch.inference_mode()
def decode_batch(ckpt: ServedModel, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """z (N, D) → images (N, C, H, W) in [0, 1], each as decode_latents would give it alone."""
    return ckpt.model.decode(z, labels)


def decode_code(ckpt: ServedModel, code: bytes, bits: int) -> torch.Tensor:
    """A code's bytes → the decoded image (C, H, W) in [0, 1]: all a receiver needs besides the
    shared codec state."""
    codec = codec_for(ckpt)
    q, label = unpack_code(code, codec, bits)
    if ckpt.description.kind == "cvae" and label >= ckpt.description.n_labels:
        raise CompressionError(f"the code's class {label} is not one of the model's classes")
    labels = torch.tensor([label]) if ckpt.description.kind == "cvae" else None
    return decode_batch(ckpt, dequantise(q[None], codec, bits), labels)[0]


# --- JPEG -----------------------------------------------------------------------------------


def _pil(x: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] → a grey ('L') or RGB picture."""
    arr = x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def jpeg_encode(x: torch.Tensor, quality: int) -> bytes:
    """(C, H, W) → a baseline JPEG file at `quality`, with Huffman tables optimised for the
    image (JPEG at its smallest: Pillow's standard tables add ~180 bytes to a 64×64 file)."""
    buf = io.BytesIO()
    _pil(x).save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def jpeg_decode(data: bytes, channels: int) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255
    return torch.from_numpy(arr[None] if channels == 1 else arr.transpose(2, 0, 1).copy())


def jpeg_scan_bytes(data: bytes) -> int:
    """The entropy-coded payload of a JPEG file: the bytes after each SOS marker's header up to
    the next marker that ends the scan (EOI, or another segment in a progressive file); the
    restart markers and stuffed zero bytes inside a scan count, they are part of the data."""
    if data[:2] != b"\xff\xd8":
        raise CompressionError("not a JPEG file (no SOI marker)")
    pos, total = 2, 0
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise CompressionError(f"corrupt JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            return total
        if marker == 0xFF:  # a fill byte before a marker
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data follows its header
            start = pos
            while pos + 1 < len(data) and not (
                data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))
            ):
                pos += 1
            total += pos - start
    raise CompressionError("corrupt JPEG: no EOI marker")


@dataclass(frozen=True)
class JpegResult:
    quality: int
    data: bytes
    payload_bytes: int  # the entropy-coded scan data alone
    image: torch.Tensor  # (C, H, W) decoded

    @property
    def file_bytes(self) -> int:
        return len(self.data)


def jpeg_at(x: torch.Tensor, quality: int) -> JpegResult:
    data = jpeg_encode(x, quality)
    return JpegResult(quality, data, jpeg_scan_bytes(data), jpeg_decode(data, x.shape[0]))


def jpeg_closest(x: torch.Tensor, n_bytes: int) -> JpegResult:
    """The JPEG of x whose whole file is closest in size to n_bytes, over qualities 1..95 (the
    lower quality on a tie). File size is not strictly monotone in quality, hence every one."""
    sizes = {q: len(jpeg_encode(x, q)) for q in JPEG_QUALITIES}
    best = min(sizes, key=lambda q: (abs(sizes[q] - n_bytes), q))
    return jpeg_at(x, best)


# --- one image ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One image through both codecs: the VAE code at k bits per latent, and the JPEG whose
    whole file is closest in size to the code."""

    original: torch.Tensor  # (C, H, W), the 8-bit input the model sees
    bits: int
    kept: tuple[int, ...]
    label: int | None  # a CVAE's class, carried in the code
    code: bytes
    n_bits: int  # the code's bits before padding to whole bytes
    reconstruction: torch.Tensor  # (C, H, W), decoded from the code, 8-bit
    vae: Quality
    unquantised: Quality  # decoded from μ itself (float32 latents), for reference
    jpeg: JpegResult
    jpeg_quality: Quality

    @property
    def pixels(self) -> int:
        return self.original.shape[-1] * self.original.shape[-2]

    @property
    def bpp(self) -> float:
        return 8 * len(self.code) / self.pixels


def _encode_with_label(
    ckpt: ServedModel, codec: Codec, x: torch.Tensor, bits: int, label: int | None
) -> tuple[bytes, torch.Tensor, torch.Tensor, int | None]:
    """→ (code, its decoding, the decoding of μ itself, label) for one image (C, H, W)."""
    labels = None if label is None else torch.tensor([label])
    mu = encode_mu(ckpt, x[None], labels)
    q = quantise(mu, codec, bits)
    code = pack_code(q[0], bits, label or 0, codec.label_bits)
    pair_labels = None if labels is None else labels.repeat(2)
    pair = decode_batch(
        ckpt, torch.cat([dequantise(q, codec, bits), mu]), pair_labels
    )  # (2, C, H, W)
    return code, to_8bit(pair[0]), to_8bit(pair[1]), label


def compress_image(
    ckpt: ServedModel, x: torch.Tensor, bits: int, label: int | None = None
) -> Comparison:
    """Compress one image (C, H, W) in [0, 1] both ways and measure both. A CVAE's class is
    part of the code: `label` when given, else the encoder tries every class and keeps the one
    whose decoding has the highest PSNR (an encoder may search; the decoder only reads)."""
    check_bits(bits)
    cfg = ckpt.description
    if x.shape != (cfg.channels, cfg.image_size, cfg.image_size):
        raise CompressionError(
            f"images must be {cfg.channels}×{cfg.image_size}×{cfg.image_size}, got "
            f"{'×'.join(map(str, x.shape))}"
        )
    inference.check_label(ckpt, label)
    codec = codec_for(ckpt)
    x = to_8bit(x)
    candidates = [label] if cfg.kind != "cvae" or label is not None else range(cfg.n_labels)
    tries = [_encode_with_label(ckpt, codec, x, bits, c) for c in candidates]
    code, recon, plain, label = max(tries, key=lambda t: float(psnr(t[1][None], x[None])[0]))
    jpeg = jpeg_closest(x, len(code))
    originals = torch.stack([x, x, x])
    vae, unquantised, jpeg_quality = quality(originals, torch.stack([recon, plain, jpeg.image]))
    return Comparison(x, bits, codec.kept, label, code, codec.n_bits(bits), recon, vae,
                      unquantised, jpeg, jpeg_quality)  # fmt: skip


# --- the rate–distortion study --------------------------------------------------------------


def dataset_of(cfg: ModelDescription) -> GroundTruth:
    """The model's dataset, if its images can be drawn on demand (app.data.ground_truth: those
    with known factors, e.g. dSprites); a CompressionError (422) otherwise (an image folder)."""
    truth = ground_truth(cfg.dataset, cfg.shape)
    if truth is None or truth.channels != cfg.channels:
        raise CompressionError(
            f"the rate–distortion study draws images from the model's dataset, and "
            f"{cfg.dataset} cannot be drawn here (only datasets with known factors, e.g. dSprites, "
            "or with a test split, e.g. Fashion-MNIST)"
        )
    return truth


def study_images(
    cfg: ModelDescription, n: int, seed: int, split: TestSplit | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n images of the model's dataset (N, C, H, W) in [0, 1], drawn with a fixed seed, and a
    CVAE's labels for them (None otherwise): drawn from its ground truth, or n distinct images
    of its test `split` (Fashion-MNIST's, grey as published) where one is given."""
    if split is not None:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(len(split), size=min(n, len(split)), replace=False))
        x = torch.from_numpy(split.images[index].astype(np.float32) / np.float32(255))
        labels = torch.from_numpy(split.labels[index]) if cfg.kind == "cvae" else None
        return x, labels
    truth = dataset_of(cfg)
    classes = truth.sample_classes(np.random.default_rng(seed), n)  # (N, K)
    x = torch.from_numpy(truth.render(classes)).float()  # (N, C, H, W)
    labels = torch.from_numpy(classes[:, truth.label_factor]) if cfg.kind == "cvae" else None
    return x, labels


@dataclass(frozen=True)
class Study:
    """Which images the study averages over (the tests pass fewer)."""

    n_images: int = 64
    seed: int = 0
    qualities: tuple[int, ...] = STUDY_QUALITIES


@dataclass(frozen=True)
class RatePoint:
    """One operating point, averaged over the study's images."""

    setting: int  # k bits per latent, or the JPEG quality
    bpp: float
    psnr: float
    ssim: float
    ms_ssim: float


def _point(setting: int, n_bytes: torch.Tensor, pixels: int, q: list[Quality]) -> RatePoint:
    return RatePoint(
        setting,
        float(8 * n_bytes.double().mean() / pixels),
        float(np.mean([v.psnr for v in q])),
        float(np.mean([v.ssim for v in q])),
        float(np.mean([v.ms_ssim for v in q])),
    )


@dataclass(frozen=True)
class RateDistortion:
    model: str
    dataset: str  # what the images are ("dSprites")
    kept: tuple[int, ...]
    label_bits: int
    study: Study
    pixels: int  # per image: bpp = 8 · bytes / pixels
    vae: list[RatePoint]  # k = 1..8
    jpeg_file: list[RatePoint]  # by quality, the whole file
    jpeg_payload: list[RatePoint]  # the same JPEGs, entropy-coded payload only
    unquantised: RatePoint  # decoded from μ itself, its rate that of float32 latents


def compute_rate_distortion(
    ckpt: ServedModel, study: Study | None = None, split: TestSplit | None = None
) -> RateDistortion:
    """Mean bpp and quality of the VAE code at k = 1..8 and of JPEG at the study's qualities,
    over the same dataset images (from the test `split` where one is given). Uncached: see
    rate_distortion."""
    study = study or Study()
    x, labels = study_images(ckpt.description, study.n_images, study.seed, split)
    pixels = x.shape[-1] * x.shape[-2]
    codec = codec_for(ckpt)
    mu = encode_mu(ckpt, x, labels)
    vae = []
    for bits in BITS:
        q = quantise(mu, codec, bits)
        recon = to_8bit(decode_batch(ckpt, dequantise(q, codec, bits), labels))
        n_bytes = torch.full((len(x),), codec.n_bytes(bits))
        vae.append(_point(bits, n_bytes, pixels, quality(x, recon)))
    plain = to_8bit(decode_batch(ckpt, mu, labels))
    float32_bytes = torch.full((len(x),), -(-(codec.label_bits + 32 * len(codec.kept)) // 8))
    unquantised = _point(0, float32_bytes, pixels, quality(x, plain))
    files, payloads = [], []
    for quality_setting in study.qualities:
        jpegs = [jpeg_at(im, quality_setting) for im in x]
        measured = quality(x, torch.stack([j.image for j in jpegs]))
        file_bytes = torch.tensor([j.file_bytes for j in jpegs])
        payload_bytes = torch.tensor([j.payload_bytes for j in jpegs])
        files.append(_point(quality_setting, file_bytes, pixels, measured))
        payloads.append(_point(quality_setting, payload_bytes, pixels, measured))
    dataset = f"{split.name} test" if split else dataset_of(ckpt.description).name
    return RateDistortion(ckpt.name, dataset, codec.kept, codec.label_bits,
                          study, pixels, vae, files, payloads, unquantised)  # fmt: skip


MAX_CACHED = 16  # (weights, study) pairs kept: a few per shipped model at most
_results: SharedResults[RateDistortion] = SharedResults(MAX_CACHED)


def rate_distortion(
    ckpt: ServedModel, study: Study | None = None, split: TestSplit | None = None
) -> RateDistortion:
    """compute_rate_distortion, cached by the weights' digest: the first caller computes,
    callers that arrive meanwhile wait for its result. A failure is not cached."""
    chosen = study or Study()
    if split is None:
        dataset_of(ckpt.description)  # a clear error before anything waits on the cache

    def compute() -> RateDistortion:
        if split is None:
            return compute_rate_distortion(ckpt, chosen)
        return compute_rate_distortion(ckpt, chosen, split)

    if not ckpt.digest:  # a ServedModel built by hand, not loaded: nothing names its weights
        return compute()
    images = (split.name, len(split)) if split is not None else ()
    return _results.get((ckpt.digest, ckpt.name, chosen, *images), compute)


def clear_cache() -> None:
    _results.clear()
    with _codecs_lock:
        _codecs.clear()
