"""A model saved by pythae (clementchadebec/benchmark_VAE, `model.save(dir)`) as one of our
checkpoint folders (`latent-explorer import pythae SRC`).

pythae writes `model_config.json` (its config class's name and fields), `environment.json`,
`model.pt` (`{"model_state_dict": ...}`) and, for networks other than its default MLP,
`encoder.pkl`/`decoder.pkl` pickled with cloudpickle, which its loader unpickles (running
whatever they hold). Here nothing is unpickled: `model.pt` goes through PyTorch's weights-only
loader, and a folder with pickled networks is refused, naming the classes the pickle refers to
(read from its opcodes with pickletools, never executed) and how to serve such a model instead.

pythae's default networks (pythae.models.nn.default_architectures) are our MLP with one hidden
layer of 512 each way: its encoder's `layers.0.0` is our `dense.0`, its `embedding` and `log_var`
rows are our head's first and last D rows; its decoder's two layers are our `dense.0` and
`dense.2`, and where it ends in a sigmoid ours returns the logits (the served model applies the
sigmoid). Its "bce" loss is our Bernoulli likelihood; its "mse" loss, 0.5·‖x − x̂‖², is a
Gaussian of σ = 1.

Its VAMP model's prior is a VampPrior: the mean of the encoder's posteriors of K pseudo-inputs
u_k = hardtanh₀¹(W e_k + b), its `pseudo_inputs` (a Linear of K inputs, with a bias, then a
Hardtanh to [0, 1]) applied to the identity. The import keeps them as images (K × C × H × W,
our `pseudo_inputs`), so the served model computes the mixture from its own encoder on them.
"""

from __future__ import annotations

import pickletools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from app.checkpoints import Checkpoint
from app.importers import ModelImportError
from app.importers.common import (
    load_state_dict_file,
    output_folder,
    read_source_file,
    read_source_json,
    write_imported,
)
from app.models import VAE, ConfigError, ModelConfig
from app.models.config import MAX_PRIOR_COMPONENTS
from app.quoting import listed

REPOSITORY = "clementchadebec/benchmark_VAE"
URL = "https://github.com/clementchadebec/benchmark_VAE"
CONFIG_FILE = "model_config.json"
ENVIRONMENT_FILE = "environment.json"
WEIGHTS_FILE = "model.pt"
PICKLED = ("encoder.pkl", "decoder.pkl")
MAX_WEIGHTS_BYTES = 256 * 2**20
MAX_JSON_BYTES = 2**20
MAX_PICKLE_BYTES = 512 * 2**20  # cloudpickle keeps the weights in them too: CelebA's ~150 MB
HIDDEN = 512  # pythae's default MLP

# pythae's config class → (its model's name, our objective, the hyperparameters its card keeps)
VARIANTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "VAEConfig": ("VAE", "beta", ()),
    "BetaVAEConfig": ("BetaVAE", "beta", ("beta",)),
    "BetaTCVAEConfig": ("BetaTCVAE", "tcvae", ("alpha", "beta", "gamma", "use_mss")),
    "FactorVAEConfig": ("FactorVAE", "factor", ("gamma",)),
    "IWAEConfig": ("IWAE", "iwae", ("number_samples",)),
    # linear_scheduling_steps: pythae warms the KL's weight up from 0 to 1 over that many
    # epochs (0: none); the model it ends with is scored with weight 1
    "VAMPConfig": ("VAMP", "vamp", ("number_components", "linear_scheduling_steps")),
}
# pythae models the explorer cannot show, refused naming why (none at present)
NOT_HERE: dict[str, str] = {}
# the VAMP model's pseudo-input network: Linear(K, C·H·W) (its bias optional), then Hardtanh
PSEUDO_WEIGHT, PSEUDO_BIAS = "pseudo_inputs.0.weight", "pseudo_inputs.0.bias"
# pythae's benchmark networks (pythae.models.nn.benchmarks.*.convnets and .resnets), which
# model.save() pickles by value: named in the pickle, rebuilt here (app.models.vae.PythaeConv*,
# PythaeResNet*). Their data sets → (its name, the image side the networks are made for); the
# families → (our architecture, in words); each class name → (its benchmark, encoder|decoder)
BENCHMARKS = {"MNIST": ("MNIST", 28), "CIFAR": ("CIFAR", 32), "CELEBA": ("CelebA", 64)}
FAMILIES = {"Conv": ("pythae-conv", "convolutional"), "ResNet": ("pythae-resnet", "ResNet")}
BENCHMARK_CLASSES = {
    name: (f"{family}_{data}", part)
    for data in BENCHMARKS
    for family in FAMILIES
    for name, part in (
        (f"Encoder_{family}_VAE_{data}", "encoder"),
        (f"Decoder_{family}_AE_{data}", "decoder"),
    )
}
BASES = {  # the base class a by-value pickle of each refers to
    "encoder": "pythae.models.nn.base_architectures.BaseEncoder",
    "decoder": "pythae.models.nn.base_architectures.BaseDecoder",
}
# parts of pythae's state dicts that no served model uses: FactorVAE's discriminator
IGNORED = re.compile(r"^discriminator\.")


