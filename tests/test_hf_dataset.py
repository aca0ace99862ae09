"""A Hugging Face dataset saved with `save_to_disk` (app/data/sets/hf.py): a Dataset and a
DatasetDict written here by `datasets` itself, a few rows each, every image a colour or a size
that says which row it is, so what comes back can be checked row by row."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from app.cli import main
from app.data.base import DatasetError
from app.data.sets import Fitting, ImageUnreadable, open_set
from app.data.sets.check import check_set
from app.data.sets.columns import typed_columns
from app.data.sets.hf import SavedDataset, arrow_column, datasets
from app.data.sets.record import Problem
from app.data.sets.record_file import SetRecord

datasets.disable_progress_bars()

NAMES = ["cat", "dog", "fox"]
FEATURES = {
    "image": datasets.Image(),
    "label": datasets.ClassLabel(names=NAMES),
    "smiling": datasets.Value("bool"),
    "size": datasets.Value("float32"),
    "note": datasets.Value("string"),
    "tags": datasets.List(datasets.Value("string")),
    "where": {"x": datasets.Value("int32")},
}


def png(colour, size=(4, 4), mode: str = "RGB") -> bytes:
    b = io.BytesIO()
    Image.new(mode, size, colour).save(b, "PNG")
    return b.getvalue()


def colour_of(i: int) -> tuple[int, int, int]:
    """Row i's colour: no two rows of a fixture share one."""
    return (10 * i, 250 - 10 * i, 7)


def rows(n: int, first: int = 0, **images: bytes | None) -> dict[str, list]:
    """n rows of FEATURES' columns; row i's image is colour_of(first + i) unless `images`
    replaces it (key "r3": row 3's bytes, None for a row with no image)."""
    out: dict[str, list] = {k: [] for k in FEATURES}
    for i in range(n):
        data = images.get(f"r{i}", png(colour_of(first + i)))
        out["image"].append(None if data is None else {"bytes": data, "path": f"{first + i}.png"})
        out["label"].append([0, 2, 1, 2, -1][i % 5])
        out["smiling"].append([True, False, True, None, False][i % 5])
        out["size"].append([0.5, 1.25, 2.0, 0.75, 3.5][i % 5])
        out["note"].append(["b", "a", "c", "a", ""][i % 5])
        out["tags"].append(["x"] * (i % 3))
        out["where"].append({"x": i})
    return out


def saved(path: Path, data: dict[str, list], features=None) -> Path:
    feats = datasets.Features(features or {k: FEATURES[k] for k in data})
    datasets.Dataset.from_dict(data, features=feats).save_to_disk(str(path))
    return path


def saved_dict(path: Path, splits: dict[str, dict[str, list]]) -> Path:
    feats = datasets.Features({k: FEATURES[k] for k in next(iter(splits.values()))})
    datasets.DatasetDict(
        {s: datasets.Dataset.from_dict(d, features=feats) for s, d in splits.items()}
    ).save_to_disk(str(path))
    return path


def colours(x: np.ndarray) -> list[tuple[int, ...]]:
    """The colour of each fitted (B, 3, S, S) image, checking each is of one colour."""
    out = []
    for image in np.rint(x * 255).astype(int):
        assert (image == image[:, :1, :1]).all()
        out.append(tuple(image[:, 0, 0].tolist()))
    return out


# --- what is served ---------------------------------------------------------------------------


def test_a_saved_dataset_serves_its_images_and_types_its_columns(tmp_path):
    s = open_set(saved(tmp_path / "pets", rows(5)))
    assert isinstance(s, SavedDataset)
    assert (s.name, len(s), s.split) == ("pets", 5, None)
    assert s.source == "Hugging Face Dataset, saved (images: 'image')"
    assert [c.name for c in s.columns] == ["label", "smiling", "size", "note"]
    label, smiling, size, note = s.columns
    assert (label.kind, label.categories) == ("categorical", ("cat", "dog", "fox"))
    assert label.values.tolist() == [0, 2, 1, 2, -1]  # -1: ClassLabel's "no label"
    assert (smiling.kind, smiling.categories) == ("categorical", ("false", "true"))
    assert smiling.values.tolist() == [1, 0, 1, -1, 0]
    assert size.kind == "ordered"
    assert size.values.tolist() == [0.5, 1.25, 2.0, 0.75, 3.5]  # each exact in float32
    assert (note.categories, note.values.tolist()) == (("a", "b", "c"), [1, 0, 2, 0, -1])
    assert [str(p) for p in s.problems] == [
        "column 'tags': holds lists: left out",
        "column 'where': holds objects: left out",
    ]
    x, ok = s.fitted(np.array([4, 0, 2, 2]), Fitting(3, 4))
    assert ok.all()
    assert colours(x) == [colour_of(4), colour_of(0), colour_of(2), colour_of(2)]
    assert s.inspect(3) == (4, 4, "RGB")
    assert s.native(1)[:, 0, 0].tolist() == list(colour_of(1))


