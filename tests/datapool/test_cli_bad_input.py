"""``lightly-airflow datapool`` given a file for the pool, or a negative ``--limit``: one message with the fix."""

from __future__ import annotations

import pytest

from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool

from .conftest import DIM, MODEL, run_rows


def test_a_file_given_as_the_pool_is_named_with_the_fix(tmp_path, capsys) -> None:
    (tmp_path / "pool.json").write_text("{}")
    for command in ("history", "tags", "show"):
        assert main(["datapool", command, str(tmp_path / "pool.json")]) == 1
        err = capsys.readouterr().err
        assert err == (f"lightly-airflow datapool: error: No datapool at {tmp_path / 'pool.json'}: it is a file. "
                       "Fix: give the datapool's folder (the one holding _delta_log/)\n"), command


def test_show_refuses_a_negative_limit(tmp_path, digits, capsys) -> None:
    pool = Datapool(tmp_path / "pool")
    rows = run_rows(digits, range(10), picks=[1])
    pool.commit(rows, run_id="r1", dag_id="curate", tag="t1", config={"n_samples": 1}, counts={"new": 10},
                embedding_model=MODEL, embedding_dim=DIM, read_version=pool.version())
    with pytest.raises(SystemExit) as exit_:
        main(["datapool", "show", str(tmp_path / "pool"), "--limit", "-1"])
    assert exit_.value.code == 2
    assert "argument --limit: '-1' must be 0 or a positive integer" in capsys.readouterr().err
    assert main(["datapool", "show", str(tmp_path / "pool"), "--limit", "3", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # (a header and 3 rows)
