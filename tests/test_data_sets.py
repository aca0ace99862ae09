"""The data layer (app/data/sets): a folder in each layout people keep images in, the built-in
sets' columns against their factor index math, bad input of every kind, and `data check`.
Every fixture is a few tiny images written here; the values they should give are worked out
beside them, not read back from the code under test."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.data.base import DatasetError
from app.data.fashion_mnist import LABEL_NAMES
from app.data.sets import Fitting, ImageUnreadable, open_set
from app.data.sets.check import MAX_LISTED, check_set
from app.data.sets.folder import FolderSet

# --- writing fixtures -----------------------------------------------------------------------


def save(path: Path, image: Image.Image | np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    im.save(path)
    return path


def flat(path: Path, colour: int | tuple[int, ...], size=(4, 4), mode: str = "RGB") -> Path:
    """A `size` (width, height) image of one colour."""
    return save(path, Image.new(mode, size, colour))


def csv_table(root: Path, text: str, name: str = "metadata.csv") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")


def luma(r: int, g: int, b: int) -> int:
    """ITU-R 601-2 luma, the grey of an RGB colour (what Pillow's "L" conversion computes)."""
    return round(0.299 * r + 0.587 * g + 0.114 * b)


def by_file(s: FolderSet, column: str) -> dict[str, str]:
    c = s.column(column)
    return {s.file(i): c.value_text(i) for i in range(len(s))}


def problem_texts(s) -> list[str]:
    return [str(p) for p in s.problems]


# --- layouts ---------------------------------------------------------------------------------


def test_class_sub_folders_become_a_class_column_counted_per_folder(tmp_path):
    for i in range(3):
        flat(tmp_path / "cats" / f"{i}.png", (i, 0, 0))
    for i in range(2):
        flat(tmp_path / "dogs" / f"{i}.jpg", (0, i, 0))
    flat(tmp_path / "loose.png", 0)
    s = open_set(tmp_path)
    assert s.source == "folder (class sub-folders)"
    assert len(s) == 6
    c = s.column("class")
    assert (c.kind, c.role, c.categories) == ("categorical", "attribute", ("cats", "dogs"))
    assert c.summary().counts == (3, 2)
    assert c.missing == 1  # the loose image has no class, and says so
    assert by_file(s, "class")["loose.png"] == ""
    assert problem_texts(s) == ["loose.png: lies beside the class sub-folders, in none: no class"]
    assert s.split is None


def test_metadata_csv_types_every_column_by_its_values(tmp_path):
    rows = [  # file_name, label, size, colour, smiling, count
        ("a.png", 0, 0.25, "red", "True", 10),
        ("b.png", 2, 0.5, "blue", "False", 11),
        ("c.png", 1, 0.75, "red", "true", 12),
        ("d.png", 2, 1.5, "green", "", 13),
    ]
    for r in rows:
        flat(tmp_path / r[0], 9)
    lines = ["file_name,label,size,colour,smiling,count"]
    lines += [",".join(str(v) for v in r) for r in rows]
    csv_table(tmp_path, "\n".join(lines) + "\n")
    s = open_set(tmp_path)
    assert s.source == "folder (metadata.csv)"
    assert [c.name for c in s.columns] == ["label", "size", "colour", "smiling", "count"]
    label, size, colour, smiling, count = s.columns
    # integers with few values: categories in numeric order
    assert (label.kind, label.categories) == ("categorical", ("0", "1", "2"))
    assert label.values.tolist() == [0, 2, 1, 2]
    # floats: ordered, the numbers themselves
    assert size.kind == "ordered"
    assert size.values.tolist() == [0.25, 0.5, 0.75, 1.5]
    # text: categories sorted by name
    assert (colour.kind, colour.categories) == ("categorical", ("blue", "green", "red"))
    assert colour.values.tolist() == [2, 0, 2, 1]
    # true/false in any case: a bool, the empty cell missing
    assert (smiling.kind, smiling.categories) == ("categorical", ("false", "true"))
    assert smiling.values.tolist() == [1, 0, 1, -1]
    assert smiling.missing == 1
    assert count.categories == ("10", "11", "12", "13")
    assert s.problems == ()


def test_metadata_jsonl_types_json_values_and_many_integers_are_ordered(tmp_path):
    lines = []
    for i in range(25):
        flat(tmp_path / "img" / f"{i:02d}.png", i)
        row = {"file_name": f"img/{i:02d}.png", "step": i * 3, "even": i % 2 == 0,
               "mood": ["calm", "busy"][i % 2]}  # fmt: skip
        lines.append(json.dumps(row))
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    s = open_set(tmp_path)
    assert s.source == "folder (metadata.jsonl)"
    step, even, mood = s.columns
    # 25 distinct integers are more than a class column has (at most 20): ordered
    assert step.kind == "ordered"
    assert step.values.tolist() == [3.0 * i for i in range(25)]
    assert (even.kind, even.categories) == ("categorical", ("false", "true"))
    assert even.values.tolist() == [1 - i % 2 for i in range(25)]
    assert mood.categories == ("busy", "calm")
    assert mood.values.tolist() == [1 - i % 2 for i in range(25)]


def test_train_and_test_sub_folders_are_the_split_and_hold_the_classes(tmp_path):
    for split, n_cat, n_dog in (("train", 3, 2), ("test", 1, 2)):
        for i in range(n_cat):
            flat(tmp_path / split / "cat" / f"{i}.png", i)
        for i in range(n_dog):
            flat(tmp_path / split / "dog" / f"{i}.png", i)
    s = open_set(tmp_path)
    assert s.summary().splits == {"train": 5, "test": 3}
    assert by_file(s, "class") == {
        **{f"train/cat/{i}.png": "cat" for i in range(3)},
        **{f"train/dog/{i}.png": "dog" for i in range(2)},
        "test/cat/0.png": "cat",
        **{f"test/dog/{i}.png": "dog" for i in range(2)},
    }
    test = s.split_indices("test")
    assert sorted(s.file(int(i)) for i in test) == ["test/cat/0.png", "test/dog/0.png",
                                                    "test/dog/1.png"]  # fmt: skip


def test_each_split_folder_may_hold_its_own_table(tmp_path):
    for split, names in (("train", ["a", "b"]), ("test", ["c"])):
        for n in names:
            flat(tmp_path / split / f"{n}.png", 0)
        csv_table(tmp_path / split, "file_name,tag\n" + "".join(f"{n}.png,{n}\n" for n in names))
    s = open_set(tmp_path)
    assert s.source == "folder (test/metadata.csv, train/metadata.csv)"  # by path
    assert by_file(s, "tag") == {"train/a.png": "a", "train/b.png": "b", "test/c.png": "c"}
    assert s.summary().splits == {"train": 2, "test": 1}


def test_a_split_column_is_the_split_and_a_wrong_split_is_named(tmp_path):
    names = ["a", "b", "c", "d"]
    for n in names:
        flat(tmp_path / f"{n}.png", 0)
    csv_table(tmp_path, "file_name,split\na.png,train\nb.png,TEST\nc.png,validation\nd.png,train\n")
    s = open_set(tmp_path)
    assert s.split is not None
    assert [s.file(int(i)) for i in s.split_indices("train")] == ["a.png", "d.png"]
    assert [s.file(int(i)) for i in s.split_indices("test")] == ["b.png"]
    assert [s.file(int(i)) for i in s.split_indices("validation")] == ["c.png"]
    assert [c.name for c in s.columns] == []  # the split is not also a column

    csv_table(tmp_path, "file_name,split\na.png,train\nb.png,holdout\nc.png,test\nd.png,test\n")
    s = open_set(tmp_path)
    assert "b.png: split 'holdout' is not train, validation or test" in problem_texts(s)
    # an image without a split makes the whole split unknown: said, not guessed
    assert s.split is None
    assert any("some images have a split and some do not" in p for p in problem_texts(s))


def test_dataset_json_names_factors_kinds_and_category_names(tmp_path):
    for i in range(4):
        flat(tmp_path / f"{i}.png", 0)
    csv_table(tmp_path, "file_name,shape,scale,note\n0.png,0,1,x\n1.png,2,2,y\n"
                        "2.png,heart,3,x\n3.png,1,1,y\n")  # fmt: skip
    record = {
        "name": "my-shapes",
        "factors": ["shape", "scale"],
        "columns": {
            "shape": {"kind": "categorical", "categories": ["square", "ellipse", "heart"]},
            "scale": {"kind": "ordered"},  # three whole numbers would be read as classes
        },
    }
    (tmp_path / "dataset.json").write_text(json.dumps(record))
    s = open_set(tmp_path)
    assert s.name == "my-shapes"
    shape, scale, note = s.columns
    assert (shape.role, shape.kind) == ("factor", "categorical")
    assert shape.categories == ("square", "ellipse", "heart")
    # codes name their category; a name is taken as it is
    assert [shape.value_text(i) for i in range(4)] == ["square", "heart", "heart", "ellipse"]
    assert (scale.role, scale.kind) == ("factor", "ordered")
    assert scale.values.tolist() == [1.0, 2.0, 3.0, 1.0]
    assert note.role == "attribute"
    assert [c.name for c in s.factors] == ["shape", "scale"]
    assert open_set(tmp_path, name="other").name == "other"  # --name wins over the record


@pytest.mark.parametrize(
    ("record", "named"),
    [
        ({"factor": ["shape"]}, "factor: Extra inputs are not permitted"),
        ({"factors": "shape"}, "factors:"),
        ({"columns": {"scale": {"kind": "number"}}}, "columns.scale.kind:"),
        ({"name": "has space"}, "name:"),
    ],
)
def test_a_wrong_field_in_dataset_json_is_refused_in_one_line_naming_it(tmp_path, record, named):
    flat(tmp_path / "a.png", 0)
    (tmp_path / "dataset.json").write_text(json.dumps(record))
    with pytest.raises(DatasetError) as e:
        open_set(tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path.resolve() / 'dataset.json'}: {named}")


def test_a_column_declared_categorical_orders_its_numbers_as_numbers(tmp_path):
    for i in range(4):
        flat(tmp_path / f"{i}.png", 10 * i)
    csv_table(tmp_path, "file_name,level\n0.png,1\n1.png,2\n2.png,10\n3.png,1.0\n")
    (tmp_path / "dataset.json").write_text('{"columns": {"level": {"kind": "categorical"}}}')
    level = open_set(tmp_path).column("level")
    # numeric order, not text order ("10" before "2"), and 1.0 is the class of 1
    assert level.categories == ("1", "2", "10")
    assert [level.value_text(i) for i in range(4)] == ["1", "2", "10", "1"]


def test_a_model_trained_on_a_named_data_set_views_the_set_whose_record_names_it(tmp_path):
    from app.data.sets import scan_sets

    flat(tmp_path / "faces" / "0.png", 3)
    (tmp_path / "faces" / "dataset.json").write_text('{"model_dataset": "celeba"}')
    flat(tmp_path / "other" / "0.png", 5)
    sets = scan_sets(tmp_path, built_ins=False)
    assert sets.default_for("celeba").name == "faces"
    assert sets.default_for("mnist") is None


def test_dataset_json_naming_a_column_the_set_lacks_is_a_problem(tmp_path):
    flat(tmp_path / "a" / "1.png", 0)
    (tmp_path / "dataset.json").write_text(
        json.dumps({"factors": ["size"], "columns": {"colour": {"kind": "ordered"}}})
    )
    s = open_set(tmp_path)
    assert problem_texts(s) == [
        "dataset.json: factor 'size' is not a column of the set",
        "dataset.json: column 'colour' is not in the table",
    ]


# --- the built-in sets ------------------------------------------------------------------------


def mixed_radix(index: int, sizes: tuple[int, ...]) -> list[int]:
    """index's digits, the last size varying fastest (as the published files order images)."""
    digits = []
    for size in reversed(sizes):
        index, d = divmod(index, size)
        digits.append(d)
    assert index == 0
    return digits[::-1]


def some_indices(n: int) -> list[int]:
    return [0, 1, n - 1, *np.random.default_rng(7).integers(0, n, 60).tolist()]


def test_dsprites_columns_are_each_images_factors_from_its_index():
    s = open_set("dsprites")
    assert len(s) == 3 * 6 * 40 * 32 * 32 == 737_280
    assert [(c.name, c.kind, c.role) for c in s.columns] == [
        ("shape", "categorical", "factor"), ("scale", "ordered", "factor"),
        ("orientation", "ordered", "factor"), ("pos_x", "ordered", "factor"),
        ("pos_y", "ordered", "factor"),
    ]  # fmt: skip
    shape, scale, orientation, pos_x, pos_y = s.columns
    assert shape.categories == ("square", "ellipse", "heart")
    for i in some_indices(len(s)):
        d = mixed_radix(i, (3, 6, 40, 32, 32))
        assert shape.value_text(i) == ("square", "ellipse", "heart")[d[0]]
        assert scale.values[i] == pytest.approx(0.5 + d[1] * 0.5 / 5)  # 0.5 … 1 in 6 steps
        assert orientation.values[i] == pytest.approx(d[2] * 2 * math.pi / 39)  # 0 … 2π, 40
        assert pos_x.values[i] == pytest.approx(d[3] / 31)
        assert pos_y.values[i] == pytest.approx(d[4] / 31)
    assert s.summary().columns[0].counts == (245_760,) * 3


def test_shapes3d_columns_are_each_images_factors_from_its_index():
    s = open_set("shapes3d")
    assert len(s) == 10 * 10 * 10 * 8 * 4 * 15 == 480_000
    names = ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]
    assert [c.name for c in s.columns] == names
    assert [c.kind for c in s.columns] == ["ordered"] * 4 + ["categorical", "ordered"]
    cols = {c.name: c for c in s.columns}
    for i in some_indices(len(s)):
        d = mixed_radix(i, (10, 10, 10, 8, 4, 15))
        for k, hue in enumerate(names[:3]):
            assert cols[hue].values[i] == pytest.approx(d[k] / 10)  # hue 1 would be hue 0
        assert cols["scale"].values[i] == pytest.approx(0.75 + d[3] * 0.5 / 7)
        assert cols["shape"].value_text(i) == ("cube", "cylinder", "sphere", "capsule")[d[4]]
        assert cols["orientation"].values[i] == pytest.approx(-30 + d[5] * 60 / 14)


