"""A CVAE is evaluated with each image's true label, and the recognition judge reads back what a
reconstruction shows: both on stand-in models whose right answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.checkpoints.served import ServedModel
from app.data.base import Batch
from app.data.dsprites import render
from app.data.ground_truth import DSPRITES
from app.metrics import recognition
from app.metrics.evaluate import EvaluationSettings, ImageEncoder, evaluate
from app.models import ModelConfig
from app.models.interface import ModelDescription, Posterior, describe_config
from app.training.loop import evaluate as training_evaluate

SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")


def key(image) -> bytes:  # noqa: ANN001
    return np.asarray(image, dtype=np.float32).reshape(-1).tobytes()


class StandIn:
    """A stand-in network behind the model interface: its encode gives (μ, log σ²), its decode
    logits, as our networks' do."""

    def __init__(self, network: torch.nn.Module, description: ModelDescription) -> None:
        self.network, self.description = network, description

    def encode(self, x, labels=None) -> Posterior:  # noqa: ANN001
        return Posterior(*self.network.encode(x, labels))

    def decode(self, z, labels=None) -> torch.Tensor:  # noqa: ANN001
        return torch.sigmoid(self.network.decode(z, labels))


def checkpoint(model: torch.nn.Module, kind: str, latent_dim: int = 2) -> ServedModel:
    labels = SHAPES if kind == "cvae" else ()
    config = ModelConfig(kind=kind, latent_dim=latent_dim, label_names=labels, dataset="dsprites")
    return ServedModel(f"stand-in-{kind}", StandIn(model, describe_config(config)))


# --- the CVAE's encoder is given each image's own shape ----------------------------------------


class LabelChecker(torch.nn.Module):
    """A CVAE encoder that knows each image's true shape (from a table of the renders it will
    see): μ_0 is 1 where the label it is given is that shape, μ_1 the label itself."""

    def __init__(self, classes: np.ndarray) -> None:
        super().__init__()
        self.shape_of: dict[bytes, int] = {}
        for img, c in zip(DSPRITES.render(classes), classes, strict=True):
            assert self.shape_of.setdefault(key(img), int(c[0])) == c[0]

    def encode(self, x, labels):  # noqa: ANN001, ANN201
        assert labels is not None, "a CVAE's encoder was given no labels"
        true = torch.tensor([self.shape_of[key(img)] for img in x])
        mu = torch.stack([(labels == true).double(), labels.double()], dim=1)
        return mu, torch.zeros_like(mu)


def test_the_image_encoder_gives_a_cvae_each_images_true_shape():
    classes = np.random.default_rng(0).integers(0, SIZES, size=(300, 5))
    model = LabelChecker(classes)
    mu, kl = ImageEncoder(checkpoint(model, "cvae"), batch_size=64).encode(classes)
    assert (mu[:, 0] == 1).all()  # every label was the image's own shape
    np.testing.assert_array_equal(mu[:, 1], classes[:, 0])  # in the images' order
    np.testing.assert_allclose(kl[:, 1], 0.5 * classes[:, 0] ** 2)  # KL of N(μ, 1) ‖ N(0, 1)


class LabelAsCode(torch.nn.Module):
    """μ_0 = the label the encoder is given; μ_1 = the sprite's area (from the pixels)."""

    def encode(self, x, labels):  # noqa: ANN001, ANN201
        assert labels is not None, "a CVAE's encoder was given no labels"
        mu = torch.stack([labels.float(), x.sum(dim=(1, 2, 3))], dim=1)
        return mu, torch.zeros_like(mu)


