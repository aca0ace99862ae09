"""Models from a person's own PyTorch code: `latent-explorer serve --plugin package.module:factory`.

The factory is a plain function, as in torch.hub's `hubconf.py`: called with no arguments, it
returns an object that keeps the model interface (app/models/interface.py: `description`,
`encode`, `decode`). A plugin runs code, so it is only ever named by the person who starts the
server, on the command line; nothing in a checkpoint folder can name one.

Before a plugin serves, it is probed the way the explorer will use it: decode two codes, encode
what came back, and check every shape, range and type against its description, so that a
mistake shows up at start-up with what was wrong, not as a 500 on the first slider drag.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import torch

from app.checkpoints import CheckpointError, ModelCard, ServedModel
from app.models.interface import (
    LatentModel,
    ModelDescription,
    NativeModel,
    Posterior,
    describe_config,
    weights_digest,
)
from app.models.priors import PriorError, prior_of
from app.models.vae import VAE

SPEC = re.compile(r"^(?P<module>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):(?P<factory>[A-Za-z_]\w*)$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # a URL path segment, as folder names are


class PluginError(Exception):
    """A plugin that cannot be served, with what is wrong."""


def load_plugin(spec: str) -> ServedModel:
    """Import `package.module`, call `factory()`, probe the model it returns → ServedModel.
    The working directory is importable, as it is for uvicorn's own app (`--app-dir .`)."""
    match = SPEC.match(spec)
    if match is None:
        raise PluginError(
            f"--plugin {spec!r}: expected package.module:factory (e.g. examples.mlp_vae:build)"
        )
    module_name, factory_name = match["module"], match["factory"]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not (module_name == e.name or module_name.startswith(e.name + ".")):
            raise PluginError(f"--plugin {spec}: cannot import {module_name}: {e}") from e
        # the plugin itself was not found (not a module it imports): say where it was looked for
        raise PluginError(
            f"--plugin {spec}: no module {e.name!r} in the working directory ({os.getcwd()}) "
            "or on PYTHONPATH: run from the folder that holds it, or add that folder to "
            "PYTHONPATH"
        ) from e
    except Exception as e:  # noqa: BLE001 - the plugin's own import errors, shown to its author
        raise PluginError(f"--plugin {spec}: cannot import {module_name}: {e}") from e
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise PluginError(f"--plugin {spec}: {module_name} has no function {factory_name}")
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"
        raise PluginError(f"--plugin {spec}: {factory_name}() failed: {error}") from e
    default = module_name.rsplit(".", 1)[-1].replace("_", "-")
    return served_object(model, f"--plugin {spec}", spec, default_name=default)


def served_object(
    model: Any, given: str, source: str, name: str | None = None, default_name: str | None = None
) -> ServedModel:
    """A model object (a factory's, or one handed to `latent_explorer.serve`) probed and named
    → ServedModel. Our own network (a VAE of app.models, as training here makes it) is served
    behind NativeModel, as its checkpoint folder would be. `given` opens every error
    ("--plugin pkg.mod:build"); `source` is recorded in its card. Its name: `name`, else the
    object's own `name`, else `default_name`, else `<dataset>-<kind>` from its description."""
    if isinstance(model, VAE):
        model = NativeModel(model, describe_config(model.config))
    if isinstance(model, torch.nn.Module):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    probe(model, given)
    name = name or getattr(model, "name", None) or default_name or _described_name(model)
    if not isinstance(name, str) or not NAME.match(name):
        raise PluginError(
            f"{given}: the model's name {name!r} must be letters, digits, '.', '_' or '-'"
        )
    card_given = getattr(model, "card", None)
    try:
        card_given = dict(card_given) if isinstance(card_given, dict) else {}
        card = ModelCard.from_json(card_given, given)
        kept = card.source.to_json() if card.source is not None else {}
        card = card.updated(source={**kept, "plugin": source})
    except CheckpointError as e:
        raise PluginError(str(e)) from None
    return ServedModel(name=name, model=model, card=card, digest=_digest(model, source))