def test_fashion_mnist_label_and_split_are_the_files(fashion_dir):
    s = open_set("fashion-mnist", fashion_root=fashion_dir)
    # the fixture's image i is of class i % 10: 300 train images, then 100 test images
    label = s.column("label")
    expected = [*(np.arange(300) % 10), *(np.arange(100) % 10)]
    assert label.values.tolist() == expected
    assert label.categories == LABEL_NAMES
    assert s.summary().splits == {"train": 300, "test": 100}
    assert s.inspect(0) == (28, 28, "L")


# --- bad input ---------------------------------------------------------------------------------


def png_bytes(array: np.ndarray) -> bytes:
    import io

    b = io.BytesIO()
    Image.fromarray(array).save(b, "PNG")
    return b.getvalue()


def test_corrupt_and_truncated_images_are_skipped_by_fitted_and_listed_by_check(tmp_path):
    flat(tmp_path / "a_good.png", (30, 60, 90))
    (tmp_path / "b_corrupt.png").write_bytes(b"this is not a picture at all")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    whole = png_bytes(noise)
    (tmp_path / "c_truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "d_empty.jpg").write_bytes(b"")
    flat(tmp_path / "e_good.png", (200, 100, 50))
    s = open_set(tmp_path)
    assert len(s) == 5  # listing opens no file: every image is served until it is asked for
    x, ok = s.fitted(np.arange(5), Fitting(3, 4))
    assert ok.tolist() == [True, False, False, False, True]
    assert (x[~ok] == 0).all()
    assert np.allclose(x[0], np.array([30, 60, 90])[:, None, None] / 255)
    assert np.allclose(x[4], np.array([200, 100, 50])[:, None, None] / 255)
    for i in (1, 2, 3):
        with pytest.raises(ImageUnreadable, match=s.file(i)):
            s.native(i)

    report = check_set(s)
    assert report.unreadable == 3
    assert [u.split(":")[0] for u in report.unreadable_listed] == [
        "b_corrupt.png", "c_truncated.png", "d_empty.jpg",
    ]  # fmt: skip
    assert "truncated" in report.unreadable_listed[1]
    assert report.sizes == {(4, 4): 2}


def test_mixed_sizes_and_modes_fit_to_one_shape_with_the_right_pixels(tmp_path):
    half = np.zeros((16, 16, 3), dtype=np.uint8)
    half[:, :8] = (200, 100, 50)  # left half coloured, right half black
    save(tmp_path / "1_rgb.png", half)
    flat(tmp_path / "2_grey.png", 100, size=(5, 3), mode="L")  # not square: centre-cropped
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:, :4] = (255, 255, 255, 0)  # transparent white: black, as every upload
    rgba[:, 4:] = (90, 60, 30, 255)
    save(tmp_path / "3_rgba.png", rgba)
    palette = Image.new("P", (16, 8))
    palette.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    palette.paste(1, (8, 0, 16, 8))  # left half index 0 (blue), right half index 1 (red)
    save(tmp_path / "4_palette.png", palette)
    deep = np.zeros((8, 8), dtype=np.uint16)
    deep[:, :4] = 65535
    deep[:, 4:] = 128 * 257  # 16-bit grey: 32,896 is 128 of 255
    save(tmp_path / "5_grey16.png", deep)

    s = open_set(tmp_path)
    assert [s.inspect(i) for i in range(5)] == [
        (16, 16, "RGB"), (5, 3, "L"), (8, 8, "RGBA"), (16, 8, "P"), (8, 8, "I;16"),
    ]  # fmt: skip
    colour, ok = s.fitted(np.arange(5), Fitting(3, 8))
    grey, ok_grey = s.fitted(np.arange(5), Fitting(1, 8))
    assert ok.all() and ok_grey.all()
    assert colour.shape == (5, 3, 8, 8) and grey.shape == (5, 1, 8, 8)
    want = np.zeros((5, 3, 8, 8))
    want[0, :, :, :4] = np.array([200, 100, 50])[:, None, None]
    want[1] = 100
    want[2, :, :, 4:] = np.array([90, 60, 30])[:, None, None]
    # the palette image's centre square: columns 4…11 of 16, blue then red
    want[3, :, :, :4] = np.array([0, 0, 255])[:, None, None]
    want[3, :, :, 4:] = np.array([255, 0, 0])[:, None, None]
    want[4, :, :, :4] = 255
    want[4, :, :, 4:] = 128
    assert np.array_equal(np.rint(colour * 255), want)
    want_grey = np.zeros((5, 1, 8, 8))
    want_grey[0, :, :, :4] = luma(200, 100, 50)
    want_grey[1] = 100
    want_grey[2, :, :, 4:] = luma(90, 60, 30)
    want_grey[3, :, :, :4] = luma(0, 0, 255)
    want_grey[3, :, :, 4:] = luma(255, 0, 0)
    want_grey[4, :, :, :4] = 255
    want_grey[4, :, :, 4:] = 128
    assert np.array_equal(np.rint(grey * 255), want_grey)
    # as stored: grey modes one channel (16-bit scaled, not clipped), the others three
    assert s.native(4)[0, 0].tolist() == [255] * 4 + [128] * 4
    assert s.native(3).shape == (3, 8, 16)


