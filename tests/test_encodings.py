"""A model's encoding of a data set, computed once and kept: the values against the model's own
encoder and inference.encode_images, the cache (read back, never computed twice, never stale),
a killed run resumed from its chunks, unreadable images, a CVAE's classes, the lock, bounded
memory, the background runner and the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from app.checkpoints import ModelCard, ServedModel, load_checkpoint, save_checkpoint
from app.cli import main
from app.data.sets import Column, Fitting, ImageSet, open_set
from app.encodings import (
    EncodingBusy,
    EncodingError,
    EncodingJobs,
    RunSettings,
    encode_set,
    find_encoding,
    plan_encoding,
)
from app.inference import encode_images, prepare_for_serving
from app.models import VAE
from app.models.config import ModelConfig

SMALL = RunSettings(batch_size=3, workers=2, chunk_size=4)  # ragged batches, several chunks


def tiny_model(folder: Path, seed: int = 0, **config) -> ServedModel:
    """A checkpoint folder of an untrained MLP model (its weights drawn from `seed`), loaded as
    the server serves it."""
    settings = dict(kind="vae", channels=3, image_size=16, architecture="mlp", hidden_dim=32,
                    latent_dim=4, likelihood="gaussian", dataset="test")  # fmt: skip
    settings.update(config)
    torch.manual_seed(seed)
    save_checkpoint(folder, VAE(ModelConfig(**settings)), ModelCard())
    return prepare_for_serving(load_checkpoint(folder).served())


def write_pictures(root: Path, n: int, seed: int = 0, side: int = 16, mode: str = "RGB") -> Path:
    """n random pictures as PNGs, a few of them larger than the model's side (resized)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = side + 4 if i % 5 == 2 else side
        shape = (s, s, 3) if mode == "RGB" else (s, s)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
            root / f"{i:04d}.png"
        )
    return root


class Counted(ImageSet):
    """A set that notes which images were asked for: what an encoding computed."""

    def __init__(self, inner: ImageSet) -> None:
        self.inner, self.asked = inner, []
        self.name, self.source, self.location = inner.name, inner.source, inner.location

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.inner.columns

    def content_digest(self) -> str:
        return self.inner.content_digest()

    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        self.asked.extend(np.asarray(indices).tolist())
        return self.inner.fitted(indices, fitting)


class Unplugged(Counted):
    """A set whose disk has gone: every read fails."""

    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        raise OSError("disk\ngone")


class Killed(Exception):
    """Stands for a process killed mid-run."""


class KilledAt(Counted):
    """Dies when image `at` is asked for."""

    def __init__(self, inner: ImageSet, at: int) -> None:
        super().__init__(inner)
        self.at = at

    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        if self.at in np.asarray(indices):
            raise Killed
        return super().fitted(indices, fitting)


def fitted(data: ImageSet, served: ServedModel, indices) -> torch.Tensor:
    d = served.description
    x, ok = data.fitted(np.asarray(indices), data.fitting_for(d.channels, d.image_size))
    assert ok.all()
    return torch.from_numpy(x)


