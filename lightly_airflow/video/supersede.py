"""A replaced video supersedes its former frames: the rule for frames that no longer exist.

A video is known by its frames' rows (video key + etag). When a run processes a new version of a video (same
key, new content identity), every frame of the former version is superseded: frames whose name the new version
has again get the run's new row (the latest row per key, as for a replaced image); frames the new version no
longer has (it is shorter, or its frame count changed the zero-padding of the names) would otherwise stay as
current samples of content that is gone. For those the run commits a **tombstone row**: status ``missing``,
reason ``superseded: …``, not selected, no embedding, the former etag. They leave the pool's current samples
(``known_files``, the latest version's grid) and the history keeps what they were.

``.lightly/frames/<frame name>`` holds one PNG per frame name: the current version's pick. A former pick's PNG is
rewritten from the new content only where the new version's row of that name is selected (``video.export``);
where it is not selected, or the new version no longer has the frame, the PNG is removed, so no PNG shows a
version that is gone and none shows content nobody picked. The former picks leave ``initial-tag`` (the pool keeps
the latest row per key); an export of their run's tag says their pictures were replaced or removed
(``datapool.export.replaced_frames``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C

SUPERSEDED = C.SUPERSEDED


@dataclass
class Superseded:
    """What a run's replaced videos supersede: tombstone rows and the frame PNGs to refresh or remove."""

    rows: pa.Table | None = None
    #: frame keys the run selects (new versions) whose former version had a PNG written (selected before)
    refresh: set[str] = field(default_factory=set)
    #: frame keys whose former version had a PNG and that the new version does not select or no longer has
    remove: set[str] = field(default_factory=set)


def superseded_frames(snap: Any, rows: pa.Table) -> Superseded:
    """The frames of the pool version ``snap`` that the run's ``rows`` supersede (see the module doc)."""
    from lightly_airflow.datapool.rows import COMMIT_VERSION
    from lightly_airflow.datapool.snapshot import latest_per_key

    out = Superseded()
    if snap is None or snap.table is None or C.VIDEO not in rows.column_names:
        return out
    if C.VIDEO not in snap.column_names():
        return out
    frames = rows.filter(pc.is_valid(rows.column(C.VIDEO)))
    if not frames.num_rows:
        return out
    new_etag = {v: str(e) for v, e in zip(frames.column(C.VIDEO).to_pylist(), frames.column(C.ETAG).to_pylist())}
    run_keys = set(rows.column(C.KEY).to_pylist())
    wanted = [c for c in (C.KEY, C.ETAG, C.VIDEO, C.FRAME_INDEX, C.FRAME_PTS, C.FRAME_SECONDS, C.STATUS,
                          C.STATUS_REASON, C.SELECTED) if c in snap.column_names()]
    pool = latest_per_key(snap.select(wanted, "", extra=(C.KEY, COMMIT_VERSION), values_in=(C.VIDEO, new_etag)))
    if not pool.num_rows:
        return out
    old = [r for r in pool.to_pylist() if r[C.VIDEO] in new_etag and str(r[C.ETAG]) != new_etag[r[C.VIDEO]]]
    # A video's own row (no frame index: the former version could not be opened, or ended early) has no PNG;
    # it is superseded like a frame when the new version has no such row (its problem is gone).
    had_png = {r[C.KEY] for r in _ever_selected(snap, {r[C.KEY] for r in old if r.get(C.FRAME_INDEX) is not None})}
    # A frame name's PNG shows the current version's pick: rewritten where the new version selects that frame,
    # removed where it does not (or no longer has the frame), never rewritten from content nobody picked.
    picked_now = set(rows.filter(pc.fill_null(rows.column(C.SELECTED), False)).column(C.KEY).to_pylist()) \
        if C.SELECTED in rows.column_names else set()
    out.refresh = {k for k in had_png if k in run_keys and k in picked_now}
    gone = [r for r in old if r[C.KEY] not in run_keys and not str(r.get(C.STATUS_REASON) or "").startswith(SUPERSEDED)]
    out.remove = {r[C.KEY] for r in old if r[C.KEY] in had_png and r[C.KEY] not in picked_now}
    if not gone:
        return out
    n_new = {v: 0 for v in new_etag}
    for v in frames.column(C.VIDEO).to_pylist():
        n_new[v] += 1
    out.rows = pa.table({
        C.KEY: pa.array([r[C.KEY] for r in gone], pa.string()),
        C.ETAG: pa.array([str(r[C.ETAG]) for r in gone], rows.schema.field(C.ETAG).type),
        C.VIDEO: pa.array([r[C.VIDEO] for r in gone], pa.string()),
        C.FRAME_INDEX: pa.array([r.get(C.FRAME_INDEX) for r in gone], pa.int64()),
        C.FRAME_PTS: pa.array([r.get(C.FRAME_PTS) for r in gone], pa.int64()),
        C.FRAME_SECONDS: pa.array([r.get(C.FRAME_SECONDS) for r in gone], pa.float64()),
        C.STATUS: pa.array([C.STATUS_MISSING] * len(gone), pa.string()),
        C.STATUS_REASON: pa.array([
            f"{SUPERSEDED}: {r[C.VIDEO]} was replaced by a version with {n_new[r[C.VIDEO]]} frame rows; "
            + ("this frame of the former version no longer exists" if r.get(C.FRAME_INDEX) is not None else
               f"the former version's problem no longer applies (was: {str(r.get(C.STATUS_REASON) or r.get(C.STATUS))[:200]})")
            for r in gone], pa.string()),
        C.SELECTED: pa.array([False] * len(gone), pa.bool_()),
        C.PICK_RANK: pa.array([None] * len(gone), pa.int64()),
    })
    return out


