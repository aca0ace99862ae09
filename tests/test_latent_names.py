"""Names for latents: `latent-explorer label` writes them into card.json (atomically, nothing else
changed, bad input refused with nothing written), and the API, the explore and compare sliders,
the traversal rows, Figure 2 and the model card show them."""

from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.checkpoints import ModelCard, load_checkpoint, save_checkpoint
from app.checkpoints.latent_names import LatentNameError, label_latents
from app.cli import main
from app.main import create_app
from app.metrics.evaluate import write_metrics
from app.settings import Settings
from app.studies import figure2
from app.web.figure2 import get_sampling

SMALL = figure2.Sampling(
    per_position=1, per_scale=4, per_orientation=2, n_data=256, traversal_steps=3
)
SVG = "{http://www.w3.org/2000/svg}"
SCRIPT = "<script>alert(1)</script>"


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def card(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text(encoding="utf-8"))


def latent_dim(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["latent_dim"]


@pytest.fixture
def folder(trained, tmp_path) -> Path:
    """A copy of the tiny β-VAE: the shared fixture is never labelled in place."""
    return Path(shutil.copytree(trained["tiny-vae"], tmp_path / "tiny-vae"))


def label(*argv: str) -> int:
    return main(["label", *argv])


# --- the command ------------------------------------------------------------------------------


def test_label_writes_exactly_the_names_asked_for_and_nothing_else(folder):
    before, before_files = card(folder), files(folder)
    assert "latent_names" not in before
    assert label(str(folder), "3=skin colour", "9=hair colour") == 0
    after = card(folder)
    assert after.pop("latent_names") == {"3": "skin colour", "9": "hair colour"}
    assert after == before
    now = files(folder)
    assert sorted(now) == sorted(before_files)  # no temp file left, nothing added
    assert {k: v for k, v in now.items() if k != "card.json"} == {
        k: v for k, v in before_files.items() if k != "card.json"
    }


def test_an_empty_name_removes_one_and_clear_removes_all(folder, capsys):
    original = card(folder)
    assert label(str(folder), "3=skin colour", "9=hair colour", "0=  light  ") == 0
    assert card(folder)["latent_names"] == {"0": "light", "3": "skin colour", "9": "hair colour"}
    assert label(str(folder), "9=") == 0
    assert card(folder)["latent_names"] == {"0": "light", "3": "skin colour"}
    assert label("--clear", str(folder), "5=size") == 0  # --clear, then these: exactly these
    assert card(folder)["latent_names"] == {"5": "size"}
    assert label(str(folder), "--clear") == 0  # the flag after the folder too
    assert card(folder) == original  # the field is gone, not left as {}
    capsys.readouterr()
    assert label(str(folder), "4=x position") == 0
    assert label(str(folder)) == 0  # no assignments: print the names
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [f"{folder}: 1 of {latent_dim(folder)} latents named", "  z4  x position"]


def test_a_name_of_forty_characters_with_arrows_is_taken_whole(folder):
    name = "background colour (orange → blue), pale!"
    assert len(name) == 40
    assert label(str(folder), f"2={name}", "3=hair & skin 'tone' \"é\"") == 0
    assert card(folder)["latent_names"] == {"2": name, "3": "hair & skin 'tone' \"é\""}


@pytest.mark.parametrize(
    "assignments, problem",
    [
        (["10=x"], "'10=x': latent 10 is out of range; this model has 10 latents (0..9)"),
        (["--", "-1=x"], "latent -1 is out of range"),  # "--": not an option
        (["x=y"], "the latent index 'x' is not an integer"),
        (["3.5=y"], "the latent index '3.5' is not an integer"),
        (["3"], "'3': expected INDEX=NAME"),
        (["3=" + "x" * 41], "is 41 characters long; the limit is 40"),
        (["3=a\tb"], "contains the control character U+0009"),
        (["3=two\nlines"], "contains the control character U+000A"),
        (["3=\u202eruoloc"], "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ([f"3={SCRIPT}"], "contains '<'; names may not contain < or >"),
        (["3=a > b"], "contains '>'"),
        (["3=a", "3=b"], "latent 3 is named twice"),
        (["1=fine", "12=too far"], "latent 12 is out of range"),  # one bad: none written
    ],
)
def test_bad_input_is_refused_by_name_and_the_card_is_unchanged(
    folder, capsys, assignments, problem
):
    assert latent_dim(folder) == 10
    assert label(str(folder), "7=kept") == 0
    before = files(folder)
    capsys.readouterr()
    assert label(str(folder), *assignments) == 2
    err = capsys.readouterr().err
    assert err.startswith("latent-explorer label: error: ") and problem in err, err
    assert files(folder) == before


def test_a_name_of_any_length_is_quoted_back_cut(folder, capsys):
    name = "n" * 10_000
    assert label(str(folder), f"3={name}") == 2
    err = capsys.readouterr().err
    assert f"latent 3: name '{'n' * 60}…' is 10,000 characters long; the limit is 40" in err
    assert len(err) < 300
    for item in (f"99={name}", f"{name}=x", name):  # out of range, not an index, no "="
        assert label(str(folder), item) == 2
        err = capsys.readouterr().err
        assert "…" in err and "n" * 61 not in err and len(err) < 300, err[:200]


def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"latent_dim": "ten"}')
    (broken / "model.safetensors").write_bytes(b"")
    for path, problem in [
        (tmp_path / "missing", "no such folder"),
        (empty, "not a checkpoint folder (it needs config.json and model.safetensors)"),
        (broken, "config.json is invalid"),
    ]:
        assert label(str(path), "3=x") == 2
        assert problem in capsys.readouterr().err
    assert sorted(p.name for p in empty.iterdir()) == []
    assert sorted(p.name for p in broken.iterdir()) == ["config.json", "model.safetensors"]


def test_a_crash_before_the_rename_leaves_the_old_card_and_no_temp_file(folder, monkeypatch):
    assert label(str(folder), "3=skin colour") == 0
    before = files(folder)

    def power_cut(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="simulated crash"):
        label_latents(folder, ["3=hair colour", "4=gender"])
    assert files(folder) == before  # the old card, every byte, and no .card.json.*.tmp
    monkeypatch.undo()
    label_latents(folder, ["3=hair colour"])
    assert card(folder)["latent_names"] == {"3": "hair colour"}


def test_the_library_refuses_before_reading_further(folder):
    with pytest.raises(LatentNameError, match="latent 10 is out of range"):
        label_latents(folder, ["10=x"])


def test_names_survive_evaluate_and_a_resumed_save_but_not_a_replacing_one(folder):
    assert label(str(folder), "3=skin colour") == 0
    metrics = {"digest": "d", "seeds": [0], "factors": ["shape"], "scores": {}}
    written = write_metrics(folder, metrics)
    assert written.latent_names == {"3": "skin colour"} == card(folder)["latent_names"]
    assert card(folder)["metrics"] == metrics
    model = load_checkpoint(folder).model
    save_checkpoint(folder, model, ModelCard(name="tiny-vae", steps=151))  # training --resume
    assert card(folder)["latent_names"] == {"3": "skin colour"}
    save_checkpoint(folder, model, ModelCard(name="tiny-vae"), replaces=True)  # --overwrite
    assert "latent_names" not in card(folder)


# --- where the names show ---------------------------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        out = "".join(c if isinstance(c, str) else c.text() for c in self.children)
        return re.sub(r"\s+", " ", out).strip()

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if n.tag == tag
            and all(
                (v in (n.attrs.get(k.rstrip("_")) or "").split())
                if k.endswith("_")
                else n.attrs.get(k) == v
                for k, v in attrs.items()
            )
        ]

    def up(self, tag: str) -> Node:
        node = self.parent
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None
        return node