@dataclass(frozen=True)
class PythaeConfig:
    """What model_config.json says, checked."""

    config_class: str
    channels: int
    image_size: int
    latent_dim: int
    loss: str  # "mse" | "bce"
    hyperparameters: dict[str, Any]
    benchmark: str | None = None  # its benchmark networks: "Conv_MNIST", "ResNet_CELEBA", ...

    @property
    def networks(self) -> str:
        """What its networks are, in words."""
        if self.benchmark is None:
            return "its default MLP networks"
        family, data = self.benchmark.split("_", 1)
        return f"its {BENCHMARKS[data][0]} {FAMILIES[family][1]} benchmark networks"

    @property
    def architecture(self) -> str:
        return "mlp" if self.benchmark is None else FAMILIES[self.benchmark.split("_")[0]][0]


def read_config(src: Path, benchmark: str | None = None) -> PythaeConfig:
    path = src / CONFIG_FILE
    if not path.is_file():
        raise ModelImportError(f"{path}: missing (a pythae model.save() folder has one)")
    return parse_config(read_source_json(path, MAX_JSON_BYTES), str(path), benchmark)


def parse_config(data: Any, path: str, benchmark: str | None = None) -> PythaeConfig:
    """pythae's config fields (model_config.json, or a model's `model_config.to_dict()`),
    checked; `path` names where they came from in the messages; `benchmark` the benchmark
    networks its pickles name (benchmark_networks), where they do."""
    if not isinstance(data, dict):
        raise ModelImportError(f"{path}: not a JSON object")
    name = data.get("name")
    if name in NOT_HERE:
        raise ModelImportError(f"{path}: a pythae {name} cannot be imported: {NOT_HERE[name]}")
    if name not in VARIANTS:
        known = ", ".join(VARIANTS)
        raise ModelImportError(
            f"{path}: name {name!r} is not a pythae model imported here ({known})"
        )
    for flag in ("uses_default_encoder", "uses_default_decoder"):
        if benchmark is not None:
            if data.get(flag) is not False:
                raise ModelImportError(
                    f"{path}: {flag} is {data.get(flag)!r}, but the folder's pickles hold "
                    "pythae's benchmark networks"
                )
        elif data.get(flag) is not True:
            raise ModelImportError(
                f"{path}: {flag} is {data.get(flag)!r}: the model has a network of its own, "
                f"pickled in {PICKLED[0] if 'encoder' in flag else PICKLED[1]}; serve it as a "
                "plugin instead (docs/plugins.md)"
            )
    dims = data.get("input_dim")
    if (
        not isinstance(dims, list | tuple)
        or len(dims) != 3
        or not all(type(d) is int and d > 0 for d in dims)
        or dims[1] != dims[2]
    ):
        raise ModelImportError(
            f"{path}: input_dim must be [channels, side, side] of positive integers, got {dims!r}"
        )
    latent = data.get("latent_dim")
    if type(latent) is not int or latent < 1:
        raise ModelImportError(f"{path}: latent_dim must be a positive integer, got {latent!r}")
    loss = data.get("reconstruction_loss")
    if loss not in ("mse", "bce"):
        raise ModelImportError(f"{path}: reconstruction_loss must be mse or bce, got {loss!r}")
    if benchmark is not None:
        data_set, side = BENCHMARKS[benchmark.split("_", 1)[1]]
        made_for = [1 if side == 28 else 3, side, side]
        if list(dims) != made_for:
            raise ModelImportError(
                f"{path}: input_dim is {list(dims)}, but pythae's {data_set} benchmark "
                f"networks take {made_for}"
            )
    kept = VARIANTS[name][2]
    hyper = {k: data.get(k) for k in kept}
    if name == "VAMPConfig":
        k = hyper["number_components"]
        if type(k) is not int or not 1 <= k <= MAX_PRIOR_COMPONENTS:
            raise ModelImportError(
                f"{path}: number_components must be an integer in 1..{MAX_PRIOR_COMPONENTS}, "
                f"got {k!r}"
            )
    return PythaeConfig(name, dims[0], dims[1], latent, loss, hyper, benchmark)


