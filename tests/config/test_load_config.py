"""``load_config``: the one place that turns a config as a user gives it (inline JSON, a local path or ``file://``
URI, a bucket URI; JSON or YAML) into a dict, with errors naming the variable or option, the value and the fix."""

from __future__ import annotations

import json

import boto3
import pytest

from lightly_airflow.config import (
    ConfigSourceError,
    config_source,
    load_config,
    parse_selection_config,
    parse_worker_config,
)

SELECTION = {"n_samples": 7, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
SELECTION_YAML = "n_samples: 7\nstrategies:\n  - input: {type: EMBEDDINGS}\n    strategy: {type: DIVERSITY}\n"


def test_inline_json_a_json_or_yaml_file_by_path_or_file_uri(tmp_path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SELECTION))
    (tmp_path / "s.yaml").write_text(SELECTION_YAML)
    (tmp_path / "s.YML").write_text(SELECTION_YAML)
    (tmp_path / "bom.json").write_text("\ufeff" + json.dumps(SELECTION))  # Notepad's "UTF-8 with BOM"
    (tmp_path / "utf16.json").write_bytes(json.dumps(SELECTION).encode("utf-16"))  # PowerShell 5's ``>``
    for value in [json.dumps(SELECTION), f"  {json.dumps(SELECTION)}\n", str(tmp_path / "s.json"),
                  (tmp_path / "s.yaml").as_uri(), str(tmp_path / "s.YML"), str(tmp_path / "bom.json"),
                  str(tmp_path / "utf16.json")]:
        assert load_config(value, "--config", parse_selection_config) == SELECTION, value


def test_config_source_reads_nothing() -> None:
    assert config_source('{"n_samples": 1}', "X") == "inline"
    assert config_source("/etc/lightly/selection.yaml", "X") == "local"
    assert config_source("file:///etc/lightly/selection.yaml", "X") == "local"
    assert config_source("relative/selection.json", "X") == "local"
    for uri in ("s3://bucket/cfg.yaml", "gs://bucket/cfg.json", "az://container/cfg.yml", "abfs://c/cfg.json"):
        assert config_source(uri, "X") == "bucket", uri


@pytest.mark.parametrize(("name", "value", "words"), [
    ("LIGHTLY_SELECTION_CONFIG", "", ["LIGHTLY_SELECTION_CONFIG=''", "is empty", "or unset LIGHTLY_SELECTION_CONFIG"]),
    ("--config", "ftp://host/c.json", ["--config 'ftp://host/c.json'", "Unsupported URI scheme 'ftp'",
                                       "Fix: give inline JSON"]),
    ("LIGHTLY_WORKER_CONFIG", "s3://bucket/w.json?X-Amz-Signature=abc",
     ["LIGHTLY_WORKER_CONFIG='s3://bucket/w.json?***'", "carries a signature or token",
      "give the credentials through the environment"]),
    ("LIGHTLY_WORKER_CONFIG", '{"embeddings": "x.csv",}',
     ["LIGHTLY_WORKER_CONFIG='{\"embeddings\"", "is not valid JSON: a trailing comma", "Fix: correct the JSON"]),
    ("--config", "[1, 2]", ["holds a list, not a JSON object", "Fix: give the config's keys at the top level"]),
])
def test_a_value_that_is_not_a_config_names_the_variable_or_option_and_the_fix(name, value, words) -> None:
    with pytest.raises(ConfigSourceError) as info:
        load_config(value, name)
    text = str(info.value)
    for word in words:
        assert word in text, (word, text)
    assert ("or unset" in text) == (not name.startswith("-"))  # an option has no default to fall back to
    assert "abc" not in text  # (a secret never shown)