def test_a_dataset_dicts_train_validation_and_test_are_the_sets_split(tmp_path):
    path = saved_dict(tmp_path / "d", {"train": rows(3), "test": rows(2, first=3),
                                       "validation": rows(1, first=5)})  # fmt: skip
    s = open_set(path)
    assert s.source == "Hugging Face DatasetDict (train, test, validation), saved (images: 'image')"
    assert s.summary().splits == {"train": 3, "validation": 1, "test": 2}
    assert s.split_indices("test").tolist() == [3, 4]
    assert s.split_indices("validation").tolist() == [5]
    # any order, across the splits: each index is its own image
    order = np.array([5, 0, 3, 4, 1, 2, 0])
    x, ok = s.fitted(order, Fitting(3, 2))
    assert ok.all()
    assert colours(x) == [colour_of(int(i)) for i in order]
    assert s.column("label").values.tolist() == [0, 2, 1, 0, 2, 0]


def test_a_split_of_another_name_is_left_out_and_said(tmp_path):
    s = open_set(saved_dict(tmp_path / "d", {"train": rows(2), "extra": rows(4, first=2)}))
    assert len(s) == 2
    assert s.summary().splits == {"train": 2}
    assert [str(p) for p in s.problems][0] == (
        "split 'extra': is not train, validation or test: its images are left out"
    )
    # no split of a known name: every image is served, without a split
    s = open_set(saved_dict(tmp_path / "e", {"first": rows(2), "second": rows(1, first=2)}))
    assert (len(s), s.split) == (3, None)
    assert str(s.problems[0]) == (
        "dataset_dict.json: no split is train, validation or test ('first', 'second'): every "
        "split is served, and the set has no split"
    )
    assert colours(s.fitted(np.arange(3), Fitting(3, 2))[0]) == [colour_of(i) for i in range(3)]


def test_images_are_read_in_batches_and_each_is_its_own_across_batches_and_splits(tmp_path):
    def sized(n: int, first: int) -> dict[str, list]:
        data = rows(n, first)
        data["image"] = [{"bytes": png(9, size=(first + i + 1, 2), mode="L"), "path": None}
                         for i in range(n)]  # fmt: skip
        return data

    s = open_set(saved_dict(tmp_path / "d", {"train": sized(70, 0), "test": sized(5, 70)}))
    # row i is (i + 1) pixels wide: 64-row batches, then the second split
    assert [s.inspect(i)[0] for i in range(75)] == list(range(1, 76))
    assert [s.inspect(i)[0] for i in (74, 3, 66, 64, 63)] == [75, 4, 67, 65, 64]
    with pytest.raises(IndexError, match="0..74, got 75"):
        s.inspect(75)


def test_sixteen_bit_grey_palette_and_transparent_images_fit_as_in_a_folder(tmp_path):
    deep = io.BytesIO()
    Image.fromarray(np.full((3, 5), 128 * 257, dtype=np.uint16)).save(deep, "PNG")
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 30, 60, 90] + [0] * 762)
    pal = io.BytesIO()
    palette.save(pal, "PNG")
    data = rows(3, r0=deep.getvalue(), r1=pal.getvalue(), r2=png((255, 255, 255, 0), mode="RGBA"))
    s = open_set(saved(tmp_path / "m", {"image": data["image"]}))
    assert [s.inspect(i) for i in range(3)] == [(5, 3, "I;16"), (4, 4, "P"), (4, 4, "RGBA")]
    x, ok = s.fitted(np.arange(3), Fitting(3, 3))
    assert ok.all()
    assert colours(x) == [(128, 128, 128), (30, 60, 90), (0, 0, 0)]


# --- bad input ----------------------------------------------------------------------------------


