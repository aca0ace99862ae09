"""The model page reads as a card: each training segment with its device, torch version, wall time
and command, totals per device, metrics with their settings, KL bars, the parent by name and
weights digest; the raw card.json only behind a link. New runs record per segment the device and
torch version the page shows, in plain English."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.checkpoints import ModelCard, save_checkpoint
from app.main import create_app
from app.models import VAE, ModelConfig
from app.settings import Settings
from app.training import train
from app.training.common import device_name
from tests.conftest import tiny_args

CPU, GPU = "cpu (4 cores, 1 thread)", "cuda (Test GPU 80GB)"


class _Rows(HTMLParser):
    """The cells' text of every <tr> whose class is `cls`."""

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.cls, self.rows, self.row, self.cell = cls, [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr" and self.cls in (dict(attrs).get("class") or "").split():
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def rows(page: str, cls: str) -> list[list[str]]:
    parser = _Rows(cls)
    parser.feed(page)
    return parser.rows


def text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _segment(a, b, device, wall, command, torch_version="2.0.0+cpu"):
    return {"from_step": a, "to_step": b, "device": device, "wall_time_s": wall,
            "command": command, "torch": torch_version}  # fmt: skip


SEGMENTS = [
    _segment(0, 1000, CPU, 600.0, "latent-explorer train --steps 1000 --out m"),
    _segment(1000, 4000, GPU, 300.0, "latent-explorer train --resume --device cuda", "2.1.0+cu1"),
    _segment(4000, 4500, CPU, 1200.0, "latent-explorer train --resume --steps 4500"),
    # two commands a record could not tell apart, their wall time unknown
    {"from_step": 4500, "to_step": 5000, "device": GPU, "wall_time_s": None, "command": None,
     "commands": ["latent-explorer train --resume --steps 5000 --device cuda (first)",
                  "latent-explorer train --resume --steps 5000 --device cuda (again)"],
     "torch": "2.1.0+cu1", "note": "the step between the two not recorded"},
]  # fmt: skip


def _card(name: str, **extra) -> dict:
    card = {
        "name": name,
        "command": "latent-explorer train --steps 1000 --out m",
        "recipe": "β-VAE, β=4",
        "objective": {"objective": "beta", "beta": 4.0, "kl_warmup_steps": 0},
        "steps": 5000,
        "target_steps": 5000,
        "batch_size": 64,
        "seed": 3,
        "device": GPU,
        "wall_time_s": 2400.0,
        "torch": "2.1.0+cu1",
        "kl_per_dim": [0.02, 3.0, 0.0, 1.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.09],
        "metrics": {
            "digest": "not these weights",
            "seeds": [0, 1],
            "step": 5000,
            "scores": {
                "mig": {
                    "mean": 0.3127,
                    "std": 0.0118,
                    "values": [0.3009, 0.3245],
                    "settings": "20-bin histogram, MI in nats (test settings)",
                },
                "dci_disentanglement": {
                    "mean": 0.5321,
                    "std": 0.0,
                    "values": [0.5321],
                    "settings": "gradient boosting (test settings)",
                },
                "dci_et_disentanglement": {
                    "mean": 0.5794,
                    "std": 0.004,
                    "values": [0.5766, 0.5822],
                    "settings": "extra trees (test settings)",
                },
            },
        },  # fmt: skip
    }
    card.update(extra)
    return card


def _folder(root: Path, name: str, card: dict, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(root / name, VAE(ModelConfig(kind="vae", beta=4.0)), ModelCard.from_json(card))
    return root / name


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server with a parent, a child initialised from it, and a card older than segments."""
    root = tmp_path_factory.mktemp("cards")
    _folder(root, "parent", _card("parent"), seed=1)
    from app.checkpoints import load_checkpoint

    parent_digest = load_checkpoint(root / "parent").digest
    _folder(root, "child", _card("child", segments=SEGMENTS, initialised_from={
        "name": "parent", "path": "checkpoints/parent", "digest": parent_digest,
        "recipe": "β-VAE, β=4", "steps": 5000}), seed=2)  # fmt: skip
    _folder(root, "orphan", _card("orphan", segments=SEGMENTS, initialised_from={
        "name": "gone", "digest": "f" * 64, "recipe": "VAE", "steps": 10}), seed=3)  # fmt: skip
    old = _card("old", commands=["latent-explorer train --out old", "latent-explorer train "
                                 "--out old --resume --device cuda"])  # fmt: skip
    _folder(root, "old", old, seed=4)
    single = _card("single", device="cpu (2 cores, 1 threads)", torch="2.13.0+cpu")
    _folder(root, "single", single, seed=5)
    with TestClient(create_app(Settings(checkpoints_dir=root))) as client:
        yield client, parent_digest


def test_the_page_shows_each_segment_with_its_device_torch_wall_time_and_commands(served):
    client, _ = served
    page = client.get("/models/child").text
    assert rows(page, "segment") == [
        ["1,000", "0 → 1,000", CPU, "2.0.0+cpu", "10 min",
         "latent-explorer train --steps 1000 --out m"],
        ["3,000", "1,000 → 4,000", GPU, "2.1.0+cu1", "5 min",
         "latent-explorer train --resume --device cuda"],
        ["500", "4,000 → 4,500", CPU, "2.0.0+cpu", "20 min",
         "latent-explorer train --resume --steps 4500"],
        ["500", "4,500 → 5,000", GPU, "2.1.0+cu1", "not recorded",
         "latent-explorer train --resume --steps 5000 --device cuda (first) "
         "latent-explorer train --resume --steps 5000 --device cuda (again) "
         "the step between the two not recorded"],
    ]  # fmt: skip


def test_the_page_totals_steps_and_wall_time_per_device(served):
    client, _ = served
    page = client.get("/models/child").text
    # by hand: the CPU took 1,000 + 500 steps in 600 + 1,200 s = 30 min over 2 segments; the GPU
    # 3,000 + 500 steps in 300 s (5 min) plus a segment whose wall time was not recorded
    assert rows(page, "device-total") == [
        [CPU, "1,500", "30 min", "2"],
        [GPU, "3,500", "5 min + 1 segment not recorded", "2"],
    ]
    # and in one sentence at the top: the card's 2,400 s, the steps summed per device
    assert f"Trained 5,000 steps × 64 in 40 min: 1,500 steps on {CPU}, 3,500 on {GPU}." in page


def test_the_page_is_no_json_dump_and_links_to_the_raw_record(served):
    client, _ = served
    page = client.get("/models/child").text
    assert '"from_step"' not in page and "&#34;from_step&#34;" not in page
    assert "kl_per_dim" not in page and "<pre" not in page
    assert 'href="/api/models/child"' in page
    raw = client.get("/api/models/child").json()["card"]
    assert raw["segments"] == SEGMENTS


def test_the_page_shows_metrics_with_their_settings_and_kl_bars(served):
    client, _ = served
    page = client.get("/models/child").text
    mig, dci, dci_et = rows(page, "metric")
    assert mig == [
        "MIG",
        "0.313 ± 0.012",
        "0.301, 0.325",
        "20-bin histogram, MI in nats (test settings)",
    ]
    # the library's DCI under its name, from one seed; ours under its own, marked as ours
    assert dci == [
        "DCI disentanglement",
        "0.532 (1 seed)",
        "0.532",
        "gradient boosting (test settings)",
    ]
    assert dci_et[:2] == ["DCI disentanglement (extra trees) ours", "0.579 ± 0.004"]
    assert "the number to set beside a published table" in text(page)
    # computed on other weights than these: the page says so
    assert "stale: computed on weights not these we" in text(page)
    # KL bars, most first: z1 3.0 nats the full 160 px, z3 1.5 half of it; z0 (0.02) dimmed
    bars = re.findall(r'aria-label="z(\d+) KL ([\d.]+) nats">\s*<rect width="160" height="10" '
                      r'class="track"/><rect width="([\d.]+)"', page)  # fmt: skip
    assert [b[0] for b in bars] == ["1", "3", "4", "9", "0", "2", "5", "6", "7", "8"]
    assert [float(b[2]) for b in bars[:3]] == [160.0, 80.0, round(160 * 0.5 / 3, 1)]
    assert re.search(r'<svg class="klbar off"[^>]*aria-label="z0 KL 0.02 nats"', page)


def test_the_parent_is_named_with_its_digest_and_linked_when_served(served):
    client, parent_digest = served
    page = text(client.get("/models/child").text)
    assert f"parent (β-VAE, β=4, 5,000 steps), weights {parent_digest}" in page
    assert "the served parent has these weights" in page
    assert 'href="/models/parent"' in client.get("/models/child").text
    orphan = text(client.get("/models/orphan").text)
    assert "gone (VAE, 10 steps), weights " + "f" * 64 in orphan
    assert "no served model has these weights" in orphan


def test_a_card_written_before_segments_renders_with_what_is_unknown_said(served):
    client, _ = served
    page = client.get("/models/old").text
    # two commands and only the last one's device kept: where the steps ran is not known
    ((steps, span, device, torch_version, wall, commands),) = rows(page, "segment")
    assert (steps, span, device, torch_version, wall) == (
        "5,000",
        "0 → 5,000",
        "not recorded",
        "not recorded",
        "40 min",
    )
    assert f"the card records only where its last command ran: {GPU}" in commands
    assert rows(page, "device-total") == [["not recorded", "5,000", "40 min", "1"]]
    # one command made every step: its device is the card's, in the singular for one thread
    ((_, _, device, torch_version, _, _),) = rows(client.get("/models/single").text, "segment")
    assert (device, torch_version) == ("cpu (2 cores, 1 thread)", "2.13.0+cpu")


def test_every_segment_of_a_new_run_records_its_device_and_torch_version(tmp_path):
    threads = torch.get_num_threads()
    try:
        assert train(tiny_args(tmp_path / "m", steps=4, threads=1, command="one")) == 0
        assert train(tiny_args(tmp_path / "m", steps=6, resume=True, command="two")) == 0
        assert device_name(torch.device("cpu")).endswith(", 1 thread)")
    finally:
        torch.set_num_threads(threads)
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert [(s["from_step"], s["to_step"], s["command"], s["torch"]) for s in card["segments"]] == [
        (0, 4, "one", torch.__version__), (4, 6, "two", torch.__version__)]  # fmt: skip
    assert card["segments"][0]["device"].endswith(", 1 thread)")
    assert "1 threads" not in (tmp_path / "m" / "README.md").read_text()


def test_the_model_card_readme_says_an_ae(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "ae",
        VAE(ModelConfig(kind="ae", objective="reconstruction")),
        ModelCard(name="ae", steps=3),
    )
    readme = (tmp_path / "ae" / "README.md").read_text()
    assert "An AE (objective `reconstruction`)" in readme and "A AE" not in readme