def kl_by_hand(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent: Kingma & Welling 2014, Appendix B."""
    mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)
    return -0.5 * (1 + logvar - mu**2 - np.exp(logvar))


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> ServedModel:
    return tiny_model(tmp_path_factory.mktemp("models") / "tiny-colour")


@pytest.fixture
def pictures(tmp_path) -> Path:
    return write_pictures(tmp_path / "pictures", 10)


def test_an_encoding_holds_what_the_model_makes_of_each_image(model, pictures, tmp_path):
    data = open_set(pictures)
    enc = encode_set(model, data, tmp_path / "cache", settings=SMALL)

    x = fitted(data, model, range(10))
    with torch.no_grad():
        posterior = model.model.encode(x)
    mu, logvar = posterior.mean.numpy(), posterior.logvar.numpy()
    np.testing.assert_allclose(enc.mu, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(enc.logvar, logvar, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(enc.kl, kl_by_hand(mu, logvar), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(enc.nll, encode_images(model, x).recon_nll.numpy(), rtol=1e-5)
    assert enc.ok.all() and enc.indices.tolist() == list(range(10))

    # kept as Parquet under its key, with its record in the schema's metadata
    path = tmp_path / "cache" / "encodings" / f"{enc.meta.key}.parquet"
    assert enc.path == path and path.is_file()
    assert not (tmp_path / "cache" / "encodings" / f"{enc.meta.key}.parts").exists()
    assert not (tmp_path / "cache" / "encodings" / f"{enc.meta.key}.lock").exists()
    record = json.loads(pq.read_schema(path).metadata[b"latent_explorer"])
    assert record["model"] == model.name and record["set_name"] == "pictures"
    assert record["model_digest"] == model.digest
    assert record["set_digest"] == data.content_digest()
    assert record["fitting"] == "3x16x16-resize"
    assert (record["n"], record["latent_dim"], record["unreadable"]) == (10, 4, 0)
    assert record["date"] and record["seconds"] >= 0
    table = pq.read_table(path)
    assert np.array_equal(np.stack(table.column("mu").to_pylist()), enc.mu)

    # read back whole by another caller
    again = find_encoding(model, open_set(pictures), tmp_path / "cache")
    assert again is not None and again.meta == enc.meta
    for name in ("indices", "ok", "mu", "logvar", "kl", "nll"):
        assert np.array_equal(getattr(again, name), getattr(enc, name))
        assert not getattr(again, name).flags.writeable


def test_batches_on_threads_or_in_the_callers_thread_give_the_same_encoding(
    model, pictures, tmp_path
):
    threaded = encode_set(model, open_set(pictures), tmp_path / "threads", settings=SMALL)
    inline = RunSettings(batch_size=3, workers=0, chunk_size=4)
    assert inline.threads(model.model) == 0
    here = encode_set(model, open_set(pictures), tmp_path / "inline", settings=inline)
    for name in ("indices", "ok", "mu", "logvar", "kl", "nll"):
        assert np.array_equal(getattr(here, name), getattr(threaded, name)), name


def test_on_the_cpu_the_default_is_a_thread_per_core_each_with_its_share_of_torchs_threads(
    model, pictures, tmp_path, monkeypatch
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert RunSettings().threads(model.model) == 3
    assert RunSettings().threads(model.model, processes=2) == 1  # two torchrun processes
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert RunSettings().threads(model.model) == 4

    seen: list[tuple[str, int]] = []
    encode = model.model.encode

    def noting(x, labels=None):
        import threading

        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return encode(x, labels)

    monkeypatch.setattr(model.model, "encode", noting)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        encode_set(model, open_set(pictures), tmp_path, settings=SMALL)
        assert torch.get_num_threads() == 4  # the caller's own count is left alone
    finally:
        torch.set_num_threads(before)
    assert len(seen) == 5  # 10 pictures, chunks of 4 in batches of 3: 3+1, 3+1, 2
    assert {name.split("_")[0] for name, _ in seen} == {"encode"}
    assert {threads for _, threads in seen} == {2}  # 4 intra-op threads shared by 2


def _noting_threads(model, monkeypatch, pause: float = 0.0) -> list[str]:
    """The name of the thread each batch is encoded on, in order; `pause` seconds of waiting
    (the GIL let go, as torch's kernels do) added to each batch."""
    import threading
    import time

    seen: list[str] = []
    encode = model.model.encode

    def noting(x, labels=None):
        seen.append(threading.current_thread().name)
        time.sleep(pause)
        return encode(x, labels)

    monkeypatch.setattr(model.model, "encode", noting)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr("app.encodings.run.PROBE", 1)
    return seen


def test_unless_told_the_threads_are_timed_and_kept_where_they_run_faster(
    model, pictures, tmp_path, monkeypatch
):
    seen = _noting_threads(model, monkeypatch, pause=0.02)  # two threads: twice as fast
    one_by_one = RunSettings(batch_size=1, chunk_size=4)  # 10 batches
    timed = encode_set(model, open_set(pictures), tmp_path / "timed", settings=one_by_one)
    # batches 0 and 1 in this thread (1 timed), then threads for the rest: 2 each warming up
    # and judged, then the last 6
    assert seen[:2] == ["MainThread"] * 2
    assert all(name.startswith("encode_") for name in seen[2:]), seen
    inline = encode_set(model, open_set(pictures), tmp_path / "inline",
                        settings=RunSettings(batch_size=1, workers=0, chunk_size=4))  # fmt: skip
    for name in ("indices", "ok", "mu", "logvar", "kl", "nll"):
        assert np.array_equal(getattr(timed, name), getattr(inline, name)), name


def test_threads_that_run_no_faster_are_left_for_the_callers_thread(model, tmp_path, monkeypatch):
    pictures = write_pictures(tmp_path / "pictures", 24)
    seen = _noting_threads(model, monkeypatch)
    monkeypatch.setattr("app.encodings.run.KEEP_THREADS", 1e9)  # never fast enough
    one_by_one = RunSettings(batch_size=1, chunk_size=4)
    timed = encode_set(model, open_set(pictures), tmp_path / "timed", settings=one_by_one)
    # 2 here (1 timed); on the threads 2 warming up, 2 judged and the 4 already handed to them
    # (2·threads + 1 in hand, one just returned); the other 14 here again
    assert seen[:2] == ["MainThread"] * 2 and seen[10:] == ["MainThread"] * 14, seen
    assert all(name.startswith("encode_") for name in seen[2:10]), seen
    told = encode_set(model, open_set(pictures), tmp_path / "told",
                      settings=RunSettings(batch_size=1, workers=2, chunk_size=4))  # fmt: skip
    assert len(seen) == 48 and all(name.startswith("encode_") for name in seen[24:]), seen
    for name in ("indices", "ok", "mu", "logvar", "kl", "nll"):
        assert np.array_equal(getattr(timed, name), getattr(told, name)), name


def test_an_encoding_at_interpreter_exit_stops_keeping_its_chunks(model, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from app import background

    pictures = write_pictures(tmp_path / "pictures", 24)
    one_by_one = RunSettings(batch_size=1, workers=2, chunk_size=4)
    submit = ThreadPoolExecutor.submit
    taken = [0]

    def until_exit(self, fn, *args):  # as concurrent.futures answers once the interpreter exits
        taken[0] += 1
        if taken[0] > 9:  # 5 handed out at first, then one for each of 4 returned: chunk 0
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        return submit(self, fn, *args)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", until_exit)
    with pytest.raises(background.Stopped):
        encode_set(model, open_set(pictures), tmp_path / "cache", settings=one_by_one)
    plan = plan_encoding(model, open_set(pictures), tmp_path / "cache")
    assert len(list(plan.parts.iterdir())) == 1
    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit)
    again = Counted(open_set(pictures))
    encode_set(model, again, tmp_path / "cache", settings=one_by_one)
    assert sorted(again.asked) == list(range(4, 24))  # the first chunk was kept


def test_a_kept_encoding_is_read_not_computed_again(model, pictures, tmp_path):
    first = Counted(open_set(pictures))
    progress: list[float] = []
    encode_set(model, first, tmp_path, settings=SMALL, progress=lambda f, r: progress.append(f))
    assert sorted(first.asked) == list(range(10))
    assert progress == sorted(progress) and progress[-1] == 1.0

    second = Counted(open_set(pictures))
    found = encode_set(model, second, tmp_path, settings=SMALL)
    assert second.asked == []
    assert found.meta.n == 10


def test_a_killed_run_resumes_from_the_chunks_it_finished(model, tmp_path):
    pictures = write_pictures(tmp_path / "pictures", 23)
    # dies asking for image 13: chunks 0..2 (images 0..11) are written by then
    with pytest.raises(Killed):
        encode_set(model, KilledAt(open_set(pictures), at=13), tmp_path / "cache", settings=SMALL)
    plan = plan_encoding(model, open_set(pictures), tmp_path / "cache")
    assert sorted(p.name for p in plan.parts.iterdir()) == [
        "part-000000.parquet", "part-000001.parquet", "part-000002.parquet"
    ]  # fmt: skip
    assert not plan.path.exists()
    # a process killed outright leaves its lock behind
    plan.lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid()}))

    resumed_set = Counted(open_set(pictures))
    resumed = encode_set(model, resumed_set, tmp_path / "cache", settings=SMALL)
    assert sorted(resumed_set.asked) == list(range(12, 23))
    assert (resumed.meta.parts_reused, resumed.meta.images_reused) == (3, 12)
    assert not plan.parts.exists() and not plan.lock.exists()

    whole = encode_set(model, open_set(pictures), tmp_path / "uninterrupted", settings=SMALL)
    for name in ("indices", "ok", "mu", "logvar", "kl", "nll"):
        assert np.array_equal(getattr(resumed, name), getattr(whole, name)), name


