"""The VAE family in one module: a deterministic AE, the (β-)VAE and the conditional VAE.

Convolutional encoder and decoder after Burgess et al. 2018 ("Understanding disentangling in
β-VAE", Appendix A.1): 4×4 stride-2 convolutions with 32 channels down to 4×4 (four at 64×64, three
at 32×32), two dense layers of 256, and the mirror image in the decoder. A CVAE concatenates a
one-hot label to the encoder's dense input and to z before the decoder (Sohn et al. 2015).

`architecture="mlp"` builds the dense kind instead (Kingma & Welling 2014, Burda et al. 2016):
the flattened image through two hidden layers to μ and log σ², and z through two hidden layers to
every pixel's logit, for small grey data such as Fashion-MNIST at its own 28×28.

`architecture="pytorch-vae"` builds the networks of AntixK/PyTorch-VAE's VanillaVAE (and the
variants that share them), for its checkpoints imported from Lightning: 3×3 stride-2
convolutions, each with batch norm and a leaky ReLU, to 2×2, two linear heads for μ and log σ²;
the decoder mirrors them with transposed convolutions and ends in a tanh. Its output is the pixel
means themselves (trained by squared error against images in [0, 1]), served clamped to [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import load_file
from torch import nn

from app.models.config import ModelConfig
from app.models.elbo import reconstruction_nll, reconstruction_nll_of_means, reparameterize

WEIGHTS = "model.safetensors"  # the hub layout's weights file, beside config.json


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.conv_channels
        layers: list[nn.Module] = []
        for i in range(cfg.n_convs):  # 64 → 32 → 16 → 8 → 4 (one fewer at 32)
            layers += [nn.Conv2d(cfg.channels if i == 0 else c, c, 4, 2, 1), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Linear(c * 4 * 4 + cfg.n_labels, cfg.hidden_dim), nn.ReLU(),
            nn.Linear(cfg.hidden_dim, cfg.hidden_dim), nn.ReLU(),
        )  # fmt: skip
        # μ and log σ² for a VAE; the deterministic AE has only the code itself
        self.head = nn.Linear(cfg.hidden_dim, cfg.latent_dim * (2 if cfg.stochastic else 1))

    def forward(self, x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        h = self.convs(x).flatten(1)  # (B, 32·4·4)
        if onehot is not None:
            h = torch.cat([h, onehot], dim=1)  # (B, 512 + n_labels)
        return self.head(self.dense(h))  # (B, 2·D) or (B, D)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.conv_channels
        self.conv_channels = c
        self.dense = nn.Sequential(
            nn.Linear(cfg.latent_dim + cfg.n_labels, cfg.hidden_dim), nn.ReLU(),
            nn.Linear(cfg.hidden_dim, cfg.hidden_dim), nn.ReLU(),
            nn.Linear(cfg.hidden_dim, c * 4 * 4), nn.ReLU(),
        )  # fmt: skip
        layers: list[nn.Module] = []
        for _ in range(cfg.n_convs - 1):  # 4 → 8 → 16 → 32 (one fewer at 32)
            layers += [nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ReLU()]
        # the last doubling, to the image: logits / pre-sigmoid means
        layers.append(nn.ConvTranspose2d(c, cfg.channels, 4, 2, 1))
        self.deconvs = nn.Sequential(*layers)

    def forward(
        self, z: torch.Tensor, onehot: torch.Tensor | None, batch_invariant: bool = False
    ) -> torch.Tensor:
        if onehot is not None:
            z = torch.cat([z, onehot], dim=1)  # (B, D + n_labels)
        if not batch_invariant:
            h = self.dense(z)
            # (B, 32, 4, 4) → (B, C, H, W)
            return self.deconvs(h.view(-1, self.conv_channels, 4, 4))
        # serving: a matrix product's rounding depends on how many rows it has, so the dense
        # layers go row by row (microseconds); the transposed convolutions treat each image alone
        h = torch.cat([self.dense(row) for row in z.split(1)])
        h = self.deconvs[:-1](h.view(-1, self.conv_channels, 4, 4))
        return overlap_add_conv_transpose(h, self.deconvs[-1])


def overlap_add_conv_transpose(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The same transposed convolution as `layer`, as one matrix product per image followed by
    an overlap-add (F.fold): every input pixel scatters its k×k patch of weights, and the patches
    are summed. For the decoder's last layer (32 → 1 or 3 channels) CPU kernels vectorise this far
    better than the convolution itself (~45 µs against ~200–280 µs per 64×64 image on one core),
    and each image stays its own product, so the result does not depend on the batch. Training
    keeps the convolution: with its backward pass and channels_last it is the faster one there."""
    if not isinstance(layer, nn.ConvTranspose2d):
        raise TypeError(f"expected a ConvTranspose2d, got {type(layer).__name__}")
    b, c_in, h, w = x.shape
    k, stride, pad = layer.kernel_size[0], layer.stride[0], int(layer.padding[0])
    weights = layer.weight.reshape(c_in, -1).t()  # (C_out·k·k, C_in)
    cols = torch.matmul(weights, x.contiguous().view(b, c_in, h * w))  # (B, C_out·k·k, H·W)
    size = ((h - 1) * stride - 2 * pad + k, (w - 1) * stride - 2 * pad + k)
    out = F.fold(cols, size, k, stride=stride, padding=pad)
    return out + layer.bias.view(1, -1, 1, 1) if layer.bias is not None else out


