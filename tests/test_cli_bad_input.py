"""Any ``lightly-airflow`` command given a folder where a file belongs (or a file where a folder does): one line naming
the path and the fix, exit 1, no traceback."""

from __future__ import annotations

from lightly_airflow.cli import main


def test_a_folder_given_for_a_file_is_one_message_with_the_fix(tmp_path, capsys) -> None:
    (tmp_path / "rows.parquet").mkdir()
    assert main(["report", "--rows", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lightly-airflow report: error: [Errno 21] Is a directory: "), err
    assert str(tmp_path / "rows.parquet") in err and "Fix: that path is a folder: give the path of a file" in err
    assert "Traceback" not in err


def test_a_file_given_for_a_folder_keeps_its_own_fix(tmp_path, capsys) -> None:
    (tmp_path / "images.txt").write_text("not a folder")
    assert main(["list", str(tmp_path / "images.txt")]) == 1
    err = capsys.readouterr().err
    assert err == (f"lightly-airflow list: error: Local datasource {str(tmp_path / 'images.txt')!r} is a file: point "
                   "the datasource URI at its folder.\n")  # (its message has the fix: no second one)


def test_metadata_refuses_zero_workers_as_embed_does_not_read_it_as_auto(tmp_path, capsys) -> None:
    """``metadata --num-workers 0`` meant "from the cores" while ``embed --num-workers 0`` means no worker threads:
    0 is now a usage error naming the option (the default, from the cores, is the option left out)."""
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["metadata", "--manifest", str(tmp_path / "m.parquet"), "--num-workers", "0"])
    assert exit_.value.code == 2
    assert "argument --num-workers: '0' must be a positive integer" in capsys.readouterr().err
    from lightly_airflow.metadata.shard import compute_metadata_shard

    with pytest.raises(ValueError, match="num_workers must be at least 1, got 0"):
        compute_metadata_shard(str(tmp_path / "m.parquet"), num_workers=0)