def test_a_damaged_chunk_is_computed_again(model, tmp_path):
    pictures = write_pictures(tmp_path / "pictures", 12)
    with pytest.raises(Killed):
        encode_set(model, KilledAt(open_set(pictures), at=9), tmp_path, settings=SMALL)
    plan = plan_encoding(model, open_set(pictures), tmp_path)
    part = plan.parts / "part-000001.parquet"
    part.write_bytes(part.read_bytes()[:100])  # cut short

    again = Counted(open_set(pictures))
    enc = encode_set(model, again, tmp_path, settings=SMALL)
    assert sorted(again.asked) == list(range(4, 12))
    np.testing.assert_allclose(enc.mu[4:8], model.model.encode(fitted(again, model, range(4, 8)))
                               .mean.detach().numpy(), rtol=1e-5, atol=1e-6)  # fmt: skip


def test_an_image_changed_on_disk_is_encoded_again(model, pictures, tmp_path):
    before = encode_set(model, open_set(pictures), tmp_path, settings=SMALL)
    target = pictures / "0003.png"
    Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(target)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime, surely

    changed = open_set(pictures)
    assert find_encoding(model, changed, tmp_path) is None
    after = encode_set(model, changed, tmp_path, settings=SMALL)
    assert after.meta.key != before.meta.key
    mu = model.model.encode(fitted(changed, model, [3])).mean.detach().numpy()[0]
    np.testing.assert_allclose(after.mu[3], mu, rtol=1e-5, atol=1e-6)
    assert not np.allclose(after.mu[3], before.mu[3])
    np.testing.assert_array_equal(np.delete(after.mu, 3, 0), np.delete(before.mu, 3, 0))


