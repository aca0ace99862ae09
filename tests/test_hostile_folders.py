"""Checkpoint folders a stranger could hand someone (a downloaded "model"): each broken or hostile
one is skipped at start-up with one log line naming the folder and the problem, and the rest
serve. Nothing in a folder can hang start-up, make it allocate gigabytes or unpickle anything."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from app import registry
from app.checkpoints import CheckpointError, ModelCard, load_checkpoint, save_checkpoint
from app.models import VAE, ConfigError, ModelConfig
from app.registry import load_registry

# a real network, small enough to build and save in milliseconds: 16×16 (two stride-2 convs)
TINY = ModelConfig(kind="vae", latent_dim=3, image_size=16, conv_channels=4, hidden_dim=8)
STARTUP_TIMEOUT_S = 120  # a start-up beside every hostile folder takes ~5 s; a hang never ends


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("source") / "good"
    save_checkpoint(folder, VAE(TINY), ModelCard(name="good", recipe="random weights"))
    return folder


# --- how each hostile folder is made from a copy of the good one ----------------------------


# one field of the wrong type, as a card edited by hand has it, and the line that refuses it
WRONG_CARD_FIELDS = [
    ({"metrics": "x"}, "card.json: metrics: must be an object, got 'x'"),
    ({"kl_per_dim": "abc"}, "card.json: kl_per_dim: must be a list, got 'abc'"),
    ({"kl_per_dim": [0.5, "abc"]}, "card.json: kl_per_dim[1]: must be a number, got 'abc'"),
    ({"steps": "abc"}, "card.json: steps: must be an integer, got 'abc'"),
    ({"steps": "5000"}, "card.json: steps: must be an integer, got '5000'"),
    ({"steps": -1}, "card.json: steps: must not be negative, got -1"),
    ({"segments": "x"}, "card.json: segments: must be a list, got 'x'"),
    ({"segments": [{"from_step": 0}]}, "card.json: segments[0].to_step: is missing"),
    ({"eval": [1]}, "card.json: eval: must be an object, got [1]"),
    (
        {"eval": {"code_percentiles": {"percentiles": [1, 99], "lo": 1, "hi": []}}},
        "card.json: eval.code_percentiles.lo: must be a list, got 1",
    ),
    (
        {"metrics": {"scores": {"mig": {"mean": "high"}}}},
        "card.json: metrics.scores.mig.mean: must be a number, got 'high'",
    ),
    ({"metrics": {"mi_matrix": [[0.1], "row"]}}, "card.json: metrics.mi_matrix[1]: must be a list"),
    ({"metrics": {"digest": 5}}, "card.json: metrics.digest: must be a string, got 5"),
    (
        {"test_split": {"bound": {"mean": None}}},
        "card.json: test_split.bound.mean: must be a number, got None",
    ),
    ({"latent_names": ["skin"]}, "card.json: latent_names: must be an object"),
    ({"latent_names": {"3": 7}}, "card.json: latent_names[3]: must be a string, got 7"),
    ({"initialised_from": "parent"}, "card.json: initialised_from: must be an object"),
    ({"repaired": [5]}, "card.json: repaired[0]: must be an object, got 5"),
    ({"renamed_from": {"why": "x"}}, "card.json: renamed_from.name: is missing"),
    ({"recipe": 3}, "card.json: recipe: must be a string, got 3"),
    ({"batch_size": True}, "card.json: batch_size: must be an integer, got True"),
    ({"wall_time_s": "1 h"}, "card.json: wall_time_s: must be a number, got '1 h'"),
    (
        {"denoising": {"max_level": {"gaussian": "high"}}},
        "card.json: denoising.max_level.gaussian: must be a number",
    ),
    ({"objective": []}, "card.json: objective: must be an object, got []"),
    ({"recipe": 3, "steps": "x"}, "card.json: recipe: must be a string, got 3 (and 1 more field)"),
]


def _rewrite_config(**changes: Any) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    return make


def _write(file: str, content: str | bytes) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (folder / file).write_bytes(data)

    return make


def _config_text(old: str, new: str) -> Callable[[Path], None]:
    """config.json with one literal replaced by text json.dumps would never write (NaN, ...)."""

    def make(folder: Path) -> None:
        text = (folder / "config.json").read_text()
        assert old in text
        (folder / "config.json").write_text(text.replace(old, new))

    return make


def _sparse(file: str, size: int) -> Callable[[Path], None]:
    """A file of `size` bytes that takes no disk: reading it all would take the time and memory."""

    def make(folder: Path) -> None:
        (folder / file).unlink(missing_ok=True)
        with open(folder / file, "wb") as f:
            f.truncate(size)

    return make


def _replace(file: str, make_node: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / file).unlink(missing_ok=True)
        make_node(folder / file)

    return make


def _weights(change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]):
    def make(folder: Path) -> None:
        file = folder / "model.safetensors"
        save_file(change(load_file(str(file))), str(file))

    return make


def _with_value(name: str, value: float):
    def change(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[1] = value
        return tensors

    return change


def _header_only(folder: Path) -> None:
    """A safetensors header claiming a 100,000 × 100,000 tensor (40 GB) over 16 bytes of data."""
    header = json.dumps(
        {
            "decoder.dense.0.weight": {
                "dtype": "F32",
                "shape": [100_000] * 2,
                "data_offsets": [0, 16],
            }
        }
    ).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _drop(file: str) -> Callable[[Path], None]:
    return lambda folder: (folder / file).unlink()


def _symlink(file: str, target: str) -> Callable[[Path], None]:
    return _replace(file, lambda p: p.symlink_to(target))


class RunsCode:
    """Unpickling this calls open(marker, "w"): proof, if the marker appears, that a loader
    unpickled a file of the folder."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _pickle_instead(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    torch.save({"state_dict": RunsCode(folder.parent / "UNPICKLED")}, folder / "model.pt")
    (folder / "pytorch_model.bin").write_bytes((folder / "model.pt").read_bytes())