def _described(value: Any) -> str:
    """What a value is, in a few words, never its contents: "a tuple of 2 tensors (2, 8) and
    (2, 8)", "a Tensor (2, 16)", "a dict with keys mu, logvar"."""
    if isinstance(value, torch.Tensor):
        return f"a Tensor {tuple(value.shape)}"
    if isinstance(value, tuple | list):
        shapes = [tuple(v.shape) for v in value if isinstance(v, torch.Tensor)]
        if len(shapes) == len(value):
            return (f"a {type(value).__name__} of {len(value)} tensors "
                    f"{', '.join(map(str, shapes))}")  # fmt: skip
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:5])
        return f"a dict with keys {keys}"
    return f"a {type(value).__name__}"


def _described_name(model: LatentModel) -> str:
    """What the model's description says it is, as a URL path segment: "dsprites-vae"."""
    d = model.description
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{d.dataset or 'model'}-{d.kind}").strip("-._")


def _digest(model: Any, spec: str) -> str:
    """sha256 of the plugin's name and, where the model is a torch module, of its weights (so a
    retrained model gets new ETags)."""
    h = hashlib.sha256(spec.encode())
    if isinstance(model, torch.nn.Module):
        h.update(weights_digest(model).encode())
    return h.hexdigest()


@torch.inference_mode()
def probe(model: Any, given: str) -> None:
    """Check that `model` keeps the interface's promises, on two codes; PluginError if not,
    opening with `given` (how the model was named: "--plugin pkg.mod:build")."""

    def fail(what: str) -> PluginError:
        return PluginError(f"{given}: {what}")

    if not isinstance(model, LatentModel):
        raise fail(
            f"{type(model).__name__} does not keep the model interface: it needs description, "
            "encode(x, labels) and decode(z, labels) (see app/models/interface.py)"
        )
    d = model.description
    if not isinstance(d, ModelDescription):
        raise fail(f"description must be an app.models.interface.ModelDescription, got {d!r}")
    labels = torch.tensor([0, d.n_labels - 1]) if d.kind == "cvae" else None
    z = torch.stack([torch.zeros(d.latent_dim), torch.linspace(-2, 2, d.latent_dim)])
    try:
        x = model.decode(z, labels)
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"
        raise fail(f"decode(z) failed on two codes of {d.latent_dim}: {error}") from e
    expected = (2, *d.shape)
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != expected:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise fail(f"decode(z) must give pixel means of shape {expected} (B, C, H, W), got {got}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise fail("decode(z) must give pixel means in [0, 1] (apply the sigmoid to logits)")
    try:
        posterior = model.encode(x.float(), labels)
    except Exception as e:  # noqa: BLE001
        raise fail(f"encode(x) failed on {expected} images: {type(e).__name__}: {e}") from e
    if not isinstance(posterior, Posterior):
        raise fail(
            "encode(x) must return an app.models.interface.Posterior(mean, logvar), got "
            f"{_described(posterior)}"
        )
    if tuple(posterior.mean.shape) != (2, d.latent_dim):
        raise fail(f"encode(x).mean must be (2, {d.latent_dim}), got {tuple(posterior.mean.shape)}")
    if (posterior.logvar is None) != (d.kind == "ae"):
        raise fail(
            "encode(x).logvar must be None for an AE's code and a tensor for a VAE's posterior "
            f"(description.kind is {d.kind!r})"
        )
    if posterior.logvar is not None and posterior.logvar.shape != posterior.mean.shape:
        raise fail("encode(x).logvar must have the shape of its mean")
    if not torch.isfinite(posterior.mean).all():
        raise fail("encode(x).mean is not finite")
    if getattr(model, "prior", None) is not None:
        probe_prior(model, d, fail)


def probe_prior(model: Any, d: ModelDescription, fail: Callable[[str], PluginError]) -> None:
    """A prior the model owns (`model.prior`): one of app.models.priors' (StandardNormal or
    GaussianMixture), over the model's latents, and a VAE's (an AE's code has no prior)."""
    try:
        prior = prior_of(model)
    except PriorError as e:
        raise fail(str(e)) from None
    if d.kind != "vae":
        raise fail(f"prior: only a vae may own a prior (description.kind is {d.kind!r})")
    if prior.latent_dim != d.latent_dim:
        raise fail(f"prior: it has {prior.latent_dim} latents, the model {d.latent_dim}")