def test_rows_naming_missing_files_and_files_without_a_row_are_problems(tmp_path):
    for n in ("a", "b", "c"):
        flat(tmp_path / f"{n}.png", 0)
    csv_table(tmp_path, "file_name,tag\na.png,x\ngone.png,y\nb.png,z\n../outside.png,w\n,v\n")
    s = open_set(tmp_path)
    assert len(s) == 3  # c.png has no row but is still an image of the set
    assert by_file(s, "tag") == {"a.png": "x", "b.png": "z", "c.png": ""}
    assert problem_texts(s) == [
        "metadata.csv line 3: names 'gone.png', which is not an image here: skipped",
        "metadata.csv line 5: file_name '../outside.png' is outside the folder: skipped",
        "metadata.csv line 6: has no file_name: skipped",
        "c.png: has no row in the table: kept, with no values",
    ]


def test_a_file_named_twice_keeps_its_first_row_and_a_column_named_twice_is_refused(tmp_path):
    flat(tmp_path / "a.png", 0)
    csv_table(tmp_path, "file_name,tag\na.png,first\na.png,second\n")
    s = open_set(tmp_path)
    assert by_file(s, "tag") == {"a.png": "first"}
    assert problem_texts(s) == [
        "metadata.csv line 3: names 'a.png' again (first on line 2): this row is skipped"
    ]
    csv_table(tmp_path, "file_name,tag,tag\na.png,1,2\n")
    with pytest.raises(DatasetError, match="column 'tag' appears twice in its header"):
        open_set(tmp_path)