def test_changed_columns_or_weights_give_another_key(model, pictures, tmp_path):
    (pictures / "metadata.csv").write_text(
        "file_name,score\n" + "".join(f"{i:04d}.png,{i / 2}\n" for i in range(10))
    )
    key = plan_encoding(model, open_set(pictures), tmp_path).key
    (pictures / "metadata.csv").write_text(
        "file_name,score\n" + "".join(f"{i:04d}.png,{i / 3}\n" for i in range(10))
    )
    assert plan_encoding(model, open_set(pictures), tmp_path).key != key
    other = tiny_model(tmp_path / "other-weights", seed=1)
    assert other.digest != model.digest
    assert (
        plan_encoding(other, open_set(pictures), tmp_path).key
        != plan_encoding(model, open_set(pictures), tmp_path).key
    )


def test_an_unreadable_image_is_counted_and_left_out(model, pictures, tmp_path):
    (pictures / "0004.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    data = open_set(pictures)
    enc = encode_set(model, data, tmp_path, settings=SMALL)
    assert enc.ok.tolist() == [i != 4 for i in range(10)]
    assert enc.meta.unreadable == 1
    assert np.isnan(enc.mu[4]).all() and np.isnan(enc.kl[4]).all() and np.isnan(enc.nll[4])
    assert np.isfinite(np.delete(enc.mu, 4, 0)).all()
    x = fitted(data, model, [5])
    np.testing.assert_allclose(enc.nll[5], encode_images(model, x).recon_nll.numpy()[0], rtol=1e-5)


def test_an_autoencoders_code_has_no_spread(tmp_path, pictures):
    ae = tiny_model(tmp_path / "tiny-ae", kind="ae")
    enc = encode_set(ae, open_set(pictures), tmp_path, settings=SMALL)
    assert np.isneginf(enc.logvar).all() and (enc.kl == 0).all() and (enc.sigma == 0).all()
    mu = ae.model.encode(fitted(open_set(pictures), ae, range(10))).mean.detach().numpy()
    np.testing.assert_allclose(enc.mu, mu, rtol=1e-5, atol=1e-6)


# --- a CVAE's classes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cvae(tmp_path_factory) -> ServedModel:
    folder = tmp_path_factory.mktemp("models") / "tiny-cvae"
    classes = ("square", "circle")
    return tiny_model(folder, kind="cvae", channels=1, likelihood="bernoulli", label_names=classes)


def test_a_cvae_is_given_each_images_class(cvae, tmp_path):
    # class sub-folders list their classes in name order: circle, square, the model's reversed
    for i, cls in enumerate(["square", "circle", "circle", "square", "circle"]):
        write_pictures(tmp_path / "shapes" / cls, 1, seed=i, mode="L")
        (tmp_path / "shapes" / cls / "0000.png").rename(tmp_path / "shapes" / cls / f"{i}.png")
    data = open_set(tmp_path / "shapes")
    enc = encode_set(cvae, data, tmp_path / "cache", settings=SMALL)
    assert enc.meta.label_column == "class"

    classes = [data.column("class").value_text(i) for i in range(len(data))]
    labels = torch.tensor([cvae.description.label_names.index(c) for c in classes])
    x = fitted(data, cvae, range(len(data)))
    mu = cvae.model.encode(x, labels).mean.detach().numpy()
    np.testing.assert_allclose(enc.mu, mu, rtol=1e-5, atol=1e-6)
    nll = [encode_images(cvae, x[i : i + 1], int(labels[i])).recon_nll.item() for i in range(5)]
    np.testing.assert_allclose(enc.nll, nll, rtol=1e-5)
    flipped = cvae.model.encode(x, 1 - labels).mean.detach().numpy()
    assert not np.allclose(enc.mu, flipped)  # the class reached the encoder


def test_a_cvae_leaves_out_the_images_without_a_class(cvae, tmp_path):
    folder = write_pictures(tmp_path / "table", 5, mode="L")
    (folder / "metadata.csv").write_text(
        "file_name,shape\n0000.png,circle\n0001.png,\n0002.png,square\n0003.png,circle\n0004.png,\n"
    )
    data = open_set(folder)
    enc = encode_set(cvae, data, tmp_path / "cache", settings=SMALL)
    assert enc.meta.label_column == "shape"
    assert enc.ok.tolist() == [True, False, True, True, False]
    assert (enc.meta.unlabelled, enc.meta.unreadable) == (2, 0)
    assert np.isnan(enc.mu[[1, 4]]).all()
    x = fitted(data, cvae, [0, 2, 3])
    mu = cvae.model.encode(x, torch.tensor([1, 0, 1])).mean.detach().numpy()
    np.testing.assert_allclose(enc.mu[[0, 2, 3]], mu, rtol=1e-5, atol=1e-6)


def test_a_cvae_on_a_set_without_its_classes_is_refused_in_one_line(cvae, tmp_path):
    data = open_set(write_pictures(tmp_path / "plain", 3, mode="L"))
    with pytest.raises(EncodingError) as e:
        encode_set(cvae, data, tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert "tiny-cvae is a CVAE" in message and "square, circle" in message
    assert "its columns: none" in message
    assert not (tmp_path / "encodings").exists()


# --- the lock -------------------------------------------------------------------------------


def test_a_dead_processes_lock_is_taken_over_and_a_live_ones_is_not(model, pictures, tmp_path):
    plan = plan_encoding(model, open_set(pictures), tmp_path)
    plan.folder.mkdir(parents=True)
    plan.lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid()}))
    with pytest.raises(EncodingBusy, match=f"pid {os.getppid()} on"):
        encode_set(model, open_set(pictures), tmp_path, settings=SMALL)
    assert plan.lock.exists()  # still the other process's

    plan.lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid()}))
    enc = encode_set(model, open_set(pictures), tmp_path, settings=SMALL)
    assert enc.ok.all() and not plan.lock.exists()