class TreeBuilder(HTMLParser):
    VOID = {"input", "img", "br", "meta", "link", "hr", "source", "rect", "path", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("document", {}, None)
        self.node = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.node)
        self.node.children.append(node)
        if tag not in self.VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.node.children.append(Node(tag, dict(attrs), self.node))

    def handle_endtag(self, tag):
        node = self.node
        while node.parent is not None and node.tag != tag:
            node = node.parent
        if node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.children.append(data)


def html(resp) -> Node:
    assert resp.status_code == 200, resp.text
    builder = TreeBuilder()
    builder.feed(resp.text)
    return builder.root


NAMED = {3: "skin colour", 9: "hair colour"}


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory) -> Path:
    """named-vae: the tiny β-VAE named by the command; other-vae: its weights, named otherwise;
    hostile-vae: a card edited by hand around the command, with markup in a name; tiny-ae: none."""
    root = tmp_path_factory.mktemp("named")
    for name in ("named-vae", "other-vae", "hostile-vae"):
        shutil.copytree(trained["tiny-vae"], root / name)
    shutil.copytree(trained["tiny-ae"], root / "tiny-ae")
    assert label(str(root / "named-vae"), *(f"{i}={n}" for i, n in NAMED.items())) == 0
    assert label(str(root / "other-vae"), "3=hair colour", "9=hair colour", "5=size") == 0
    hostile = card(root / "hostile-vae")
    hostile["latent_names"] = {"3": SCRIPT, "4": "a & b"}
    (root / "hostile-vae" / "card.json").write_text(json.dumps(hostile))
    return root


