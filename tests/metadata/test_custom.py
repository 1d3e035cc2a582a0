"""Custom metadata: schema validation, dot paths, every valueDataType, defaults, video frames, fuzzing."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lightly_doc_examples import METADATA_SCHEMA

from lightly_airflow import columns as C
from lightly_airflow.metadata import compute_metadata_shard, parse_dot_path, parse_metadata_schema
from lightly_airflow.metadata.custom import values_from_file

from .conftest import encode, make_manifest, noise_image, write_tree

SCHEMA = [
    {"name": "Temperature", "path": "weather.temperature", "valueDataType": "NUMERIC_FLOAT", "defaultValue": -1.0},
    {"name": "count", "path": "objects[1].count", "valueDataType": "NUMERIC_INT", "defaultValue": 0},
    {"name": "weather", "path": "weather.description", "valueDataType": "CATEGORICAL_STRING", "defaultValue": "unknown"},
    {"name": "camera", "path": "camera_id", "valueDataType": "CATEGORICAL_INT"},
    {"name": "night", "path": "is_night", "valueDataType": "CATEGORICAL_BOOLEAN", "defaultValue": False},
    {"name": "taken", "path": "taken", "valueDataType": "CATEGORICAL_DATETIME"},
    {"name": "ts", "path": "ts", "valueDataType": "CATEGORICAL_TIMESTAMP"},
    {"name": "note", "path": "note", "valueDataType": "OTHER_STRING"},
]


def test_parse_dot_path():
    assert parse_dot_path("a.b[0].c") == ("a", "b", 0, "c")
    assert parse_dot_path("a[2][3]") == ("a", 2, 3)
    for bad in ("", "a..b", ".a", "a.", "[0]", "a[x]", "a[0", "a]b"):
        with pytest.raises(ValueError):
            parse_dot_path(bad)


def test_schema_problems_are_listed_and_good_fields_kept():
    fields, problems = parse_metadata_schema(
        SCHEMA
        + [
            {"name": "x", "path": "lightly.sharpness", "valueDataType": "NUMERIC_FLOAT"},
            {"name": "y", "path": "y", "valueDataType": "FLOAT"},
            {"name": "z", "path": "z", "valueDataType": "NUMERIC_INT", "defaultValue": "three"},
            "not an object",
            {"name": "dup", "path": "camera_id", "valueDataType": "CATEGORICAL_INT"},
        ]
    )
    assert [f.path for f in fields] == [e["path"] for e in SCHEMA] + ["z"]
    where = [p[0] for p in problems]
    assert where == ["[8].path", "[9].valueDataType", "[10].defaultValue", "[11]", "[12].path"]
    assert "reserved" in problems[0][1]
    assert parse_metadata_schema({"a": 1})[1][0][1].startswith("must be a JSON list")


def test_values_types_defaults_and_mismatches():
    fields, _ = parse_metadata_schema(SCHEMA)
    obj = {
        "file_name": "a.png",
        "type": "image",
        "metadata": {
            "weather": {"temperature": 21, "description": "sunny"},
            "objects": [{"count": 1}, {"count": 7.0}],
            "camera_id": "front",  # wrong type
            "is_night": True,
            "taken": "2024-05-01T10:00:00Z",
            "ts": 1714557600000,
            "note": None,
            "lightly": {"sharpness": 3},
        },
    }
    values, problems = values_from_file(obj, fields, "a.png", accepted_names=("a.png",))
    assert values == [21.0, 7, "sunny", None, True, "2024-05-01T10:00:00Z", 1714557600000, None]
    assert [p[0] for p in problems] == ["metadata.lightly", "metadata.camera_id"]
    assert "expected an integer" in problems[1][1]
    # Everything missing: defaults.
    values, problems = values_from_file({"metadata": {}}, fields, "a.png")
    assert values == [-1.0, 0, "unknown", None, False, None, None, None] and problems == []
    _, problems = values_from_file({"file_name": "../x.png", "metadata": {}}, fields, "a.png")
    assert problems[0][0] == "file_name" and ".." in problems[0][1]
    _, problems = values_from_file({"file_name": "b.png", "metadata": {}}, fields, "a.png", accepted_names=("a.png",))
    assert "does not match" in problems[0][1]


def test_shard_writes_typed_columns_and_uses_video_metadata_for_frames(tmp_path):
    bucket = tmp_path / "bucket"
    img = encode(noise_image(0, (8, 8)))
    files = {
        "a.png": img,
        "b.png": encode(noise_image(1, (8, 8))),
        "clips/video_1-007-mp4.png": encode(noise_image(2, (8, 8))),
        "clips/video_1-008-mp4.png": encode(noise_image(3, (8, 8))),
        ".lightly/metadata/schema.json": SCHEMA,
        ".lightly/metadata/a.json": {"file_name": "a.png", "metadata": {"weather": {"temperature": 3.5}, "camera_id": 2}},
        ".lightly/metadata/b.json": "{not json",
        ".lightly/metadata/clips/video_1.json": {"file_name": "clips/video_1.mp4", "type": "video", "metadata": {"is_night": True}},
        ".lightly/metadata/clips/video_1-008-mp4.json": {"file_name": "clips/video_1-008-mp4.png", "type": "frame", "metadata": {"camera_id": 9}},
    }
    write_tree(bucket, files)
    # .lightly/ on its own "store": a separate folder passed as lightly_uri.
    manifest = make_manifest(tmp_path, ["a.png", "b.png", "clips/video_1-007-mp4.png", "clips/video_1-008-mp4.png"])
    counts = compute_metadata_shard(manifest, lightly_uri=str(bucket))
    table = pq.read_table(counts["output_uri"])
    assert table.schema.field(C.metadata_column("weather.temperature")).type == pa.float64()
    assert table.schema.field(C.metadata_column("is_night")).type == pa.bool_()
    assert table.schema.field(C.metadata_column("camera_id")).type == pa.int64()
    assert table.schema.field(C.metadata_column("weather.temperature")).metadata[b"lightly.display_name"] == b"Temperature"
    rows = {r[C.KEY]: r for r in table.to_pylist()}
    assert rows["a.png"][C.metadata_column("weather.temperature")] == 3.5
    assert rows["a.png"][C.metadata_column("camera_id")] == 2
    assert rows["b.png"][C.metadata_column("weather.temperature")] == -1.0  # bad file -> defaults
    assert rows["clips/video_1-007-mp4.png"][C.metadata_column("is_night")] is True  # from the video's file
    assert rows["clips/video_1-008-mp4.png"][C.metadata_column("camera_id")] == 9  # the frame's own file
    assert rows["clips/video_1-008-mp4.png"][C.metadata_column("is_night")] is False
    errors = pq.read_table(counts["errors_uri"]).to_pylist()
    assert [(e[C.KEY], e["path"]) for e in errors] == [("b.png", ".lightly/metadata/b.json")]
    assert "invalid JSON" in errors[0]["reason"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(schema=json_values, obj=json_values)
def test_malformed_schema_and_files_never_crash(schema, obj):
    fields, problems = parse_metadata_schema(schema)
    assert all(isinstance(p, tuple) and len(p) == 2 for p in problems)
    if not fields:
        fields, _ = parse_metadata_schema(SCHEMA)
    values, problems = values_from_file(obj, fields, "a.png")
    assert len(values) == len(fields)
    for f, v in zip(fields, values):
        pa.array([v], f.arrow_type)  # every value fits its column type


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
def test_malformed_bytes_in_metadata_file_never_crash(tmp_path_factory, payload):
    tmp = tmp_path_factory.mktemp("fuzz")
    write_tree(tmp / "bucket", {"a.png": encode(noise_image(0, (4, 4))), ".lightly/metadata/schema.json": SCHEMA,
                                ".lightly/metadata/a.json": payload})
    counts = compute_metadata_shard(make_manifest(tmp, ["a.png"], lightly_uri=str(tmp / "bucket")))
    assert counts["ok"] == 1


# Lightly's documented metadata files (docs/source/docker/advanced/datasource_metadata.rst, "Metadata Format")
# verbatim: the example ends its "metadata" object with a trailing comma, which JSON does not allow.
LIGHTLY_DOC_IMAGE_FILE = """{
    "file_name": "subdir/image_1.png",
    "type": "image",
    "metadata": {
        "scene": "highway",
        "weather": {
            "description": "rainy",
            "temperature": 10.5,
            "air_pressure": 1
        },
        "vehicle_id": 321,
    }
}"""


def test_lightly_doc_metadata_files_trailing_comma_named_and_other_encodings_read(tmp_path):
    """The doc's file with its trailing comma is reported as "a trailing comma … remove that comma" at the comma
    (Python's own words were "Expecting property name enclosed in double quotes at line 12 column 5", the
    line after it); the same file without the comma, saved as UTF-16 by a Windows tool, is read."""
    fixed = LIGHTLY_DOC_IMAGE_FILE.replace('321,', '321')
    write_tree(tmp_path / "bucket", {
        "subdir/image_1.png": encode(noise_image(0, (8, 8))),
        "image_2.png": encode(noise_image(1, (8, 8))),
        ".lightly/metadata/schema.json": METADATA_SCHEMA,
        ".lightly/metadata/subdir/image_1.json": LIGHTLY_DOC_IMAGE_FILE,
        ".lightly/metadata/image_2.json": fixed.replace("subdir/image_1.png", "image_2.png").encode("utf-16"),
    })
    counts = compute_metadata_shard(make_manifest(tmp_path, ["subdir/image_1.png", "image_2.png"],
                                                  lightly_uri=str(tmp_path / "bucket")))
    rows = {r[C.KEY]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert rows["image_2.png"][C.metadata_column("weather.temperature")] == 10.5
    assert rows["image_2.png"][C.metadata_column("vehicle_id")] == 321
    assert rows["subdir/image_1.png"][C.metadata_column("scene")] == "undefined"  # the file's defaults
    errors = pq.read_table(counts["errors_uri"]).to_pylist()
    assert [(e[C.KEY], e["path"]) for e in errors] == [("subdir/image_1.png", ".lightly/metadata/subdir/image_1.json")]
    assert errors[0]["reason"] == ("invalid JSON: a trailing comma before '}' at line 11 column 26 (JSON allows "
                                   "none) near '\"vehicle_id\": 321,'. Fix: remove that comma")


def test_schema_entry_spellings_of_lightlys_model_and_unknown_keys():
    """Lightly's ConfigurationEntry accepts default_value/value_data_type as well (allow_population_by_field_name)
    and refuses other keys. Here an entry with value_data_type was dropped as "None is not one of [...]", and a
    default_value or a misspelt 'defaultvalue' was ignored without a word."""
    fields, problems = parse_metadata_schema([
        {"name": "Temperature", "path": "weather.temperature", "value_data_type": "NUMERIC_FLOAT", "default_value": 0.5},
        {"name": "Vehicle", "path": "vehicle_id", "valueDataType": "CATEGORICAL_INT", "defaultvalue": 7},
        {"name": "Scene", "path": "scene", "valueDataType": "CATEGORICAL_STRING", "defaultValue": "a",
         "default_value": "b"},
        {"name": "Road", "path": "road"},
    ])
    assert [(f.path, f.value_type, f.default) for f in fields] == [
        ("weather.temperature", "NUMERIC_FLOAT", 0.5), ("vehicle_id", "CATEGORICAL_INT", None),
        ("scene", "CATEGORICAL_STRING", "a")]
    assert problems[0] == ("[1].defaultvalue", "unknown key, ignored (an entry has ['name', 'path', 'defaultValue', "
                                               "'valueDataType']). Fix: rename it to 'defaultValue'")
    assert problems[1][0] == "[2].default_value" and "given twice" in problems[1][1]
    assert problems[2] == ("[3].valueDataType", 'is missing. Fix: add "valueDataType": one of ' + str(sorted(
        ["CATEGORICAL_BOOLEAN", "CATEGORICAL_DATETIME", "CATEGORICAL_INT", "CATEGORICAL_STRING",
         "CATEGORICAL_TIMESTAMP", "NUMERIC_FLOAT", "NUMERIC_INT", "OTHER_STRING"])))
    assert len(problems) == 3


def test_values_written_without_the_metadata_wrapper_are_named_as_such():
    """A per-file JSON with the values at the top level (no "metadata" object) was reported as "metadata: must
    be a JSON object, found NoneType"; now the message says the key is missing, which values sit at the top
    level, and Lightly's layout."""
    fields, _ = parse_metadata_schema(METADATA_SCHEMA)
    flat = {"file_name": "a.png", "type": "image", "scene": "highway", "weather": {"description": "rainy"}}
    values, problems = values_from_file(flat, fields, "a.png", accepted_names=("a.png",))
    assert values == [f.default for f in fields]
    assert problems == [("metadata", "is missing (found ['scene', 'weather'] at the top level). Fix: put the values "
                                     'under "metadata", as in Lightly\'s format: {"file_name": "a.png", "type": "image", '
                                     '"metadata": {...}}')]
    _, problems = values_from_file({"file_name": "a.png", "metadata": [1]}, fields, "a.png")
    assert problems == [("metadata", 'must be a JSON object, found a list. Fix: write {"file_name": "a.png", '
                                     '"type": "image", "metadata": {...}}')]


