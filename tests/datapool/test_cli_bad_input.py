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
    # (the core says it, so every caller does: the operators and the UI as the command line)
    from lightly_airflow.datapool.errors import DatapoolError

    for ask in (Datapool(tmp_path / "pool.json").exists, Datapool(tmp_path / "pool.json").version):
        with pytest.raises(DatapoolError, match="it is a file. Fix: give the datapool's folder"):
            ask()


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


def test_show_and_export_make_out_s_folder_first_and_refuse_a_folder(tmp_path, digits, capsys) -> None:
    """``--out`` in a folder that does not exist yet is made before the pool is read (as ``select``'s); an ``--out``
    that is a folder is refused naming ``--out`` and the fix, before any work."""
    import pyarrow.parquet as pq

    pool = Datapool(tmp_path / "pool")
    rows = run_rows(digits, range(10), picks=[1])
    pool.commit(rows, run_id="r1", dag_id="curate", tag="t1", config={"n_samples": 1}, counts={"new": 10},
                embedding_model=MODEL, embedding_dim=DIM, read_version=pool.version())
    out = tmp_path / "new" / "deeper" / "rows.parquet"
    assert main(["datapool", "show", str(tmp_path / "pool"), "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 10
    csv_out = tmp_path / "other" / "rows.csv"
    assert main(["datapool", "show", str(tmp_path / "pool"), "--format", "csv", "--out", str(csv_out)]) == 0
    assert len(csv_out.read_text().splitlines()) == 11
    capsys.readouterr()
    assert main(["datapool", "export", str(tmp_path / "pool"), "--tag", "t1", "--out", str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lightly-airflow datapool: error: --out '{tmp_path / 'new'}': is a folder") and "Fix:" in err