def test_a_csv_that_is_not_utf8_is_refused_naming_the_byte_and_its_offset(tmp_path):
    flat(tmp_path / "a.png", 0)
    text = "file_name,city\na.png,Zürich\n"
    (tmp_path / "metadata.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(DatasetError) as e:
        open_set(tmp_path)
    offset = text.index("ü")  # every character before it is one byte in either encoding
    assert str(e.value) == (
        f"{tmp_path.resolve() / 'metadata.csv'}: not UTF-8 (byte 0xfc at offset {offset}); "
        "save it as UTF-8"
    )


@pytest.mark.parametrize(
    ("tables", "said"),
    [
        ({"metadata.csv": "file_name\na.png\n", "metadata.jsonl": '{"file_name": "a.png"}\n'},
         "{root}: holds both metadata.csv and metadata.jsonl; keep one"),
        ({"metadata.csv": "name,tag\na.png,x\n"},
         "{root}/metadata.csv: its header has no file_name column (it has: name, tag)"),
        ({"metadata.csv": "file_name,tag\na.png,x,y\n"},
         "{root}/metadata.csv line 2: more values than the header has columns"),
        ({"metadata.jsonl": '{"file_name": "a.png"}\n{"file_name": \n'},
         "{root}/metadata.jsonl line 2: not JSON (Expecting value)"),
    ],
)  # fmt: skip
def test_a_table_that_cannot_be_read_is_refused_in_one_line(tmp_path, tables, said):
    flat(tmp_path / "a.png", 0)
    for name, text in tables.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError) as e:
        open_set(tmp_path)
    assert str(e.value) == said.format(root=tmp_path.resolve())


