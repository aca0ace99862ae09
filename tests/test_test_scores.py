"""A model judged on its test split, as likelihood models are: the ELBO and the importance-weighted
bound against log p(x) integrated numerically on a model small enough to integrate, bits per
dimension by hand, the linear probe on features whose class is (or is not) readable, and the
whole of `latent-explorer evaluate` on a tiny Fashion-MNIST model: its card, its page, and the
models it refuses."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from scipy import integrate
from scipy.special import log_expit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.checkpoints import CARD, CONFIG, ModelCard, load_checkpoint, save_checkpoint
from app.cli import main
from app.data.fashion_mnist import FashionMNIST
from app.main import create_app
from app.metrics.evaluate import EvaluationError
from app.metrics.test_scores import (
    PROBE_C_GRID,
    likelihood_scores,
    linear_probe,
    score_test_split,
)
from app.models import VAE, ModelConfig
from app.models.interface import ModelDescription, Posterior
from app.settings import Settings

# --- a model whose log p(x) can be integrated: one latent, four Bernoulli pixels ---------------

SLOPE = np.array([2.0, -1.5, 0.8, 3.0])  # logit of pixel j = SLOPE[j]·z + OFFSET[j] (+ class)
OFFSET = np.array([-0.5, 0.3, 0.0, -1.0])
CLASS_SHIFT = np.array([[0.0, 0.0, 0.0, 0.0], [1.5, -1.0, 2.0, 0.5]])  # a cvae's label's logits
Q_STD = 0.8


class OneLatent:
    """p(z) = N(0, 1), p(x_j | z) = Bernoulli(sigmoid(a_j z + b_j)) on a 2×2 image, and a rough
    posterior q(z|x) = N((Σ x − 2)/2, 0.8²): far enough from the true one that the ELBO is
    visibly below log p(x). With `conditional`, a label shifts the logits (a cvae)."""

    def __init__(self, conditional: bool = False) -> None:
        self.conditional = conditional
        self.description = ModelDescription(
            latent_dim=1, channels=1, height=2, width=2, kind="cvae" if conditional else "vae",
            label_names=("plain", "shifted") if conditional else (),
        )  # fmt: skip

    def encode(self, x, labels=None) -> Posterior:  # noqa: ANN001
        mean = 0.5 * (x.flatten(1).sum(1, keepdim=True) - 2.0)
        return Posterior(mean, torch.full_like(mean, 2 * math.log(Q_STD)))

    def decode(self, z, labels=None) -> torch.Tensor:  # noqa: ANN001
        logits = z.double() * torch.from_numpy(SLOPE) + torch.from_numpy(OFFSET)  # (n, 4)
        if self.conditional:
            shift = torch.from_numpy(CLASS_SHIFT)  # (2, 4): class 0's logits, class 1's
            logits = logits + shift[0] + labels[:, None].double() * (shift[1] - shift[0])
        return torch.sigmoid(logits).float().view(-1, 1, 2, 2)


def log_px_given_z(x: np.ndarray, z: float, label: int = 0) -> float:
    logits = SLOPE * z + OFFSET + CLASS_SHIFT[label]
    return float(np.sum(x * log_expit(logits) + (1 - x) * log_expit(-logits)))


def normal_pdf(z: float, mean: float = 0.0, std: float = 1.0) -> float:
    return math.exp(-0.5 * ((z - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def true_log_p(x: np.ndarray, label: int = 0) -> float:
    """log ∫ N(z; 0, 1) p(x | z) dz by adaptive quadrature."""
    value, _ = integrate.quad(lambda z: normal_pdf(z) * math.exp(log_px_given_z(x, z, label)),
                              -12, 12, epsabs=1e-13, limit=200)  # fmt: skip
    return math.log(value)


def true_elbo(x: np.ndarray, label: int = 0) -> float:
    """∫ q(z|x) log p(x|z) dz by quadrature, minus KL(q ‖ N(0, 1)) written out."""
    mean = 0.5 * (x.sum() - 2.0)
    recon, _ = integrate.quad(
        lambda z: normal_pdf(z, mean, Q_STD) * log_px_given_z(x, z, label), -12, 12, limit=200
    )
    kl = 0.5 * (mean**2 + Q_STD**2 - 1.0 - math.log(Q_STD**2))
    return recon - kl


ALL_IMAGES = np.array(list(itertools.product([0.0, 1.0], repeat=4)))  # every 2×2 binary image


def test_the_quadrature_is_a_distribution():
    # the reference itself: p(x) over all 16 images sums to 1
    assert sum(math.exp(true_log_p(x)) for x in ALL_IMAGES) == pytest.approx(1.0, abs=1e-9)


def test_the_bound_reaches_log_p_x_and_the_elbo_is_below_it():
    x = torch.from_numpy(ALL_IMAGES).float().view(-1, 1, 2, 2)
    truth = np.array([true_log_p(v) for v in ALL_IMAGES])
    elbo = np.array([true_elbo(v) for v in ALL_IMAGES])
    assert (truth - elbo).min() > 0.2  # the rough posterior leaves a real gap on every image
    kl = [0.5 * (m**2 + Q_STD**2 - 1 - math.log(Q_STD**2)) for m in 0.5 * (ALL_IMAGES.sum(1) - 2)]

    # as evaluate runs it: k = 1,000, the reconstruction term from 32 draws per image. L_k is
    # within Monte-Carlo error of log p(x) on each image (at most 0.10 nats off over seeds
    # 0-2, measured) and closer still on average; the ELBO's 32 draws are noisy per image
    # (up to 0.96 nats off, measured) but not on average
    scores = likelihood_scores(OneLatent(), x, k=1_000)
    np.testing.assert_allclose(scores["bound"], truth, atol=0.15)
    assert abs(scores["bound"].mean() - truth.mean()) < 0.02
    np.testing.assert_allclose(scores["kl"], kl, rtol=1e-5)  # closed form
    assert abs(scores["elbo"].mean() - elbo.mean()) < 0.15
    assert scores["elbo"].mean() < scores["bound"].mean() - 0.5

    # with many more samples both estimates close in on their integrals, image by image
    tight = likelihood_scores(OneLatent(), x, k=100_000, elbo_samples=4_000)
    np.testing.assert_allclose(tight["bound"], truth, atol=0.02)
    np.testing.assert_allclose(tight["elbo"], elbo, atol=0.15)


def test_a_cvae_is_scored_as_log_p_x_given_its_own_class():
    x = torch.from_numpy(np.tile(ALL_IMAGES, (2, 1))).float().view(-1, 1, 2, 2)
    labels = torch.tensor([0] * 16 + [1] * 16)
    scores = likelihood_scores(OneLatent(conditional=True), x, k=100_000, labels=labels)
    pairs = list(zip(np.tile(ALL_IMAGES, (2, 1)), labels.tolist(), strict=True))
    np.testing.assert_allclose(scores["bound"], [true_log_p(v, c) for v, c in pairs], atol=0.02)
    # the other class would give other numbers: the label reached the decoder
    wrong = [true_log_p(v, 1 - c) for v, c in pairs]
    assert np.abs(scores["bound"] - np.array(wrong)).max() > 0.5


# --- the linear probe ---------------------------------------------------------------------------


def test_the_probe_reads_a_class_written_into_mu_and_not_one_that_is_not():
    rng = np.random.default_rng(0)
    classes = np.arange(1_000) % 10
    readable = np.eye(10)[classes] * 3 + 0.1 * rng.standard_normal((1_000, 10))
    probe = linear_probe(readable, classes)
    assert probe["mean"] > 0.99 and len(probe["values"]) == 5 and probe["converged"]
    shuffled = linear_probe(readable, rng.permutation(classes))
    assert abs(shuffled["mean"] - 0.1) < 0.05  # chance among ten classes
    assert probe["std"] == pytest.approx(np.std(probe["values"], ddof=1), abs=1e-4)


def test_the_probe_on_few_features_picks_its_own_regularisation():
    """Ten classes a little apart in 4 noisy features, where C matters (5-fold accuracy 0.71 at
    C = 0.001, 0.82 at 0.01, 0.85 from 0.1 up): choosing C by an inner cross-validation reads
    them as well as the best single C on the grid does with the same folds."""
    rng = np.random.default_rng(1)
    classes = np.arange(2_000) % 10
    centres = rng.standard_normal((10, 4))
    features = centres[classes] + 0.5 * rng.standard_normal((2_000, 4))
    fixed = linear_probe(features, classes)
    chosen = linear_probe(features, classes, choose_c=True)
    assert len(chosen["chosen_c"]) == 5 and set(chosen["chosen_c"]) <= set(PROBE_C_GRID)
    assert "chosen_c" not in fixed
    # the best any single C on the grid does with the same folds, fitted by hand
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    best = 0.0
    for c in PROBE_C_GRID:
        accs = []
        for train, test in folds.split(features, classes):
            fit = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2_000))
            accs.append(
                fit.fit(features[train], classes[train]).score(features[test], classes[test])
            )
        best = max(best, float(np.mean(accs)))
    assert best > 0.84 and chosen["mean"] >= best - 0.01


def test_the_probe_needs_five_images_of_each_class():
    with pytest.raises(EvaluationError, match="at least 5 images of each class"):
        linear_probe(np.zeros((30, 2)), np.arange(30) % 10)


# --- latent-explorer evaluate on a Fashion-MNIST model -----------------------------------------

N_IMAGES, K = 50, 20


@pytest.fixture(scope="module")
def evaluated(fashion_models, fashion_dir, tmp_path_factory):
    """The tiny Fashion-MNIST VAE and CVAE, copied, the VAE's card before `evaluate`, and the
    command's exit status; the CVAE is evaluated too."""
    root = tmp_path_factory.mktemp("evaluated")
    for name, folder in fashion_models.items():
        shutil.copytree(folder, root / name)
    before = json.loads((root / "tiny-fashion-vae" / CARD).read_text())
    args = ["--images", str(N_IMAGES), "--k", str(K), "--data", str(fashion_dir), "--no-progress"]
    codes = {name: main(["evaluate", str(root / name), *args]) for name in fashion_models}
    return root, before, codes


