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


def test_list_reads_a_relevant_filenames_file_saved_by_windows_tools(tmp_path, capsys) -> None:
    # Notepad's "UTF-8 with BOM" kept the BOM on the first line (its file never matched); PowerShell's UTF-16 and
    # other encodings failed with a bare UnicodeDecodeError. Now read as a run reads .lightly/ files.
    root = tmp_path / "ds"
    root.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (root / name).write_bytes(png_bytes(len(name)))
    rel = tmp_path / "relevant.txt"
    for data in (b"\xef\xbb\xbfa.png\r\nb.png\r\n", "a.png\nb.png\n".encode("utf-16")):
        rel.write_bytes(data)
        assert main(["list", str(root), "--format", "json", "--relevant-filenames", str(rel)]) == 0
        assert [json.loads(line)["key"] for line in capsys.readouterr().out.splitlines()] == ["a.png", "b.png"]
    rel.write_bytes("a.png\nb\xe4.png\n".encode("latin-1"))
    assert main(["list", str(root), "--relevant-filenames", str(rel)]) != 0
    assert "--relevant-filenames" in (err := capsys.readouterr().err) and "not UTF-8 text" in err


def test_list_names_the_os_metadata_files_it_skips(tmp_path, capsys) -> None:
    root = tmp_path / "ds"
    (root / "__MACOSX").mkdir(parents=True)
    (root / "x.jpg").write_bytes(png_bytes(1))
    (root / "._x.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00")
    (root / "__MACOSX" / "._x.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00")
    assert main(["list", str(root), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["key"] for line in captured.out.splitlines()] == ["x.jpg"]
    assert "1 files" in captured.err
    assert "2 OS or tool metadata files skipped (not samples), e.g. '._x.jpg', '__MACOSX/._x.jpg'" in captured.err


def test_list_names_the_live_photo_clips_a_run_leaves_out(tmp_path, capsys) -> None:
    root = tmp_path / "roll"
    root.mkdir()
    (root / "IMG_0001.HEIC").write_bytes(png_bytes(1))  # (names and sizes decide; the bytes are not read)
    (root / "IMG_0001.MOV").write_bytes(b"\x00" * 64)
    (root / "walk.mov").write_bytes(b"\x00" * 64)
    assert main(["list", str(root), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3  # every file is listed
    assert "of these, 1 Live Photo motion clip (a short video beside the photo of the same name) is not processed " \
        "by a run: the photo is the sample, e.g. 'IMG_0001.MOV' beside 'IMG_0001.HEIC'" in captured.err
    assert "walk.mov" not in captured.err