def test_evaluate_scores_a_cvae_with_the_true_shape_labels():
    """If the code is the label and the label is the image's shape, the code holds all of
    shape's information (H(shape) ≈ log 3 nats) and none of the other factors'."""
    s = EvaluationSettings(seeds=(0, 1), points=600, only=("mig",))
    m = evaluate(checkpoint(LabelAsCode(), "cvae"), s, progress=False)
    mi = np.asarray(m["mi_matrix"])  # (latent, factor), mean over the two seeds
    assert mi.shape == (2, 5)
    assert mi[0, 0] == pytest.approx(math.log(3), abs=0.01)
    # the rest is the plug-in estimator's bias, ~(3 − 1)(K − 1) / 2N nats for K classes
    assert mi[0, 0] > 10 * mi[0, 1:].max()
    assert "true shape label" in m["scores"]["mig"]["settings"]


class Batches:
    """A labelled dataset whose images say their own class: pixel (0, label) is on."""

    name, channels, image_size, binary = "marked", 1, 64, True
    label_names, factor_names = ("a", "b", "c"), ()

    def __init__(self) -> None:
        self.labels: list[np.ndarray] = []

    def __len__(self) -> int:
        return 1000

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        labels = rng.integers(0, 3, n)
        images = np.zeros((n, 1, 64, 64), dtype=np.uint8)
        images[np.arange(n), 0, 0, labels] = 1
        self.labels.append(labels)
        return Batch(images=images, labels=labels)


class MarkReader(torch.nn.Module):
    """μ_0 = 2 where the label disagrees with the image's mark, μ_1 = the label; σ = 1."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ModelConfig(kind="cvae", latent_dim=2, label_names=("a", "b", "c"))

    def encode(self, x, labels):  # noqa: ANN001, ANN201
        assert labels is not None, "a CVAE was evaluated without labels"
        marked = x[:, 0, 0, :3].argmax(dim=1)
        mu = torch.stack([2.0 * (labels != marked), labels.float()], dim=1)
        self.shape = x.shape
        return mu, torch.zeros_like(mu)

    def decode(self, z, labels):  # noqa: ANN001, ANN201
        return torch.zeros((len(z), *self.shape[1:]))  # logits: every pixel at 0.5


def test_the_training_cards_evaluation_gives_a_cvae_each_images_own_label():
    data = Batches()
    out = training_evaluate(MarkReader(), data, 300, torch.device("cpu"))  # type: ignore[arg-type]
    labels = np.concatenate(data.labels)
    assert out.eval_images == 300 == len(labels)
    assert out.kl_per_dim is not None
    assert out.kl_per_dim[0] == 0.0  # no label disagreed with its image
    assert out.kl_per_dim[1] == pytest.approx(0.5 * np.mean(labels**2), abs=1e-4)


# --- the recognition judge on reconstructions made to order ------------------------------------

N, SEED = 12, 2  # four sprites of each shape, two of them at the largest scale


def drawn(n: int, seed: int) -> np.ndarray:
    """The sprites recognise(n, seed) draws: one integer stream per factor, in factor order."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, k, n) for k in SIZES], axis=1)


class Reconstructs(torch.nn.Module):
    """z = the image itself; the "reconstruction" is `change(classes, label)` rendered, where
    classes are the input's (looked up by its pixels)."""

    def __init__(self, change, classes: np.ndarray) -> None:  # noqa: ANN001
        super().__init__()
        self.change = change
        self.classes_of = {key(img): c for img, c in zip(render(classes), classes, strict=True)}

    def encode(self, x, labels=None):  # noqa: ANN001, ANN201
        return x.flatten(1), None

    def decode(self, z, labels=None):  # noqa: ANN001, ANN201
        out = []
        for i, img in enumerate(z):
            c = self.classes_of.get(key(img.numpy()))
            assert c is not None, "recognise drew sprites other than the documented stream"
            label = None if labels is None else int(labels[i])
            out.append(render(np.atleast_2d(self.change(c.copy(), label)))[0])
        pixels = torch.from_numpy(np.stack(out)).float()[:, None]
        return pixels * 60 - 30  # logits: the sigmoid gives the sprite back


def judge(change, kind: str = "ae") -> recognition.Recognition:  # noqa: ANN001
    model = Reconstructs(change, drawn(N, SEED))
    return recognition.recognise(checkpoint(model, kind, 10), n=N, seed=SEED)