def test_metadata_files_under_another_name_are_named_with_the_fix(tmp_path):
    """A metadata file a tool wrote with the image's extension kept (``IMG_1.JPG.json``) or a frame's number
    padded otherwise (``clip-7-mp4.json`` for frame 7 of 120) was not found, and every field silently took its
    ``defaultValue``: the selection ran on defaults. The file is still not read (names are Lightly's contract),
    but each sample says which file exists and how to rename it."""
    doc = json.loads(LIGHTLY_DOC_IMAGE_FILE.replace("321,", "321"))
    write_tree(tmp_path / "bucket", {
        "IMG_1.JPG": encode(noise_image(0, (8, 8)), "JPEG"),
        "good.png": encode(noise_image(1, (8, 8))),
        "nothing.png": encode(noise_image(2, (8, 8))),
        ".lightly/metadata/schema.json": METADATA_SCHEMA,
        ".lightly/metadata/IMG_1.JPG.json": json.dumps({**doc, "file_name": "IMG_1.JPG"}),
        ".lightly/metadata/good.json": json.dumps({**doc, "file_name": "good.png"}),
    })
    keys = ["IMG_1.JPG", "good.png", "nothing.png"]
    counts = compute_metadata_shard(make_manifest(tmp_path, keys, lightly_uri=str(tmp_path / "bucket")))
    rows = {r[C.KEY]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert rows["good.png"][C.metadata_column("weather.temperature")] == 10.5
    assert rows["IMG_1.JPG"][C.metadata_column("weather.temperature")] != 10.5  # not read under its other name
    errors = {e[C.KEY]: e for e in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert set(errors) == {"IMG_1.JPG"}  # a sample without any file is Lightly's "use the defaults", no problem
    assert errors["IMG_1.JPG"]["reason"].startswith(
        "no metadata file, but .lightly/metadata/IMG_1.JPG.json exists: its name keeps the image's extension; "
        "Lightly drops it. Rename it to .lightly/metadata/IMG_1.json")
    assert errors["IMG_1.JPG"]["path"] == ".lightly/metadata/IMG_1.json"


def test_a_frame_metadata_file_with_other_padding_is_named(tmp_path):
    from lightly_airflow.video.naming import frame_name

    key = frame_name("clip.mp4", 7, 120)  # clip-007-mp4.png
    write_tree(tmp_path / "bucket", {
        "clip.mp4": b"",
        ".lightly/metadata/schema.json": METADATA_SCHEMA,
        ".lightly/metadata/clip-7-mp4.json": json.dumps({"file_name": key, "type": "frame",
                                                         "metadata": {"scene": "city street"}}),
    })
    manifest = make_manifest(tmp_path, [key], lightly_uri=str(tmp_path / "bucket"))
    counts = compute_metadata_shard(manifest)
    # (the manifest holds the frame's name only, no video columns: it is also reported as a missing file)
    errors = [e for e in pq.read_table(counts["errors_uri"]).to_pylist() if (e["path"] or "").startswith(".lightly/")]
    assert len(errors) == 1 and errors[0][C.KEY] == key
    assert "but .lightly/metadata/clip-7-mp4.json exists: its frame number is written with 1 digit" in errors[0]["reason"]
    assert "Rename it to .lightly/metadata/clip-007-mp4.json" in errors[0]["reason"]


def test_a_videos_metadata_file_under_another_name_is_named_for_its_frames(tmp_path):
    """``.lightly/metadata/clip.mp4.json`` (the video's extension kept) for ``clip.mp4``: not found, and every frame
    of the video took the fields' defaultValue without a word. Each frame now says which file exists and the fix;
    a video with no file at all stays Lightly's "use the defaults", no problem."""
    from lightly_airflow.video.naming import frame_name

    keys = [frame_name("cams/clip.mp4", i, 12) for i in range(3)] + [frame_name("other.mkv", 0, 5)]
    write_tree(tmp_path / "bucket", {
        ".lightly/metadata/schema.json": METADATA_SCHEMA,
        ".lightly/metadata/cams/clip.mp4.json": json.dumps({"file_name": "cams/clip.mp4", "type": "video",
                                                            "metadata": {"scene": "city street"}}),
    })
    counts = compute_metadata_shard(make_manifest(tmp_path, keys, lightly_uri=str(tmp_path / "bucket")))
    errors = [e for e in pq.read_table(counts["errors_uri"]).to_pylist() if (e["path"] or "").startswith(".lightly/")]
    assert sorted(e[C.KEY] for e in errors) == keys[:3]
    for e in errors:
        assert e["path"] == ".lightly/metadata/cams/clip.json"
        assert e["reason"].startswith(
            "no metadata file for the frame or its video, but .lightly/metadata/cams/clip.mp4.json exists: its name "
            "keeps the video's extension; Lightly drops it. Rename it to .lightly/metadata/cams/clip.json")


def test_metadata_files_without_a_schema_are_reported_with_the_fix(tmp_path):
    """Metadata files (a video's, an image's) but no ``.lightly/metadata/schema.json``: no field can be read, and the
    run said nothing. One problem under the schema's path names a file found and what to add."""
    from lightly_airflow.video.naming import frame_name

    keys = ["a.png", "b.png"] + [frame_name("clip.mp4", i, 40) for i in range(40)]
    write_tree(tmp_path / "bucket", {
        "a.png": encode(noise_image(0, (8, 8))),
        "b.png": encode(noise_image(1, (8, 8))),
        ".lightly/metadata/clip.json": json.dumps({"file_name": "clip.mp4", "type": "video",
                                                   "metadata": {"scene": "city street"}}),
    })
    counts = compute_metadata_shard(make_manifest(tmp_path, keys, lightly_uri=str(tmp_path / "bucket")))
    errors = [e for e in pq.read_table(counts["errors_uri"]).to_pylist() if e[C.KEY].startswith(".lightly/")]
    assert len(errors) == 1 and errors[0][C.KEY] == ".lightly/metadata/schema.json"
    assert errors[0]["reason"].startswith(
        "metadata files exist (e.g. .lightly/metadata/clip.json) but .lightly/metadata/schema.json does not")
    assert "Fix: add .lightly/metadata/schema.json" in errors[0]["reason"]
    # no metadata files, no schema: Lightly's "no custom metadata", nothing reported
    write_tree(tmp_path / "bare", {"a.png": encode(noise_image(0, (8, 8)))})
    counts = compute_metadata_shard(make_manifest(tmp_path / "b", ["a.png"], lightly_uri=str(tmp_path / "bare"),
                                                  datasource=tmp_path / "bare"))
    assert not [e for e in pq.read_table(counts["errors_uri"]).to_pylist() if e[C.KEY].startswith(".lightly/")]


def test_a_metadata_file_past_a_videos_last_frame_is_reported(tmp_path, caplog):
    """A 12-frame video has frames 0 to 11; a tool that numbered from 1 also wrote ``clip-12-mp4.json``: no sample has
    that name, the file was never read and every frame took its neighbour's values without a word. The shard that
    holds a video's last frame looks for the file after it and reports it once (the manifest carries each video's
    frame count), however the frames are split over shards; a video whose files stop at its end has none."""
    import logging

    from lightly_airflow.datasource.manifest import write_manifests
    from lightly_airflow.report.problems import split_fix
    from lightly_airflow.video.listing import expand_videos
    from lightly_airflow.video.synthetic import scene, scene_frames, write_video

    src = tmp_path / "src"
    (src / "cams").mkdir(parents=True)
    n = {"cams/clip.mp4": write_video(str(src / "cams" / "clip.mp4"), scene_frames(scene("coffee"), 12, (64, 48))),
         "walk.mp4": write_video(str(src / "walk.mp4"), scene_frames(scene("astronaut"), 5, (64, 48)))}
    files: dict[str, object] = {".lightly/metadata/schema.json": METADATA_SCHEMA}
    for i in range(1, 13):  # numbered from 1: one past the end
        files[f".lightly/metadata/cams/clip-{i:02d}-mp4.json"] = json.dumps(
            {"file_name": f"cams/clip-{i:02d}-mp4.png", "type": "frame", "metadata": {"scene": "street"}})
    for i in range(5):  # exactly the video's frames
        files[f".lightly/metadata/walk-{i}-mp4.json"] = json.dumps(
            {"file_name": f"walk-{i}-mp4.png", "type": "frame", "metadata": {"scene": "walk"}})
    write_tree(src, files)
    listed = pa.table({C.KEY: list(n), C.SIZE: [1, 1], C.ETAG: ["e1", "e2"],
                       C.MTIME: pa.array([None, None], pa.timestamp("us", tz="UTC"))})
    frames = expand_videos(listed, f"file://{src}")
    uris = write_manifests(frames, f"file://{tmp_path / 'pool'}", "r1", datasource_uri=f"file://{src}",
                           max_shards=3, min_shard_size=1)
    assert len(uris) == 3
    past_end, rows = 0, []
    with caplog.at_level(logging.WARNING):
        for uri in uris:
            counts = compute_metadata_shard(uri, lightly_uri=f"file://{src}")
            past_end += counts["past_end"]
            rows += [r for r in pq.read_table(counts["errors_uri"]).to_pylist() if "past" in r["reason"]
                     or "is for frame" in r["reason"]]
    assert past_end == 1
    (row,) = rows
    file = ".lightly/metadata/cams/clip-12-mp4.json"
    assert (row[C.KEY], row["field"], row["path"]) == (file, "file", file)
    assert row["reason"].startswith(
        "metadata file .lightly/metadata/cams/clip-12-mp4.json is for frame 12, but video 'cams/clip.mp4' has 12 "
        "frames (0 to 11, as PyAV decodes them)")
    assert "rename every metadata file of this video to its frame number minus one" in row["reason"]
    assert split_fix("metadata", row["reason"])[1].startswith("if your tool numbered frames from 1, rename")
    said = [r.getMessage() for r in caplog.records if "past their end" in r.getMessage()]
    assert len(said) == 1 and "clip-12-mp4.json for frame 12 of 'cams/clip.mp4', which has 12 frames" in said[0]
