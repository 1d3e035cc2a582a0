"""write_report on digits-built runs: files, counts, escaping, tables, stores, edge cases, failing plots."""

from __future__ import annotations

import html
import io
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.report import write_report
from lightly_airflow.report import writer as W
from lightly_airflow.storage import filesystem

from .conftest import make_run


def _write(tmp_path: Path, run, *, rows: pa.Table | None = None, **kwargs) -> tuple[str, str]:
    args = {"summary": run.summary, "config": run.config, "preselected": run.preselected} | kwargs
    uri = write_report(run.rows if rows is None else rows, out_uri=str(tmp_path / "report"), **args)
    return uri, Path(uri).read_text(encoding="utf-8")


def _card(page: str, label: str) -> str:
    m = re.search(r'<div class="n">([^<]*)</div><div class="l">' + re.escape(label) + "</div>", page)
    assert m, f"no {label!r} card"
    return m.group(1)


def test_full_report_files_counts_and_plots(tmp_path: Path, digits_run) -> None:
    uri, page = _write(tmp_path, digits_run)
    assert uri == str(tmp_path / "report" / "index.html")
    out = tmp_path / "report"
    assert sorted(p.name for p in out.iterdir()) == [
        "balance-00.png", "balance-01.png", "embedding-map.png", "index.html", "metrics.png"]
    st = digits_run.statuses
    assert _card(page, "processed") == f"{len(st):,}"
    assert _card(page, "ok") == f"{st.count('ok'):,}"
    assert _card(page, "corrupt") == str(st.count("corrupt")) and st.count("corrupt") > 0
    assert _card(page, "duplicate") == str(st.count("duplicate")) and st.count("duplicate") > 0
    assert _card(page, "missing") == "0"
    assert _card(page, "selected") == str(len(digits_run.picked_keys))
    assert _card(page, "selected before") == str(digits_run.preselected.num_rows)
    assert "n_samples reached" in page and "coverage_radius" in page and "0.61" in page
    for name in ("embedding-map.png", "metrics.png", "balance-00.png", "balance-01.png"):
        assert f'src="{name}"' in page
        with Image.open(out / name) as img:
            img.load()
            assert img.format == "PNG" and 200 < img.width < 1400 and 150 < img.height < 1000
        assert (out / name).stat().st_size < 250_000
    assert "BALANCE TARGET on metadata digit" in page and "BALANCE UNIFORM on predictions cls" in page


def test_html_is_self_contained_and_escapes_every_string(tmp_path: Path, digits_run) -> None:
    summary = dict(digits_run.summary, run_id="run <b>&\"x\"", metrics={"stop_reason": "<img src=x onerror=1>"})
    _, page = _write(tmp_path, digits_run, summary=summary)
    assert "&lt;script&gt;.png" in page
    assert "<script" not in page.lower()
    assert "truncated &lt;EOF&gt;" in page
    assert "&lt;img src=x onerror=1&gt;" in page and "<img src=x" not in page
    assert "run &lt;b&gt;&amp;&quot;x&quot;" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page must not load anything from the network"
    assert "<style>" in page and "<link" not in page


def test_selected_table_lists_keys_in_pick_order(tmp_path: Path, digits_run) -> None:
    _, page = _write(tmp_path, digits_run)
    section = page.split("Selected in pick order", 1)[1]
    listed = [html.unescape(k) for k in re.findall(r'<td class="key">([^<]*)</td>', section)]
    assert listed == digits_run.picked_keys
    assert f"Selected in pick order ({len(digits_run.picked_keys)})" in page
    # numbered from 1, as the UI's "Pick 1" (pick rank 0)
    assert re.findall(r'<td class="num">(\d+)</td>', section)[:3] == ["1", "2", "3"]


def test_long_tables_show_first_200_and_count_the_rest(tmp_path: Path) -> None:
    run = make_run(n_select=250)
    n = run.rows.num_rows
    status = np.array(run.rows.column(C.STATUS).to_pylist(), dtype=object)
    sel = np.array(run.rows.column(C.SELECTED).to_pylist())
    bad = np.flatnonzero(~sel)[:330]
    status[bad] = C.STATUS_MISSING
    rows = run.rows.set_column(run.rows.column_names.index(C.STATUS), C.STATUS, pa.array(status.tolist()))
    _, page = _write(tmp_path, run, rows=rows)
    n_bad = int((status != "ok").sum())
    not_ok = page.split("Files not ok", 1)[1].split("Selected in pick order", 1)[0]
    assert not_ok.count("<tr>") == 1 + 200
    assert f"… and {n_bad - 200} more not shown." in not_ok
    picked = page.split("Selected in pick order", 1)[1]
    assert picked.count("<tr>") == 1 + 200 and "… and 50 more not shown" in picked
    assert _card(page, "missing") == str(int((status == C.STATUS_MISSING).sum())) and n == len(status)


