"""Custom metadata values a Lightly user's exporter writes in shapes the schema's path does not read: each is a
problem of its file, named with the fix, and the field takes its default; the run goes on."""

from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

from lightly_airflow import columns as C
from lightly_airflow.metadata import compute_metadata_shard, parse_metadata_schema
from lightly_airflow.metadata.custom import values_from_file

from .conftest import encode, make_manifest, noise_image, write_tree

SCHEMA = [
    {"name": "temperature", "path": "weather.temperature", "valueDataType": "NUMERIC_FLOAT", "defaultValue": -1.0},
    {"name": "label", "path": "objects[0].label", "valueDataType": "CATEGORICAL_STRING", "defaultValue": "none"},
]
T, LABEL = C.metadata_column("weather.temperature"), C.metadata_column("objects[0].label")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_float_that_is_not_finite_is_reported_and_takes_the_default(text):
    """Python's json reads NaN, Infinity and 1e400, which JSON has not (``json.dump`` writes NaN for a float gap):
    they were stored, and an infinite temperature was every WEIGHTS run's first pick and passed every BIGGER
    threshold."""
    fields, _ = parse_metadata_schema(SCHEMA)
    obj = json.loads('{"metadata": {"weather": {"temperature": ' + text + '}}}')
    values, problems = values_from_file(obj, fields, "a.png")
    assert values[0] == -1.0 and math.isfinite(values[0])
    assert [p[0] for p in problems] == ["metadata.weather.temperature"]
    assert "finite number" in problems[0][1] and "write null for a missing value" in problems[0][1]
    _, schema_problems = parse_metadata_schema([{**SCHEMA[0], "defaultValue": float("nan")}])
    assert [p[0] for p in schema_problems] == ["[0].defaultValue"]  # a NaN default is refused too


def test_values_under_a_dotted_key_or_another_type_on_the_path_are_named_with_the_fix(tmp_path):
    bucket = tmp_path / "bucket"
    files = {f"{k}.png": encode(noise_image(i, (8, 8))) for i, k in enumerate("abcde")}
    files |= {
        ".lightly/metadata/schema.json": SCHEMA,
        # flattened by an exporter (pandas.json_normalize): a path's dots are nesting, in Lightly too
        ".lightly/metadata/a.json": {"file_name": "a.png", "metadata": {"weather.temperature": 21.5}},
        ".lightly/metadata/b.json": {"file_name": "b.png", "metadata": {"weather": "sunny", "objects": {"label": "car"}}},
        ".lightly/metadata/c.json": {"file_name": "c.png", "metadata": {"weather": {"temperature": 3.0},
                                                                        "objects": [{"label": "car"}]}},
        # plainly missing (Lightly's default case, no problem): a key, a list too short, a null on the way
        ".lightly/metadata/d.json": {"file_name": "d.png", "metadata": {"weather": {}, "objects": []}},
        ".lightly/metadata/e.json": {"file_name": "e.png", "metadata": {"weather": None, "objects": None}},
    }
    write_tree(bucket, files)
    manifest = make_manifest(tmp_path, [f"{k}.png" for k in "abcde"])
    counts = compute_metadata_shard(manifest, lightly_uri=str(bucket), thumbnails_uri="")
    rows = {r[C.KEY]: (r[T], r[LABEL]) for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert rows == {"a.png": (-1.0, "none"), "b.png": (-1.0, "none"), "c.png": (3.0, "car"), "d.png": (-1.0, "none"),
                    "e.png": (-1.0, "none")}
    errors = {(e[C.KEY], e["field"]): e["reason"] for e in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert sorted(errors) == [("a.png", "metadata.weather.temperature"), ("b.png", "metadata.objects[0].label"),
                              ("b.png", "metadata.weather.temperature")]
    assert errors[("a.png", "metadata.weather.temperature")] == (
        "found the key 'weather.temperature' (a dot in its name), but a path's dots are nesting; the default is used. "
        'Fix: write the value as {"weather": {"temperature": ...}}')
    assert errors[("b.png", "metadata.weather.temperature")] == (
        "metadata.weather is a string, but the path weather.temperature needs an object there; the default is used. "
        'Fix: write the value as {"weather": {"temperature": ...}}, or change the path in schema.json')
    assert "metadata.objects is an object, but the path objects[0].label needs a list" in errors[
        ("b.png", "metadata.objects[0].label")]


def test_a_list_index_written_as_a_dot_segment_is_named_with_the_bracket_form():
    fields, _ = parse_metadata_schema([{"name": "x", "path": "objects.0.label", "valueDataType": "CATEGORICAL_STRING"}])
    values, problems = values_from_file({"metadata": {"objects": [{"label": "car"}]}}, fields, "a.png")
    assert values == [None]
    assert problems == [("metadata.objects.0.label", "metadata.objects is a list, but the path objects.0.label needs an "
                         "object there (an index is written in brackets: objects[0].label); the default is used. "
                         "Fix: write the path as objects[0].label in schema.json")]


def test_a_number_or_boolean_in_quotes_is_named_with_the_fix_only_where_it_fits_unquoted():
    """Exporters that write every value as text (CSV to JSON) give ``"12.5"``: the problem said what was expected
    and found, not the fix. It is offered only where the value unquoted fits the field's type."""
    schema = [{"name": n, "path": n, "valueDataType": t} for n, t in (
        ("f", "NUMERIC_FLOAT"), ("i", "NUMERIC_INT"), ("b", "CATEGORICAL_BOOLEAN"), ("i2", "NUMERIC_INT"),
        ("d", "CATEGORICAL_DATETIME"), ("b2", "CATEGORICAL_BOOLEAN"), ("s", "CATEGORICAL_STRING"),
        ("s2", "OTHER_STRING"))]
    fields, _ = parse_metadata_schema(schema)
    obj = {"metadata": {"f": "12.5", "i": " 7", "b": "true", "i2": "12.5", "d": "3", "b2": "1", "s": 17, "s2": 1.5}}
    values, problems = values_from_file(obj, fields, "a.png")
    assert values == [None] * 8
    fixes = {field: reason.partition(". Fix: ")[2] for field, reason in problems}
    assert fixes == {"metadata.f": "write 12.5 without quotes", "metadata.i": "write 7 without quotes",
                     "metadata.b": "write true without quotes",
                     "metadata.i2": "write an integer (like 3), or change the field's valueDataType",
                     "metadata.d": 'write an ISO 8601 string (like "2024-05-01T12:00:00Z"), or change the field\'s '
                                   "valueDataType",
                     "metadata.b2": "write true or false, or change the field's valueDataType",
                     "metadata.s": 'write "17" in quotes, or make the field CATEGORICAL_INT',
                     "metadata.s2": "write a string (like \"sunny\"), or change the field's valueDataType"}