def benchmark_networks(src: Path) -> str | None:
    """Which of pythae's benchmark networks the folder's pickled encoder and decoder are, by the
    class names their opcodes refer to (read, never executed): "Conv_MNIST", "ResNet_CIFAR", …;
    None where there are no pickles (pythae's default networks). Any other pickled network is
    refused, naming the classes it refers to."""
    found: dict[str, list[str]] = {}
    for file in PICKLED:
        path = src / file
        if path.exists() or path.is_symlink():
            found[file] = pickled_classes(read_source_file(path, MAX_PICKLE_BYTES))
    if not found:
        return None
    suffixes = set()
    for file, names in found.items():
        part = "encoder" if file == PICKLED[0] else "decoder"
        known = BENCHMARK_CLASSES.get(names[0]) if names else None
        if known is not None and known[1] == part and BASES[part] in names:
            suffixes.add(known[0])
            continue
        which = f" ({listed(names)})" if names else ""
        raise ModelImportError(
            f"{src / file}: a network of the model's own{which}, pickled with cloudpickle: "
            "loading it would run its code, so it is never unpickled. Serve the model as a "
            "plugin instead (docs/plugins.md), with its network defined in your own module"
        )
    if len(found) != 2 or len(suffixes) != 1:
        got = ", ".join(f"{f}: {found[f][0]}" for f in found)
        raise ModelImportError(
            f"{src}: the encoder and decoder must be one pair of pythae's benchmark networks "
            f"(Encoder_F_VAE_X and Decoder_F_AE_X), got {got}"
        )
    return suffixes.pop()


def pickled_classes(data: bytes) -> list[str]:
    """The classes a (cloud)pickle builds, by name, from its opcodes alone: the globals it
    imports (module.name) outside the pickling machinery, and the class names it rebuilds by
    value (cloudpickle's _make_skeleton_class). Best effort: a malformed pickle gives what was
    read before the damage."""
    found: list[str] = []
    strings: list[str] = []
    skeleton_at: int | None = None
    plumbing = ("builtins", "copyreg", "cloudpickle", "torch", "collections", "_codecs", "numpy")
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
                if skeleton_at is not None and len(strings) - skeleton_at <= 3:
                    if re.fullmatch(r"[A-Z][A-Za-z0-9_]*", str(arg)) and str(arg) not in found:
                        found.append(str(arg))
            elif op.name in ("GLOBAL", "STACK_GLOBAL"):
                if op.name == "GLOBAL":
                    module, _, name = str(arg).partition(" ")
                elif len(strings) >= 2:
                    module, name = strings[-2], strings[-1]
                else:
                    continue
                if name == "_make_skeleton_class":
                    skeleton_at = len(strings)
                elif (
                    re.fullmatch(r"[A-Za-z_][\w.]*", module)
                    and not module.startswith(plumbing)
                    and not name.startswith("_")  # cloudpickle's own helpers
                    and f"{module}.{name}" not in found
                ):
                    found.append(f"{module}.{name}")
    except Exception:  # noqa: BLE001, S110 - damage ends the reading, not the refusal
        pass
    return found