def test_report_on_s3_emulator(s3_bucket, digits_run) -> None:
    out = f"{s3_bucket.uri}/reports/run-1"
    uri = write_report(digits_run.rows, out_uri=out, summary=digits_run.summary, config=digits_run.config,
                       preselected=digits_run.preselected, credentials=s3_bucket.credentials)
    assert uri == f"{out}/index.html"
    fs, path = filesystem(out, s3_bucket.credentials)
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(path))
    assert names == ["balance-00.png", "balance-01.png", "embedding-map.png", "index.html", "metrics.png"]
    page = fs.cat_file(f"{path}/index.html").decode()
    assert "&lt;script&gt;.png" in page and 'src="embedding-map.png"' in page
    with Image.open(io.BytesIO(fs.cat_file(f"{path}/embedding-map.png"))) as img:
        assert img.format == "PNG"


def test_file_uri_and_existing_folder(tmp_path: Path) -> None:
    run = make_run(n=120, n_select=5)
    (tmp_path / "r").mkdir()
    uri = write_report(run.rows, out_uri=f"file://{tmp_path}/r", summary=run.summary, config=run.config)
    assert uri == f"file://{tmp_path}/r/index.html" and (tmp_path / "r" / "metrics.png").exists()


def test_map_is_deterministic_and_subsampled(tmp_path: Path, digits_run) -> None:
    a = write_report(digits_run.rows, out_uri=str(tmp_path / "a"), summary={}, config={},
                     preselected=digits_run.preselected, max_points=300)
    write_report(digits_run.rows, out_uri=str(tmp_path / "b"), summary={}, config={},
                     preselected=digits_run.preselected, max_points=300)
    assert (tmp_path / "a/embedding-map.png").read_bytes() == (tmp_path / "b/embedding-map.png").read_bytes()
    page = Path(a).read_text()
    total = sum(1 for s in digits_run.statuses) + digits_run.preselected.num_rows
    assert f"deterministic sample of 300 of {total:,} points" in page


# ------------------------------------------------------------------------------------------- edge cases
def test_keys_only(tmp_path: Path) -> None:
    rows = pa.table({C.KEY: ["a.png", "b.png"]})
    _, page = _write(tmp_path, make_run(n=20, n_select=2), rows=rows, summary={}, config={}, preselected=None)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["index.html"]
    assert _card(page, "processed") == "2" and _card(page, "selected") == "0" and _card(page, "ok") == "—"
    assert "No embeddings in this run" in page and "No metadata.lightly.* columns" in page
    assert "No BALANCE strategy" in page and "This run selected no samples." in page
    assert "Stop reason:</b> not reported" in page


def test_empty_table_uses_summary_counts(tmp_path: Path) -> None:
    _, page = _write(tmp_path, make_run(n=20, n_select=2), rows=pa.table({C.KEY: pa.array([], pa.string())}),
                     summary={"processed": 0, "metrics": {"stop_reason": "no candidates"}}, config={}, preselected=None)
    assert _card(page, "processed") == "0" and "no candidates" in page


def test_zero_selected_no_predictions_no_metadata(tmp_path: Path, digits_run) -> None:
    rows = digits_run.rows.select([C.KEY, C.STATUS, C.STATUS_REASON, C.EMBEDDING])
    rows = rows.append_column(C.SELECTED, pa.array([False] * rows.num_rows)) \
               .append_column(C.PICK_RANK, pa.nulls(rows.num_rows, pa.int64()))
    _, page = _write(tmp_path, digits_run, rows=rows, preselected=None)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["embedding-map.png", "index.html"]
    assert _card(page, "selected") == "0" and "This run selected no samples." in page
    assert "No BALANCE strategy on a column of this run." in page