def test_a_column_mixing_numbers_and_text_is_reported_and_read_as_categories(tmp_path):
    for n in ("a", "b", "c"):
        flat(tmp_path / f"{n}.png", 0)
    csv_table(tmp_path, "file_name,size\na.png,1\nb.png,large\nc.png,2.5\n")
    s = open_set(tmp_path)
    size = s.column("size")
    assert (size.kind, size.categories) == ("categorical", ("1", "2.5", "large"))
    assert problem_texts(s) == [
        "column 'size': mixes numbers and text: read as categories (a dataset.json can say "
        "otherwise)"
    ]


def test_links_out_of_the_folder_are_refused_and_links_inside_are_images(tmp_path):
    outside = flat(tmp_path / "elsewhere" / "secret.png", 7)
    root = tmp_path / "set"
    flat(root / "cats" / "a.png", 1, mode="L")
    os.symlink(root / "cats" / "a.png", root / "cats" / "same.png")
    os.symlink(outside, root / "cats" / "out.png")
    os.symlink(outside.parent, root / "dogs")
    s = open_set(root)
    assert [s.file(i) for i in range(len(s))] == ["cats/a.png", "cats/same.png"]
    assert sorted(problem_texts(s)) == [
        f"cats/out.png: a link out of the folder (to {outside.resolve()}): refused",
        f"dogs: a link out of the folder (to {outside.parent.resolve()}): refused",
    ]
    x, ok = s.fitted(np.array([1]), Fitting(1, 4))
    assert ok.all() and np.allclose(x, 1 / 255)