def _dense_stack(inputs: int, cfg: ModelConfig) -> list[nn.Module]:
    """cfg.hidden_layers dense layers of cfg.hidden_dim, each followed by a ReLU."""
    layers: list[nn.Module] = []
    for i in range(cfg.hidden_layers):
        layers += [nn.Linear(inputs if i == 0 else cfg.hidden_dim, cfg.hidden_dim), nn.ReLU()]
    return layers


class MLPEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        pixels = cfg.channels * cfg.image_size * cfg.image_size
        self.dense = nn.Sequential(*_dense_stack(pixels + cfg.n_labels, cfg))
        self.head = nn.Linear(cfg.hidden_dim, cfg.latent_dim * (2 if cfg.stochastic else 1))

    def forward(self, x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        h = x.flatten(1)  # (B, C·H·W)
        if onehot is not None:
            h = torch.cat([h, onehot], dim=1)
        return self.head(self.dense(h))


class MLPDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.dense = nn.Sequential(
            *_dense_stack(cfg.latent_dim + cfg.n_labels, cfg),
            nn.Linear(cfg.hidden_dim, cfg.channels * cfg.image_size * cfg.image_size),
        )

    def forward(
        self, z: torch.Tensor, onehot: torch.Tensor | None, batch_invariant: bool = False
    ) -> torch.Tensor:
        if onehot is not None:
            z = torch.cat([z, onehot], dim=1)
        if batch_invariant:  # a matrix product's rounding depends on its row count: row by row
            h = torch.cat([self.dense(row) for row in z.split(1)])
        else:
            h = self.dense(z)
        return h.view(-1, *self.shape)  # logits / pre-sigmoid means


class ImageByImageDecoder(nn.Module):
    """A decoder served image by image: `_decode` (z → its output) on each row alone when the
    bytes must not depend on the batch (the served model's promise), on the batch otherwise.
    For networks whose convolutions' rounding is not known to be batch-invariant."""

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, z: torch.Tensor, onehot: torch.Tensor | None, batch_invariant: bool = False
    ) -> torch.Tensor:
        if batch_invariant:  # each image alone: its bytes cannot depend on the batch
            return torch.cat([self._decode(row) for row in z.split(1)])
        return self._decode(z)


