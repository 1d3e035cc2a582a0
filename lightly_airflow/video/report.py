"""The run report's view of videos: one timeline per video of the frames selected in this run and before."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C

#: Videos drawn at most (the ones with the most frames selected in this run first).
MAX_VIDEOS = 30


def _frames(table: pa.Table | None, selected_only: bool) -> dict[str, list[float]]:
    if table is None or C.VIDEO not in table.column_names or not table.num_rows:
        return {}
    from lightly_airflow.video.supersede import is_tombstone

    t = table.filter(pc.and_(pc.is_valid(table.column(C.VIDEO)), pc.invert(is_tombstone(table))))
    if C.FRAME_INDEX in t.column_names:
        t = t.filter(pc.is_valid(t.column(C.FRAME_INDEX)))
    if selected_only and C.SELECTED in t.column_names:
        t = t.filter(pc.fill_null(t.column(C.SELECTED), False))
    times = t.column(C.FRAME_SECONDS).to_pylist() if C.FRAME_SECONDS in t.column_names else [None] * t.num_rows
    index = t.column(C.FRAME_INDEX).to_pylist() if C.FRAME_INDEX in t.column_names else [0] * t.num_rows
    out: dict[str, list[float]] = {}
    for video, s, i in zip(t.column(C.VIDEO).to_pylist(), times, index):
        out.setdefault(video, []).append(float(s) if s is not None else float(i))
    return out


def _same_versions(preselected: pa.Table | None, rows: pa.Table) -> pa.Table | None:
    """The preselected frames of the video versions this run holds: a video replaced under its name (another
    etag) has other frames at those times, so the former version's picks are no "selected before" on its line
    (they were drawn past the end of a shorter new version, or over other pictures)."""
    if preselected is None or not preselected.num_rows or C.ETAG not in preselected.column_names \
            or C.ETAG not in rows.column_names or C.VIDEO not in preselected.column_names or C.VIDEO not in rows.column_names:
        return preselected

    def version(table: pa.Table) -> pa.Array:
        joined = pc.binary_join_element_wise(pc.cast(table.column(C.VIDEO), pa.string()),
                                             pc.fill_null(pc.cast(table.column(C.ETAG), pa.string()), ""), "\x00")
        return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined

    from lightly_airflow.video.supersede import is_tombstone  # (a tombstone row keeps the former version's etag)

    current = rows.filter(pc.invert(pc.fill_null(is_tombstone(rows), False)))
    return preselected.filter(pc.is_in(version(preselected), value_set=version(current)))


def timeline_note(rows: pa.Table) -> str | None:
    """What the timeline leaves out when the run has more than :data:`MAX_VIDEOS` videos; ``None`` otherwise."""
    every = _frames(rows, selected_only=False)
    if len(every) <= MAX_VIDEOS:
        return None
    return (f"{MAX_VIDEOS} of the run's {len(every)} videos are drawn: those with the most frames selected in this "
            f"run; the other {len(every) - MAX_VIDEOS} are in the tables below and in the datapool.")


def video_timeline_png(rows: pa.Table, preselected: pa.Table | None = None) -> bytes | None:
    """A PNG with one row per video of this run: its frames (grey), frames selected now (orange) and frames of
    the same video selected by earlier runs (blue), over time in seconds, in the embedding map's colours
    (``report.plots.GROUP_COLOURS``, colour-blind safe; "now" was red there and orange on the map); ``None`` without
    video frames. Drawn on matplotlib's Agg canvas as the report's other plots: no pyplot, no global backend (a
    ``matplotlib.use`` here switched the backend of the whole process, a notebook's included)."""
    every = _frames(rows, selected_only=False)
    if not every:
        return None
    now = _frames(rows, selected_only=True)
    before = _frames(_same_versions(preselected, rows), selected_only=False)
    videos = sorted(every, key=lambda v: (-len(now.get(v, [])), v))[:MAX_VIDEOS]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lightly_airflow.report.plots import GROUP_COLOURS

    grey, blue, orange = GROUP_COLOURS
    fig = Figure(figsize=(10, 0.5 + 0.45 * len(videos)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labelled: set[str] = set()

    def label(name: str) -> str | None:
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for y, video in enumerate(videos):
        ax.scatter(every[video], np.full(len(every[video]), y), marker="|", s=60, color=grey, linewidths=1,
                   label=label("frame of this run"))
        if before.get(video):
            ax.scatter(before[video], np.full(len(before[video]), y - 0.2), marker="v", s=28, color=blue,
                       label=label("selected before"))
        if now.get(video):
            ax.scatter(now[video], np.full(len(now[video]), y), marker="o", s=22, color=orange,
                       label=label("selected now"))
    ax.set_yticks(range(len(videos)), [v if len(v) <= 40 else "…" + v[-39:] for v in videos], fontsize=8)
    ax.set_xlabel("time in the video (s)")
    ax.set_ylim(-0.6, len(videos) - 0.4)
    ax.invert_yaxis()
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)  # (beside the lines, not on them)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def frame_columns(row: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(video, frame index, seconds)`` of a report row (``None``s for an image)."""
    seconds = row.get(C.FRAME_SECONDS)
    return row.get(C.VIDEO), row.get(C.FRAME_INDEX), None if seconds is None else round(float(seconds), 3)