def test_evaluate_writes_the_test_scores_and_leaves_the_rest_of_the_card(evaluated, capsys):
    root, before, codes = evaluated
    assert codes == {"tiny-fashion-vae": 0, "tiny-fashion-cvae": 0}
    card = json.loads((root / "tiny-fashion-vae" / CARD).read_text())
    entry = card.pop("test_split")
    assert card == before
    assert entry["images"] == N_IMAGES and entry["k"] == K
    assert entry["subset"] == "the first 50 of 100"
    assert entry["likelihood"].startswith(
        "Bernoulli on binarised pixels (test split binarised "
        "once, seed 0; training binarised each batch afresh)"
    )
    assert entry["digest"] == load_checkpoint(root / "tiny-fashion-vae").digest
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry["date"]) and entry["wall_time_s"] >= 0
    # bits per dimension by hand: −L / (784 · ln 2)
    assert entry["dims"] == 784
    for score in ("bound", "elbo"):
        assert entry[score]["bits_per_dim"] == pytest.approx(
            -entry[score]["mean"] / (784 * math.log(2)), abs=1e-5
        )
    assert entry["elbo"]["mean"] == pytest.approx(
        entry["elbo"]["reconstruction"] - entry["elbo"]["kl"], abs=1e-3
    )
    assert entry["elbo"]["mean"] < entry["bound"]["mean"] < 0
    assert 0 < entry["bound"]["se"] < 50
    assert {"probe", "probe_pixels"} <= set(entry) and entry["chance"] == 0.1