def _tensor_bytes(good: Path) -> int:
    return sum(t.numel() * 4 for t in load_file(str(good / "model.safetensors")).values())


HUGE = 100 << 20  # 104,857,600 bytes

# (folder name, how it is made, what its log line must say)
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    # config.json
    ("config-missing", _drop("config.json"), "config.json is missing"),
    ("config-not-json", _write("config.json", "{not json"), "config.json: not valid JSON"),
    ("config-not-utf8", _write("config.json", b"\xff\xfe{}"), "config.json: not valid JSON"),
    ("config-a-list", _write("config.json", "[1, 2]"), "config must be a JSON object, got list"),
    (
        "config-huge",
        _sparse("config.json", HUGE),
        "config.json is 104,857,600 bytes; the limit is 1 MiB",
    ),
    ("config-deep", _write("config.json", "[" * 100_000), "config.json is nested too deeply"),
    ("config-digits", _config_text('"latent_dim": 3', '"latent_dim": ' + "9" * 5000), "JSON"),
    ("config-list-number", _rewrite_config(latent_dim=[3]), "latent_dim must be int, got [3]"),
    ("config-bool-int", _rewrite_config(channels=True), "channels must be int, got True"),
    ("config-bool-float", _rewrite_config(beta=True), "beta must be float, got True"),
    ("config-string-number", _rewrite_config(hidden_dim="8"), "hidden_dim must be int, got '8'"),
    ("config-nan", _config_text('"beta": 1.0', '"beta": NaN'), "beta must be a finite number"),
    (
        "config-infinity",
        _config_text('"gaussian_sigma": 0.1', '"gaussian_sigma": Infinity'),
        "gaussian_sigma must be > 0, got inf",
    ),
    ("config-unknown-field", _rewrite_config(evil=1), "config has unknown fields: evil"),
    (
        "config-latent-dim",
        _rewrite_config(latent_dim=10**9),
        "latent_dim must be an integer in 1..512, got 1000000000",
    ),
    (
        "config-hidden-dim",
        _rewrite_config(hidden_dim=10**9),
        "hidden_dim must be an integer in 1..4,096",
    ),
    (
        "config-conv-channels",
        _rewrite_config(conv_channels=10**6),
        "conv_channels must be an integer in 1..1,024",
    ),
    (
        "config-labels",
        _rewrite_config(kind="cvae", label_names=[f"l{i}" for i in range(100_000)]),
        "label_names has 100,000 names; the limit is 1,000",
    ),
    (
        "config-long-string",
        _rewrite_config(dataset="x" * 500_000),
        "dataset must be a string of at most 100 characters",
    ),
    (
        "config-network-too-big",  # each field in bounds, together 302 M parameters (1.2 GB)
        _rewrite_config(image_size=128, hidden_dim=4096, conv_channels=1024),
        "parameters",
    ),
    ("config-image-size", _rewrite_config(image_size=48), "image_size must be one of 16, 32, 64"),
    ("config-fifo", _replace("config.json", os.mkfifo), "config.json is a FIFO, not a file"),
    ("config-dir", _replace("config.json", Path.mkdir), "config.json is a directory, not a file"),
    ("config-passwd", _symlink("config.json", "/etc/passwd"), "a symlink to /etc/passwd, outside"),
    ("config-dangling", _symlink("config.json", "nowhere.json"), "config.json is missing"),
    ("config-loop", _symlink("config.json", "config.json"), "config.json: cannot be read"),
    # card.json
    ("card-a-list", _write("card.json", "[]"), "card.json must be a JSON object"),
    ("card-huge", _sparse("card.json", HUGE), "card.json is 104,857,600 bytes; the limit is 1 MiB"),
    ("card-deep", _write("card.json", '{"a":' * 100_000), "card.json is nested too deeply"),
    ("card-fifo", _replace("card.json", os.mkfifo), "card.json is a FIFO, not a file"),
    ("card-outside", _symlink("card.json", "../good/card.json"), "outside the folder"),
    # a card field of the wrong type that only the model interface trips over: the catch-all
    (
        "card-source-string",
        _write("card.json", '{"source": "abc"}'),
        "card.json: source: must be an object, got 'abc'",
    ),
    *[
        (f"card-field-{i}", _write("card.json", json.dumps(card)), problem)
        for i, (card, problem) in enumerate(WRONG_CARD_FIELDS)
    ],
    # model.safetensors
    ("weights-missing", _drop("model.safetensors"), "model.safetensors is missing"),
    ("weights-empty", _write("model.safetensors", b""), "model.safetensors is empty"),
    ("weights-truncated", _truncate, "not a readable safetensors file"),
    ("weights-huge-shape", _header_only, "not a readable safetensors file"),
    (
        "weights-huge-file",
        _sparse("model.safetensors", 5_000_000_000),
        "model.safetensors is 5,000,000,000 bytes; config.json's network needs",
    ),
    (
        "weights-float64",
        _weights(lambda ts: {k: v.double() for k, v in ts.items()}),
        "is float64",
    ),
    (
        "weights-int8",
        _weights(lambda ts: {k: v.to(torch.int8) for k, v in ts.items()}),
        "is int8",
    ),
    (
        "weights-nan",
        _weights(_with_value("decoder.dense.0.weight", float("nan"))),
        "model.safetensors has NaN or infinite values in decoder.dense.0.weight",
    ),
    (
        "weights-inf",
        _weights(_with_value("encoder.head.bias", float("-inf"))),
        "model.safetensors has NaN or infinite values in encoder.head.bias",
    ),
    (
        "weights-extra",
        _weights(lambda ts: {**ts, "surprise": torch.zeros(1)}),
        "has tensors config.json does not describe: surprise",
    ),
    (
        "weights-lacking",
        _weights(lambda ts: {k: v for k, v in ts.items() if k != "decoder.dense.0.bias"}),
        "model.safetensors lacks decoder.dense.0.bias",
    ),
    (
        "weights-fifo",
        _replace("model.safetensors", os.mkfifo),
        "model.safetensors is a FIFO, not a file",
    ),
    (
        "weights-dir",
        _replace("model.safetensors", Path.mkdir),
        "model.safetensors is a directory",
    ),
    (
        "weights-dev-zero",
        _symlink("model.safetensors", "/dev/zero"),
        "a symlink to /dev/zero, outside",
    ),
    ("weights-pickle-only", _pickle_instead, "model.safetensors is missing"),
]