class PyTorchVAEEncoder(nn.Module):
    """PyTorch-VAE's VanillaVAE encoder: per width in hidden_dims, Conv2d(3×3, stride 2,
    padding 1) → BatchNorm2d → LeakyReLU(0.01), then fc_mu and fc_var from the flattened 2×2."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = cfg.channels
        for h in cfg.hidden_dims:
            blocks.append(
                nn.Sequential(nn.Conv2d(width, h, 3, 2, 1), nn.BatchNorm2d(h), nn.LeakyReLU())
            )
            width = h
        self.convs = nn.Sequential(*blocks)
        self.fc_mu = nn.Linear(width * 4, cfg.latent_dim)
        self.fc_var = nn.Linear(width * 4, cfg.latent_dim)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        h = self.convs(x).flatten(1)  # (B, hidden_dims[-1]·2·2)
        return torch.cat([self.fc_mu(h), self.fc_var(h)], dim=1)  # (B, 2·D)


class PyTorchVAEDecoder(ImageByImageDecoder):
    """PyTorch-VAE's VanillaVAE decoder: decoder_input to (hidden_dims[-1], 2, 2), per width
    back down ConvTranspose2d(3×3, stride 2, padding 1, output padding 1) → BatchNorm2d →
    LeakyReLU, and a final layer doubling once more, then Conv2d(3×3) to 3 channels and a tanh.
    (PyTorch-VAE's own decode reshapes to 512 channels, its default last width; here the width
    is hidden_dims[-1], the same wherever its code runs at all.)"""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        dims = list(reversed(cfg.hidden_dims))
        self.width = dims[0]
        self.decoder_input = nn.Linear(cfg.latent_dim, dims[0] * 4)
        self.deconvs = nn.Sequential(
            *(
                nn.Sequential(
                    nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1),
                    nn.BatchNorm2d(b),
                    nn.LeakyReLU(),
                )
                for a, b in zip(dims, dims[1:], strict=False)
            )
        )
        last = dims[-1]
        self.final_layer = nn.Sequential(
            nn.ConvTranspose2d(last, last, 3, 2, 1, output_padding=1),
            nn.BatchNorm2d(last),
            nn.LeakyReLU(),
            nn.Conv2d(last, cfg.channels, 3, padding=1),
            nn.Tanh(),
        )

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(z).view(-1, self.width, 2, 2)
        return self.final_layer(self.deconvs(h))  # (B, 3, H, W): tanh outputs, means unclamped


# pythae's convolutional benchmark networks (pythae.models.nn.benchmarks.{mnist,cifar,celeba}
# .convnets: Encoder_Conv_VAE_* and Decoder_Conv_AE_*), by image side: the input channels, the
# encoder's last feature map side, the decoder's first, its transposed convolutions
# (in, out, kernel, stride, padding, output padding) each followed by batch norm and a ReLU, its
# last one (to the image, where pythae adds a sigmoid), and whether pythae wraps the decoder's
# first linear layer in a Sequential (which names its tensors)
PYTHAE_CONV: dict[int, dict[str, Any]] = {
    28: {"channels": 1, "encoded": 1, "decoded": 4, "wrapped": False,
         "deconvs": ((1024, 512, 3, 2, 1, 0), (512, 256, 3, 2, 1, 1)),
         "last": (256, 3, 2, 1, 1)},
    32: {"channels": 3, "encoded": 2, "decoded": 8, "wrapped": False,
         "deconvs": ((1024, 512, 4, 2, 1, 0), (512, 256, 4, 2, 1, 1)),
         "last": (256, 4, 1, 2, 0)},
    64: {"channels": 3, "encoded": 4, "decoded": 8, "wrapped": True,
         "deconvs": ((1024, 512, 5, 2, 2, 0), (512, 256, 5, 2, 1, 0), (256, 128, 5, 2, 2, 1)),
         "last": (128, 5, 1, 1, 0)},
}  # fmt: skip


class PythaeEncoder(nn.Module):
    """pythae's benchmark encoders: `layers` in turn, then `embedding` (μ) and `log_var` from
    the flattened features."""

    layers: nn.ModuleList
    embedding: nn.Linear
    log_var: nn.Linear

    def forward(self, x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        h = x
        for layer in self.layers:
            h = layer(h)
        h = h.reshape(x.shape[0], -1)
        return torch.cat([self.embedding(h), self.log_var(h)], dim=1)


class PythaeConvEncoder(PythaeEncoder):
    """pythae's Encoder_Conv_VAE_{MNIST,CIFAR,CELEBA}: four 4×4 stride-2 convolutions (128, 256,
    512, 1024 channels), each with batch norm and a ReLU; `embedding` and `log_var` from the
    flattened features. Module names as pythae's, so its tensors load under their own names."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        spec = PYTHAE_CONV[cfg.image_size]
        widths = (cfg.channels, 128, 256, 512, 1024)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 4, 2, padding=1), nn.BatchNorm2d(b), nn.ReLU())
            for a, b in zip(widths, widths[1:], strict=False)
        )
        features = 1024 * spec["encoded"] ** 2
        self.embedding = nn.Linear(features, cfg.latent_dim)
        self.log_var = nn.Linear(features, cfg.latent_dim)


