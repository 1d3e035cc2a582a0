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
