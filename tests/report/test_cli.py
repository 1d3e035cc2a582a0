"""``lightly-airflow report``: parser registration, a run from saved files, clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lightly_airflow.report import cli

from .conftest import make_run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightly-airflow")
    cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_report_command_from_saved_files(tmp_path: Path, capsys) -> None:
    run = make_run(n=300, n_select=12)
    pq.write_table(run.rows, tmp_path / "rows.parquet")
    pq.write_table(run.preselected, tmp_path / "pre.parquet")
    (tmp_path / "s.json").write_text(json.dumps(run.summary))
    (tmp_path / "c.json").write_text(json.dumps(run.config))
    args = _parser().parse_args([
        "report", "--rows", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "out"),
        "--summary", str(tmp_path / "s.json"), "--config", str(tmp_path / "c.json"),
        "--preselected", str(tmp_path / "pre.parquet"), "--max-points", "100",
    ])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "index.html")
    page = (tmp_path / "out" / "index.html").read_text()
    assert "n_samples reached" in page and "manual__2026-01-01" in page
    assert (tmp_path / "out" / "balance-01.png").exists()


def test_report_command_rows_only(tmp_path: Path) -> None:
    pq.write_table(make_run(n=50, n_select=3).rows, tmp_path / "rows.parquet")
    args = _parser().parse_args(["report", "--rows", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "o")])
    assert args.func(args) == 0 and (tmp_path / "o" / "embedding-map.png").exists()


def test_report_command_errors_name_the_option(tmp_path: Path) -> None:
    args = _parser().parse_args(["report", "--rows", str(tmp_path / "nope.parquet"), "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="--rows"):
        args.func(args)
    pq.write_table(make_run(n=10, n_select=1).rows, tmp_path / "rows.parquet")
    (tmp_path / "bad.json").write_text("{not json")
    args = _parser().parse_args(["report", "--rows", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "o"),
                                 "--summary", str(tmp_path / "bad.json")])
    with pytest.raises(ValueError, match="--summary .* is not valid JSON"):
        args.func(args)
    with pytest.raises(SystemExit):
        _parser().parse_args(["report", "--out", str(tmp_path)])


def test_report_command_reads_config_files_saved_by_windows_tools(tmp_path: Path) -> None:
    # PowerShell 5's ``>`` writes UTF-16 with a BOM, Notepad "UTF-8 with BOM": read as the DAG reads .lightly/ files.
    run = make_run(n=60, n_select=4)
    pq.write_table(run.rows, tmp_path / "rows.parquet")
    for i, data in enumerate((json.dumps(run.config).encode("utf-16"), b"\xef\xbb\xbf" + json.dumps(run.config).encode())):
        (tmp_path / "c.json").write_bytes(data)
        args = _parser().parse_args(["report", "--rows", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / f"o{i}"),
                                     "--config", str(tmp_path / "c.json"), "--max-points", "50"])
        assert args.func(args) == 0
    (tmp_path / "c.json").write_bytes(json.dumps({"note": "Grüße"}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ValueError, match=r"--config .*c\.json.*not UTF-8 text .*save it as UTF-8"):
        args.func(args)


def test_report_config_is_read_as_select_reads_it_yaml_inline_json_and_a_bucket_uri(
        tmp_path: Path, s3_bucket, monkeypatch) -> None:
    """``--config`` takes what ``select --config`` takes (``lightly_airflow.config.load_config``): a YAML file, inline
    JSON, a bucket's file (the environment's credentials); the config is checked, each problem named with its
    JSON path and the fix."""
    import boto3
    import yaml

    run = make_run(n=80, n_select=5)
    pq.write_table(run.rows, tmp_path / "rows.parquet")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(run.config))
    s3 = boto3.client("s3", endpoint_url=s3_bucket.credentials.endpoint_url, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    s3.put_object(Bucket=s3_bucket.name, Key="configs/selection.yml", Body=yaml.safe_dump(run.config).encode())
    for name, value in {"AWS_ENDPOINT_URL": s3_bucket.credentials.endpoint_url, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    given = {"yaml": str(tmp_path / "c.yaml"), "inline": json.dumps(run.config),
             "bucket": f"{s3_bucket.uri}/configs/selection.yml"}
    for what, value in given.items():
        out = tmp_path / f"out-{what}"
        args = _parser().parse_args(["report", "--rows", str(tmp_path / "rows.parquet"), "--out", str(out),
                                     "--config", value, "--max-points", "50"])
        assert args.func(args) == 0, what
        assert (out / "balance-01.png").exists(), what  # the config's BALANCE strategies were read

    def error(value: str) -> str:
        args = _parser().parse_args(["report", "--rows", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "x"),
                                     "--config", value])
        with pytest.raises(ValueError) as info:
            args.func(args)
        return str(info.value)

    (tmp_path / "bad.yaml").write_text("n_samples: many\nstrategies: []\n")
    message = error(str(tmp_path / "bad.yaml"))
    assert f"--config {str(tmp_path / 'bad.yaml')!r}" in message and "n_samples" in message
    assert "Fix: correct the listed keys" in message
    missing = f"{s3_bucket.uri}/configs/missing.yaml"
    assert f"--config {missing!r}: does not exist" in error(missing)
    assert "is not valid JSON" in error("{not json")
