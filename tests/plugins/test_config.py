"""The ``[lightly] datapools`` option and its ``LIGHTLY_DATAPOOLS`` fallback."""

from __future__ import annotations

import json

import pytest

from lightly_airflow.plugins.config import (
    DatapoolsConfigError,
    PoolSpec,
    configured_datapools,
    parse_datapools,
)


def test_parse_names_uris_and_connections():
    pools = parse_datapools(json.dumps({
        "main": {"uri": "s3://bucket/pool/", "conn_id": "aws_lake"}, "local.1": {"uri": "/data/pool"}, "short": "gs://b/p",
    }))
    assert pools == {
        "main": PoolSpec("main", "s3://bucket/pool", "aws_lake"),
        "local.1": PoolSpec("local.1", "/data/pool", None),
        "short": PoolSpec("short", "gs://b/p", None),
    }
    assert parse_datapools("") == {} and parse_datapools(None) == {}


@pytest.mark.parametrize(("text", "words"), [
    ("{not json", ["not valid JSON"]),
    ("[1, 2]", ["must be a JSON object"]),
    ('{"../etc": {"uri": "/x"}}', ["'../etc'", "1-64 characters"]),
    ('{"a/b": {"uri": "/x"}}', ["'a/b'"]),
    ('{"main": {"uri": ""}}', ["'main'", "'uri'"]),
    ('{"main": {"url": "/x"}}', ["unknown keys ['url']"]),
    ('{"main": {"uri": "/x", "conn_id": 3}}', ["'conn_id'"]),
    ('{"main": 5}', ["must be an object"]),
])
def test_bad_configuration_names_the_problem(text, words):
    with pytest.raises(DatapoolsConfigError) as err:
        parse_datapools(text, source="[lightly] datapools")
    for word in ["[lightly] datapools", *words]:
        assert word in str(err.value)


def test_airflow_option_wins_over_the_environment_fallback(monkeypatch):
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", '{"env": {"uri": "/env"}}')
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    assert list(configured_datapools()) == ["env"]
    monkeypatch.setenv("AIRFLOW__LIGHTLY__DATAPOOLS", '{"opt": {"uri": "/opt", "conn_id": "c"}}')
    assert configured_datapools() == {"opt": PoolSpec("opt", "/opt", "c")}
    monkeypatch.delenv("LIGHTLY_DATAPOOLS")
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS")
    monkeypatch.delenv("LIGHTLY_DATAPOOL_URI", raising=False)
    assert configured_datapools() == {}


def test_the_example_dags_datapool_is_shown_when_nothing_else_is_configured(monkeypatch):
    monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
    monkeypatch.delenv("LIGHTLY_DATAPOOLS", raising=False)
    monkeypatch.setenv("LIGHTLY_DATAPOOL_URI", "s3://bucket/pool/")
    monkeypatch.setenv("LIGHTLY_DATAPOOL_CONN_ID", "aws_pool")
    assert configured_datapools() == {"default": PoolSpec("default", "s3://bucket/pool", "aws_pool")}
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", '{"env": {"uri": "/env"}}')
    assert list(configured_datapools()) == ["env"]