@pytest.fixture(scope="module")
def client(served):
    app = create_app(Settings(checkpoints_dir=served))
    app.dependency_overrides[get_sampling] = lambda: SMALL
    with TestClient(app) as c:
        yield c


def test_the_api_returns_a_name_per_latent(client):
    expected = [""] * 10
    for i, n in NAMED.items():
        expected[i] = n
    assert client.get("/api/models/named-vae").json()["latent_names"] == expected
    listed = {m["name"]: m["latent_names"] for m in client.get("/api/models").json()}
    assert listed["named-vae"] == expected and listed["tiny-ae"] == [""] * 10


def slider_row(page: Node, dim: int) -> Node:
    (slider,) = page.find_all("input", id=f"z{dim}")
    return slider.up("div")


def test_the_explore_page_shows_each_name_beside_its_own_slider(client):
    page = html(client.get("/?model=named-vae"))
    for dim in range(10):
        row = slider_row(page, dim)
        names = row.find_all("span", class_="latent-name")
        if dim in NAMED:
            assert [n.text() for n in names] == [NAMED[dim]]
            (slider,) = row.find_all("input", type="range")
            assert slider.attrs["aria-describedby"] == names[0].attrs["id"]
        else:
            assert names == [] and row.text().startswith(f"z{dim} ")  # as before: z_d alone
            assert "named" not in row.attrs["class"].split()


def test_an_unnamed_model_has_no_names_anywhere_on_its_page(client):
    page = html(client.get("/?model=tiny-ae"))
    assert page.find_all("span", class_="latent-name") == []
    assert page.find_all("ol", class_="traverse-rows") == []


def test_the_traversal_rows_are_named_in_the_grids_order(client):
    order = client.get("/api/models/named-vae").json()["latent_order"]
    page = html(client.get("/?model=named-vae"))
    (rows,) = page.find_all("ol", class_="traverse-rows")
    items = rows.find_all("li")
    assert [int(li.attrs["data-latent"]) for li in items] == order
    for li in items:
        dim = int(li.attrs["data-latent"])
        assert li.text() == (f"z{dim} {NAMED[dim]}" if dim in NAMED else f"z{dim}")
    # the list sits beside the grid image it names
    (img,) = rows.parent.find_all("img", class_="traverse")
    assert "/api/models/named-vae/traverse.png" in img.attrs["src"]


