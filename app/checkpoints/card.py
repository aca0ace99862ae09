"""The model card (card.json) as one typed record: how a model was made and what it does.

A card is read and checked once, where its folder is loaded (`ModelCard.from_json`, which also
upgrades the shapes older cards have), and written by one `to_json`; every reader in between
uses attributes that mypy checks. A field of the wrong type refuses the folder with one line
naming the field (`"metrics": "x"` → "card.json: metrics: must be an object, got 'x'"), so a
card edited by hand never reaches a page as something it is not.

Cards grow: fields this module does not know are kept as they are (each record allows extras)
and written back unchanged; free-form settings (the objective's, a VAE-GAN's, a β sweep's) are
JSON values, shown as rows.

The tools that add to a card after training (`evaluate`, `label`) change it through
app.checkpoints.card_file, under a lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from app.checkpoints.files import CheckpointError
from app.quoting import first_problem

UNRECORDED = "not recorded"  # what a card says of a device or version it did not see


class _Record(BaseModel):
    """A part of a card: types checked strictly (a string is never read as a number), fields
    it does not know kept as they are."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The record as card.json holds it: the fields it was given, nothing added."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Segment(_Record):
    """One start or resumption of a training run (or several a repaired record cannot split)."""

    from_step: int = Field(ge=0)
    to_step: int = Field(ge=0)
    device: str | None = None
    wall_time_s: float | None = None
    command: str | None = None
    commands: list[str] = []  # where one segment holds several commands
    torch: str | None = None
    note: str | None = None

    @property
    def all_commands(self) -> list[str]:
        return list(self.commands) or ([self.command] if self.command else [])


class CodePercentiles(_Record):
    """Where the codes lie over data (an AE has no prior: its sliders span these)."""

    percentiles: list[float]
    lo: list[float]
    hi: list[float]


class Evaluation(_Record):
    """The held-out figures saved with the weights (app.checkpoints.evaluation)."""

    eval_images: int | None = None
    recon_nll: float | None = None
    kl_per_dim: list[float] | None = None
    kl_total: float | None = None
    neg_elbo: float | None = None
    active_latents: int | None = None
    code_percentiles: CodePercentiles | None = None
    seed: int | None = None
    images: str | None = None  # what the images were, where not our own held-out stream


class Score(_Record):
    """One disentanglement score over evaluation seeds."""

    mean: float
    std: float = 0.0
    values: list[float] = []
    settings: str = ""


class Metrics(_Record):
    """What `latent-explorer evaluate` wrote: scores on the weights with this digest."""

    step: int | None = None
    digest: str = ""
    seeds: list[int] = []
    factors: list[str] = []
    scores: dict[str, Score] = {}
    mi_matrix: list[list[float]] = []
    wall_time_s: float | None = None


class Estimate(_Record):
    """A likelihood figure over a test split: mean and standard error, in nats."""

    mean: float
    se: float | None = None
    bits_per_dim: float | None = None
    bits_per_dim_se: float | None = None
    reconstruction: float | None = None
    kl: float | None = None
    estimator: str | None = None


class Probe(_Record):
    """A linear probe's held-out accuracy over folds."""

    mean: float
    std: float | None = None
    values: list[float] = []
    converged: bool = True
    chosen_c: list[float] | None = None


class TestSplitScores(_Record):
    """What `latent-explorer evaluate` wrote for a model with a test split (likelihood and
    probes)."""

    __test__ = False  # not a pytest class, whatever its name

    dataset: str | None = None
    split: str | None = None
    images: int | None = None
    split_size: int | None = None
    subset: str | None = None
    step: int | None = None
    digest: str = ""
    likelihood: str | None = None
    binarisation_seed: int | None = None
    sampling_seed: int | None = None
    k: int | None = None
    dims: int | None = None
    dims_note: str | None = None
    elbo: Estimate | None = None
    bound: Estimate | None = None
    conditioning: str | None = None
    probe: Probe | None = None
    probe_pixels: Probe | None = None
    probe_settings: str | None = None
    chance: float | None = None
    torch_threads: int | None = None
    wall_time_s: float | None = None
    date: str | None = None


class Parent(_Record):
    """The checkpoint a run was initialised from."""

    name: str | None = None
    path: str | None = None
    digest: str | None = None
    recipe: str | None = None
    steps: int | None = None


class Repair(_Record):
    """A change made to the record after the fact, and what it was made from."""

    date: str = ""
    what: str = ""
    from_: str = Field(default="", alias="from")