# --- memory ---------------------------------------------------------------------------------


def test_memory_stays_bounded_whatever_the_sets_size(tmp_path):
    """2,000 files of a model at 32×32 colour: every fitted image at once would be 24.6 MB of
    float32; the pipeline holds a few batches."""
    model = tiny_model(tmp_path / "tiny-32", image_size=32, hidden_dim=16)
    root = tmp_path / "many"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2000):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"{i}.png")
    data = open_set(root)
    all_at_once = 2000 * 3 * 32 * 32 * 4
    tracemalloc.start()
    try:
        enc = encode_set(model, data, tmp_path, settings=RunSettings(batch_size=16, workers=1,
                                                                     chunk_size=256))  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert enc.ok.all() and len(enc) == 2000
    assert peak < all_at_once / 8, f"peak {peak:,} bytes"


# --- the background runner ------------------------------------------------------------------


def test_the_background_runner_reports_where_an_encoding_stands(model, cvae, pictures, tmp_path):
    jobs = EncodingJobs(tmp_path, settings=SMALL)
    data = open_set(pictures)
    assert jobs.status(model, data) is None  # nothing asked yet: nothing started
    first = jobs.request(model, data)
    assert first.state in ("queued", "running", "done")
    jobs.join(timeout=60)
    done = jobs.request(model, data)
    assert done.state == "done" and done.fraction == 1.0
    assert done.encoding is not None and done.encoding.ok.all()
    assert find_encoding(model, data, tmp_path) is not None

    refused = jobs.request(cvae, data)
    assert refused.state == "failed" and "needs each image's class" in refused.reason