def _lines_about(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    prefixes = (f"skipping checkpoint {name}: ", f"skipping checkpoint {name!r}: ")
    return [r for r in caplog.records if r.getMessage().startswith(prefixes)]


def _hostile_root(good: Path, root: Path, cases) -> Path:
    shutil.copytree(good, root / "good")
    for name, make, _ in cases:
        shutil.copytree(good, root / name)
        make(root / name)
    return root


# FIFOs only in the start-up in another process (below), where a hang cannot stop the run
IN_PROCESS = [c for c in CASES if "fifo" not in c[0]]


@pytest.mark.parametrize("name, make, problem", IN_PROCESS, ids=[c[0] for c in IN_PROCESS])
def test_a_hostile_folder_is_skipped_with_one_line_naming_it(
    good, tmp_path, caplog, name, make, problem
):
    root = _hostile_root(good, tmp_path / "ck", [(name, make, problem)])
    with caplog.at_level(logging.INFO):
        models = load_registry(root)
    assert list(models) == ["good"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    lines = _lines_about(caplog, name)
    assert len(errors) == 1 and lines == errors, [r.getMessage() for r in errors]
    assert problem in lines[0].getMessage()
    assert lines[0].exc_info is None  # one line: no traceback at ERROR
    assert "\n" not in lines[0].getMessage()


def test_the_size_limits_name_the_numbers(good, tmp_path, caplog):
    """The sizes in the messages are the files' and the network's own, counted here by hand."""
    root = _hostile_root(good, tmp_path / "ck", [c for c in CASES if c[0].endswith("-too-big")])
    shutil.copytree(good, root / "big-file")
    _sparse("model.safetensors", 5_000_000_000)(root / "big-file")
    with caplog.at_level(logging.ERROR):
        assert list(load_registry(root)) == ["good"]
    needed = _tensor_bytes(good)  # TINY's tensors, 4 bytes each
    assert f"needs {needed:,} bytes of weights" in _lines_about(caplog, "big-file")[0].getMessage()
    # 128×128, one channel, 1,024 conv channels, 4,096 hidden, 3 latents (μ and log σ²):
    c, h, d = 1024, 4096, 3
    conv = c * c * 16 + c  # one 4×4 convolution between two c-channel maps, with its bias
    encoder = (c * 16 + c) + 4 * conv + (c * 16 * h + h) + (h * h + h) + (h * 2 * d + 2 * d)
    decoder = (d * h + h) + (h * h + h) + (h * c * 16 + c * 16) + 4 * conv + (c * 16 + 1)
    message = _lines_about(caplog, "config-network-too-big")[0].getMessage()
    assert f"a network of {encoder + decoder:,} parameters" in message
    assert "the limit is 134,217,728" in message


# start-up in a fresh interpreter: opening a FIFO blocks, and inside safetensors' Rust code it
# blocks holding the GIL, so only another process can notice a hang, by its timeout
SERVE = """
import base64, json, logging, sys
from pathlib import Path
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import Settings

logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
with TestClient(create_app(Settings(checkpoints_dir=Path(sys.argv[1])))) as client:
    names = [m["name"] for m in client.get("/api/models").json()]
    r = client.get("/api/models/good/decode.png", params={"z": sys.argv[2]})
png = base64.b64encode(r.content).decode() if r.status_code == 200 else r.text
print(json.dumps({"names": names, "status": r.status_code, "png": png}))
"""


def test_with_every_hostile_folder_beside_it_the_good_model_serves_and_decodes(good, tmp_path):
    root = _hostile_root(good, tmp_path / "ck", CASES)
    z = [0.5, -1.0, 2.0]
    try:
        done = subprocess.run(
            [sys.executable, "-c", SERVE, str(root), ",".join(map(str, z))],
            cwd=Path(__file__).parents[1],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"start-up did not finish within {STARTUP_TIMEOUT_S} s (a FIFO read?)")
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout)
    assert served["names"] == ["good"] and served["status"] == 200, served
    lines = done.stderr.splitlines()
    for name, _, problem in CASES:
        (line,) = [x for x in lines if x.startswith(f"ERROR skipping checkpoint {name}: ")]
        assert problem in line
    errors = [x for x in lines if x.startswith("ERROR")]
    assert len(errors) == len(CASES) and "Traceback" not in done.stderr
    assert not (root / "UNPICKLED").exists()  # model.pt and pytorch_model.bin were never opened

    # the good model's pixels, by an independent forward pass over its saved tensors
    w = load_file(str(good / "model.safetensors"))
    h = torch.tensor([z])
    for i in (0, 2, 4):
        h = F.relu(F.linear(h, w[f"decoder.dense.{i}.weight"], w[f"decoder.dense.{i}.bias"]))
    h = h.view(1, 4, 4, 4)  # (B, conv_channels, 4, 4)
    t = "decoder.deconvs"
    h = F.relu(F.conv_transpose2d(h, w[f"{t}.0.weight"], w[f"{t}.0.bias"], stride=2, padding=1))
    h = F.conv_transpose2d(h, w[f"{t}.2.weight"], w[f"{t}.2.bias"], stride=2, padding=1)
    expected = (torch.sigmoid(h)[0, 0] * 255).round().numpy()
    png = base64.b64decode(served["png"])
    got = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    assert got.shape == (16, 16)
    assert np.abs(got - expected).max() <= 1  # rounding at a .5 boundary, at most
    assert expected.std() > 0  # not a flat image that any decoder would match


def test_a_pickle_file_is_never_loaded_even_beside_good_weights(good, tmp_path, caplog):
    root = tmp_path / "ck"
    shutil.copytree(good, root / "with-pickle")
    marker = tmp_path / "UNPICKLED"
    torch.save({"state_dict": RunsCode(marker)}, root / "with-pickle" / "pytorch_model.bin")
    (root / "with-pickle" / "model.pt").write_bytes(
        (root / "with-pickle" / "pytorch_model.bin").read_bytes()
    )
    models = load_registry(root)
    assert list(models) == ["with-pickle"] and not marker.exists()
    # the payload is live: unpickling it, as torch.load without weights_only does, runs it
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()


@pytest.mark.parametrize("name", ["my model", "100%", "mödel", "a?b", "x" * 101, "-dash"])
def test_a_folder_whose_name_is_not_a_url_segment_is_skipped(good, tmp_path, caplog, name):
    root = tmp_path / "ck"
    shutil.copytree(good, root / "good")
    shutil.copytree(good, root / name)
    with caplog.at_level(logging.ERROR):
        models = load_registry(root)
    assert list(models) == ["good"]
    (line,) = _lines_about(caplog, name)
    assert "a model's name must be letters, digits, '.', '_' or '-'" in line.getMessage()


def test_hidden_and_half_saved_folders_are_ignored_quietly(good, tmp_path, caplog):
    root = tmp_path / "ck"
    for name in ("good", ".hidden", ".good.tmp-a1b2"):
        shutil.copytree(good, root / name)
    with caplog.at_level(logging.INFO):
        models = load_registry(root)
    assert list(models) == ["good"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    messages = [r.getMessage() for r in caplog.records]
    assert "ignoring hidden folder '.hidden'" in messages
    assert any(m.startswith("ignoring '.good.tmp-a1b2': a save in progress") for m in messages)


def test_a_symlink_inside_the_folder_is_followed(good, tmp_path):
    """Only links that leave the folder are refused: one to a file beside it loads."""
    root = tmp_path / "ck"
    shutil.copytree(good, root / "linked")
    (root / "linked" / "weights").mkdir()
    (root / "linked" / "model.safetensors").rename(root / "linked" / "weights" / "real")
    (root / "linked" / "model.safetensors").symlink_to("weights/real")
    models = load_registry(root)
    assert list(models) == ["linked"]
    ours = load_file(str(good / "model.safetensors"))
    for k, v in models["linked"].model.network.state_dict().items():
        assert torch.equal(v, ours[k])


def test_an_unreadable_file_is_named(good, tmp_path, caplog):
    root = tmp_path / "ck"
    shutil.copytree(good, root / "good")
    shutil.copytree(good, root / "locked")
    (root / "locked" / "config.json").chmod(0)
    try:
        (root / "locked" / "config.json").read_bytes()
        pytest.skip("this process reads files whatever their mode (root, CAP_DAC_OVERRIDE)")
    except PermissionError:
        pass
    with caplog.at_level(logging.ERROR):
        models = load_registry(root)
    assert list(models) == ["good"]
    (line,) = _lines_about(caplog, "locked")
    assert "config.json: cannot be read (Permission denied)" in line.getMessage()


def test_any_other_failure_is_one_error_line_and_a_debug_traceback(
    good, tmp_path, caplog, monkeypatch
):
    root = tmp_path / "ck"
    for name in ("good", "surprise"):
        shutil.copytree(good, root / name)
    real = registry.load_checkpoint

    def load(folder: Path):
        if folder.name == "surprise":
            raise MemoryError("cannot allocate\n  2 TB")
        return real(folder)

    monkeypatch.setattr(registry, "load_checkpoint", load)
    with caplog.at_level(logging.DEBUG, logger="app.registry"):
        models = load_registry(root)
    assert list(models) == ["good"]
    (line,) = _lines_about(caplog, "surprise")
    assert line.levelno == logging.ERROR and line.exc_info is None
    assert line.getMessage() == "skipping checkpoint surprise: MemoryError: cannot allocate 2 TB"
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(debug) == 1 and debug[0].exc_info[0] is MemoryError


def test_load_checkpoint_itself_refuses_what_start_up_skips(good, tmp_path):
    """evaluate and training load through the same function, so they refuse alike."""
    folder = tmp_path / "m"
    shutil.copytree(good, folder)
    _symlink("model.safetensors", "/dev/zero")(folder)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(folder)
    assert str(e.value) == (
        f"{folder / 'model.safetensors'}: a symlink to /dev/zero, outside the folder; "
        "copy the file in instead"
    )


# --- ModelConfig refuses absurd sizes itself, naming the field -------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"latent_dim": 100_000}, "latent_dim must be an integer in 1..512, got 100000"),
        ({"latent_dim": 0}, "latent_dim must be an integer in 1..512, got 0"),
        ({"latent_dim": True}, "latent_dim must be an integer in 1..512, got True"),
        ({"hidden_dim": 1 << 20}, "hidden_dim must be an integer in 1..4,096, got 1048576"),
        ({"hidden_dim": -1}, "hidden_dim must be an integer in 1..4,096, got -1"),
        ({"conv_channels": 10_000}, "conv_channels must be an integer in 1..1,024, got 10000"),
        ({"hidden_layers": 0}, "hidden_layers must be an integer in 1..8, got 0"),
        ({"hidden_layers": 1}, "hidden_layers is for the mlp architecture; the conv one has two"),
        ({"channels": True}, "channels must be 1 or 3, got True"),
        ({"image_size": 64.0}, "image_size must be one of 16, 32, 64, 128"),
        ({"image_size": 4096}, "image_size must be one of 16, 32, 64, 128"),
        (
            {"kind": "cvae", "label_names": tuple(map(str, range(5000)))},
            "label_names has 5,000 names; the limit is 1,000",
        ),
        ({"factor_names": ("x" * 101,)}, "each of factor_names must be a string of at most 100"),
        ({"beta": float("nan")}, "beta must be a finite number ≥ 0, got nan"),
        ({"beta": float("inf")}, "beta must be a finite number ≥ 0, got inf"),
        ({"gaussian_sigma": float("nan")}, "gaussian_sigma must be > 0, got nan"),
        ({"kind": "x" * 10_000}, "kind must be one of ae, vae, cvae, got 'xxxxx"),
    ],
)
def test_config_refuses_absurd_values_naming_the_field(changes, message):
    with pytest.raises(ConfigError) as e:
        ModelConfig(**{**TINY.to_json(), "label_names": (), "factor_names": (), **changes})
    assert message in str(e.value)
    assert len(str(e.value)) < 200  # a hostile value is quoted cut short


def test_config_accepts_the_bounds_themselves():
    edge = ModelConfig(latent_dim=512, hidden_dim=4096, conv_channels=1024)
    assert (edge.latent_dim, edge.hidden_dim, edge.conv_channels) == (512, 4096, 1024)