def with_(factor: int, f):  # noqa: ANN001, ANN202
    def change(c, label):  # noqa: ANN001, ANN202
        c[factor] = f(c[factor])
        return c

    return change


def test_a_perfect_reconstruction_is_recognised_in_every_respect():
    r = judge(lambda c, label: c)
    assert (r.n, r.shape, r.scale, r.angle, r.all_three) == (N, 1.0, 1.0, 1.0, 1.0)
    assert r.centroid_px == pytest.approx(0.0, abs=1e-6)
    assert r.by_shape == {"square": 1.0, "ellipse": 1.0, "heart": 1.0}


def test_the_wrong_shape_fails_shape_but_not_scale():
    r = judge(with_(0, lambda s: (s + 1) % 3))
    # (the angle of another shape is not compared: a square turned by a quarter is itself)
    assert (r.shape, r.scale, r.all_three) == (0.0, 1.0, 0.0)
    assert r.by_shape == {"square": 0.0, "ellipse": 0.0, "heart": 0.0}


def test_scale_counts_within_one_step_of_six():
    """One step up is still right; two steps down (from the largest scale) is not."""
    classes = drawn(N, SEED)
    r = judge(with_(1, lambda s: s + 1 if s < 5 else s - 2))
    largest = classes[:, 1] == 5
    assert 0 < largest.sum() < N
    assert (r.shape, r.angle) == (1.0, 1.0)
    assert r.scale == pytest.approx(1 - largest.mean())
    assert r.all_three == pytest.approx(1 - largest.mean())


STEP = 360 / 39  # degrees between orientation classes (0 and 39 are 0° and 360°)


def turned(by_shape: tuple[int, int, int]):  # noqa: ANN202
    """Turn each sprite by a number of orientation classes that depends on its shape."""

    def change(c, label):  # noqa: ANN001, ANN202
        c[2] = (c[2] + by_shape[c[0]]) % 39
        return c

    return change


def test_angles_count_within_15_degrees_modulo_each_shapes_symmetry():
    # square +92.3° (2.3° from its 90° symmetry), ellipse +175.4° (4.6° from 180°), heart +9.2°
    assert abs(10 * STEP - 90) < 15 and abs(19 * STEP - 180) < 15 and STEP < 15
    near = judge(turned((10, 19, 1)))
    assert (near.shape, near.scale, near.angle, near.all_three) == (1.0, 1.0, 1.0, 1.0)
    # square +18.5°, ellipse +92.3°, heart +175.4°: each too far, symmetry or not
    assert 2 * STEP > 15
    far = judge(turned((2, 10, 19)))
    assert (far.shape, far.scale, far.angle, far.all_three) == (1.0, 1.0, 0.0, 0.0)
    assert far.by_shape == {"square": 0.0, "ellipse": 0.0, "heart": 0.0}


def test_a_shifted_reconstruction_is_off_centre_by_the_shift():
    classes = drawn(N, SEED)

    class Shifted(Reconstructs):
        def decode(self, z, labels=None):  # noqa: ANN001, ANN201
            out = super().decode(z, labels)
            return torch.roll(out, shifts=(2,), dims=(3,))  # two pixels right

    r = recognition.recognise(
        checkpoint(Shifted(lambda c, label: c, classes), "ae", 10), n=N, seed=SEED
    )
    # every sprite keeps ≥ 2 px of background on its right, so nothing wraps round
    assert render(classes)[:, :, -2:].sum() == 0
    assert r.centroid_px == pytest.approx(2.0, abs=1e-4)


def test_a_cvae_is_judged_with_each_sprites_own_shape_as_its_label():
    """A CVAE that draws whatever shape its label names: right only if the judge gives it the
    input's own shape."""
    r = judge(lambda c, label: np.array([label, *c[1:]]), kind="cvae")
    assert (r.shape, r.all_three) == (1.0, 1.0)
    assert r.by_shape == {"square": 1.0, "ellipse": 1.0, "heart": 1.0}