def _ever_selected(snap: Any, keys: set[str]) -> list[dict[str, Any]]:
    """Rows of ``keys`` that were ever selected (their PNG was written)."""
    from lightly_airflow.datapool.reading import quote_ident

    if not keys or C.SELECTED not in snap.column_names():
        return []
    return list(snap.select([C.KEY], f"WHERE {quote_ident(C.SELECTED)}", values_in=(C.KEY, keys)).to_pylist())


def is_tombstone(rows: pa.Table) -> pa.Array:
    """Which rows are tombstones of superseded frames (status ``missing``, reason ``superseded: …``)."""
    if C.STATUS_REASON not in rows.column_names or C.STATUS not in rows.column_names:
        return pa.array([False] * rows.num_rows, pa.bool_())
    return pc.fill_null(pc.and_(pc.equal(rows.column(C.STATUS), C.STATUS_MISSING),
                                pc.starts_with(rows.column(C.STATUS_REASON), SUPERSEDED)), False)


def with_tombstones(rows: pa.Table, superseded: Superseded) -> pa.Table:
    """The run's rows plus the tombstone rows (columns the tombstones lack read as null)."""
    if superseded.rows is None or not superseded.rows.num_rows:
        return rows
    extra = superseded.rows.select([c for c in superseded.rows.column_names if c in rows.column_names])
    casts = [rows.schema.field(c).type for c in extra.column_names]
    extra = pa.table([extra.column(c).cast(t) for c, t in zip(extra.column_names, casts)], names=extra.column_names)
    return pa.concat_tables([rows, extra], promote_options="permissive")


def superseded_by_committed_run(pool: Any, version: int, rows: pa.Table) -> Superseded:
    """What a committed run's rows (tombstones included) superseded, against the pool before its commit: for
    a retry that writes the run's PNGs after a kill right after the commit."""
    if version <= 1 or C.VIDEO not in rows.column_names:
        return Superseded()
    return superseded_frames(pool.snapshot(version - 1), rows.filter(pc.invert(is_tombstone(rows))))
