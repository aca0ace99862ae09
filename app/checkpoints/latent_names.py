"""Names for a model's latents ("skin colour"), kept in its card.json as
`"latent_names": {"3": "skin colour"}` (the latent's index as a string → its name; an unnamed
latent is absent) and written by `latent-explorer label`.

A name is shown on the pages (HTML, escaped by Jinja) and inside the SVG figures (escaped by
app.studies.svg), so escaping already makes any text safe to show; the rules here keep names
short and plain so that they read the same everywhere: at most MAX_NAME_LENGTH characters, no
control, format or line-separator characters (a right-to-left override would make a name
display as another), and no `<` or `>` (they have no business in a name and are what markup
injection starts with). Surrounding white space is trimmed; an empty name removes one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from app.checkpoints import CheckpointError, read_config
from app.checkpoints.card import ModelCard
from app.checkpoints.card_file import read_card, update_card
from app.models.vae import WEIGHTS
from app.quoting import quoted

CARD_FIELD = "latent_names"
MAX_NAME_LENGTH = 40  # characters: fits beside a slider at two lines
_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


class LatentNameError(ValueError):
    """A name, an index or a folder that `label` refuses, with what is wrong."""


def check_name(name: str) -> str:
    """The name as it will be stored (trimmed), or LatentNameError saying what is wrong."""
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise LatentNameError(
            f"name {quoted(name)} is {len(name):,} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    for ch in name:
        if ch in "<>":
            raise LatentNameError(f"name {name!r} contains {ch!r}; names may not contain < or >")
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            what = unicodedata.name(ch, "")
            raise LatentNameError(
                f"name {name!r} contains the control character U+{ord(ch):04X}"
                + (f" ({what})" if what else "")
            )
    return name


def parse_assignments(items: Sequence[str], latent_dim: int) -> dict[int, str]:
    """["3=skin colour", "9="] → {3: "skin colour", 9: ""} for a model with `latent_dim`
    latents; "" removes a name. Raises LatentNameError for the first item that is not
    INDEX=NAME, an index that is not an integer in 0..latent_dim−1, one given twice, or a name
    that check_name refuses."""
    out: dict[int, str] = {}
    for item in items:
        index, eq, name = item.partition("=")
        if not eq:
            raise LatentNameError(f'{quoted(item)}: expected INDEX=NAME, e.g. 3="skin colour"')
        index = index.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", index):
            raise LatentNameError(
                f"{quoted(item)}: the latent index {quoted(index)} is not an integer"
            )
        i = int(index)
        if not 0 <= i < latent_dim:
            raise LatentNameError(
                f"{quoted(item)}: latent {i} is out of range; this model has {latent_dim} latents "
                f"(0..{latent_dim - 1})"
            )
        if i in out:
            raise LatentNameError(f"{quoted(item)}: latent {i} is named twice")
        try:
            out[i] = check_name(name)
        except LatentNameError as e:
            raise LatentNameError(f"latent {i}: {e}") from None
    return out


def _latent_dim(folder: Path) -> int:
    """The model's latent size, from config.json, for a folder that is a checkpoint."""
    if not folder.is_dir():
        raise LatentNameError(f"{folder}: no such folder")
    if not (folder / "config.json").exists() or not (folder / WEIGHTS).exists():
        raise LatentNameError(
            f"{folder}: not a checkpoint folder (it needs config.json and {WEIGHTS})"
        )
    try:
        return read_config(folder).latent_dim
    except CheckpointError as e:
        raise LatentNameError(str(e)) from None


def read_names(folder: Path) -> tuple[int, dict[int, str]]:
    """(latent size, the names in folder/card.json) of a checkpoint folder."""
    folder = Path(folder)
    latent_dim = _latent_dim(folder)
    try:
        return latent_dim, read_card(folder).latent_names_by_index()
    except CheckpointError as e:
        raise LatentNameError(str(e)) from None


def label_latents(
    folder: Path, assignments: Sequence[str] = (), clear: bool = False
) -> tuple[int, dict[int, str]]:
    """Name latents of the checkpoint at `folder` ("3=skin colour"; "3=" removes a name), after
    removing every name if `clear`, and write them into its card.json atomically; every other
    field of the card, the weights, config.json and README.md stay as they were. Everything is
    checked before anything is written: a LatentNameError leaves the folder untouched.
    → (latent size, the names now in the card)."""
    folder = Path(folder)
    latent_dim, names = read_names(folder)
    given = parse_assignments(assignments, latent_dim)

    def renamed(old: dict[int, str]) -> dict[int, str]:
        new = {**({} if clear else old), **given}
        return {i: n for i, n in sorted(new.items()) if n}

    if renamed(names) == names:
        return latent_dim, names  # nothing changes: the card is not rewritten

    def rename(card: ModelCard) -> ModelCard:
        new = renamed(card.latent_names_by_index())
        return card.updated(latent_names={str(i): n for i, n in new.items()} if new else None)

    try:
        card = update_card(folder, rename)
    except CheckpointError as e:
        raise LatentNameError(str(e)) from None
    return latent_dim, card.latent_names_by_index()