def test_file_problems_name_the_path_and_the_fix(tmp_path) -> None:
    (tmp_path / "broken.yaml").write_text("n_samples: [5\n")
    (tmp_path / "date.yaml").write_text("n_samples: 5\nsince: 2026-01-01\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "yaml-named-json.json").write_text(SELECTION_YAML)
    (tmp_path / "latin1.json").write_bytes('{"note": "Grüße"}'.encode("latin-1"))
    (tmp_path / "folder.json").mkdir()
    cases = [
        ("missing.yaml", ["does not exist", "inline JSON starts with '{'", "JSON or YAML file"]),
        ("folder.json", ["is a folder, not a file"]),
        ("broken.yaml", ["is not valid YAML", "Fix: correct the YAML"]),
        ("date.yaml", ["holds a value JSON cannot hold", "quote it"]),
        ("empty.yaml", ["holds nothing, not a JSON object"]),
        ("yaml-named-json.json", ["is not valid JSON", "a YAML file needs a name ending in .yaml or .yml"]),
        ("latin1.json", ["not UTF-8 text", "Fix: save the file as UTF-8"]),
    ]
    for file, words in cases:
        path = str(tmp_path / file)
        with pytest.raises(ConfigSourceError) as info:
            load_config(path, "--config")
        text = str(info.value)
        assert text.startswith(f"--config {path!r}: "), text
        for word in words:
            assert word in text, (file, word, text)


def test_a_config_with_problems_names_each_json_path_and_the_fix(tmp_path) -> None:
    (tmp_path / "s.yaml").write_text("n_samples: '5'\nstrategies:\n  - input: {type: EMBEDDINGS}\n"
                                     "    strategy: {type: DIVERSITY, strength: '1'}\n")
    with pytest.raises(ConfigSourceError) as info:
        load_config(str(tmp_path / "s.yaml"), "LIGHTLY_SELECTION_CONFIG", parse_selection_config)
    text = str(info.value)
    assert "strategies[0].strategy.strength: must be a finite number" in text
    assert "n_samples: must be a JSON integer" in text
    assert "Fix: correct the listed keys" in text and "or unset LIGHTLY_SELECTION_CONFIG to use the default" in text
    assert isinstance(info.value, ValueError)  # (the command line reports a ValueError as an error, no traceback)
    # Unchecked without a parser: the dict as written.
    assert load_config(str(tmp_path / "s.yaml"), "--config")["n_samples"] == "5"


def test_a_bucket_file_with_the_environments_or_given_credentials(s3_bucket, monkeypatch) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    s3.put_object(Bucket=s3_bucket.name, Key="configs/worker.yaml",
                  Body=b"relevant_filenames_file: relevant.txt\ndatasource:\n  process_all: true\n")
    s3.put_object(Bucket=s3_bucket.name, Key="configs/selection.json", Body=json.dumps(SELECTION).encode())
    worker = {"relevant_filenames_file": "relevant.txt", "datasource": {"process_all": True}}
    # The given credentials
    assert load_config(f"{s3_bucket.uri}/configs/worker.yaml", "--config", parse_worker_config,
                       credentials=s3_bucket.credentials) == worker
    # The environment's (ambient) credentials, as the DAG's first task and the command line read it.
    for name, value in {"AWS_ENDPOINT_URL": s3_bucket.credentials.endpoint_url, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    assert load_config(f"{s3_bucket.uri}/configs/selection.json", "LIGHTLY_SELECTION_CONFIG",
                       parse_selection_config) == SELECTION

    missing = f"{s3_bucket.uri}/configs/missing.yaml"
    with pytest.raises(ConfigSourceError) as info:
        load_config(missing, "LIGHTLY_WORKER_CONFIG")
    assert str(info.value).startswith(f"LIGHTLY_WORKER_CONFIG={missing!r}: does not exist\nFix: correct the path")
    no_bucket = "s3://no-such-bucket-lightly-test/w.yaml"
    with pytest.raises(ConfigSourceError) as info:
        load_config(no_bucket, "LIGHTLY_WORKER_CONFIG")
    assert str(info.value).startswith(f"LIGHTLY_WORKER_CONFIG={no_bucket!r}: cannot be read with the environment's "
                                      "credentials: its bucket (or container) does not exist")
    assert "Fix: correct the URI, or create the bucket, or unset LIGHTLY_WORKER_CONFIG" in str(info.value)
