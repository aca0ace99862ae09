"""A served model of ground-truth data whose card lacks disentanglement_lib's scores gets them
from the server's background: a 202 saying where they stand while the boosted trees grow (never
computed in the request), then the numbers `latent-explorer evaluate` writes for its first seed;
the card page shows them. A card that has them answers from the card; a model without ground
truth is a 404 saying why."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from app.checkpoints import load_checkpoint
from app.main import create_app
from app.metrics.evaluate import EvaluationSettings, evaluate
from app.settings import Settings
from app.studies.reference_scores import REFERENCE, ReferenceSettings
from app.studies.set_scores import score_jobs
from app.web.reference_scores import get_reference_settings
from tests.eight_latent_plugin import served_plugin

SMALL = ReferenceSettings(points=100, test_points=50)


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    shutil.copytree(trained["tiny-vae"], root / "checkpoints" / "tiny-vae")
    settings = Settings(checkpoints_dir=root / "checkpoints", cache_dir=root / "cache")
    app = create_app(settings)
    app.dependency_overrides[get_reference_settings] = lambda: SMALL
    with TestClient(app, base_url="http://localhost") as client:
        yield client, settings, root


def test_the_background_computes_what_evaluate_writes_for_its_first_seed(served):
    client, settings, root = served
    page = client.get("/models/tiny-vae").text
    assert 'hx-get="/ui/tiny-vae/reference-scores"' in page  # the card lacks them: asked for
    first = client.get("/api/models/tiny-vae/reference-scores")
    assert first.status_code == 202 and first.headers["retry-after"] == "5"
    assert first.json()["status"] == "computing" and first.json()["scores"] is None
    score_jobs(settings.cache_dir).join(600)  # the background thread, not the request, computes
    done = client.get("/api/models/tiny-vae/reference-scores")
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["source"] == "background" and body["seed"] == 0 and body["points"] == 100
    ckpt = load_checkpoint(root / "checkpoints" / "tiny-vae").served()
    expected = evaluate(ckpt, EvaluationSettings(seeds=(0,), points=100, test_points=50,
                                                 only=REFERENCE), progress=False)  # fmt: skip
    assert set(body["scores"]) == set(REFERENCE)
    for key in REFERENCE:
        assert body["scores"][key]["value"] == pytest.approx(
            expected["scores"][key]["mean"], abs=1e-4
        ), key
    assert "GradientBoostingClassifier" in body["scores"]["dci_disentanglement"]["settings"]
    # the card page's fragment shows them, under the papers' names
    fragment = client.get("/ui/tiny-vae/reference-scores").text
    assert f"{body['scores']['dci_disentanglement']['value']:.3f}" in fragment
    assert "DCI disentanglement" in fragment and "hx-trigger" not in fragment  # done: no polling


def test_a_card_with_the_librarys_scores_answers_from_the_card(served, trained, tmp_path):
    client, settings, root = served
    folder = tmp_path / "checkpoints" / "tiny-vae"
    shutil.copytree(trained["tiny-vae"], folder)
    from app.metrics.evaluate import evaluate_checkpoint

    few = EvaluationSettings(seeds=(0,), points=100, test_points=50, only=REFERENCE)
    evaluate_checkpoint(folder, few, progress=False)
    with TestClient(create_app(Settings(checkpoints_dir=folder.parent,
                                        cache_dir=tmp_path / "cache"))) as c:  # fmt: skip
        r = c.get("/api/models/tiny-vae/reference-scores")
        assert r.status_code == 200 and r.json()["source"] == "card"
        card = load_checkpoint(folder).card.metrics
        assert r.json()["scores"]["sap"]["value"] == card.scores["sap"].mean
        assert "/ui/tiny-vae/reference-scores" not in c.get("/models/tiny-vae").text


def test_a_model_without_ground_truth_is_told_why(tmp_path):
    with served_plugin(tmp_path, "reference_eight_latents") as (settings, _):
        with TestClient(create_app(settings), base_url="http://localhost") as c:
            r = c.get("/api/models/my-conv-vae/reference-scores")
            assert r.status_code == 404
            assert "has no ground-truth factors" in r.json()["detail"]
            assert "/ui/my-conv-vae/reference-scores" not in c.get("/models/my-conv-vae").text
