"""README.md of a checkpoint folder: the card in the few lines a model hub shows, for a model
trained here (one line per training segment) and for one trained elsewhere and imported (where
it came from, and its licence notice in full)."""

from __future__ import annotations

from app.checkpoints.card import Licence, ModelCard
from app.models import ModelConfig

FRONT_MATTER = "---\nlibrary_name: latent-explorer\ntags:\n- vae\n- disentanglement\n{licence}---\n"
TRAINING_FIGURES = (("epochs", "epochs"), ("batch_size", "batch size"),
                    ("learning_rate", "learning rate"), ("seed", "seed"))  # fmt: skip


def model_card_markdown(config: ModelConfig, card: ModelCard) -> str:
    """The README of a model with this config and card."""
    licence = card.licence if isinstance(card.licence, Licence) else None
    mit = licence is not None and licence.name == "MIT"
    lines = [
        FRONT_MATTER.format(licence="license: mit\n" if mit else ""),
        f"# {card.name or 'model'}\n",
    ]
    if card.renamed_from is not None:
        lines.append(
            f"(Shipped as `{card.renamed_from.name}` before; see `renamed_from` in card.json.)\n"
        )
    lines.append(_what_it_is(config, card))
    lines += _imported_lines(card) if card.imported else _trained_lines(card)
    if card.kl:
        on = ""
        if card.eval is not None and card.eval.eval_images:
            on = f" on {card.eval.eval_images:,} images"
        elif card.eval is not None and card.eval.images:
            on = f" on {card.eval.images}"  # e.g. a training log's last epoch
        lines.append(f"- mean KL per latent (nats){on}: {', '.join(f'{v:.2f}' for v in card.kl)}")
    elif not card.imported:
        lines.append("- mean KL per latent (nats): n/a")
    if card.data_licence:
        lines.append(f"- data: {card.data_licence}")
    if card.repaired:
        lines.append(
            "- the training record was repaired after the fact: see `repaired` in card.json"
        )
    lines.append("\n`card.json` holds the full record; `config.json` rebuilds the network.\n")
    lines += _licence_lines(card, licence)
    return "\n".join(lines)


def _what_it_is(config: ModelConfig, card: ModelCard) -> str:
    recipe = card.recipe or "recipe not recorded"
    shape = f"{config.channels}×{config.image_size}×{config.image_size} images"
    if card.imported and card.source is not None:
        by = card.source.repository or "another project"
        if card.source.url:
            by = f"[{by}]({card.source.url})"
        where = f"`{card.source.folder}`" if card.source.folder else "its own files"
        commit = f", commit `{card.source.commit}`" if card.source.commit else ""
        return (
            f"A {config.kind.upper()} with {config.latent_dim} latents for {shape}, trained on "
            f"`{config.dataset}`: {recipe}. Weights from {by} ({where}{commit}), converted to "
            f"latent-explorer's layout by `latent-explorer import` on "
            f"{card.source.imported or 'a day not recorded'}.\n"
        )
    kind = config.kind.upper()
    article = "An" if kind[0] in "AEIOU" else "A"  # "An AE", "A VAE"
    beta = "" if config.kind == "ae" else f"β = {config.beta:g}, "
    return (
        f"{article} {kind} ({beta}objective `{config.objective}`) with {config.latent_dim} "
        f"latents, trained on `{config.dataset}` by latent-explorer: {recipe}.\n"
    )


def _trained_lines(card: ModelCard) -> list[str]:
    lines = []
    init = card.initialised_from
    if init is not None:
        lines.append(
            f"- initialised from: `{init.name}`, weights sha256 `{init.digest or 'not recorded'}`"
        )
    steps = f"{card.steps:,}" if card.steps is not None else "n/a"
    lines.append(
        f"- steps: {steps}, batch: {card.batch_size if card.batch_size is not None else 'n/a'}, "
        f"seed: {card.seed if card.seed is not None else 'n/a'}"
    )
    if card.trained_on:
        lines.append(f"- trained on: {card.trained_on}")
    for s in card.segments:
        shown = "; ".join(f"`{c}`" for c in s.all_commands) or "command not recorded"
        lines.append(
            f"- steps {s.from_step:,}–{s.to_step:,} on {s.device}, "
            f"torch {s.torch or 'not recorded'}: {shown}"
        )
    if not card.segments:
        lines.append(f"- training command: `{card.command or 'n/a'}`")
    return lines


def _imported_lines(card: ModelCard) -> list[str]:
    figures = [(label, getattr(card, key)) for key, label in TRAINING_FIGURES]
    training = ", ".join(f"{label}: {value:g}" for label, value in figures if value is not None)
    lines = [f"- training: {training or 'not recorded'}"]
    if card.source is not None and card.source.model_pt_sha256:
        lines.append(f"- their model.pt: sha256 `{card.source.model_pt_sha256}`")
    return lines


def _licence_lines(card: ModelCard, licence: Licence | None) -> list[str]:
    if licence is None:
        return [f"## Licence\n\n{card.licence}.\n"] if isinstance(card.licence, str) else []
    lines = ["## Licence\n"]
    if licence.text:
        by = card.source.repository if card.source is not None else None
        lines.append(f"The weights come from {by or 'their authors'}, under this notice:\n")
        lines.append("```\n" + licence.text.strip() + "\n```\n")
    else:
        lines.append(f"{licence.note or 'No licence was found with the weights'}.\n")
    return lines


def autoencoder_kl_markdown(card: ModelCard, latent_shape: tuple[int, int, int], side: int) -> str:
    """The README of a diffusers AutoencoderKL folder trained here (`latent-explorer train-kl`)."""
    c, h, w = latent_shape
    lines = [
        "---\nlibrary_name: diffusers\ntags:\n- vae\n- autoencoder-kl\n---\n",
        f"# {card.name or 'model'}\n",
        f"A diffusers `AutoencoderKL` for {side}×{side} images, its latent {c} channels over "
        f"{h}×{w} cells, trained on `{card.dataset}` by latent-explorer: "
        f"{card.recipe or 'recipe not recorded'}.\n",
        *_trained_lines(card),
    ]
    if card.eval is not None and card.eval.neg_elbo is not None:
        lines.append(
            f"- held-out −ELBO: {card.eval.neg_elbo:,} nats over {card.eval.eval_images:,} "
            f"images; {card.eval.active_latents} of {c * h * w} latent values in use"
        )
    lines.append(
        "\n`config.json` and `diffusion_pytorch_model.safetensors` are diffusers' own "
        "(`AutoencoderKL.from_pretrained` loads them); `card.json` holds the full record.\n"
    )
    return "\n".join(lines)
