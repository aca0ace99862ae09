"""The model card as one typed record: every shipped card reads and writes back unchanged, older
shapes are upgraded, a card with a field of the wrong type refuses only its own folder (every
other model and page keeps working), and two tools changing one card at once both land."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.checkpoints import CheckpointError, ModelCard, load_checkpoint
from app.checkpoints.card_file import read_card, update_card
from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CARDS = sorted((ROOT / "checkpoints").glob("*/card.json"))


@pytest.mark.parametrize("file", SHIPPED_CARDS, ids=[f.parent.name for f in SHIPPED_CARDS])
def test_every_shipped_card_reads_and_writes_back_the_same_json(file):
    data = json.loads(file.read_text())
    card = ModelCard.from_json(data, file.parent)
    assert card.to_json() == data
    assert card.name == file.parent.name
    assert card.kl == (data.get("kl_per_dim") or [])


def test_an_older_card_is_upgraded_where_it_is_read():
    card = ModelCard.from_json(
        {"license": "MIT", "eval": {"eval_images": 8, "kl_per_dim": [0.5, 0.01]}}
    )
    assert card.licence == "MIT"
    assert card.kl == [0.5, 0.01]
    assert "license" not in card.to_json()


def test_fields_the_card_does_not_know_are_kept_as_they_are():
    data = {
        "name": "m",
        "beta_selection": {"chosen_beta": 8, "sweep": [{"beta": 2}]},
        "metrics": {"digest": "d", "scores": {"mig": {"mean": 0.3, "note": "kept"}}},
    }
    assert ModelCard.from_json(data).to_json() == data
    changed = ModelCard.from_json(data).updated(recipe="β-VAE")
    assert changed.to_json() == {**data, "recipe": "β-VAE"}


def test_an_update_that_would_make_the_card_wrong_is_refused():
    with pytest.raises(CheckpointError, match=r"card.json: steps: must be an integer, got 'many'"):
        ModelCard(name="m").updated(steps="many")


# --- a wrong card at start-up: only its own folder is refused --------------------------------

BROKEN = {
    "metrics-x": {"metrics": "x"},
    "kl-abc": {"kl_per_dim": "abc"},
    "steps-abc": {"steps": "abc"},
    "segments-x": {"segments": "x"},
    "eval-list": {"eval": [1]},
    "mig-text": {"metrics": {"scores": {"mig": {"mean": "high"}}}},
}


@pytest.fixture(scope="module")
def broken_beside_good(trained, tmp_path_factory):
    """The tiny models, and beside them copies of tiny-vae whose card has one wrong field; the
    broken ones sort before the good ones, so a page that reads every card meets them first."""
    root = tmp_path_factory.mktemp("broken-cards")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    for name, wrong in BROKEN.items():
        folder = root / f"a-{name}"
        shutil.copytree(trained["tiny-vae"], folder)
        card = json.loads((folder / "card.json").read_text())
        (folder / "card.json").write_text(json.dumps({**card, **wrong}))
    return root


def test_a_card_with_a_wrong_field_refuses_its_folder_and_every_page_still_works(
    broken_beside_good, caplog
):
    settings = Settings(checkpoints_dir=broken_beside_good, default_model="tiny-vae")
    with caplog.at_level("ERROR"), TestClient(create_app(settings)) as client:
        served = [m["name"] for m in client.get("/api/models").json()]
        assert served == ["tiny-ae", "tiny-cvae", "tiny-vae"]
        for path in ("/", "/map", "/compare", "/models/tiny-vae", "/models/tiny-ae",
                     "/interpolate", "/compress", "/api/models/tiny-vae"):  # fmt: skip
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert client.get("/models/a-metrics-x").status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "app.registry"]
    for name, wrong in BROKEN.items():
        (field,) = wrong
        about = [line for line in lines if f"a-{name}:" in line]
        assert len(about) == 1 and f"card.json: {field}" in about[0], (name, about)
        assert "\n" not in about[0]


# --- two tools changing one card at once --------------------------------------------------------


def test_a_second_change_to_a_card_waits_for_the_first_and_both_land(trained, tmp_path):
    """`label` and `evaluate` each read the card, change it and write it back. Were the second
    allowed to read before the first wrote, it would write the old card back over the first's
    change. Here the first change holds on until the second has either entered its own change
    (the bug) or been kept out of it for a second (the lock)."""
    folder = tmp_path / "m"
    shutil.copytree(trained["tiny-vae"], folder)
    first_inside, second_starting = threading.Event(), threading.Event()
    second_entered = threading.Event()
    overlapped: list[bool] = []

    def first(card: ModelCard) -> ModelCard:
        first_inside.set()
        second_starting.wait(10)
        overlapped.append(second_entered.wait(1.0))  # True: the second got in meanwhile
        return card.updated(latent_names={"3": "scale"})

    def second(card: ModelCard) -> ModelCard:
        second_entered.set()
        return card.updated(metrics={"digest": "d", "seeds": [0], "factors": [], "scores": {}})

    t = threading.Thread(target=update_card, args=(folder, first))
    t.start()
    assert first_inside.wait(10)
    second_starting.set()
    update_card(folder, second)
    t.join(10)
    assert overlapped == [False]
    card = read_card(folder)
    assert card.latent_names == {"3": "scale"} and card.metrics is not None
    assert card.metrics.digest == "d"
    assert load_checkpoint(folder).card.latent_names_by_index() == {3: "scale"}


# --- one of each ----------------------------------------------------------------------------------


def test_the_active_latent_threshold_is_defined_once_beside_the_kl():
    found = [
        (str(p.relative_to(ROOT)), line.strip())
        for p in sorted((ROOT / "app").rglob("*.py"))
        for line in p.read_text().splitlines()
        if re.match(r"\s*ACTIVE_KL\s*=", line)
    ]
    assert found == [("app/models/elbo.py", "ACTIVE_KL = 0.1")]


def test_no_module_reads_the_card_by_string_key():
    """Readers use the card's attributes; only app/checkpoints/card.py sees its JSON."""
    reads = re.compile(r"\bcard\.get\(|\.card\[|\bcard\[\s*[\"'][^\"']*[\"']\](?!\s*=)")
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in sorted((ROOT / "app").rglob("*.py"))
        if p.name != "card.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert found == []
