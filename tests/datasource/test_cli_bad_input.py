"""``lightly-airflow list``: a ``--credentials`` or ``--relevant-filenames`` file that cannot be read is named by
its option."""

from __future__ import annotations

from lightly_airflow.cli import main

from .conftest import png_bytes


def test_an_unreadable_credentials_or_relevant_filenames_file_is_named_by_its_option(tmp_path, capsys) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "x.png").write_bytes(png_bytes(1))
    (tmp_path / "creds.json").write_text("{not json")
    (tmp_path / "folder").mkdir()
    for option, given, problem in [
        ("--credentials", tmp_path / "missing.json", "No such file or directory"),
        ("--credentials", tmp_path / "creds.json", "Expecting property name"),
        ("--relevant-filenames", tmp_path / "missing.txt", "No such file or directory"),
        ("--relevant-filenames", tmp_path / "folder", "Is a directory"),
    ]:
        assert main(["list", str(root), option, str(given)]) == 1, (option, given)
        err = capsys.readouterr().err
        assert err.startswith(f"lightly-airflow list: error: {option} {str(given)!r}: "), err
        assert problem in err and "Traceback" not in err
    (tmp_path / "relevant.txt").write_text("x.png\n")
    assert main(["list", str(root), "--relevant-filenames", str(tmp_path / "relevant.txt")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("x.png")