class PythaeConvDecoder(ImageByImageDecoder):
    """pythae's Decoder_Conv_AE_{MNIST,CIFAR,CELEBA}: a linear layer to 1024 feature maps, then
    transposed convolutions with batch norm and ReLUs, and a last one to the image; pythae's
    final sigmoid is the one the served model applies to these logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        spec = PYTHAE_CONV[cfg.image_size]
        self.side = spec["decoded"]
        first = nn.Linear(cfg.latent_dim, 1024 * self.side**2)
        layers: list[nn.Module] = [nn.Sequential(first) if spec["wrapped"] else first]
        for a, b, k, s, p, op in spec["deconvs"]:
            layers.append(
                nn.Sequential(
                    nn.ConvTranspose2d(a, b, k, s, padding=p, output_padding=op),
                    nn.BatchNorm2d(b),
                    nn.ReLU(),
                )
            )
        a, k, s, p, op = spec["last"]
        layers.append(
            nn.Sequential(nn.ConvTranspose2d(a, cfg.channels, k, s, padding=p, output_padding=op))
        )
        self.layers = nn.ModuleList(layers)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.layers[0](z).reshape(z.shape[0], 1024, self.side, self.side)
        for layer in self.layers[1:]:
            h = layer(h)
        return h  # logits


# pythae's ResNet benchmark networks (pythae.models.nn.benchmarks.*.resnets: Encoder_ResNet_VAE_*
# and Decoder_ResNet_AE_*), by image side, as data: each entry of the ModuleList pythae builds,
# a list where pythae wraps it in a Sequential, else one module; ("res", c, h) is pythae's
# ResBlock (x + conv1×1(relu(conv3×3(relu(x))))). "C" is the image's channels. The decoder's
# first entry is the linear layer, whose output is reshaped to (128, side, side); its last
# entry's sigmoid is the one the served model applies (the CelebA decoder's other sigmoid, in
# the middle, is kept).
_RES = ("res", 128, 32)
PYTHAE_RESNET: dict[int, dict[str, Any]] = {
    28: {"encoded": 4, "decoded": 4,
         "encoder": [[("conv", "C", 64, 4, 2, 1)], [("conv", 64, 128, 4, 2, 1)],
                     [("conv", 128, 128, 3, 2, 1)], [_RES, _RES]],
         "decoder": [("convT", 128, 128, 3, 2, 1, 0), [_RES, _RES, ("relu",)],
                     [("convT", 128, 64, 3, 2, 1, 1), ("relu",)],
                     [("convT", 64, "C", 3, 2, 1, 1), ("sigmoid",)]]},
    32: {"encoded": 8, "decoded": 8,
         "encoder": [[("conv", "C", 64, 4, 2, 1)], [("conv", 64, 128, 4, 2, 1)],
                     [("conv", 128, 128, 3, 1, 1)], [_RES, _RES]],
         "decoder": [[_RES, _RES], [("convT", 128, 64, 4, 2, 1, 0)],
                     [("convT", 64, "C", 4, 2, 1, 0), ("sigmoid",)]]},
    64: {"encoded": 4, "decoded": 4,
         "encoder": [[("conv", "C", 64, 4, 2, 1)], [("conv", 64, 128, 4, 2, 1)],
                     [("conv", 128, 128, 3, 2, 1)], [("conv", 128, 128, 3, 2, 1)],
                     [_RES, _RES]],
         "decoder": [("convT", 128, 128, 3, 2, 1, 0), [_RES, _RES],
                     [("convT", 128, 128, 5, 2, 1, 0), ("sigmoid",)],
                     [("convT", 128, 64, 5, 2, 1, 1)],
                     [("convT", 64, "C", 4, 2, 1, 0), ("sigmoid",)]]},
}  # fmt: skip


class PythaeResBlock(nn.Module):
    """pythae's ResBlock: x + the block (ReLU, 3×3 conv to `hidden`, ReLU, 1×1 conv back)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, hidden, 3, 1, padding=1),
            nn.ReLU(), nn.Conv2d(hidden, channels, 1, 1, padding=0),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _pythae_module(op: tuple[Any, ...], channels: int) -> nn.Module:
    kind, *args = op
    args = [channels if a == "C" else a for a in args]
    if kind == "conv":
        a, b, k, stride, pad = args
        return nn.Conv2d(a, b, k, stride, padding=pad)
    if kind == "convT":
        a, b, k, stride, pad, out_pad = args
        return nn.ConvTranspose2d(a, b, k, stride, padding=pad, output_padding=out_pad)
    if kind == "res":
        return PythaeResBlock(*args)
    return nn.ReLU() if kind == "relu" else nn.Sigmoid()