def convert_state_dict(
    theirs: dict[str, Any], config: ModelConfig, where: str
) -> dict[str, torch.Tensor]:
    """pythae's networks' tensors under our names, every name and shape checked; a VAMP model's
    pseudo-input network as the images it makes (pseudo_inputs)."""
    state = {k: v for k, v in theirs.items() if not IGNORED.match(k)}
    prior: dict[str, torch.Tensor] = {}
    if config.prior == "vamp":
        prior = {"pseudo_inputs": pseudo_inputs(state, config, where)}
        state = {k: v for k, v in state.items() if k not in (PSEUDO_WEIGHT, PSEUDO_BIAS)}
    if config.architecture in ("pythae-conv", "pythae-resnet"):  # named as pythae's
        return _checked(
            state | prior, VAE(config).state_dict(), where, "pythae's benchmark networks"
        )
    needed = {
        "encoder.layers.0.0.weight",
        "encoder.layers.0.0.bias",
        "encoder.embedding.weight",
        "encoder.embedding.bias",
        "encoder.log_var.weight",
        "encoder.log_var.bias",
        "decoder.layers.0.0.weight",
        "decoder.layers.0.0.bias",
        "decoder.layers.1.0.weight",
        "decoder.layers.1.0.bias",
    }
    missing, extra = sorted(needed - set(state)), sorted(set(state) - needed)
    if missing or extra:
        parts = ([f"missing {listed(missing)}"] if missing else []) + (
            [f"not of pythae's default networks: {listed(extra)}"] if extra else []
        )
        raise ModelImportError(f"{where}: {'; '.join(parts)}")
    ours = {
        "encoder.dense.0.weight": state["encoder.layers.0.0.weight"],
        "encoder.dense.0.bias": state["encoder.layers.0.0.bias"],
        "encoder.head.weight": torch.cat(
            [state["encoder.embedding.weight"], state["encoder.log_var.weight"]]
        ),
        "encoder.head.bias": torch.cat(
            [state["encoder.embedding.bias"], state["encoder.log_var.bias"]]
        ),
        "decoder.dense.0.weight": state["decoder.layers.0.0.weight"],
        "decoder.dense.0.bias": state["decoder.layers.0.0.bias"],
        "decoder.dense.2.weight": state["decoder.layers.1.0.weight"],
        "decoder.dense.2.bias": state["decoder.layers.1.0.bias"],
    }
    return _checked(ours | prior, VAE(config).state_dict(), where, "pythae's default networks")


def pseudo_inputs(state: dict[str, Any], config: ModelConfig, where: str) -> torch.Tensor:
    """A VAMP model's K pseudo-inputs as images (K, C, H, W): pythae's
    `hardtanh(Linear(K, C·H·W)(I_K), 0, 1)`, row k being hardtanh(W[:, k] + b), in float64 and
    then rounded once to float32, the weight (C·H·W, K) and bias (C·H·W,) checked first."""
    k, shape = config.prior_components, (config.channels, config.image_size, config.image_size)
    pixels = shape[0] * shape[1] * shape[2]
    weight, bias = state.get(PSEUDO_WEIGHT), state.get(PSEUDO_BIAS, torch.zeros(pixels))
    if not isinstance(weight, torch.Tensor):
        raise ModelImportError(f"{where}: missing {PSEUDO_WEIGHT} (a VAMP model's pseudo-inputs)")
    for name, value, want in ((PSEUDO_WEIGHT, weight, (pixels, k)), (PSEUDO_BIAS, bias, (pixels,))):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != want:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ModelImportError(
                f"{where}: {name} has shape {got}, but model_config.json's input_dim and "
                f"number_components make it {want}"
            )
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise ModelImportError(f"{where}: {name} holds NaN or infinite values")
    images = torch.clamp(weight.double().T + bias.double(), 0.0, 1.0)  # (K, C·H·W)
    return images.reshape(k, *shape).float()


