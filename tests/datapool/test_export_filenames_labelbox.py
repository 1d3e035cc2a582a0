"""The ``filenames`` and ``labelbox`` exports, as Lightly writes them, on pools the tests commit.

``filenames`` is Lightly's export of a tag as file names (``lightly-download tag_name=…`` writes ``<tag>.txt`` with
``"%s\\n" % name`` per sample; the API's ``export_filenames_by_tag_name``): each key relative to the datasource, as it
is, one per line. ``labelbox`` is Lightly's Labelbox v4 data rows (``export_label_box_v4_data_rows_by_tag_name``:
``row_data``, ``global_key``, ``media_type``); Labelbox fetches ``https`` URLs and ``gs://`` URIs (its GCS
integration), so the export says (warns, counted) which rows it cannot fetch."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.errors import DatapoolError
from lightly_airflow.datapool.export import export_records, render, root_uri

from .conftest import DIM, MODEL, run_rows

#: a space, '+', '%', '#', '?', non-ASCII, a key that looks encoded, a video frame's name
KEYS = ["imgs/city/frame 11.jpg", "a+b/plus+sign.jpg", "pct/100%.jpg", "h/frag#top.jpg", "q/what?x=1&y=2.jpg",
        "uni/ünïcödé 日本 🐱.jpg", "looks/encoded%20already.jpg", "clips/street 1-07-mp4.png"]
VIDEO = [None] * 7 + ["clips/street 1.mp4"]


def _commit(pool: Datapool, digits: Any, datasource: str, keys: list[str] = KEYS, *, run: str = "r1",
            tag: str = "t1", video: list[str | None] | None = VIDEO) -> None:
    rows = run_rows(digits, range(len(keys)), picks=list(reversed(range(len(keys)))))  # (pick order ≠ key order)
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    if video is not None:
        rows = rows.append_column(C.VIDEO, pa.array(video, pa.string()))
    pool.commit(rows, run_id=run, dag_id="curate", tag=tag, config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=pool.version(), datasource_uri=datasource)


def _export(pool_uri: str, fmt: str, out: Path, capsys: Any, tag: str = "t1") -> str:
    assert main(["datapool", "export", pool_uri, "--tag", tag, "--format", fmt, "--out", str(out)]) == 0, \
        capsys.readouterr().err
    return out.read_bytes().decode("utf-8")


def test_filenames_are_the_keys_one_per_line_as_lightly_download_writes_them(tmp_path: Path, digits: Any,
                                                                             capsys: Any) -> None:
    """Each line is the key as it is (no root, no percent-encoding: a script joins it with the datasource root and
    opens the file), a video frame its frame name, in pick order, each line ended by a newline."""
    source = tmp_path / "data sets" / "ds2"
    for key in KEYS[:-1]:  # (a frame is no file of the datasource: its video is)
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(key.encode())
    pool_uri = str(tmp_path / "pool")
    _commit(Datapool(pool_uri), digits, str(source))
    text = _export(pool_uri, "filenames", tmp_path / "t1.txt", capsys)
    picked = list(reversed(KEYS))
    assert text == "".join(f"{k}\n" for k in picked)
    # read as lightly-download's <tag>.txt is read: split at "\n", the last entry empty
    names = text.split("\n")
    assert names[-1] == "" and names[:-1] == picked
    for name in names[:-1]:
        if name != KEYS[-1]:
            assert (source / name).read_bytes() == name.encode()
    # the same names whatever the store: an S3 datasource's keys are no different
    pool2 = str(tmp_path / "pool2")
    _commit(Datapool(pool2), digits, "s3://bucket/data sets/ds2")
    assert _export(pool2, "filenames", tmp_path / "t2.txt", capsys) == text


def test_a_key_with_a_line_break_is_refused_by_filenames_naming_it(tmp_path: Path, digits: Any) -> None:
    """A file name with a line break would become two names: the export refuses it, naming the key and the formats
    that carry it, on every store (file names are written as they are)."""
    pool = Datapool(str(tmp_path / "pool"))
    keys = ["ok.jpg", "nl/a\nb.jpg", "ls/c\u2028d.jpg"]
    _commit(pool, digits, str(tmp_path / "src"), keys, video=None)
    records = export_records(pool, "t1")
    with pytest.raises(DatapoolError, match=r"2 of the 3 samples .* 'ls/c\\u2028d.jpg', 'nl/a\\nb.jpg'.*labelbox"):
        render(records, "t1", "filenames")
    rows = json.loads(render(records, "t1", "labelbox"))
    assert [r["global_key"] for r in rows] == list(reversed(keys))  # (JSON carries the exact key)


def test_labelbox_rows_are_lightly_s_v4_rows_with_raw_gs_uris(tmp_path: Path, digits: Any, capsys: Any,
                                                             caplog: Any) -> None:
    """A GCS datasource: ``row_data`` is the image's gs:// URI with the raw key (what Labelbox's GCS integration
    reads: "only gsutil URIs are supported"), ``gcs://`` written ``gs://``, a video frame its PNG under
    ``.lightly/frames/``; ``global_key`` the exact key; ``media_type`` IMAGE; no warning: every row is fetchable."""
    for scheme in ("gs", "gcs"):
        pool_uri = str(tmp_path / f"pool-{scheme}")
        datasource = f"{scheme}://bucket/data sets/ds2"
        _commit(Datapool(pool_uri), digits, datasource)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lightly_airflow.datapool.export"):
            rows = json.loads(_export(pool_uri, "labelbox", tmp_path / f"{scheme}.json", capsys))
        assert not [r for r in caplog.records if "Labelbox" in r.getMessage()], caplog.text
        frames = "gs://bucket/data sets/ds2/.lightly/frames/"
        assert rows == [
            {"row_data": (frames if k == KEYS[-1] else "gs://bucket/data sets/ds2/") + k, "global_key": k,
             "media_type": "IMAGE"}
            for k in reversed(KEYS)
        ]
        assert root_uri(datasource).startswith(f"{scheme}://")  # (the other formats keep the store's own scheme)


@pytest.mark.parametrize(("datasource", "first"), [
    ("s3://bucket/data sets/ds2", "s3://bucket/data sets/ds2/.lightly/frames/clips/street 1-07-mp4.png"),
    ("az://box/ds2", "az://box/ds2/.lightly/frames/clips/street 1-07-mp4.png"),
    ("/local/data sets", "file:///local/data%20sets/.lightly/frames/clips/street%201-07-mp4.png"),
])
def test_labelbox_warns_with_their_number_about_rows_it_cannot_fetch(datasource: str, first: str, tmp_path: Path,
                                                                     digits: Any, capsys: Any, caplog: Any) -> None:
    """S3 (no region in an s3:// URI for Labelbox's https://<bucket>.s3.<region>.amazonaws.com/ URLs), Azure (no
    account) and local files: the rows are written with the same URI the other formats write, and a warning counts
    and names them and says what Labelbox reads."""
    pool_uri = str(tmp_path / "pool")
    _commit(Datapool(pool_uri), digits, datasource)
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.datapool.export"):
        rows = json.loads(_export(pool_uri, "labelbox", tmp_path / "lb.json", capsys))
    uris = _export(pool_uri, "list", tmp_path / "list.txt", capsys).split("\n")[:-1]
    assert [r["row_data"] for r in rows] == uris and rows[0]["row_data"] == first
    warned = [r.getMessage() for r in caplog.records if "cannot fetch" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("8 of the 8 Labelbox data rows of tag 't1'"), warned
    assert first in warned[0] and "https://<bucket>.s3.<region>.amazonaws.com/<key>" in warned[0]


def test_labelbox_warns_about_image_types_it_does_not_take(tmp_path: Path, digits: Any, capsys: Any,
                                                           caplog: Any) -> None:
    """Labelbox's image import takes JPG, PNG and BMP (any case): the others are written and counted, named."""
    pool = Datapool(str(tmp_path / "pool"))
    _commit(pool, digits, "gs://a/x", ["anim.webp", "scan.TIFF", "ok.png", "b.BMP", "c.Jpeg", "noext"], video=None)
    with caplog.at_level(logging.WARNING, logger="lightly_airflow.datapool.export"):
        rows = json.loads(_export(pool.uri, "labelbox", tmp_path / "lb.json", capsys))
    assert [r["row_data"] for r in rows] == [f"gs://a/x/{k}" for k in ("noext", "c.Jpeg", "b.BMP", "ok.png",
                                                                        "scan.TIFF", "anim.webp")]
    messages = [r.getMessage() for r in caplog.records if "Labelbox" in r.getMessage()]
    assert len(messages) == 1 and messages[0].startswith("3 of the 6 Labelbox data rows of tag 't1' are not JPG, PNG")
    assert all(f"gs://a/x/{k}" in messages[0] for k in ("noext", "scan.TIFF", "anim.webp")), messages