def _pythae_layers(entries: list[Any], channels: int) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Sequential(*(_pythae_module(op, channels) for op in entry))
        if isinstance(entry, list)
        else _pythae_module(entry, channels)
        for entry in entries
    )


class PythaeResNetEncoder(PythaeEncoder):
    """pythae's Encoder_ResNet_VAE_{MNIST,CIFAR,CELEBA} (PYTHAE_RESNET), its names kept."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        spec = PYTHAE_RESNET[cfg.image_size]
        self.layers = _pythae_layers(spec["encoder"], cfg.channels)
        features = 128 * spec["encoded"] ** 2
        self.embedding = nn.Linear(features, cfg.latent_dim)
        self.log_var = nn.Linear(features, cfg.latent_dim)


class PythaeResNetDecoder(ImageByImageDecoder):
    """pythae's Decoder_ResNet_AE_{MNIST,CIFAR,CELEBA} (PYTHAE_RESNET), its names kept; the
    last sigmoid left to the served model (these are its logits)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        spec = PYTHAE_RESNET[cfg.image_size]
        self.side = spec["decoded"]
        entries = [("linear",), *spec["decoder"]]
        entries[-1] = entries[-1][:-1]  # without its sigmoid
        layers = _pythae_layers(entries[1:], cfg.channels)
        self.layers = nn.ModuleList([nn.Linear(cfg.latent_dim, 128 * self.side**2), *layers])

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.layers[0](z).reshape(z.shape[0], 128, self.side, self.side)
        for layer in self.layers[1:]:
            h = layer(h)
        return h  # logits