def _checked(
    state: dict[str, Any], expected: dict[str, torch.Tensor], where: str, what: str
) -> dict[str, torch.Tensor]:
    """`state` held to `expected`'s names and shapes (and finite), as float32 where float."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = ([f"missing {listed(missing)}"] if missing else []) + (
            [f"not of {what}: {listed(extra)}"] if extra else []
        )
        raise ModelImportError(f"{where}: {'; '.join(parts)}")
    for key, want in expected.items():
        value = state[key]
        if tuple(value.shape) != tuple(want.shape):
            raise ModelImportError(
                f"{where}: {key} has shape {tuple(value.shape)}, but model_config.json's sizes "
                f"make it {tuple(want.shape)}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ModelImportError(f"{where}: {key} holds NaN or infinite values")
    return {k: state[k].to(want.dtype) for k, want in expected.items()}


def our_config(pythae: PythaeConfig, dataset: str, where: str) -> ModelConfig:
    """Our config of the VAE that pythae's networks (its default MLP, or a benchmark's) are."""
    beta = pythae.hyperparameters.get("beta", 1.0)
    likelihood: dict[str, Any] = (  # 0.5·‖x − x̂‖²: a Gaussian of σ = 1
        {"likelihood": "bernoulli"}
        if pythae.loss == "bce"
        else {"likelihood": "gaussian", "gaussian_sigma": 1.0}
    )
    try:
        return ModelConfig(
            kind="vae",
            latent_dim=pythae.latent_dim,
            beta=float(beta) if isinstance(beta, int | float) else 1.0,
            objective=VARIANTS[pythae.config_class][1],
            channels=pythae.channels,
            image_size=pythae.image_size,
            dataset=dataset,
            **likelihood,
            **(
                {"prior": "vamp", "prior_components": pythae.hyperparameters["number_components"]}
                if pythae.config_class == "VAMPConfig"
                else {}
            ),
            **(
                {"hidden_dim": HIDDEN, "hidden_layers": 1, "architecture": "mlp"}
                if pythae.benchmark is None
                else {"architecture": pythae.architecture}
            ),
        )
    except ConfigError as e:
        raise ModelImportError(f"{where}: {e}") from e


def is_pythae_model(obj: Any) -> bool:
    """Whether `obj` is a pythae model object (a module with a pythae model_config)."""
    config = getattr(obj, "model_config", None)
    return isinstance(obj, torch.nn.Module) and type(config).__module__.startswith("pythae.")


def network_of(obj: Any, dataset: str = "unknown") -> VAE:
    """A pythae model object held in memory (a notebook's) as our VAE, converted as an import
    converts its folder; its weights copied, the object left as it is."""
    where = f"{type(obj).__name__}.model_config"
    to_dict = getattr(obj.model_config, "to_dict", None)
    data = to_dict() if callable(to_dict) else None
    classes = [type(getattr(obj, part, None)) for part in ("encoder", "decoder")]
    known = [
        BENCHMARK_CLASSES.get(c.__name__)
        if c.__module__.startswith("pythae.models.nn.benchmarks.")
        else None
        for c in classes
    ]
    benchmark = None
    if known[0] and known[1] and known[0][0] == known[1][0] and known[0][1] == "encoder":
        benchmark = known[0][0]
    pythae = parse_config(data, where, benchmark)
    config = our_config(pythae, dataset, where)
    state = {k: v.detach().cpu() for k, v in obj.state_dict().items()}
    model = VAE(config)
    model.load_state_dict(convert_state_dict(state, config, f"{type(obj).__name__}'s weights"))
    return model.eval()


def import_pythae(
    src: Path,
    out: Path | None = None,
    *,
    name: str | None = None,
    dataset: str = "unknown",
    checkpoints_dir: Path = Path("checkpoints"),
    command: str | None = None,
) -> Checkpoint:
    """Convert pythae's `model.save()` folder `src` into our checkpoint folder `out` (default
    `checkpoints_dir/NAME`, NAME `name` or pythae-<model>-<folder>) and load it back. A folder
    that exists at `out` is refused; on any error nothing is written."""
    src = Path(src)
    if not src.is_dir():
        raise ModelImportError(f"{src}: no such folder (expected a pythae model.save() folder)")
    pythae = read_config(src, benchmark_networks(src))
    model_name, objective, _ = VARIANTS[pythae.config_class]
    name, out = output_folder(
        name, out, checkpoints_dir, lambda: f"pythae-{model_name.lower()}-{src.resolve().name}"
    )
    weights = src / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelImportError(f"{weights}: missing (a pythae model.save() folder has one)")
    saved, digest = _read_weights(weights)
    config = our_config(pythae, dataset, str(src / CONFIG_FILE))
    model = VAE(config)
    model.load_state_dict(convert_state_dict(saved, config, str(weights)), strict=True)
    model.eval()
    environment = src / ENVIRONMENT_FILE
    versions = read_source_json(environment, MAX_JSON_BYTES) if environment.is_file() else None
    card: dict[str, Any] = {
        "name": name,
        "recipe": f"pythae {model_name}, {pythae.networks}; trained with pythae, imported",
        "objective": {
            "objective": objective,
            "pythae_model": model_name,
            "reconstruction_loss": pythae.loss,
            **{k: v for k, v in pythae.hyperparameters.items() if v is not None},
        },
        "dataset": dataset,
        "source": {
            "repository": REPOSITORY,
            "url": URL,
            "folder": src.resolve().name,
            "imported": datetime.now(UTC).date().isoformat(),
            "model_pt_sha256": digest,
            **({"environment": versions} if isinstance(versions, dict) else {}),
        },
    }
    if command:
        card["command"] = command
    return write_imported(out, model, card)


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """model.pt: {"model_state_dict": {name: tensor}}, read by the weights-only loader."""
    return load_state_dict_file(
        path, MAX_WEIGHTS_BYTES, 'pythae\'s model.pt, {"model_state_dict": tensors}',
        inside="model_state_dict",
    )  # fmt: skip
