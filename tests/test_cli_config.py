"""``lightly-airflow select --config``: a JSON or YAML file (as Lightly users keep their configs), inline JSON, or a
bucket's file (the environment's credentials), read as the DAG reads ``LIGHTLY_SELECTION_CONFIG``
(:func:`lightly_airflow.config.load_config`); a value it cannot use is an error naming ``--config`` and the fix."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightly_airflow.cli import main

CONFIG = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
CONFIG_YAML = "n_samples: 5\nstrategies:\n  - input: {type: EMBEDDINGS}\n    strategy: {type: DIVERSITY}\n"


@pytest.fixture
def samples(tmp_path) -> str:
    rng = np.random.default_rng(0)
    emb = pa.array([list(map(float, row)) for row in rng.normal(size=(50, 8))], pa.list_(pa.float32()))
    pq.write_table(pa.table({"key": [f"k{i:02d}" for i in range(50)], "embedding": emb}), tmp_path / "s.parquet")
    return str(tmp_path / "s.parquet")


def _select(samples: str, config: str, out) -> int:
    return main(["select", "--samples", samples, "--config", config, "--out", str(out)])


def test_select_takes_a_yaml_file_inline_json_or_a_json_file_with_the_same_picks(tmp_path, samples) -> None:
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    (tmp_path / "c.yaml").write_text(CONFIG_YAML)
    (tmp_path / "c.yml").write_text(CONFIG_YAML)
    picks = []
    for n, config in enumerate([str(tmp_path / "c.json"), str(tmp_path / "c.yaml"), (tmp_path / "c.yml").as_uri(),
                                json.dumps(CONFIG)]):
        assert _select(samples, config, tmp_path / f"o{n}.parquet") == 0, config
        picks.append(pq.read_table(tmp_path / f"o{n}.parquet").column("key").to_pylist())
    assert len(picks[0]) == 5 and all(p == picks[0] for p in picks)


def test_select_reads_a_bucket_config_with_the_environments_credentials(tmp_path, samples, s3_bucket,
                                                                        monkeypatch) -> None:
    boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1").put_object(
        Bucket=s3_bucket.name, Key="configs/c.yaml", Body=CONFIG_YAML.encode())
    for name, value in {"AWS_ENDPOINT_URL": s3_bucket.credentials.endpoint_url, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    assert _select(samples, f"{s3_bucket.uri}/configs/c.yaml", tmp_path / "o.parquet") == 0
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 5


def test_a_config_select_cannot_use_is_an_error_naming_the_option_and_the_fix(tmp_path, samples, capsys) -> None:
    (tmp_path / "broken.yaml").write_text("n_samples: [5\n")
    (tmp_path / "bad.yaml").write_text("n_samples: 5\nstrategies:\n  - input: {type: EMBEDDINGS}\n"
                                       "    strategy: {type: DIVERSITY, strenght: 2}\n")
    missing = str(tmp_path / "missing.yaml")
    for config, words in [
        (missing, [f"--config {missing!r}: does not exist", "Fix: correct the path or URI"]),
        (str(tmp_path / "broken.yaml"), ["--config", "broken.yaml", "is not valid YAML", "Fix: correct the YAML"]),
        ('{"n_samples": 5,}', ["--config", "is not valid JSON: a trailing comma", "Fix: correct the JSON"]),
        (str(tmp_path / "bad.yaml"), ["strategies[0].strategy.strenght", "Did you mean 'strength'?"]),
    ]:
        assert _select(samples, config, tmp_path / "o.parquet") == 1, config
        err = capsys.readouterr().err
        assert err.startswith("lightly-airflow select: error: "), err
        for word in words:
            assert word in err, (config, word, err)
        assert "Traceback" not in err and "or unset" not in err
    assert not (tmp_path / "o.parquet").exists()
