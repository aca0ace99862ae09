"""A model's scores on any served data set: factor columns as classes, the metrics against
numbers counted by hand, the ELBO at μ summed by hand from the encoding's columns, the route
(202 with where it stands until every part is kept, then 200), the card page's fragment, the
cache, the CLI, and errors that name the problem."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.cli import main as cli_main
from app.data.sets import Column, open_set
from app.encodings import find_encoding
from app.main import create_app
from app.metrics import scores
from app.metrics.set_scores import (
    SetScoreSettings,
    disentanglement,
    disentanglement_rows,
    encoding_elbo,
    factor_classes,
    modularity_of,
)
from app.settings import Settings
from app.studies.score_jobs import ScoreJobs, read_part
from app.studies.set_encodings import encoding_jobs
from app.studies.set_scores import held_out_rows, part_key, score_jobs
from app.web.set_scores import get_score_settings
from examples.export_fashion_test import export_fashion_test

SMALL = SetScoreSettings(k=8, likelihood_images=50)

# --- factor columns as classes ------------------------------------------------------------------


def test_an_ordered_factor_with_few_values_has_one_class_per_value_in_ascending_order() -> None:
    values = np.array([0.75, 1.25, np.nan, 1.0, 0.75, 1.25])
    fc = factor_classes(Column("scale", "ordered", "factor", values))
    assert fc.classes.tolist() == [0, 2, -1, 1, 0, 2]
    assert fc.n_classes == 3 and fc.how == "its 3 distinct values, each a class (ascending)"


def test_an_ordered_factor_with_many_values_is_cut_into_twenty_equal_count_bins() -> None:
    values = np.random.default_rng(0).permutation(np.arange(1000.0))  # 1,000 distinct values
    values[7] = np.nan
    fc = factor_classes(Column("angle", "ordered", "factor", values))
    assert fc.classes[7] == -1 and fc.n_classes == 20
    counts = np.bincount(fc.classes[fc.classes >= 0])
    assert counts.min() >= 49 and counts.max() <= 50  # 999 values in 20 bins of equal count
    known = ~np.isnan(values)
    # bins follow the values' order: a larger value never lands in a lower bin
    order = np.argsort(values[known])
    assert (np.diff(fc.classes[known][order]) >= 0).all()
    assert "binned into 20 equal-count bins" in fc.how and "999 distinct values" in fc.how


def test_a_categorical_factor_keeps_its_codes() -> None:
    codes = np.array([2, 0, -1, 1], dtype=np.int64)
    fc = factor_classes(Column("shape", "categorical", "factor", codes, ("a", "b", "c")))
    assert fc.classes.tolist() == [2, 0, -1, 1] and fc.n_classes == 3


# --- the metrics against numbers counted by hand ------------------------------------------------


def _entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_mig_is_the_top_two_gap_over_the_factor_entropy_counted_by_hand() -> None:
    rng = np.random.default_rng(1)
    factor = rng.integers(0, 4, 600)
    # latent 0 is the factor itself, latent 1 carries its high bit, latent 2 nothing
    mu = np.stack([factor, factor // 2, np.zeros(600)], axis=1).astype(np.float64)
    fc = factor_classes(Column("f", "categorical", "factor", factor, ("a", "b", "c", "d")))
    s = SetScoreSettings(points=400, test_points=200)
    out = disentanglement(mu, np.ones(600, dtype=bool), [fc], s)
    train, _ = disentanglement_rows(np.ones(600, dtype=bool), s)
    h, h_high = _entropy(factor[train]), _entropy(factor[train] // 2)
    # MI(latent 0; f) = H(f), MI(latent 1; f) = H(f // 2): the gap over H(f)
    assert out["scores"]["mig"]["value"] == pytest.approx((h - h_high) / h, abs=1e-4)
    np.testing.assert_allclose(out["mi_matrix"], [[h], [h_high], [0.0]], atol=1e-4)
    assert set(out["left_out"]) == {"beta_vae", "factor_vae"}
    assert "fixed set of images" in out["left_out"]["beta_vae"]
    assert out["scores"]["modularity"]["value"] is None  # undefined for one factor


def test_an_image_without_a_factors_value_is_left_out_for_that_factor_only() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 3, 300), rng.integers(0, 2, 300)
    b_missing = b.copy()
    b_missing[:60] = -1
    mu = np.stack([a, b], axis=1).astype(np.float64) + rng.normal(0, 0.01, (300, 2))
    cols = [Column("a", "categorical", "factor", a, ("0", "1", "2")),
            Column("b", "categorical", "factor", b_missing, ("0", "1"))]  # fmt: skip
    s = SetScoreSettings(points=200, test_points=100)
    out = disentanglement(mu, np.ones(300, dtype=bool), [factor_classes(c) for c in cols], s)
    train, test = disentanglement_rows(np.ones(300, dtype=bool), s)
    fa, fb = out["factors"]
    assert (fa["train"], fa["test"]) == (len(train), len(test))
    assert (fb["train"], fb["test"]) == ((train >= 60).sum(), (test >= 60).sum())
    # each latent is one factor: every score but modularity's two-factor spread is near 1
    assert out["scores"]["mig"]["value"] > 0.9
    assert out["scores"]["dci_et_informativeness"]["per_factor"] == {"a": 1.0, "b": 1.0}


def test_modularity_of_an_assembled_mi_matrix_is_scores_own() -> None:
    rng = np.random.default_rng(3)
    f = rng.integers(0, 4, (500, 2))
    mu = np.concatenate([f + rng.normal(0, 0.3, f.shape), rng.normal(size=(500, 1))], axis=1)
    joint = scores.modularity_explicitness(mu, f, mu, f)["modularity"]
    mi = scores.mutual_info_matrix(scores.discretize(mu), f)
    assert modularity_of(mi) == pytest.approx(joint, abs=1e-12)


def test_a_small_set_gives_a_third_of_its_images_to_test() -> None:
    usable = np.ones(90, dtype=bool)
    usable[::10] = False  # 81 encoded
    train, test = disentanglement_rows(usable, SetScoreSettings())
    assert (len(train), len(test)) == (54, 27)
    assert not set(train) & set(test) and usable[train].all() and usable[test].all()
    again = disentanglement_rows(usable, SetScoreSettings())
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])


def test_the_elbo_at_mu_is_minus_recon_minus_kl() -> None:
    nll = np.array([10.0, 20.0], dtype=np.float32)
    kl = np.array([[1.0, 0.5], [0.0, 2.0]], dtype=np.float32)
    assert encoding_elbo(nll, kl).tolist() == [-11.5, -22.0]


def test_settings_out_of_range_are_refused_naming_the_setting() -> None:
    from app.metrics.evaluate import EvaluationError

    with pytest.raises(EvaluationError, match=r"held-out share must be in \(0, 1\], got 1.5"):
        SetScoreSettings(held_out_share=1.5)


# --- served: the route, the card page's fragment, the cache -------------------------------------


def write_blocks(root: Path) -> Path:
    """60 grey 28×28 pictures of a block whose width (4, 6, … 14 pixels) and tone (dark,
    light) are the set's factors; the first 40 train, the last 20 test."""
    root.mkdir(parents=True)
    rows = []
    for i in range(60):
        width, tone = 4 + 2 * (i % 6), ("dark", "light")[(i // 6) % 2]
        img = np.zeros((28, 28), dtype=np.uint8)
        img[10:18, 14 - width // 2 : 14 + width // 2] = 120 if tone == "dark" else 240
        Image.fromarray(img, mode="L").save(root / f"{i:02d}.png")
        rows.append([f"{i:02d}.png", width, tone, "train" if i < 40 else "test"])
    with open(root / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file_name", "width", "tone", "split"], *rows])
    record = {"factors": ["width", "tone"], "columns": {"width": {"kind": "ordered"}}}
    (root / "dataset.json").write_text(json.dumps(record))
    return root


@pytest.fixture(scope="module")
def folders(fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("score-sets")
    export_fashion_test(root / "fashion-folder", root=fashion_dir)
    return {"fashion-folder": root / "fashion-folder", "blocks": write_blocks(root / "blocks")}


@pytest.fixture(scope="module")
def served(fashion_models, fashion_dir, folders, tmp_path_factory):
    """A server of the tiny Fashion-MNIST models with both folders served as data sets, its
    cache in a folder of its own, scoring with k = 8."""
    root = tmp_path_factory.mktemp("served-scores")
    for name, folder in fashion_models.items():
        shutil.copytree(folder, root / name)
    cache = tmp_path_factory.mktemp("cache")
    settings = Settings(checkpoints_dir=root, fashion_mnist_dir=fashion_dir, cache_dir=cache,
                        data={n: str(p) for n, p in folders.items()})  # fmt: skip
    app = create_app(settings)
    app.dependency_overrides[get_score_settings] = lambda: SMALL
    with TestClient(app) as client:
        yield client, cache


def _until_kept(client: TestClient, cache: Path, url: str) -> list[dict]:
    """The route's answers, joining the background jobs after each 202, until a 200."""
    answers = []
    for _ in range(4):
        r = client.get(url)
        answers.append(r)
        if r.status_code == 200:
            return answers
        assert r.status_code == 202 and r.headers["Retry-After"] == "5"
        encoding_jobs(cache).join()
        score_jobs(cache).join()
    raise AssertionError(f"{url} never finished: {[a.json() for a in answers]}")


def test_scores_are_202_with_where_they_stand_until_kept_then_200(served, folders) -> None:
    client, cache = served
    answers = _until_kept(client, cache, "/api/models/tiny-fashion-vae/scores?data=fashion-folder")
    first = answers[0].json()
    assert first["status"] == "computing" and first["encoding"]["state"] in ("queued", "running")
    assert "100 images of data set fashion-folder" in first["encoding"]["detail"]
    body = answers[-1].json()
    assert body["status"] == "done" and body["retry_after"] is None
    assert body["reconstructions"] == (
        "/api/models/tiny-fashion-vae/reconstructions.png?data=fashion-folder"
    )
    # attributes only: no factor to score, said plainly; the probe and likelihood still given
    dis = body["disentanglement"]
    assert dis["scores"] == {} and dis["note"].startswith("no generating factors to score")
    # the seeded 20% held out: 20 images, 2 of each class, too few for a 5-fold probe
    (probe,) = body["probes"]["columns"]
    assert probe["images"] == 20 and probe["mean"] is None
    assert "needs at least 5 images of each class" in probe["skipped"]
    assert "may have been trained on these images elsewhere" in body["held_out"]
    lik = body["likelihood"]
    assert lik["images"] == 20 and lik["k"] == 8 and lik["dims"] == 784
    assert lik["bound"]["mean"] >= lik["elbo"]["mean"] - 3 * lik["elbo"]["se"]

    # the ELBO at μ, summed by hand from the encoding's columns on the same held-out images
    model = client.app.state.registry["tiny-fashion-vae"]
    image_set = open_set(folders["fashion-folder"])
    enc = find_encoding(model, image_set, cache)
    rows, _ = held_out_rows(image_set, np.asarray(enc.ok), SMALL)
    by_hand = [-(float(enc.nll[r]) + sum(float(v) for v in enc.kl[r])) for r in rows]
    assert body["encoding_elbo"]["mean"] == pytest.approx(np.mean(by_hand), abs=1e-3)
    assert body["encoding_elbo"]["images"] == 20


def test_a_set_with_factors_and_a_test_split_is_scored_over_them(served) -> None:
    client, cache = served
    body = _until_kept(client, cache, "/api/models/tiny-fashion-vae/scores?data=blocks")[-1].json()
    dis = body["disentanglement"]
    assert [f["name"] for f in dis["factors"]] == ["width", "tone"]
    width, tone = dis["factors"]
    assert width["how"] == "its 6 distinct values, each a class (ascending)"
    assert tone["how"] == "its 2 categories" and (dis["train"], dis["test"]) == (40, 20)
    for key in ("mig", "dci_et_disentanglement", "dci_et_completeness", "dci_et_informativeness",
                "sap_tree", "modularity", "explicitness"):  # fmt: skip
        assert 0 <= body["disentanglement"]["scores"][key]["value"] <= 1, key
        assert "40 train / 20 test images" in dis["scores"][key]["settings"]
    assert set(dis["scores"]["mig"]["per_factor"]) == {"width", "tone"}
    assert set(dis["left_out"]) == {"beta_vae", "factor_vae"}
    # the held-out images are the set's test split: the probe and the bound score those 20
    assert body["held_out"].startswith("the set's test split (20 images encoded)")
    (probe,) = body["probes"]["columns"]
    assert (probe["column"], probe["role"], probe["images"]) == ("tone", "factor", 20)
    tones = [(i // 6) % 2 for i in range(40, 60)]  # write_blocks' tone of the test images
    assert probe["chance_majority"] == max(tones.count(0), tones.count(1)) / 20 == 0.6
    assert 0 <= probe["mean"] <= 1
    assert body["likelihood"]["images"] == 20


def test_the_card_page_shows_the_scores_on_the_data_set_its_url_names(served) -> None:
    client, cache = served
    _until_kept(client, cache, "/api/models/tiny-fashion-vae/scores?data=blocks")
    page = client.get("/models/tiny-fashion-vae?data=blocks").text
    assert 'hx-get="/ui/tiny-fashion-vae/scores?data=blocks"' in page
    plain = client.get("/models/tiny-fashion-vae").text
    assert 'hx-get="/ui/tiny-fashion-vae/scores"' in plain
    empty = client.get("/ui/tiny-fashion-vae/scores").text
    assert 'class="data-picker"' in empty and "Choose a data set to score" in empty
    done = client.get("/ui/tiny-fashion-vae/scores?data=blocks").text
    assert '<option value="blocks" selected>' in done and "hx-trigger" not in done
    assert 'href="/api/models/tiny-fashion-vae/reconstructions.png?data=blocks"' in done
    assert 'data-metric="mig"' in done and "L<sub>k</sub>, k = 8" in done
    assert "FactorVAE score: each vote fixes one factor" in done


def test_a_fragment_still_computing_asks_again(served) -> None:
    client, cache = served
    r = client.get("/ui/tiny-fashion-cvae/scores?data=fashion-folder&k=3")
    assert r.status_code == 200
    assert 'hx-get="/ui/tiny-fashion-cvae/scores?data=fashion-folder&amp;k=3"' in r.text
    assert 'hx-trigger="load delay:5s"' in r.text and 'role="status"' in r.text
    url = "/api/models/tiny-fashion-cvae/scores?data=fashion-folder&k=3"
    body = _until_kept(client, cache, url)[-1].json()
    # a CVAE is scored as log p(x | c), its class from the column of its label names
    assert body["likelihood"]["conditioning"].startswith("each image's own class from column label")
    assert body["likelihood"]["k"] == 3
    assert "need not hold the class" in body["probes"]["note"]
    html = client.get("/ui/tiny-fashion-cvae/scores?data=fashion-folder&k=3").text
    assert 'class="note probe-note">Conditioned: a CVAE' in html and "hx-trigger" not in html
    assert 'data-score="encoding_elbo"' in html and 'data-score="bound"' in html


def test_scores_kept_on_disk_are_found_by_a_new_process_and_keyed_by_settings(
    served, folders
) -> None:
    client, cache = served
    _until_kept(client, cache, "/api/models/tiny-fashion-vae/scores?data=blocks")
    model = client.app.state.registry["tiny-fashion-vae"]
    enc = find_encoding(model, open_set(folders["blocks"]), cache)
    key = part_key(enc, "likelihood", SMALL)

    def must_not_run(progress):  # noqa: ANN001, ANN202
        raise AssertionError("a kept part was computed again")

    fresh = ScoreJobs(cache)  # what another server process sees
    found = fresh.request(key, must_not_run)
    assert found.state == "done" and found.result["k"] == 8
    assert part_key(enc, "likelihood", SetScoreSettings(k=9, likelihood_images=50)) != key
    assert part_key(enc, "scores", SetScoreSettings(k=9, likelihood_images=50)) == part_key(
        enc, "scores", SMALL
    )  # the bound's k does not change the metrics
    path = cache / "set-scores" / f"{key}.json"
    path.write_text(path.read_text()[:50])  # cut short: computed again, never served
    assert read_part(cache, key) is None


def test_errors_name_the_problem(served) -> None:
    client, cache = served
    r = client.get("/api/models/tiny-fashion-vae/scores")
    assert r.status_code == 404 and "data=NAME" in r.json()["detail"]
    r = client.get("/api/models/tiny-fashion-vae/scores?data=nowhere")
    assert r.status_code == 404 and "unknown data set 'nowhere'" in r.json()["detail"]
    r = client.get("/api/models/tiny-fashion-vae/scores?data=blocks&k=0")
    assert r.status_code == 422
    # a CVAE needs each image's class: the blocks have none of its classes
    r = client.get("/api/models/tiny-fashion-cvae/scores?data=blocks")
    assert r.status_code == 404  # the pair has nothing to find: the schema cannot know columns
    assert "is a CVAE and needs each image's class" in r.json()["detail"]
    assert "its columns: width, tone" in r.json()["detail"]
    fragment = client.get("/ui/tiny-fashion-cvae/scores?data=blocks").text
    assert 'role="alert"' in fragment and "is a CVAE and needs each image" in fragment


# --- the CLI ------------------------------------------------------------------------------------


def test_evaluate_set_prints_the_table(fashion_models, folders, tmp_path, capsys) -> None:
    code = cli_main([
        "evaluate", str(fashion_models["tiny-fashion-vae"]), "--set", str(folders["blocks"]),
        "--k", "4", "--images", "10", "--cache-dir", str(tmp_path), "--no-progress",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("tiny-fashion-vae on blocks (60 images)")
    assert "disentanglement over width, tone:" in out and "log p(x) ≥ L_k, k = 4" in out
    assert "10 images; Bernoulli on binarised pixels" in out
    assert "beta_vae: each point fixes one factor" in out
    assert (tmp_path / "set-scores").is_dir()


def test_evaluate_set_refuses_a_set_it_cannot_open(fashion_models, tmp_path, capsys) -> None:
    code = cli_main(["evaluate", str(fashion_models["tiny-fashion-vae"]), "--set",
                     str(tmp_path / "absent"), "--no-progress"])  # fmt: skip
    assert code == 2
    assert "neither a folder nor a built-in data set" in capsys.readouterr().err
