"""``lightly-airflow list``: the same listing as a run, as a table or JSON lines."""

from __future__ import annotations

import json

from lightly_airflow.cli import main

from .conftest import png_bytes


def test_list_json_and_table_with_relevant_filenames(tmp_path, capsys) -> None:
    root = tmp_path / "ds"
    (root / "a b").mkdir(parents=True)
    (root / "a b" / "x.png").write_bytes(png_bytes(1))
    (root / "y.JPG").write_bytes(png_bytes(2))
    (root / "clip.mp4").write_bytes(b"\x00" * 10)
    (root / ".lightly").mkdir()
    (root / ".lightly" / "z.png").write_bytes(png_bytes(3))
    rel = tmp_path / "relevant.txt"
    rel.write_text("a b/*\nclip.mp4\n")

    assert main(["list", str(root), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["key"] for r in rows] == ["a b/x.png", "clip.mp4", "y.JPG"]  # videos are listed with images by default
    assert rows[0]["size"] == len(png_bytes(1)) and rows[0]["etag"].startswith("sha256:")
    assert main(["list", str(root), "--format", "json", "--extensions", "images"]) == 0
    assert [json.loads(line)["key"] for line in capsys.readouterr().out.splitlines()] == ["a b/x.png", "y.JPG"]

    assert main(["list", f"file://{root}", "--relevant-filenames", str(rel), "--extensions", "images,videos"]) == 0
    captured = capsys.readouterr()
    assert [line.split("  ")[-1] for line in captured.out.splitlines()] == ["a b/x.png", "clip.mp4"]
    assert "2 files" in captured.err

    assert main(["list", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
