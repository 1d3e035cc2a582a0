"""Every custom-metadata problem ends with its fix (``problem. Fix: fix``), so the run report's problems table
fills its fix column; and a video frame's metadata ``file_name`` in another of Lightly's frame formats matches."""

from __future__ import annotations

import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.metadata import compute_metadata_shard
from lightly_airflow.report.problems import split_fix

from .conftest import encode, make_manifest, noise_image, write_tree

#: One bad entry of each kind; ``good`` and ``ok`` are read.
BAD_SCHEMA = [
    "not an object",
    {"path": "a", "valueDataType": "NUMERIC_INT"},  # no name
    {"name": "b", "path": 3, "valueDataType": "NUMERIC_INT"},  # path not a string
    {"name": "c", "path": "c..d", "valueDataType": "NUMERIC_INT"},  # not a dot path
    {"name": "l", "path": "lightly.x", "valueDataType": "NUMERIC_INT"},  # reserved
    {"name": "m", "path": "m"},  # no valueDataType
    {"name": "t", "path": "t", "valueDataType": "NUMERIC_INTT"},  # misspelt
    {"name": "z", "path": "z", "valueDataType": "z" * 500},  # unknown, nothing close, long: cut, not its fix
    {"name": "good", "path": "good", "valueDataType": "NUMERIC_INT", "defaultValue": "x"},  # bad default
    {"name": "good again", "path": "good", "valueDataType": "NUMERIC_INT"},  # listed twice
    {"name": "ok", "path": "ok", "valueDataType": "CATEGORICAL_STRING", "default_value": "a", "defaultValue": "b",
     "colour": 1},  # two spellings of one key, an unknown key
]


def _problems(tmp_path, files: dict[str, object], keys: list[str]) -> list[dict]:
    bucket = tmp_path / "bucket"
    write_tree(bucket, {**{k: encode(noise_image(i, (8, 8))) for i, k in enumerate(keys)}, **files})
    counts = compute_metadata_shard(make_manifest(tmp_path, keys), lightly_uri=str(bucket), thumbnails_uri="")
    return pq.read_table(counts["errors_uri"]).to_pylist()


def test_every_schema_and_file_problem_ends_with_a_fix(tmp_path):
    """Before, "must be a non-empty string", "is missing; give one of […]", "is listed twice; the first entry is
    used", "'x' does not match the file 'y'" and "type … is not one of" had no fix: the fix column was empty."""
    files = {
        ".lightly/metadata/schema.json": BAD_SCHEMA,
        ".lightly/metadata/a.json": ["a list"],
        ".lightly/metadata/b.json": {"file_name": "other.png", "type": "picture" * 100, "metadata": {"good": "1.5"}},
        ".lightly/metadata/c.json": {"file_name": "/abs/c.png", "good": 1},  # values outside "metadata"
        ".lightly/metadata/d.json": {"metadata": {"lightly": 1, "good.x": 2, "ok": 3}},
        ".lightly/metadata/e.json": {"metadata": 5},
    }
    rows = _problems(tmp_path, files, ["a.png", "b.png", "c.png", "d.png", "e.png"])
    schema_fields = {r["field"] for r in rows if r[C.KEY] == ".lightly/metadata/schema.json"}
    assert schema_fields == {"[0]", "[1].name", "[2].path", "[3].path", "[4].path", "[5].valueDataType",
                             "[6].valueDataType", "[7].valueDataType", "[8].defaultValue", "[9].path",
                             "[10].default_value", "[10].colour"}
    assert {(r[C.KEY], r["field"]) for r in rows if r[C.KEY] != ".lightly/metadata/schema.json"} == {
        ("a.png", ""), ("b.png", "file_name"), ("b.png", "type"), ("b.png", "metadata.good"), ("c.png", "file_name"),
        ("c.png", "metadata"), ("d.png", "metadata.lightly"), ("d.png", "metadata.ok"), ("e.png", "metadata")}
    no_fix = [(r[C.KEY], r["field"], r["reason"]) for r in rows if not split_fix("metadata", r["reason"])[1]]
    assert no_fix == []
    fixes = {(r[C.KEY], r["field"]): split_fix("metadata", r["reason"])[1] for r in rows}
    schema = ".lightly/metadata/schema.json"
    assert fixes[(schema, "[6].valueDataType")] == "write 'NUMERIC_INT'"
    assert fixes[(schema, "[7].valueDataType")].startswith("write one of ['CATEGORICAL_BOOLEAN'")
    assert fixes[(schema, "[9].path")] == "remove this entry, or give it another path"
    assert fixes[(schema, "[10].colour")] == "remove it"
    assert fixes[(schema, "[10].default_value")] == "remove 'default_value'"
    assert fixes[(schema, "[8].defaultValue")] == "write a defaultValue of an integer (like 3), or remove the defaultValue"
    assert fixes[("b.png", "file_name")] == 'write "file_name": "b.png"'
    assert fixes[("b.png", "type")] == 'write "type": "image"'
    assert fixes[("b.png", "metadata.good")] == "write an integer (like 3), or change the field's valueDataType"
    assert fixes[("c.png", "file_name")] == 'write "file_name": "c.png"'
    assert fixes[("c.png", "metadata")].startswith('put the values under "metadata"')