def test_a_folder_with_no_images_and_a_missing_folder_are_refused_in_one_line(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(DatasetError) as e:
        open_set(tmp_path / "empty")
    assert str(e.value).startswith(f"{(tmp_path / 'empty').resolve()}: holds no images (.bmp")
    with pytest.raises(DatasetError) as e:
        open_set(tmp_path / "nowhere")
    assert str(e.value) == (
        f"{tmp_path / 'nowhere'}: neither a folder nor a built-in data set "
        "(dsprites, shapes3d, fashion-mnist)"
    )


# --- data check ---------------------------------------------------------------------------------


def write_checked_folder(root: Path) -> Path:
    """Five images (two sizes, three modes, one corrupt), a table with a missing file, a file
    without a row, a float and a class column, and a record naming one factor."""
    flat(root / "train" / "a.png", (255, 0, 0))
    flat(root / "train" / "b.png", 128, size=(8, 6), mode="L")
    flat(root / "train" / "c.png", (0, 0, 0, 0), mode="RGBA")
    (root / "test").mkdir(parents=True)
    (root / "test" / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing after")
    flat(root / "test" / "e.png", 64, size=(8, 6), mode="L")
    rows = ["train/a.png,square,0.5", "train/b.png,circle,1", "train/c.png,square,2",
            "test/d.png,circle,0.25", "test/x.png,square,1"]  # fmt: skip
    csv_table(root, "file_name,shape,size\n" + "".join(f"{r}\n" for r in rows))
    (root / "dataset.json").write_text(json.dumps({"name": "checked", "factors": ["size"]}))
    return root


def test_data_check_prints_what_would_be_served_and_every_problem(tmp_path, capsys):
    root = write_checked_folder(tmp_path / "folder")
    assert main(["data", "check", str(root)]) == 0
    out, err = capsys.readouterr()
    want = f"""\
name        checked
source      folder (metadata.csv)
location    {root.resolve()}
images      5
decoded     5 of 5: 4 read, 1 cannot be decoded
sizes       4×4 2, 8×6 2
modes       L 2, RGB 1, RGBA 1
splits      train 3, test 2
columns     2
  shape  categorical  attribute  2 categories: circle 2, square 2; 1 missing
  size   ordered      factor     0.25 to 2, 4 distinct; 1 missing
problems    2
  metadata.csv line 6: names 'test/x.png', which is not an image here: skipped
  test/e.png: has no row in the table: kept, with no values
unreadable  1
  test/d.png: not an image in any format Pillow reads
"""
    assert out == want
    assert err == ""


def test_data_check_lists_so_many_unreadable_images_and_counts_the_rest(tmp_path, capsys):
    for i in range(MAX_LISTED + 5):
        (tmp_path / f"{i:02d}.png").write_bytes(b"broken")
    flat(tmp_path / "ok.png", 0)
    assert main(["data", "check", str(tmp_path), "--name", "broken"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "name        broken" in out
    assert f"unreadable  {MAX_LISTED + 5}" in out
    listed = out[out.index(f"unreadable  {MAX_LISTED + 5}") + 1 :]
    assert listed[:MAX_LISTED] == [
        f"  {i:02d}.png: not an image in any format Pillow reads" for i in range(MAX_LISTED)
    ]
    assert listed[MAX_LISTED:] == ["  and 5 more"]


def test_data_check_of_a_drawn_built_in_decodes_a_seeded_sample(capsys):
    assert main(["data", "check", "dsprites", "--limit", "40"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3:8] == [
        "images      737,280",
        "decoded     40 of 737,280: 40 read, 0 cannot be decoded",
        "sample      seed 0; the limit asked for",
        "sizes       64×64 40",
        "modes       L 40",
    ]
    shape = "  shape        categorical  factor     3 categories: "
    assert f"{shape}square 245,760, ellipse 245,760, heart 245,760; 0 missing" in out


def test_check_of_a_drawn_built_in_without_a_limit_decodes_its_default_sample(monkeypatch):
    from app.data.sets import check

    monkeypatch.setattr(check, "DRAWN_SAMPLE", 12)  # the default's size, not its meaning
    report = check_set(open_set("dsprites"))
    assert report.checked == 12
    assert report.sample == "seed 0; every image is drawn by the same renderer from its factors"
    assert sum(report.sizes.values()) == 12


def test_check_with_a_limit_decodes_the_same_seeded_sample_each_time(tmp_path):
    for i in range(6):
        flat(tmp_path / f"{i}.png", i, size=(i + 1, 2), mode="L")
    s = open_set(tmp_path)
    first, again = check_set(s, limit=3), check_set(s, limit=3)
    assert first.checked == 3 and sum(first.sizes.values()) == 3
    assert first.sample == "seed 0; the limit asked for"
    assert check_set(s, limit=6).sample == ""  # a limit of all is no sample
    assert first.sizes == again.sizes
    assert set(first.sizes) <= {(i + 1, 2) for i in range(6)}
    assert len(first.sizes) == 3  # three different images, each its own width


def test_data_check_of_what_cannot_be_opened_says_why_in_one_line_and_exits_1(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"latent-explorer data check: {tmp_path / 'nowhere'}: neither a folder nor a built-in "
        "data set (dsprites, shapes3d, fashion-mnist)\n"
    )
    (tmp_path / "bad").mkdir()
    flat(tmp_path / "bad" / "a.png", 0)
    (tmp_path / "bad" / "metadata.csv").write_bytes(b"file_name\n\xff.png\n")
    assert main(["data", "check", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not UTF-8 (byte 0xff at offset 10)" in err
