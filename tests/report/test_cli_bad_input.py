"""``lightly-airflow report`` given a ``--rows`` file that is not Parquet (empty, a CSV renamed): named by its option;
one without picks (a samples file): warned."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq

from lightly_airflow.cli import main


def test_rows_that_are_not_parquet_are_named_by_the_option(tmp_path, capsys) -> None:
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "rows.parquet").write_text("key,status\na.png,ok\n")
    for name in ("empty.parquet", "rows.parquet"):
        given = str(tmp_path / name)
        assert main(["report", "--rows", given, "--out", str(tmp_path / "report")]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"lightly-airflow report: error: --rows {given!r} is not a Parquet file ("), err
        assert err.rstrip().endswith("pass a Parquet file of the run's rows.") and "Traceback" not in err
    assert not (tmp_path / "report").exists()


def test_rows_without_picks_are_warned_about(tmp_path, caplog) -> None:
    samples = tmp_path / "samples.parquet"  # (the select input given for the run's rows)
    pq.write_table(pa.table({"key": ["a.png", "b.png"], "status": ["ok", "ok"]}), samples)
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.report.cli"):
        assert main(["report", "--rows", str(samples), "--out", str(tmp_path / "report")]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"--rows {str(samples)!r} has neither 'selected' nor 'pick_rank': the report shows no picks. Fix: pass the "
        "run's rows (the select task's rows, or select --out's picks)"]
    caplog.clear()
    picks = tmp_path / "picks.parquet"
    pq.write_table(pa.table({"key": ["a.png", "b.png"], "pick_rank": pa.array([0, None], pa.int64())}), picks)
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.report.cli"):
        assert main(["report", "--rows", str(picks), "--out", str(tmp_path / "report2")]) == 0
    assert not caplog.records