FRAME_SCHEMA = [{"name": "camera", "path": "camera", "valueDataType": "CATEGORICAL_STRING", "defaultValue": "none"}]


def test_a_frame_file_name_in_another_frame_format_matches_and_another_frame_does_not(tmp_path):
    """A Lightly Worker run with ``output_image_format: jpg`` writes ``my_video-099-mp4.jpg``; the frame here is
    ``my_video-099-mp4.png``. That file_name was a mismatch ("does not match the file"); predictions already took
    it. Another frame's name, or a video's file naming a frame, stays a mismatch."""
    keys = ["v/my_video-099-mp4.png", "v/my_video-100-mp4.png", "v/my_video-101-mp4.png", "w/clip-003-mp4.png"]
    files = {
        ".lightly/metadata/schema.json": FRAME_SCHEMA,
        ".lightly/metadata/v/my_video-099-mp4.json": {"file_name": "v/my_video-099-mp4.jpg", "type": "frame",
                                                      "metadata": {"camera": "front"}},
        ".lightly/metadata/v/my_video-100-mp4.json": {"file_name": "v/my_video-100-mp4.JPEG", "type": "frame",
                                                      "metadata": {"camera": "back"}},
        ".lightly/metadata/v/my_video-101-mp4.json": {"file_name": "v/my_video-099-mp4.jpg", "type": "frame",
                                                      "metadata": {"camera": "side"}},
        ".lightly/metadata/w/clip.json": {"file_name": "w/clip.mp4", "type": "video", "metadata": {"camera": "top"}},
    }
    bucket = tmp_path / "bucket"
    write_tree(bucket, {**{k: encode(noise_image(i, (8, 8))) for i, k in enumerate(keys)}, **files})
    counts = compute_metadata_shard(make_manifest(tmp_path, keys), lightly_uri=str(bucket), thumbnails_uri="")
    values = {r[C.KEY]: r[C.metadata_column("camera")] for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert values == {"v/my_video-099-mp4.png": "front", "v/my_video-100-mp4.png": "back",
                      "v/my_video-101-mp4.png": "side", "w/clip-003-mp4.png": "top"}
    rows = pq.read_table(counts["errors_uri"]).to_pylist()
    assert [(r[C.KEY], r["field"], r["reason"]) for r in rows] == [
        ("v/my_video-101-mp4.png", "file_name", "'v/my_video-099-mp4.jpg' does not match the file "
         "'v/my_video-101-mp4.png'. Fix: write \"file_name\": \"v/my_video-101-mp4.png\"")]


def test_an_unreadable_metadata_file_names_one_fix(tmp_path):
    """A metadata file that exists but cannot be read said "cannot read …" without a fix, and a symbolic link that
    leaves .lightly/ would have said its own fix and then another."""
    meta = tmp_path / "bucket" / ".lightly" / "metadata"
    meta.mkdir(parents=True)
    (meta / "a.json").symlink_to(meta / "a.json")  # a loop: reading it fails
    (tmp_path / "outside.json").write_text('{"metadata": {"camera": "x"}}')
    (meta / "b.json").symlink_to(tmp_path / "outside.json")
    rows = _problems(tmp_path, {".lightly/metadata/schema.json": FRAME_SCHEMA}, ["a.png", "b.png"])
    assert [(r[C.KEY], r["field"]) for r in rows] == [("a.png", "file"), ("b.png", "file")]
    assert rows[0]["reason"].startswith("cannot read .lightly/metadata/a.json: ")
    assert split_fix("metadata", rows[0]["reason"])[1] == ("make the file readable with the run's credentials (or "
                                                            "remove it), and run again")
    assert rows[1]["reason"].startswith("cannot read .lightly/metadata/b.json: is a symbolic link that leaves")
    assert rows[1]["reason"].count("Fix:") == 1
    assert split_fix("metadata", rows[1]["reason"])[1] == "copy the file into .lightly/ instead of linking to it"