class VAE(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="latent-explorer",
    tags=["vae", "disentanglement"],
):
    """AE, VAE (β-weighted) or CVAE, as `config.kind` says.

    The hub mixin gives `save_pretrained` / `push_to_hub` on the checkpoint layout
    (model.safetensors + config.json); loading goes through `app.checkpoints`, which is strict and
    never unpickles.
    """

    def __init__(self, config: ModelConfig | dict) -> None:
        super().__init__()
        if isinstance(config, dict):  # as the hub mixin passes config.json
            config = ModelConfig.from_json(config)
        self.config = config
        self.encoder: nn.Module
        self.decoder: nn.Module
        if config.architecture == "mlp":
            self.encoder, self.decoder = MLPEncoder(config), MLPDecoder(config)
        elif config.architecture == "pytorch-vae":
            self.encoder, self.decoder = PyTorchVAEEncoder(config), PyTorchVAEDecoder(config)
        elif config.architecture == "pythae-conv":
            self.encoder, self.decoder = PythaeConvEncoder(config), PythaeConvDecoder(config)
        elif config.architecture == "pythae-resnet":
            self.encoder, self.decoder = PythaeResNetEncoder(config), PythaeResNetDecoder(config)
        else:
            self.encoder, self.decoder = Encoder(config), Decoder(config)
        if config.prior == "vamp":
            # a VampPrior's pseudo-inputs u_k as images in [0, 1] (K, C, H, W): the prior is the
            # mixture of the encoder's q(z | u_k), computed from them where the model is served
            side = config.image_size
            self.register_buffer(
                "pseudo_inputs", torch.zeros(config.prior_components, config.channels, side, side)
            )

    def _onehot(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if self.config.kind != "cvae":
            return None
        if labels is None:
            raise ValueError("a cvae needs a label for every image")
        if labels.shape != (batch,):
            raise ValueError(f"expected {batch} labels, got shape {tuple(labels.shape)}")
        dtype = next(self.parameters()).dtype
        return F.one_hot(labels.long(), self.config.n_labels).to(dtype)

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, H, W) in [0, 1] → μ (B, D) and log σ² (B, D); log σ² is None for the AE."""
        out = self.encoder(x, self._onehot(labels, x.shape[0]))
        if not self.config.stochastic:
            return out, None
        mu, logvar = out.chunk(2, dim=1)  # (B, D) each
        return mu, logvar

    def decode(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_invariant: bool = False
    ) -> torch.Tensor:
        """z (B, D) → decoder output (B, C, H, W): logits (Bernoulli) or pre-sigmoid means; for
        pytorch-vae networks, its tanh output (`pixel_means` turns any of them into pixels).
        `batch_invariant`: each row's result is bit-identical to decoding it alone, whatever
        else is in the batch (the server batches concurrent requests and promises same z, same
        bytes)."""
        return self.decoder(z, self._onehot(labels, z.shape[0]), batch_invariant)

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """→ (decoded, μ, log σ², z). z is sampled with `eps` when given (training), else z = μ:
        at evaluation the posterior mean is used, so the same image always lands on the same z."""
        mu, logvar = self.encode(x, labels)
        z = mu if logvar is None or eps is None else reparameterize(mu, logvar, eps)
        return self.decode(z, labels), mu, logvar, z

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs: Any) -> VAE:  # type: ignore[override]
        """The hub mixin's loader, made strict and safetensors-only (its default falls back to
        pickles and tolerates missing tensors). The explorer itself loads folders through
        app.checkpoints, whose errors name each missing or misshapen tensor."""
        from huggingface_hub import hf_hub_download

        if Path(model_id).is_dir():
            file = Path(model_id) / WEIGHTS
        else:  # a hub repo id: only when a user asks for one, never by the app itself
            file = Path(
                hf_hub_download(
                    model_id,
                    WEIGHTS,
                    revision=kwargs.get("revision"),
                    cache_dir=kwargs.get("cache_dir"),
                    local_files_only=kwargs.get("local_files_only", False),
                    token=kwargs.get("token"),
                )
            )
        model = cls(kwargs["config"])
        model.load_state_dict(load_file(str(file)), strict=True)  # safetensors: no code runs
        return model.to(kwargs.get("map_location", "cpu")).eval()

    def pixel_means(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoder output → pixel means in [0, 1] (see the function of the same name)."""
        return pixel_means(self.config, decoded)

    def reconstruction_nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) per image in nats (see decoded_nll)."""
        return decoded_nll(self.config, decoded, x)


def pixel_means(config: ModelConfig, decoded: torch.Tensor) -> torch.Tensor:
    """A decoder's output → pixel means in [0, 1]: the sigmoid of logits or of the Gaussian
    mean, or for pytorch-vae networks their tanh output clamped (it spans [−1, 1], trained
    against pixels in [0, 1])."""
    if config.architecture == "pytorch-vae":
        return decoded.clamp(0.0, 1.0)
    return torch.sigmoid(decoded)


def decoded_nll(config: ModelConfig, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) per image in nats from a decoder's output (B, C, H, W) and x → (B,), under
    the config's likelihood."""
    if config.architecture == "pytorch-vae":
        means = pixel_means(config, decoded)
        return reconstruction_nll_of_means(means, x, config.likelihood, config.gaussian_sigma)
    return reconstruction_nll(decoded, x, config.likelihood, config.gaussian_sigma)
