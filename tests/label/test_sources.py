"""Inputs of ``marigold label``: files, folders, globs, text lists, Parquet tables and fsspec URLs -> keyed items."""

from __future__ import annotations

import os

import pytest

from marigold_toolkit.label.sources import SourceError, expand_inputs, image_column, read_items

from ._helpers import make_images

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
fsspec = pytest.importorskip("fsspec")


def _keys(inputs):
    return [i.key for i in inputs.items]


def test_files_folders_globs_and_lists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_images(tmp_path / "a", 3)
    make_images(tmp_path / "b" / "deep", 2, seed=10)
    (tmp_path / "a" / "notes.txt").write_text("not an input when found in a folder")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "more.txt").write_text("# a comment\n\n../b/deep/img00.png\n  ../a/img00.png  \n"
                                                 "../b/deep/img01.jpg\n../missing.png\n")
    got = expand_inputs(["a", "b/**/*.jpg", "lists/more.txt", "a/img01.jpg", "nothing/*.png"])
    # sorted and unique: a/img00.png, a/img01.jpg and b/deep/img01.jpg come twice
    assert _keys(got) == ["a/img00.png", "a/img01.jpg", "a/img02.png", "b/deep/img00.png", "b/deep/img01.jpg"]
    assert all(i.source == i.key and i.row == -1 for i in got.items)
    assert sorted(got.failed) == [("missing.png", "no such file or directory"),
                                  ("nothing/*.png", "no file matches this pattern")]


def test_the_output_folder_is_not_an_input(tmp_path):
    make_images(tmp_path / "data", 2)
    make_images(tmp_path / "data" / "labels", 1)  # e.g. outputs of a --format files run inside the input folder
    got = expand_inputs([str(tmp_path / "data"), str(tmp_path / "data" / "*" / "*.png")],
                        exclude=tmp_path / "data" / "labels")
    assert _keys(got) == [str(tmp_path / "data" / n) for n in ("img00.png", "img01.jpg")]
    explicit = expand_inputs([str(tmp_path / "data" / "labels" / "img00.png")], exclude=tmp_path / "data" / "labels")
    assert len(explicit.items) == 1  # named explicitly: kept


def _write_table(path, columns, **kw):
    pq.write_table(pa.table(columns), path, row_group_size=kw.get("row_group_size", 2))
    return str(path)


def test_parquet_tables(tmp_path):
    imgs = make_images(tmp_path / "img", 5)
    data = [p.read_bytes() for p in imgs]
    keyed = _write_table(tmp_path / "keyed.parquet", {"key": [f"id-{i}" for i in range(5)], "label": list(range(5)),
                                                      "image": pa.array(data, pa.binary())})
    hf = _write_table(tmp_path / "hf.parquet", {"image": pa.array(
        [{"bytes": d, "path": None} for d in data[:3]], pa.struct([("bytes", pa.binary()), ("path", pa.string())]))})
    first_bin = _write_table(tmp_path / "first.parquet", {"path": ["p0", "p1"], "jpg": pa.array(data[3:], pa.binary()),
                                                          "other": pa.array([b"x", b"y"], pa.binary())})
    none = _write_table(tmp_path / "none.parquet", {"a": [1, 2]})
    got = expand_inputs([keyed, hf, first_bin, none])
    assert _keys(got) == sorted([f"id-{i}" for i in range(5)] + [f"{hf}#{r}" for r in range(3)] + ["p0", "p1"])
    by_key = {i.key: i for i in got.items}
    assert (by_key["id-3"].source, by_key["id-3"].row, by_key["id-3"].column) == (keyed, 3, "image")
    assert by_key[f"{hf}#2"].column == "image.bytes" and by_key["p1"].column == "jpg"
    assert got.failed == [(none, "no image column (a binary column, e.g. 'image'); columns: a")]
    read = read_items(got.items)
    expected = {**{f"id-{i}": data[i] for i in range(5)}, **{f"{hf}#{r}": data[r] for r in range(3)},
                "p0": data[3], "p1": data[4]}
    assert {i.key: d for i, (d, _) in zip(got.items, read)} == expected
    assert image_column(pa.schema([("x", pa.int32())])) is None


def test_null_and_missing_cells_fail_alone(tmp_path):
    imgs = make_images(tmp_path / "img", 2)
    t = _write_table(tmp_path / "t.parquet", {"image": pa.array([imgs[0].read_bytes(), None], pa.binary())})
    got = expand_inputs([t, str(tmp_path / "img" / "img01.jpg")])
    read = dict(zip(_keys(got), read_items(got.items)))
    assert read[f"{t}#1"] == (None, "empty image cell (null)")
    assert read[f"{t}#0"][0] == imgs[0].read_bytes()
    os.remove(tmp_path / "img" / "img01.jpg")  # gone between expansion and reading
    assert read_items([i for i in got.items if i.key.endswith("img01.jpg")]) == [(None, "no such file")]


def test_fsspec_urls(tmp_path):
    fs = fsspec.filesystem("memory")
    imgs = make_images(tmp_path / "img", 3)
    for p in imgs:
        fs.pipe(f"/bucket/photos/{p.name}", p.read_bytes())
    fs.pipe("/bucket/photos/.hidden.png", b"x")
    fs.pipe("/bucket/lists/l.txt", b"../photos/img01.jpg\nmemory://bucket/photos/img02.png\n")
    try:
        got = expand_inputs(["memory://bucket/photos", "memory://bucket/photos/*.jpg", "memory://bucket/lists/l.txt",
                             f"file://{imgs[0]}"])
        keys = _keys(got)  # one spelling per object: the list's entries are the folder's files
        assert keys == [f"file://{imgs[0]}", "memory:///bucket/photos/img00.png", "memory:///bucket/photos/img01.jpg",
                        "memory:///bucket/photos/img02.png"]
        read = dict(zip(keys, read_items(got.items)))
        assert read["memory:///bucket/photos/img01.jpg"] == (imgs[1].read_bytes(), None)
        assert read[f"file://{imgs[0]}"] == (imgs[0].read_bytes(), None)
        missing = expand_inputs(["memory://bucket/photos/nope.png"])  # URLs are not probed: fails when read
        assert read_items(missing.items) == [(None, "no such file")]
    finally:
        fs.rm("/bucket", recursive=True)


def test_an_unknown_url_scheme_is_a_setup_error():
    with pytest.raises(SourceError, match="nosuchproto"):
        expand_inputs(["nosuchproto://bucket/a.jpg"])
