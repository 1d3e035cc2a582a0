"""``write_report``: a run's selection as static files (``index.html`` + PNG plots) in any store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.report import data as D
from lightly_airflow.report.html import Figure, render
from lightly_airflow.storage import StorageCredentials, filesystem, join_uri

log = logging.getLogger(__name__)

INDEX = "index.html"
MAP_PNG = "embedding-map.png"
METRICS_PNG = "metrics.png"
#: Rows listed in the not-ok and selected tables.
TABLE_LIMIT = 200


def write_report(
    rows: pa.Table,
    *,
    out_uri: str,
    summary: Mapping[str, Any] | Any,
    config: Mapping[str, Any] | Any,
    preselected: pa.Table | None = None,
    credentials: StorageCredentials | None = None,
    max_points: int = 20000,
    objects_figure: Callable[[], bytes | None] | None = None,
    links: Mapping[str, str] | None = None,
) -> str:
    """Write the run's selection report into the folder ``out_uri`` and return the URI of its ``index.html``.

    Works with any subset of the columns of :mod:`lightly_airflow.columns`. A plot that cannot be drawn is
    logged and named on the page; only a failure to write the files themselves raises.

    :param rows: the run's rows (``key``, ``status``, ``status_reason``, ``embedding``, ``metadata.*``,
        ``predictions.*``, ``selected``, ``pick_rank``; each optional).
    :param out_uri: folder for the report (``file://``, plain path, ``s3://``, ``gs://``, ``az://``); created.
    :param summary: the run summary (``RunSummary`` or its ``to_dict()``): counts, ``metrics``, stop reason.
    :param config: the selection config (``SelectionConfig`` or dict); its BALANCE strategies get bar charts.
    :param preselected: samples earlier runs selected (at least ``key`` and ``embedding``), or None.
    :param credentials: credentials of ``out_uri``'s store (None: ambient).
    :param max_points: at most this many points on the embedding map (deterministic subsample).
    :param objects_figure: draws the selected images with their objects' boxes and crops (object-level runs,
        :func:`lightly_airflow.objects.report.objects_png`); ``None``: no such section.
    :param links: ``label -> URL`` shown at the top (the datapool page, the run's tag, the Airflow run);
        URLs relative to the report folder work where the UI plugin serves it.
    """
    if not isinstance(rows, pa.Table):
        raise TypeError(f"write_report: rows must be a pyarrow.Table, got {type(rows).__name__}")
    if preselected is not None and not isinstance(preselected, pa.Table):
        raise TypeError(f"write_report: preselected must be a pyarrow.Table or None, got {type(preselected).__name__}")
    if int(max_points) <= 0:
        raise ValueError(f"write_report: max_points must be positive, got {max_points}; use e.g. 20000.")
    t0 = time.monotonic()
    summary_d, config_d = D.as_dict(summary), D.as_dict(config)
    fs, root = filesystem(out_uri, credentials)
    fs.makedirs(root, exist_ok=True)

    def put(name: str, payload: bytes) -> None:
        with fs.open(f"{root.rstrip('/')}/{name}", "wb") as f:
            f.write(payload)

    def plot(title: str, filename: str, draw: Callable[[], bytes | None], note: str | None = None,
             alt: str | None = None) -> Figure | None:
        try:
            png = draw()
        except Exception as exc:  # noqa: BLE001 - a plot never sinks the run
            log.exception("Report plot %r failed; the page says so and the report goes on.", title)
            return Figure(title, None, error=f"{type(exc).__name__}: {exc}")
        if png is None:
            return None
        put(filename, png)
        return Figure(title, filename, note=note, alt=alt)

    counts = D.counts(rows, summary_d, preselected)
    sel = D.selected_mask(rows)

    # Embedding map.
    map_figs: list[Figure] = []
    emap_holder: dict[str, Any] = {}

    def draw_map() -> bytes | None:
        from lightly_airflow.report.plots import embedding_map_png

        emap = D.embedding_map(rows, preselected, max_points=int(max_points))
        emap_holder["m"] = emap
        return None if emap is None else embedding_map_png(emap)

    fig = plot("", MAP_PNG, draw_map, alt="2-D PCA map of the embeddings by selection group")
    if fig is not None:
        m = emap_holder.get("m")
        if m is not None and sum(m.shown.values()) < sum(m.total.values()):
            fig.note = (f"Showing a deterministic sample of {sum(m.shown.values()):,} of {sum(m.total.values()):,} "
                        "points; every newly selected sample is kept first.")
        map_figs.append(fig)

    # Metric histograms.
    metric_cols = D.lightly_metric_columns(rows)
    hist_figs: list[Figure] = []
    if metric_cols:
        def draw_hists() -> bytes:
            from lightly_airflow.report.plots import histograms_png

            panels = []
            for col in metric_cols:
                all_v, sel_v = D.metric_values(rows, col, sel)
                panels.append((col[len("metadata.lightly."):], all_v, sel_v))
            return histograms_png(panels)

        fig = plot("", METRICS_PNG, draw_hists,
                   alt="histograms of the lightly metrics, all vs selected",
                   note="Each histogram is normalised to its own area, so the shapes compare even when few are selected.")
        if fig is not None:
            hist_figs.append(fig)

    # Balance bar charts.
    bal_figs: list[Figure] = []
    try:
        engine = D.engine_balances(summary_d, int(sel.sum()))
        bals = engine if engine is not None else D.balances(rows, config_d, preselected)
    except Exception as exc:  # noqa: BLE001
        log.exception("Report: could not compute the BALANCE distributions.")
        bals = []
        bal_figs.append(Figure("BALANCE strategies", None, error=f"{type(exc).__name__}: {exc}"))
    for i, b in enumerate(bals):
        def draw_bal(b: D.Balance = b) -> bytes:
            from lightly_airflow.report.plots import balance_png

            return balance_png(b)

        fig = plot(b.title, f"balance-{i:02d}.png", draw_bal)
        if fig is not None:
            bal_figs.append(fig)

    # Videos: a timeline per video of the frames selected now and before (video.report).
    video_figs: list[Figure] = []
    if C.VIDEO in rows.column_names:
        from lightly_airflow.video.report import timeline_note, video_timeline_png

        fig = plot("", "videos.png", lambda: video_timeline_png(rows, preselected), note=timeline_note(rows),
                   alt="per-video timeline of frames selected in this run and before")
        if fig is not None:
            video_figs.append(fig)
    obj_figs: list[Figure] = []
    if objects_figure is not None:
        from lightly_airflow.objects.report import FIGURE_CROPS, FIGURE_IMAGES

        fig = plot("", "objects.png", objects_figure, alt="selected images with their objects' boxes, and the crops",
                   note=f"{D.objects_counts(summary_d)}The first {FIGURE_IMAGES} selected images with objects (pick order), each with the boxes of "
                   f"its objects, then up to {FIGURE_CROPS} of its crops; every selected object is in the datapool "
                   "(the UI's grid with Show: objects (crops)).")
        if fig is not None:
            obj_figs.append(fig)

    from lightly_airflow.report.goals import listed_goals

    missed = listed_goals(rows, config_d, summary_d, list(bals))  # (also the lightly.run.goals_missed gauge's count)
    problems = summary_d.get("problems_uri")
    all_links = dict(links or {})
    if problems:
        all_links.setdefault("problems file", "problems.parquet")
    from lightly_airflow.report.problems import read_problems

    problem_kinds = read_problems(summary_d, credentials)

    title = "Selection report"
    if summary_d.get("run_id"):
        title += f" — {summary_d['run_id']}"
    page = render(
        title=title,
        counts=counts,
        sections=[
            ("Embedding map", map_figs, "No embeddings in this run's rows."),
            ("Image metrics: all vs selected", hist_figs, "No metadata.lightly.* columns in this run's rows."),
            ("Class balance: target vs achieved", bal_figs, "No BALANCE strategy on a column of this run."),
            *([("Videos: frames selected now and before", video_figs, None)] if video_figs else []),
            *([("Objects of the selected images", obj_figs, f"{D.objects_counts(summary_d)}No selected image has objects.")]
              if objects_figure is not None else []),
        ],
        metrics=D.flat_metrics(summary_d),
        not_ok=D.not_ok_rows(rows, TABLE_LIMIT),
        selected=D.selected_rows(rows, TABLE_LIMIT),
        limit=TABLE_LIMIT,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        missed=missed,
        links=all_links,
        listing=summary_d.get("listing"),
        notes=[*(str(n) for n in summary_d.get("notes") or []), *D.stage_notes(summary_d)],
        problems=problem_kinds,
        # (what the commit did: a run that committed nothing took no sample over; an older summary did not count)
        moved=int(summary_d["moved"]) if summary_d.get("committed") and summary_d.get("moved") is not None else None,
        moves=dict(summary_d.get("moves") or {}) if summary_d.get("committed") else None,
    )
    put(INDEX, page.encode("utf-8"))
    index_uri = join_uri(out_uri, INDEX)
    log.info("Wrote the selection report (%d rows, %d selected) to %s in %.2f s.",
             rows.num_rows, counts.selected, index_uri, time.monotonic() - t0)
    return index_uri