def test_corrupt_truncated_and_missing_images_are_unreadable_not_raised(tmp_path, capsys):
    whole = png((1, 2, 3), size=(32, 32))
    data = rows(5, r1=b"not a picture", r2=whole[: len(whole) // 2], r3=None)
    s = open_set(saved_dict(tmp_path / "bad", {"train": data}))
    x, ok = s.fitted(np.arange(5), Fitting(3, 4))
    assert ok.tolist() == [True, False, False, False, True]
    assert (x[~ok] == 0).all()
    assert colours(x[ok]) == [colour_of(0), colour_of(4)]
    with pytest.raises(ImageUnreadable) as e:
        s.inspect(1)
    assert str(e.value) == "image 1 (train row 1, 1.png): not an image in any format Pillow reads"
    with pytest.raises(ImageUnreadable, match=r"^image 3 \(train row 3\): the row has no image$"):
        s.native(3)

    assert main(["data", "check", str(tmp_path / "bad")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "decoded     5 of 5: 2 read, 3 cannot be decoded" in out
    at = out.index("unreadable  3")
    assert out[at + 1] == "  image 1 (train row 1, 1.png): not an image in any format Pillow reads"
    assert out[at + 2].startswith("  image 2 (train row 2, 2.png): cannot be read as an image (")
    assert out[at + 3] == "  image 3 (train row 3): the row has no image"


def test_a_dataset_without_an_image_column_is_refused_naming_its_columns(tmp_path):
    path = saved(tmp_path / "t", {"label": [0, 1], "size": [1.0, 2.0]})
    with pytest.raises(DatasetError) as e:
        open_set(path)
    assert str(e.value) == (
        f"{path.resolve()}: no column is a datasets.Image (its columns: label (ClassLabel), "
        "size (Value))"
    )


def test_of_several_image_columns_image_is_preferred_else_the_first(tmp_path):
    data = rows(2)
    both = {"mask": [{"bytes": png(0), "path": None}] * 2, "image": data["image"]}
    feats = {"mask": datasets.Image(), "image": datasets.Image()}
    s = open_set(saved(tmp_path / "a", both, feats))
    assert s.image_column == "image"
    assert s.source == "Hugging Face Dataset, saved (images: 'image'; also image columns 'mask')"
    assert [str(p) for p in s.problems] == ["column 'mask': another image column: left out"]
    assert colours(s.fitted(np.arange(2), Fitting(3, 2))[0]) == [colour_of(0), colour_of(1)]
    s = open_set(saved(tmp_path / "b", {"photo": data["image"], "sketch": both["mask"]},
                       {"photo": datasets.Image(), "sketch": datasets.Image()}))  # fmt: skip
    assert s.image_column == "photo"


def test_splits_with_different_columns_are_refused(tmp_path):
    path = saved_dict(tmp_path / "d", {"train": rows(2), "test": rows(2)})
    saved(path / "test", {"image": rows(1)["image"]})
    with pytest.raises(DatasetError, match="split 'test' has other columns or column types than "
                                           "'train'; every split must have the same"):  # fmt: skip
        open_set(path)


def test_a_state_naming_a_file_outside_its_folder_is_refused(tmp_path):
    path = saved(tmp_path / "s", rows(2))
    state = json.loads((path / "state.json").read_text())
    state["_data_files"] = [{"filename": "../elsewhere.arrow"}]
    (path / "state.json").write_text(json.dumps(state))
    with pytest.raises(DatasetError) as e:
        open_set(path)
    assert str(e.value) == (
        f"{path.resolve() / 'state.json'}: names '../elsewhere.arrow', which is not a file in "
        "its folder"
    )


def test_an_arrow_file_cut_short_is_refused_in_one_line(tmp_path):
    path = saved(tmp_path / "s", rows(3))
    arrow = next(path.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:100])
    with pytest.raises(DatasetError) as e:
        open_set(path)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{path.resolve()}: datasets cannot read it (")


def test_a_dataset_of_no_rows_is_refused(tmp_path):
    path = saved(tmp_path / "z", {k: [] for k in ("image", "label")})
    with pytest.raises(DatasetError) as e:
        open_set(path)
    assert str(e.value) == f"{path.resolve()}: holds no images (0 rows)"
    # an empty split of a DatasetDict (save_to_disk writes it no Arrow file) is said, not fatal
    s = open_set(saved_dict(tmp_path / "d", {"train": rows(2), "test": rows(0)}))
    assert (len(s), s.summary().splits) == (2, {"train": 2})
    assert [str(p) for p in s.problems][0] == "split 'test': holds no rows"


# --- dataset.json, the columns' types, the digest ---------------------------------------------


def test_dataset_json_beside_a_saved_dataset_names_factors_and_kinds(tmp_path):
    data = rows(5)
    data["count"] = [1, 2, 3, 1, 2]
    feats = {**{k: FEATURES[k] for k in ("image", "label", "size")},
             "count": datasets.Value("int64")}  # fmt: skip
    path = saved(tmp_path / "r", {k: data[k] for k in feats}, feats)
    record = {"name": "counted", "factors": ["label", "count", "shade"],
              "columns": {"count": {"kind": "ordered"}}}  # fmt: skip
    (path / "dataset.json").write_text(json.dumps(record))
    s = open_set(path)
    assert s.name == "counted"
    assert [(c.name, c.kind, c.role) for c in s.columns] == [
        ("label", "categorical", "factor"),
        ("size", "ordered", "attribute"),
        ("count", "ordered", "factor"),  # three whole numbers, declared ordered
    ]
    assert s.column("count").values.tolist() == [1.0, 2.0, 3.0, 1.0, 2.0]
    assert [str(p) for p in s.problems] == [
        "dataset.json: factor 'shade' is not a column of the set"
    ]
    (path / "dataset.json").write_text(json.dumps({"columns": {"label": {"kind": "ordered"}}}))
    label = open_set(path).column("label")
    assert label.kind == "ordered"
    assert np.array_equal(label.values, [0.0, 2.0, 1.0, 2.0, np.nan], equal_nan=True)


@pytest.mark.parametrize(
    "values",
    [
        pa.array([True, None, False, True]),
        pa.array([3, 1, None, 3, 20], type=pa.int16()),
        pa.array(list(range(25)), type=pa.uint8()),  # more than 20 distinct: ordered
        pa.array([1.0, 2.0, None, 2.0]),
        pa.array([0.5, float("nan"), float("inf"), None, -2.0]),
        pa.array([-7, 0, 5], type=pa.int64()),
    ],
)
def test_bool_and_number_columns_are_typed_as_columns_py_types_the_same_values(values):
    """The Arrow path gives what columns.typed_columns gives the same values as Python ones."""
    chunked = pa.chunked_array([values.slice(0, 2), values.slice(2)])
    fast_problems: list[Problem] = []
    slow_problems: list[Problem] = []
    fast = arrow_column("v", chunked, "attribute", fast_problems)
    (slow,) = typed_columns({"v": values.to_pylist()}, SetRecord(), slow_problems)
    assert fast is not None
    assert (fast.kind, fast.categories, fast.role) == (slow.kind, slow.categories, slow.role)
    assert np.array_equal(fast.values, slow.values, equal_nan=True)
    assert fast.values.dtype == slow.values.dtype
    assert fast_problems == slow_problems


def test_the_digest_is_the_same_reopened_and_changes_with_a_value_or_a_file(tmp_path):
    path = saved(tmp_path / "d", rows(3))
    first = open_set(path).content_digest()
    assert open_set(path).content_digest() == first
    assert open_set(path, name="other").content_digest() == first  # the name is not content
    moved = tmp_path / "moved"
    shutil.copytree(path, moved, copy_function=shutil.copy2)  # the same files, elsewhere
    assert open_set(moved).content_digest() == first
    arrow = next(path.glob("*.arrow"))
    st = arrow.stat()
    os.utime(arrow, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    touched = open_set(path).content_digest()
    assert touched != first
    changed = rows(3)
    changed["label"][0] = 1
    other = saved(tmp_path / "e", changed)
    assert open_set(other).content_digest() not in (first, touched)


# --- data check ---------------------------------------------------------------------------------


def test_data_check_of_a_saved_dataset_dict(tmp_path, capsys):
    train = rows(4, r3=b"broken")
    path = saved_dict(tmp_path / "pets", {"train": train, "test": rows(1, first=4)})
    assert check_set(open_set(path)).unreadable == 1
    assert main(["data", "check", str(path)]) == 0
    assert (
        capsys.readouterr().out
        == f"""\
name        pets
source      Hugging Face DatasetDict (train, test), saved (images: 'image')
location    {path.resolve()}
images      5
decoded     5 of 5: 4 read, 1 cannot be decoded
sizes       4×4 4
modes       RGB 4
splits      train 4, test 1
columns     4
  label    categorical  attribute  3 categories: cat 2, dog 1, fox 2; 0 missing
  smiling  categorical  attribute  2 categories: false 1, true 3; 1 missing
  size     ordered      attribute  0.5 to 2, 4 distinct; 0 missing
  note     categorical  attribute  3 categories: a 2, b 2, c 1; 0 missing
problems    2
  column 'tags': holds lists: left out
  column 'where': holds objects: left out
unreadable  1
  image 3 (train row 3, 3.png): not an image in any format Pillow reads
"""
    )