def test_the_elbo_is_that_of_the_binarised_test_images(evaluated, fashion_dir):
    """The ELBO again, independently: the network's own encoder and decoder, the split binarised
    by the dataset reader with seed 0, the Bernoulli log-likelihood and the KL written in numpy,
    500 draws of q per image."""
    root, _, _ = evaluated
    entry = json.loads((root / "tiny-fashion-vae" / CARD).read_text())["test_split"]
    net = load_checkpoint(root / "tiny-fashion-vae").model
    x = torch.from_numpy(FashionMNIST(fashion_dir, "test", 28).binarised(0)[:N_IMAGES]).float()
    with torch.no_grad():
        mu, logvar = net.encode(x, None)
        eps = torch.randn(500, *mu.shape, generator=torch.Generator().manual_seed(7))
        z = mu + torch.exp(0.5 * logvar) * eps  # (500, N, D)
        logits = net.decode(z.reshape(-1, mu.shape[1]), None).double().numpy()
    logits = logits.reshape(500, N_IMAGES, -1)  # (draws, N, pixels)
    xs = x.flatten(1).numpy()
    recon = (xs * log_expit(logits) + (1 - xs) * log_expit(-logits)).sum(-1).mean(0)  # (N,)
    m, v = mu.double().numpy(), np.exp(logvar.double().numpy())
    kl = 0.5 * (m**2 + v - 1 - np.log(v)).sum(1)
    assert entry["elbo"]["kl"] == pytest.approx(kl.mean(), abs=1e-3)
    assert entry["elbo"]["reconstruction"] == pytest.approx(recon.mean(), abs=0.5)