def test_the_ui_downloads_filenames_and_labelbox_as_the_cli_writes_them(tmp_path: Path, digits: Any, capsys: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin takes its formats from ``FORMATS``: the grid links both, and its download is the CLI's document
    (a text file of names, a JSON file of rows)."""
    from ui_client import ui_client

    pool_uri = str(tmp_path / "pool")
    _commit(Datapool(pool_uri), digits, "gs://bucket/data sets/ds2")
    with ui_client(monkeypatch, {"main": {"uri": pool_uri}}) as client:
        page = client.get("/lightly/pools/main/samples?tag=t1").text
        got = {fmt: client.get(f"/lightly/pools/main/export?format={fmt}&tag=t1") for fmt in ("filenames", "labelbox")}
    assert "format=filenames" in page and "format=labelbox" in page
    assert got["filenames"].status_code == 200 and got["filenames"].headers["content-type"].startswith("text/plain")
    assert got["filenames"].text == _export(pool_uri, "filenames", tmp_path / "t1.txt", capsys)
    # (a name of its own: the same tag's ``list`` download is ``main-t1-v1.txt``)
    assert 'main-t1-v1.filenames.txt"' in got["filenames"].headers["content-disposition"]
    assert 'main-t1-v1.labelbox.json"' in got["labelbox"].headers["content-disposition"]
    assert got["labelbox"].json() == json.loads(_export(pool_uri, "labelbox", tmp_path / "lb.json", capsys))