class Renamed(_Record):
    name: str
    why: str = ""
    run_dir: str | None = None


class Source(_Record):
    """Where a model trained elsewhere came from (an import, or a plugin)."""

    repository: str | None = None
    url: str | None = None
    commit: str | None = None
    folder: str | None = None
    experiment: str | None = None
    imported: str | None = None
    model_pt_sha256: str | None = None
    plugin: str | None = None


class Licence(_Record):
    name: str | None = None
    copyright: list[str] = []
    text: str | None = None
    file: str | None = None
    note: str | None = None


class Denoising(_Record):
    noises: list[str] = []
    max_level: dict[str, float] = {}


class ModelCard(_Record):
    """card.json. Every field may be absent (a plugin's card is empty; an imported model has no
    training segments); readers take what is there."""

    name: str | None = None
    command: str | None = None  # how the run began; resumptions follow in `commands`
    commands: list[str] = []
    recipe: str | None = None
    objective: dict[str, JsonValue] = {}  # the objective's settings, shown as rows
    dataset: str | None = None
    steps: int | None = Field(default=None, ge=0)
    target_steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    images_seen: int | None = None
    seed: int | None = None
    world_size: int | None = None
    device: str | None = None  # the last segment's
    segments: list[Segment] = []
    trained_on: str | None = None
    wall_time_s: float | None = None
    torch: str | None = None
    final_train_loss: dict[str, int | float | None] | None = None  # a step stays an integer
    eval: Evaluation | None = None
    kl_per_dim: list[float] | None = None  # mean KL per latent over held-out data, nats
    active_latents: int | None = None
    run_dir: str | None = None
    initialised_from: Parent | None = None
    metrics: Metrics | None = None
    test_split: TestSplitScores | None = None
    repaired: list[Repair | str] = []
    renamed_from: Renamed | None = None
    latent_names: dict[str, str] = {}  # "3" → "skin colour" (app.checkpoints.latent_names)
    source: Source | None = None
    licence: Licence | str | None = None
    data_licence: str | None = None
    denoising: Denoising | None = None
    vaegan: dict[str, JsonValue] | None = None
    rank_weight_digests: list[str] = []

    # --- reading and writing ------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: Any, where: str | Path = "a model") -> ModelCard:
        """A card from its parsed JSON, older shapes upgraded; CheckpointError in one line
        naming the first field that is wrong (and how many more are). `where` is the folder
        (or what else) the card belongs to, for the message."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: card.json must be a JSON object")
        try:
            return cls.model_validate(_upgraded(data))
        except ValidationError as e:
            raise CheckpointError(f"{where}: card.json: {first_problem(e, 'card')}") from None

    def updated(self, **fields: Any) -> ModelCard:
        """A copy with `fields` replaced (records or their JSON), checked again as a whole;
        a field given None is removed."""
        data = self.to_json()
        for key, value in fields.items():
            if value is None:
                data.pop(key, None)
            elif isinstance(value, _Record):
                data[key] = value.to_json()
            else:
                data[key] = value
        return ModelCard.from_json(data)

    # --- what readers ask -----------------------------------------------------------------------

    @property
    def imported(self) -> bool:
        """Trained elsewhere and converted (`latent-explorer import`)."""
        return self.source is not None and self.source.plugin is None

    @property
    def kl(self) -> list[float]:
        """Mean KL per latent, [] where the card has none (an AE, a plugin, a model whose data
        is not here)."""
        return list(self.kl_per_dim or [])

    @property
    def code_percentiles(self) -> CodePercentiles | None:
        return self.eval.code_percentiles if self.eval is not None else None

    @property
    def all_commands(self) -> list[str]:
        return list(self.commands) or ([self.command] if self.command else [])

    def latent_names_by_index(self) -> dict[int, str]:
        """The named latents, by index, in index order."""
        found = {int(k): v for k, v in self.latent_names.items() if k.isdigit() and v}
        return dict(sorted(found.items()))


def _upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """The shapes older cards have, in today's: "license" (before the card spelled it as the
    rest of the project does) → "licence"; a card whose KL per latent was kept only inside its
    evaluation gets it at the top, where readers look."""
    data = dict(data)
    if "license" in data and "licence" not in data:
        data["licence"] = data.pop("license")
    ev = data.get("eval")
    if "kl_per_dim" not in data and isinstance(ev, dict) and "kl_per_dim" in ev:
        data["kl_per_dim"] = ev["kl_per_dim"]
    return data