def test_a_cvae_is_scored_given_each_images_own_class(evaluated, fashion_dir):
    root, _, _ = evaluated
    entry = json.loads((root / "tiny-fashion-cvae" / CARD).read_text())["test_split"]
    assert "each image's own class" in entry["conditioning"]
    assert entry["elbo"]["mean"] < entry["bound"]["mean"] < 0
    # the KL is that of q(z | x, c) with c the image's own class (image i is of class i % 10)
    net = load_checkpoint(root / "tiny-fashion-cvae").model
    x = torch.from_numpy(FashionMNIST(fashion_dir, "test", 28).binarised(0)[:N_IMAGES]).float()

    def mean_kl(classes: torch.Tensor) -> float:
        with torch.no_grad():
            mu, logvar = (t.double().numpy() for t in net.encode(x, classes))
        return float((0.5 * (mu**2 + np.exp(logvar) - 1 - logvar)).sum(1).mean())

    own = torch.arange(N_IMAGES) % 10
    assert entry["elbo"]["kl"] == pytest.approx(mean_kl(own), abs=1e-3)
    assert abs(entry["elbo"]["kl"] - mean_kl((own + 1) % 10)) > 0.01


def test_the_card_page_shows_the_test_scores(evaluated, fashion_dir, tmp_path):
    root, _, _ = evaluated
    folder = tmp_path / "served"
    shutil.copytree(root, folder)
    cvae_card = json.loads((folder / "tiny-fashion-cvae" / CARD).read_text())
    cvae_card.pop("test_split")
    (folder / "tiny-fashion-cvae" / CARD).write_text(json.dumps(cvae_card))
    entry = json.loads((folder / "tiny-fashion-vae" / CARD).read_text())["test_split"]
    settings = Settings(checkpoints_dir=folder, fashion_mnist_dir=fashion_dir)
    with TestClient(create_app(settings)) as client:
        page = client.get("/models/tiny-fashion-vae").text
        bare = client.get("/models/tiny-fashion-cvae").text
    assert "Test-set likelihood" in page
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    b, e = entry["bound"], entry["elbo"]
    assert (f"log p(x) ≥ L_k, k = 20 {b['mean']:.2f} ± {b['se']:.2f} nats · "
            f"{b['bits_per_dim']:.4f} bits/dim") in text  # fmt: skip
    assert f"ELBO {e['mean']:.2f} ± {e['se']:.2f} nats" in text
    p, q = entry["probe"], entry["probe_pixels"]
    assert f"linear probe of the class from μ {p['mean']:.3f} ± {p['std']:.3f}" in text
    assert f"the same probe on the raw pixels {q['mean']:.3f} ± {q['std']:.3f}" in text
    assert "On the first 50 of 100 Fashion-MNIST test images" in text
    assert "Bernoulli on binarised pixels (test split binarised once, seed 0" in text
    assert "the disentanglement metrics do not apply" in text
    # a card without the entry shows no section and no empty table
    assert "Test-set likelihood" not in bare and "test-scores" not in bare


