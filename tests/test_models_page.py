"""/models: every shipped model in one table, sortable by any figure; the figures are the cards'
own, read here straight from each card.json (not through the app's typed card)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.name for p in (ROOT / "checkpoints").iterdir() if (p / "card.json").is_file())
ROW = re.compile(r'<tr data-model="([^"]+)">(.*?)</tr>', re.S)
CELL = re.compile(r'<td class="[^"]*" data-key="([a-z_]+)"[^>]*>([^<]*)</td>')


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(checkpoints_dir=ROOT / "checkpoints"))) as c:
        yield c


def table(client: TestClient, query: str = "") -> list[tuple[str, dict[str, str]]]:
    page = client.get(f"/models{query}")
    assert page.status_code == 200, page.text[:300]
    return [(name, dict(CELL.findall(body))) for name, body in ROW.findall(page.text)]


def card(name: str) -> dict:
    return json.loads((ROOT / "checkpoints" / name / "card.json").read_text())


def mig(name: str) -> float | None:
    scores = (card(name).get("metrics") or {}).get("scores") or {}
    return scores["mig"]["mean"] if "mig" in scores else None


def test_every_shipped_model_is_a_row_with_its_data_set_and_latent_count(client):
    rows = table(client)
    assert [name for name, _ in rows] == SHIPPED  # by name, the default order
    for name, cells in rows:
        config = json.loads((ROOT / "checkpoints" / name / "config.json").read_text())
        if config.get("_class_name") == "AutoencoderKL":  # diffusers' config; the card names data
            side = config["sample_size"] // 2 ** (len(config["block_out_channels"]) - 1)
            config = {"dataset": card(name)["dataset"],
                      "latent_dim": config["latent_channels"] * side * side}  # fmt: skip
        assert cells["dataset"] == config["dataset"]
        assert cells["latents"] == str(config["latent_dim"])


def test_sorting_by_mig_puts_the_highest_first_and_models_without_it_last(client):
    rows = table(client, "?sort=mig")
    known = sorted((n for n in SHIPPED if mig(n) is not None), key=lambda n: -mig(n))
    assert len(known) >= 10  # the dSprites and colour-scene models are scored
    assert [n for n, _ in rows][: len(known)] == known
    assert all(cells["mig"] == "" for _, cells in rows[len(known) :])
    for name, cells in rows[: len(known)]:
        assert cells["mig"] == f"{mig(name):.3f}"
    # the heading's link reverses it; blanks stay last
    rows = table(client, "?sort=mig&order=asc")
    assert [n for n, _ in rows][: len(known)] == known[::-1]


def test_the_likelihood_bound_is_the_test_splits_and_sorts_highest_first(client):
    rows = table(client, "?sort=bound")
    bounds = {n: card(n)["test_split"]["bound"]["mean"] for n in SHIPPED if "test_split" in card(n)}
    assert set(bounds) >= {"fashion-vae", "fashion-beta-vae", "fashion-cvae"}
    top = [n for n, _ in rows][: len(bounds)]
    assert top == sorted(bounds, key=lambda n: -bounds[n])
    assert dict(rows)["fashion-vae"]["bound"] == f"{bounds['fashion-vae']:.1f}"


def test_a_column_that_does_not_exist_is_refused_by_name(client):
    r = client.get("/models?sort=loudness")
    assert r.status_code == 422
    assert "loudness" in r.text


def test_every_dsprites_model_shows_the_librarys_scores_beside_ours(client):
    cells = dict(table(client))
    def dataset(name: str) -> str | None:
        return json.loads((ROOT / "checkpoints" / name / "config.json").read_text()).get("dataset")

    dsprites = [n for n in SHIPPED if dataset(n) == "dsprites"]
    assert len(dsprites) >= 10  # ours and the imported disentangling-vae models
    for name in dsprites:
        scores = card(name)["metrics"]["scores"]
        for column, key in (("dci", "dci_disentanglement"), ("dci_et", "dci_et_disentanglement"),
                            ("sap", "sap"), ("sap_tree", "sap_tree")):  # fmt: skip
            assert key in scores, (name, key)  # every card carries both
            assert cells[name][column] == f"{scores[key]['mean']:.3f}", (name, column)
    page = client.get("/models").text
    assert (
        'title="DCI disentanglement over the ground-truth factors, as disentanglement_lib' in page
    )
    assert ">DCI D (extra trees)<" in page and "not to be set beside published figures" in page
