"""Lightly's current "Work with Metadata" page writes ``NUMERICAL_FLOAT`` / ``NUMERICAL_INT``; only
``NUMERIC_*`` was accepted: a config reading such a field failed the first task, and with a config that did not
read it the column was silently dropped. Both spellings are one type (``VALUE_TYPE_ALIASES``)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from lightly_airflow.config import parse_selection_config
from lightly_airflow.config.inputs import check_config_inputs
from lightly_airflow.metadata.custom import VALUE_TYPE_ALIASES, VALUE_TYPES, parse_metadata_schema

SCHEMA = [{"name": "Speed", "path": "car.speed", "defaultValue": 0, "valueDataType": "NUMERICAL_FLOAT"},
          {"name": "Lane", "path": "car.lane", "valueDataType": "NUMERICAL_INT"},
          {"name": "Old", "path": "old", "valueDataType": "NUMERIC_FLOAT"}]


def test_both_spellings_are_one_type() -> None:
    fields, problems = parse_metadata_schema(SCHEMA)
    assert problems == []
    assert [(f.path, f.value_type, f.arrow_type) for f in fields] == [
        ("car.speed", "NUMERIC_FLOAT", pa.float64()), ("car.lane", "NUMERIC_INT", pa.int64()),
        ("old", "NUMERIC_FLOAT", pa.float64())]
    assert fields[0].default == 0.0 and isinstance(fields[0].default, float)
    assert set(VALUE_TYPE_ALIASES.values()) <= set(VALUE_TYPES)


def test_a_misspelt_type_is_reported_with_the_closest_name() -> None:
    fields, problems = parse_metadata_schema([{"name": "S", "path": "s", "valueDataType": "NUMERICAL_FLOT"}])
    assert fields == [] and problems[0][0] == "[0].valueDataType"
    assert problems[0][1].endswith(". Fix: write 'NUMERICAL_FLOAT'")


def _lightly(root: Path) -> str:
    (root / ".lightly" / "metadata").mkdir(parents=True)
    (root / ".lightly" / "metadata" / "schema.json").write_text(json.dumps(SCHEMA))
    return root.as_uri()


@pytest.mark.parametrize("strategy", [
    {"input": {"type": "METADATA", "key": "car.speed"}, "strategy": {"type": "WEIGHTS"}},
    {"input": {"type": "METADATA", "key": "car.lane"},
     "strategy": {"type": "THRESHOLD", "threshold": 1, "operation": "BIGGER_EQUAL"}},
    {"input": {"type": "METADATA", "key": "car.lane"}, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}},
])
def test_the_first_task_accepts_configs_reading_them(tmp_path: Path, strategy: dict) -> None:
    config = parse_selection_config({"n_samples": 3, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}, strategy]})
    assert check_config_inputs(config, _lightly(tmp_path)) == []


def test_balance_on_a_numerical_float_is_refused_like_numeric_float(tmp_path: Path) -> None:
    config = parse_selection_config({"n_samples": 3, "strategies": [
        {"input": {"type": "METADATA", "key": "car.speed"}, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}]})
    problems = check_config_inputs(config, _lightly(tmp_path))
    assert [p for p, _, _ in problems] == ["strategies[0].input.key"] and "float" in problems[0][1]