def test_a_model_padded_to_32_counts_the_datas_784_pixels(fashion_dir, tmp_path):
    folder = tmp_path / "conv-fashion"
    config = ModelConfig(kind="vae", architecture="conv", image_size=32, dataset="fashion-mnist")
    save_checkpoint(folder, VAE(config), ModelCard(name="conv-fashion"))
    entry = score_test_split(load_checkpoint(folder).served(), fashion_dir, k=3, images=50,
                             progress=False)  # fmt: skip
    assert entry["dims"] == 784
    assert "padded to 32×32, whose 240 border pixels are always 0" in entry["dims_note"]
    assert entry["bound"]["bits_per_dim"] == pytest.approx(
        -entry["bound"]["mean"] / (784 * math.log(2)), abs=1e-5
    )


def test_an_autoencoder_gets_the_probes_and_no_likelihood(fashion_dir, tmp_path):
    folder = tmp_path / "ae-fashion"
    config = ModelConfig(kind="ae", architecture="mlp", image_size=28, dataset="fashion-mnist")
    save_checkpoint(folder, VAE(config), ModelCard(name="ae-fashion"))
    entry = score_test_split(load_checkpoint(folder).served(), fashion_dir, images=50,
                             progress=False)  # fmt: skip
    assert "bound" not in entry and "elbo" not in entry
    assert entry["likelihood"].startswith("none: an autoencoder has no posterior")
    assert len(entry["probe"]["values"]) == len(entry["probe_pixels"]["values"]) == 5


# --- models it cannot judge ---------------------------------------------------------------------


def test_a_model_without_a_test_split_is_refused(tmp_path, capsys, fashion_dir):
    dsprites = tmp_path / "dsprites-vae"
    save_checkpoint(dsprites, VAE(ModelConfig(kind="vae")), ModelCard(name="dsprites-vae"))
    with pytest.raises(EvaluationError, match="trained on 'dsprites', which has no test split"):
        score_test_split(load_checkpoint(dsprites).served(), fashion_dir, k=5)
    # the command judges it by its ground truth, and says --k is not for it
    assert main(["evaluate", str(dsprites), "--k", "5"]) == 2
    assert "--k is for a model judged on a test split" in capsys.readouterr().err

    faces = tmp_path / "faces-vae"
    save_checkpoint(faces, VAE(ModelConfig(kind="vae")), ModelCard(name="faces-vae"))
    config = json.loads((faces / CONFIG).read_text())
    (faces / CONFIG).write_text(json.dumps({**config, "dataset": "folder:faces"}))
    assert main(["evaluate", str(faces)]) == 2
    err = capsys.readouterr().err
    assert "whose images have no known factors and no test split" in err
    assert "test_split" not in json.loads((faces / CARD).read_text())


def test_a_fashion_model_refuses_disentanglement_options_and_missing_data(
    fashion_models, fashion_dir, tmp_path, capsys
):
    folder = tmp_path / "m"
    shutil.copytree(fashion_models["tiny-fashion-vae"], folder)
    assert main(["evaluate", str(folder), "--only", "mig"]) == 2
    assert "--only names disentanglement metrics" in capsys.readouterr().err
    assert main(["evaluate", str(folder), "--data", str(tmp_path / "nowhere"), "--k", "2"]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err  # how to install it
    assert main(["evaluate", str(folder), "--images", "101", "--data", str(fashion_dir)]) == 2
    assert "images must be in 1..100 (the test split's size), got 101" in capsys.readouterr().err
    assert "test_split" not in json.loads((folder / CARD).read_text())