def test_the_background_runner_reports_a_failure_once(model, tmp_path):
    pictures = write_pictures(tmp_path / "pictures", 6)
    jobs = EncodingJobs(tmp_path, settings=SMALL)
    broken = Unplugged(open_set(pictures))
    jobs.request(model, broken)
    jobs.join(timeout=60)
    failed = jobs.request(model, broken)
    assert failed.state == "failed" and failed.reason == "disk gone"
    again = jobs.request(model, broken)  # reported once: tried again
    assert again.state in ("queued", "running", "failed")
    jobs.join(timeout=60)


# --- the command line -----------------------------------------------------------------------


def test_the_command_line_encodes_once_and_says_where(model, pictures, tmp_path, capsys):
    args = ["encode", "tiny-colour", str(pictures), "--checkpoints", str(model.path.parent),
            "--cache-dir", str(tmp_path / "cache"), "--batch", "4", "--workers", "1"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    path = next((tmp_path / "cache" / "encodings").glob("*.parquet"))
    assert "tiny-colour on pictures: encoded" in out and str(path) in out
    assert "10 (0 unreadable)" in out and "images/s" in out

    assert main([*args[:1], str(model.path), *args[2:]]) == 0  # the folder's path does as well
    out = capsys.readouterr().out
    assert "already encoded, nothing to do" in out and str(path) in out


def test_the_command_line_refuses_a_cvae_without_classes_in_one_line(cvae, tmp_path, capsys):
    folder = write_pictures(tmp_path / "plain", 2, mode="L")
    args = ["encode", str(cvae.path), str(folder), "--cache-dir", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("latent-explorer encode: error: model tiny-cvae is a CVAE")
    assert "\n" not in err