def test_one_sample(tmp_path: Path) -> None:
    run = make_run(n=1, n_select=1)
    uri, page = _write(tmp_path, run, preselected=None)
    assert _card(page, "processed") == "1" and _card(page, "selected") == "1"
    for name in ("embedding-map.png", "metrics.png", "balance-00.png", "balance-01.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    assert "could not be drawn" not in page


def test_null_embeddings_nan_metrics_and_other_dimension_preselected(tmp_path: Path, digits_run) -> None:
    rows = digits_run.rows
    emb = rows.column(C.EMBEDDING).to_pylist()
    emb[0] = None
    emb[1] = [float("nan")] * 64
    lum = rows.column("metadata.lightly.luminance").to_pylist()
    lum[:5] = [None, float("nan"), float("inf"), None, None]
    rows = rows.set_column(rows.column_names.index(C.EMBEDDING), C.EMBEDDING, pa.array(emb, pa.list_(pa.float32())))
    rows = rows.set_column(rows.column_names.index("metadata.lightly.luminance"), "metadata.lightly.luminance",
                           pa.array(lum, pa.float64()))
    pre = pa.table({C.KEY: ["x"], C.EMBEDDING: pa.array([[1.0, 0.0, 0.0]], pa.list_(pa.float32()))})
    _, page = _write(tmp_path, digits_run, rows=rows, preselected=pre)
    assert "could not be drawn" not in page and (tmp_path / "report" / "embedding-map.png").exists()


def test_dollar_signs_in_class_names_print_literally(tmp_path: Path, digits_run) -> None:
    rows = digits_run.rows
    names = [f"$c_{{{v}" for v in rows.column("metadata.digit").to_pylist()]
    rows = rows.set_column(rows.column_names.index("metadata.digit"), "metadata.digit", pa.array(names))
    config = {"n_samples": 5, "strategies": [
        {"input": {"type": "METADATA", "key": "digit"}, "strategy": {"type": "BALANCE", "distribution": "INPUT"}}]}
    _, page = _write(tmp_path, digits_run, rows=rows, config=config)
    assert "could not be drawn" not in page and (tmp_path / "report" / "balance-00.png").exists()


def test_a_failing_plot_is_logged_and_the_report_still_written(tmp_path: Path, digits_run, monkeypatch,
                                                               caplog) -> None:
    from lightly_airflow.report import plots

    def broken(*_args, **_kwargs):
        raise RuntimeError("font cache is unreadable")

    monkeypatch.setattr(plots, "histograms_png", broken)
    with caplog.at_level(logging.ERROR, logger=W.__name__):
        uri, page = _write(tmp_path, digits_run)
    assert Path(uri).exists()
    assert "This plot could not be drawn: RuntimeError: font cache is unreadable" in page
    assert not (tmp_path / "report" / "metrics.png").exists()
    assert (tmp_path / "report" / "embedding-map.png").exists() and (tmp_path / "report" / "balance-00.png").exists()
    assert any("font cache is unreadable" in (r.exc_text or "") for r in caplog.records)


def test_bad_arguments_are_named(tmp_path: Path, digits_run) -> None:
    with pytest.raises(ValueError, match="max_points must be positive"):
        write_report(digits_run.rows, out_uri=str(tmp_path), summary={}, config={}, max_points=0)
    with pytest.raises(TypeError, match="rows must be a pyarrow.Table"):
        write_report(digits_run.rows.to_pylist(), out_uri=str(tmp_path), summary={}, config={})


def test_accepts_run_summary_and_parsed_config(tmp_path: Path, digits_run) -> None:
    from lightly_airflow.config import parse_selection_config
    from lightly_airflow.pipeline import RunSummary

    summary = RunSummary(run_id="r1", tag="t", version=3, processed=digits_run.rows.num_rows,
                         metrics={"stop_reason": "n_samples reached"})
    config = parse_selection_config(digits_run.config)
    _, page = _write(tmp_path, digits_run, summary=summary, config=config)
    assert "version: 3" in page and "n_samples reached" in page and (tmp_path / "report/balance-01.png").exists()
    ok = pc.sum(pc.equal(digits_run.rows.column(C.STATUS), "ok")).as_py()
    assert _card(page, "ok") == f"{ok:,}"


def test_the_report_counts_every_unlisted_heic_and_avif_and_says_what_to_do(tmp_path: Path) -> None:
    """An iPhone folder (25 .HEIC photos, 3 .avif) under a few other unlisted files, listed with a list of
    extensions of one's own (Lightly's, without HEIC): the listing's log counted every one, but the report named
    HEIC/AVIF only when one of the first few examples happened to be one (here none: the examples are the notes).
    It states each extension's total and the fix now, from the run summary."""
    from lightly_airflow import pipeline, staging
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.datasource.query import ListingSkips
    from lightly_airflow.report.html import _listing_section

    src, pool = tmp_path / "src", tmp_path / "pool"
    (src / "phone").mkdir(parents=True)
    for i in range(6):
        (src / f"a-note-{i}.txt").write_text("not an image")
    for i in range(25):
        (src / "phone" / f"IMG_{i:04d}.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\0" * 32)
    for i in range(3):
        (src / "phone" / f"still-{i}.avif").write_bytes(b"\x00\x00\x00\x1cftypavif" + b"\0" * 32)
    Image.new("RGB", (8, 8)).save(src / "ref.png")
    lightly_extensions = ["png", "jpg", "jpeg", "bmp", "gif", "tiff", "tif", "webp"]
    query = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool), extensions=lightly_extensions)
    listed = pipeline.list_new(query, run_id="r1")
    assert listed.unsupported == 34
    skips = ListingSkips.from_dict(staging.read_listing_skips(str(pool), "r1", None))
    assert skips.unlisted_images == {"heic": 25, "avif": 3}
    text = html.unescape(re.sub(r"<[^>]+>", " ", "".join(_listing_section(ListingSkips.from_summary(skips.summary())))))
    assert "25 .heic files are not listed: .heic files are HEIC/HEIF images" in text
    assert "which this plugin decodes" in text and "extensions=[..., 'heic']" in text
    assert "3 .avif files are not listed: .avif files are AVIF images" in text
    assert "extensions=[..., 'avif']" in text