def test_compare_shows_both_names_where_the_models_disagree(client):
    page = html(client.get("/compare?a=named-vae&b=other-vae"))
    shown = {
        d: [n.text() for n in slider_row(page, d).find_all("span", class_="latent-name")]
        for d in range(10)
    }
    assert shown[3] == ["left: skin colour · right: hair colour"]
    assert shown[9] == ["hair colour"]  # the same name: once
    assert shown[5] == ["right: size"]  # only the right model names it
    assert shown[0] == []
    # each traversal names its own model's rows
    lists = page.find_all("ol", class_="traverse-rows")
    texts = [{li.attrs["data-latent"]: li.text() for li in ol.find_all("li")} for ol in lists]
    assert [t["3"] for t in texts] == ["z3 skin colour", "z3 hair colour"]


def test_the_card_page_has_a_table_of_the_named_latents(client, served):
    page = html(client.get("/models/named-vae"))
    (table,) = page.find_all("table", class_="latent-names")
    rows = [[c.text() for c in tr.children if isinstance(c, Node)] for tr in table.find_all("tr")]
    kl = card(served / "named-vae")["kl_per_dim"]
    assert rows == [
        ["latent", "name", "mean KL (nats)"],
        ["z3", "skin colour", f"{kl[3]:.2f}"],
        ["z9", "hair colour", f"{kl[9]:.2f}"],
    ]
    assert html(client.get("/models/tiny-ae")).find_all("table", class_="latent-names") == []


def figure_columns(resp) -> dict[int, ET.Element]:
    assert resp.status_code == 200, resp.text
    root = ET.fromstring(resp.text)
    return {
        int(g.get("data-latent")): g
        for g in root.iter(f"{SVG}g")
        if "latent" in (g.get("class") or "").split()
    }


def name_text(column: ET.Element) -> str:
    lines = [t.text for t in column.iter(f"{SVG}text") if t.get("class") == "latent-name"]
    return " ".join(lines)


def test_figure2_names_each_latents_column_and_its_traversal(client):
    cols = figure_columns(client.get("/api/models/named-vae/figure2.svg"))
    assert sorted(cols) == list(range(10))
    for dim, col in cols.items():
        assert name_text(col) == NAMED.get(dim, "")
        tiles = [i for i in col.iter(f"{SVG}image") if i.get("class") == "traversal"]
        assert len(tiles) == 3
        tip = tiles[0].find(f"{SVG}title").text
        z = f"z{dim} ({NAMED[dim]})" if dim in NAMED else f"z{dim}"
        assert tip == f"{z} = -3.00, the others at μ of the dataset image"
    # an unnamed model: no name under any column
    plain = figure_columns(client.get("/api/models/tiny-ae/figure2.svg"))
    assert all(name_text(c) == "" for c in plain.values())


def test_the_figure2_fragment_on_the_card_page_is_named_too(client):
    resp = client.get("/ui/named-vae/figure2")
    assert resp.status_code == 200
    assert ">skin colour</text>" in resp.text and ">hair colour</text>" in resp.text


def test_markup_in_a_hand_edited_card_is_shown_as_text_never_run(client):
    page = client.get("/?model=hostile-vae").text
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    tree = html(client.get("/?model=hostile-vae"))
    assert [n.text() for n in slider_row(tree, 3).find_all("span", class_="latent-name")] == [
        SCRIPT
    ]
    assert tree.find_all("script", src=None) == []  # no script element without a src
    svg = client.get("/api/models/hostile-vae/figure2.svg").text
    assert SCRIPT not in svg
    cols = figure_columns(client.get("/api/models/hostile-vae/figure2.svg"))
    assert name_text(cols[3]).replace(" ", "") == SCRIPT  # wrapped into lines, text intact
    assert name_text(cols[4]) == "a & b"
    card_page = client.get("/models/hostile-vae").text
    assert SCRIPT not in card_page and "&lt;script&gt;" in card_page
