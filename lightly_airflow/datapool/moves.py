"""Files moved or renamed in the datasource: the new key takes over the gone key's sample in the run's commit.

A re-organised bucket (``a/x.png`` moved to ``b/x.png``, same bytes) lists ``b/x.png`` as new while ``a/x.png`` is
gone (:mod:`lightly_airflow.datasource.gone` pairs them by etag). Without more, ``b/x.png`` is an exact duplicate
of the pooled ``a/x.png``, which keeps its selection: ``initial-tag`` names a path that no longer exists and the
live file can never be selected. A commit given the pairs (``Datapool.commit(moves=...)``) instead writes, in the
same version:

- a **tombstone** row of the gone key (status ``missing``, reason ``superseded: moved to 'b/x.png'``, its former
  etag, not selected): it ends the gone key's selection as a replaced video's frame is ended
  (:func:`~lightly_airflow.datapool.snapshot.initial_tag_sql`), and the gone key's rows of that content leave the
  run and hand-made tags they carried (:func:`moved_away_sql`);
- the new key's row **takes over** the gone key's sample: status ok, selected when the gone key was in
  ``initial-tag`` (with its ``pick_rank``: a run tag keeps its order), every tag its rows of that content carried,
  and ``moved_from`` naming the gone key (the lineage; the tombstone names the new key).

History is kept: version N still shows the old key with its tags (time travel), N+1 the new one. A file moved again
(``b -> c``) hands the sample on the same way; a key a move ended is no known file of the pool
(:meth:`Snapshot.known_files <lightly_airflow.datapool.snapshot.Snapshot.known_files>`), so a file moved back there
is new and takes its sample back. The commit counts ``moved`` and, of them, ``moved_selected`` (:func:`move_counts`);
the run's summary notes them (:func:`move_notes`).

Only pairs whose gone key's latest row is an ok sample of the same content (``content_hash``, where both have one)
are carried; a copy (the old key still listed with that content) is no move and stays a duplicate: the caller
passes only pairs of keys whose content left them, and a pair whose old key is among the run's own rows with the
same content is refused. A file renamed while a new file was written under its old name (``a.png`` to ``b.png``, a
new ``a.png``) is a move too (:attr:`Move.replaced`; the listing pairs it: ``datasource.gone.replaced_keys``): the
new ``a.png`` is a new file, ``b.png`` is held out of the selection as a duplicate of the old ``a.png``
(:func:`held_for_moves`) and takes its sample over, with no tombstone (the run's row of ``a.png`` is that key's
latest, and ends the former content's selection). Before, the run picked ``b.png``'s content again as a new sample
while the former pick ended with ``a.png``'s replacement. A moved video is carried frame by frame (its frames'
keys follow the video's name: :func:`_frame_pairs` pairs each new frame with the old video's frame of its index;
:attr:`Move.frame`), counted once as a moved file. A video renamed while a new video took its name is not paired
by the listing (``datasource.gone.replaced_keys`` compares listed keys, and a video's samples are its frames):
its frames stay duplicates. Not carried either is an image with object rows of that content (``parent_key``
the gone key): its objects (boxes, crop embeddings, ``object_selected``) and crop files are keyed by the image's
key, and a move that took the image over without them would leave the live key's selection with no objects
while the gone key's objects stayed live. Such a pair is refused whole (logged, and counted in ``refused`` as
:data:`OBJECTS_NOT_CARRIED`): the new file stays a duplicate, the gone key keeps its selection and its objects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.datapool.reading import quote_ident
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.datapool.snapshot import SUPERSEDED_PREFIX, Snapshot, initial_tag_mask, latest_per_key

log = logging.getLogger(__name__)

#: Column of a row that took over a moved file's sample: the gone key it was (null elsewhere).
MOVED_FROM = "moved_from"
#: ``status_reason`` of a moved key's tombstone starts so (a superseded row: it ends the key's selection).
MOVED_PREFIX = f"{SUPERSEDED_PREFIX} moved to "
#: ``refused`` count of moves not made because the gone image has object rows (a move does not carry objects)
OBJECTS_NOT_CARRIED = "moved_objects_not_carried"
#: A commit's counts of its moves (``counts`` in ``history()``, :func:`move_counts`): the moved files that took a gone
#: key's samples over (a video once, whose frames each took one over), the samples of them that were selected
#: (``initial-tag``: the selection moved with the file; commits before 2026-12-07, session 65, lack it), and the
#: pairs refused for the image's objects.
MOVED, MOVED_SELECTED = "moved", "moved_selected"
#: Of ``moved_selected``, the selected samples a move took from a key the run wrote anew (:attr:`Move.replaced`:
#: that key is listed, not gone; the report's gone box subtracts ``moved_selected`` less these); only when some.
MOVED_REPLACED_SELECTED = "moved_replaced_selected"
MOVE_COUNTS = (MOVED, MOVED_SELECTED, MOVED_REPLACED_SELECTED, OBJECTS_NOT_CARRIED)
_EXAMPLES = 5


@dataclass(frozen=True)
class Move:
    """One gone key's sample taken over by a new key of the run."""

    new_key: str
    old_key: str
    #: the gone key's former etag (its tombstone keeps it)
    old_etag: str
    #: whether the gone key was in ``initial-tag``: the new row is selected then
    selected: bool
    #: the pick rank of the gone key's selected row (``None`` when not selected)
    pick_rank: int | None
    #: every tag the gone key's rows of that content carried
    tags: tuple[str, ...]
    #: the gone key's embedding, for a new row the run left without one
    embedding: list[float] | None
    #: the old key is among the run's rows with other content (a file renamed while a new file was written under
    #: its old name): no tombstone, the run's own row of the old key ends its former content's selection
    replaced: bool = False
    #: a video frame's move: ``(new video, old video, frame index)`` (the moved file is the video; each of its
    #: frames takes over the old video's frame of its index; the tombstone names the old video and index)
    frame: tuple[str, str, int] | None = None

    @property
    def file(self) -> str:
        """The moved file's new key (a frame's video)."""
        return self.new_key if self.frame is None else self.frame[0]


def moved_away_sql(alias: str = "pool") -> str:
    """The SQL condition of a row of ``alias`` that a move ended: a newer row of another key took its content over
    (``moved_from`` its key, its etag: the content that moved). Every move writes that row (a move of a gone key
    also a tombstone of the old key in the same version; a move onto a key the run wrote anew none), so this is
    the tombstone's condition too. A run's or hand-made tag leaves out such rows: the key that took them over
    carries the tag instead."""
    k, cv, etag = quote_ident(C.KEY), quote_ident(COMMIT_VERSION), quote_ident(C.ETAG)
    return (f"EXISTS (SELECT 1 FROM pool moved WHERE moved.{quote_ident(MOVED_FROM)} = {alias}.{k} "
            f"AND moved.{cv} > {alias}.{cv} AND moved.{etag} = {alias}.{etag})")


def move_counts(plan: Sequence[Move], refused: Mapping[str, int]) -> dict[str, int]:
    """The commit's counts of ``plan`` and the pairs ``refused`` (:data:`MOVE_COUNTS`; none of a commit without
    either): ``moved_selected`` is exact (each move knows whether the gone key was in ``initial-tag``), where the
    listing's ``gone_moved_selected`` counted the selected samples of every moved pair, taken over or not;
    ``moved_replaced_selected`` those of them taken from a key the run wrote anew (not gone)."""
    counts = {MOVED: len({m.file for m in plan}), MOVED_SELECTED: sum(m.selected for m in plan)} if plan else {}
    if replaced := sum(m.selected and m.replaced for m in plan):
        counts[MOVED_REPLACED_SELECTED] = replaced
    return {**counts, **{k: int(v) for k, v in refused.items() if v}}


def recorded_move_counts(counts: Mapping[str, Any]) -> dict[str, int]:
    """The :data:`MOVE_COUNTS` a commit's ``counts`` hold (an older commit's ``moved`` without ``moved_selected``:
    the reader cannot tell how many selected samples moved, and says so)."""
    return {k: int(counts[k]) for k in MOVE_COUNTS if counts.get(k) is not None}


def move_notes(counts: Mapping[str, int]) -> list[str]:
    """The run summary's notes of a commit's moves (:func:`move_counts`, or :func:`recorded_move_counts` of an
    earlier attempt's commit): what it took over and what it refused, never only in the log."""
    notes = []
    moved, selected = counts.get(MOVED, 0), counts.get(MOVED_SELECTED)
    if moved:
        of = "" if selected is None else f", {selected:,} of their samples selected (the new keys hold the selection now)"
        notes.append(f"{moved:,} moved or renamed file(s) took over their former key's sample (its selection and "
                     f"tags{of}); the former keys' rows are ended (datapool.moves)")
    if counts.get(OBJECTS_NOT_CARRIED):
        notes.append(objects_refused_note(counts[OBJECTS_NOT_CARRIED]))
    return notes


def objects_refused_note(n: int) -> str:
    """The note of ``n`` moved images refused because they have object rows (:data:`OBJECTS_NOT_CARRIED`)."""
    return (f"{n:,} moved image(s) have object rows, which a move does not carry: not taken over, their former keys "
            "keep their selection and objects and the new files stay duplicates (datapool.moves)")


def has_moves(columns: Iterable[str]) -> bool:
    """Whether a pool with these columns may hold moves (a commit with moves adds :data:`MOVED_FROM`)."""
    return MOVED_FROM in set(columns)


def plan_moves(snap: Snapshot, rows: pa.Table, pairs: Sequence[tuple[str, str]],
               refused: dict[str, int] | None = None, *, warn: bool = True) -> list[Move]:
    """The moves of ``pairs`` (``(new key, gone key)``, :attr:`GoneFiles.moved
    <lightly_airflow.datasource.gone.GoneFiles.moved>`) that the run's ``rows`` (with ``selected``) can carry on
    ``snap``; the others are logged with why and stay as they are (the new file a duplicate). ``refused``, when
    given, gets :data:`OBJECTS_NOT_CARRIED`: the pairs refused because the gone image has objects. An old key
    among the run's rows is carried only when the run's row holds other content (a key written anew,
    :attr:`Move.replaced`); with the same content it is a copy, no move. ``warn``: log the pairs not carried.
    """
    if not pairs or snap.table is None or not rows.num_rows:
        return []
    ids = rows.select([c for c in (C.KEY, C.STATUS, C.SELECTED, C.CONTENT_HASH, C.ETAG) if c in rows.column_names])
    ids = ids.append_column("__embedded", pc.is_valid(rows.column(C.EMBEDDING)))
    run = {r[C.KEY]: r for r in ids.to_pylist()}
    skipped: list[str] = []
    pairs, frames = _frame_pairs(snap, rows, sorted(set(pairs)), run, skipped)
    chosen: dict[str, str] = {}  # old key -> new key (one new key takes a gone key over: the first by name)
    for new, old in pairs:
        row = run.get(new)
        why = ("the new key is not among the run's rows" if row is None
               else f"the new file's status is {row[C.STATUS]!r}" if row[C.STATUS] not in (C.STATUS_OK, C.STATUS_DUPLICATE)
               else "the run selected the new file itself" if row.get(C.SELECTED)
               else "another new file took the old key over" if old in chosen else None)
        if why is None:
            chosen[old] = new
        else:
            skipped.append(f"{new!r} (was {old!r}): {why}")
    moves = _carried(snap, chosen, run, skipped, {} if refused is None else refused)
    moves = [replace(m, frame=frames[m.new_key]) if m.new_key in frames else m for m in moves]
    if skipped and warn:
        log.warning("%d moved file(s) not taken over (they stay as the run found them), e.g. %s.", len(skipped),
                    "; ".join(skipped[:_EXAMPLES]))
    return moves


def _frame_pairs(snap: Snapshot, rows: pa.Table, pairs: list[tuple[str, str]], run: Mapping[str, Any],
                 skipped: list[str]) -> tuple[list[tuple[str, str]], dict[str, tuple[str, str, int]]]:
    """``pairs`` with each moved video's pair (its new key no row of the run, the video of the run's frame rows)
    replaced by its frames' pairs: the run's frame of each index with the old video's frame of that index (the
    latest row of that frame name, not yet superseded), and ``{new frame key: (new video, old video, index)}``.
    The same bytes decode to the same frames, so each frame takes over its former self (a frame whose content
    differs is refused by its content hash like an image). A moved video whose frames do not all pair up (the
    old video's frames the run has no index of) is refused whole: a part would leave its other frames live under
    a name that is gone."""
    videos = {new: old for new, old in pairs if new not in run}
    if not videos or C.VIDEO not in rows.column_names or C.FRAME_INDEX not in rows.column_names \
            or not {C.VIDEO, C.FRAME_INDEX} <= set(snap.column_names()):
        return pairs, {}
    mine = rows.select([C.KEY, C.VIDEO, C.FRAME_INDEX]).filter(pc.fill_null(pc.is_in(
        rows.column(C.VIDEO).cast(pa.string()), value_set=pa.array(list(videos), pa.string())), False))
    if not mine.num_rows:
        return pairs, {}
    wanted = [c for c in (C.KEY, C.VIDEO, C.FRAME_INDEX, C.STATUS_REASON) if c in snap.column_names()]
    pool = latest_per_key(snap.select(wanted, "", extra=(C.KEY, COMMIT_VERSION),
                                      values_in=(C.VIDEO, sorted(set(videos.values())))))
    if C.STATUS_REASON in pool.column_names:  # (frames a replaced video no longer has, keys a move ended)
        pool = pool.filter(pc.invert(pc.fill_null(pc.starts_with(pool.column(C.STATUS_REASON), SUPERSEDED_PREFIX),
                                                  False)))
    old_frames: dict[str, dict[int, str]] = {}
    for key, video, index in zip(*(pool.column(c).to_pylist() for c in (C.KEY, C.VIDEO, C.FRAME_INDEX)), strict=True):
        if index is not None:
            old_frames.setdefault(video, {})[int(index)] = key
    new_frames: dict[str, dict[int, str]] = {}
    for key, video, index in zip(*(mine.column(c).to_pylist() for c in (C.KEY, C.VIDEO, C.FRAME_INDEX)), strict=True):
        if index is not None:
            new_frames.setdefault(video, {})[int(index)] = key
    out = [(new, old) for new, old in pairs if new not in videos]
    frames: dict[str, tuple[str, str, int]] = {}
    for new, old in sorted(videos.items()):
        were, now = old_frames.get(old, {}), new_frames.get(new, {})
        lost = sorted(set(were) - set(now))
        if not were or not now:
            out.append((new, old))  # (no video of the run's frames, or none of the pool's: plan_moves says why)
        elif lost:
            skipped.append(f"{new!r} (was {old!r}): the run has no frame {lost[0]} of the video ({len(lost)} of the "
                           f"old video's {len(were)} frames unmatched), so its frames are not taken over")
        else:
            for index, key in sorted(now.items()):
                if index in were:
                    out.append((key, were[index]))
                    frames[key] = (new, old, index)
    return sorted(out), frames


def held_for_moves(snap: Snapshot, rows: pa.Table, pairs: Sequence[tuple[str, str]]) -> pa.Table:
    """The run's ``rows`` (duplicates marked, before the selection) with the new row of each move onto a key the
    run writes anew (:attr:`Move.replaced`: ``a.png`` renamed to ``b.png`` while a new ``a.png`` was written) marked
    a duplicate of the old key, as a move of a gone key's content is (the pool's row of that content makes it one):
    the selection leaves it alone, and the commit lets it take the old key's sample over (:func:`with_moves`).
    Without, the pool's row of ``a.png`` no longer counted (the run's new ``a.png`` supersedes it), ``b.png`` was a
    new sample and the run could pick that content again while ``a.png``'s pick ended with its replacement."""
    if not pairs or C.STATUS not in rows.column_names:
        return rows
    replaced = {m.new_key: m.old_key for m in plan_moves(snap, rows, pairs, warn=False) if m.replaced}
    if not replaced:
        return rows
    keys = rows.column(C.KEY).cast(pa.string()).to_pylist()
    old = [replaced.get(k) for k in keys]
    held = pa.array([o is not None for o in old])
    rows = rows.set_column(rows.schema.get_field_index(C.STATUS), C.STATUS,
                           pc.if_else(held, C.STATUS_DUPLICATE, rows.column(C.STATUS)))
    for name, values in ((C.DUPLICATE_OF, old),
                         (C.STATUS_REASON, [None if o is None else f"moved from {o!r} (that key now holds a new file): "
                                            "takes its sample over" for o in old])):
        if name in rows.column_names:
            column = pc.if_else(held, pa.array(values, rows.schema.field(name).type), rows.column(name))
            rows = rows.set_column(rows.schema.get_field_index(name), name, column)
    log.info("%d moved file(s) take over the sample of a key the run writes anew (not selected again), e.g. %s.",
             len(replaced), "; ".join(f"{n!r} (was {o!r})" for n, o in sorted(replaced.items())[:_EXAMPLES]))
    return rows


def _carried(snap: Snapshot, chosen: dict[str, str], run: dict[str, dict[str, Any]], skipped: list[str],
             refused: dict[str, int]) -> list[Move]:
    """The moves of ``chosen`` (old key -> new key) whose old key's latest row on ``snap`` is an ok sample of the
    new file's content without object rows."""
    if not chosen:
        return []
    present = snap.column_names()
    objects = _objects_of(snap, list(chosen)) if C.PARENT_KEY in present else {}
    wanted = [c for c in (C.KEY, C.ETAG, C.SELECTED, C.TAGS, COMMIT_VERSION, C.STATUS, C.STATUS_REASON,
                          C.CONTENT_HASH, C.PICK_RANK) if c in present]
    old_rows = snap.select(wanted, "", values_in=(C.KEY, list(chosen)))
    old_rows = old_rows.append_column("__initial", initial_tag_mask(old_rows.set_column(
        old_rows.schema.get_field_index(C.ETAG), C.ETAG, old_rows.column(C.ETAG).cast(pa.string()))))
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(old_rows.to_pylist(), key=lambda r: r[COMMIT_VERSION]):
        by_key.setdefault(r[C.KEY], []).append(r)
    moves = []
    for old, new in sorted(chosen.items(), key=lambda kv: kv[1]):
        history = by_key.get(old, [])
        latest = history[-1] if history else None
        replaced = old in run
        why = _not_carried(latest, run[new])
        if why is None and replaced and latest is not None and _same_content(run[old], latest):
            why = "the old key is among the run's rows with the same content (a copy, not a move)"
        n_objects = 0 if why is not None or latest is None else objects.get((old, str(latest[C.ETAG])), 0)
        if n_objects:
            refused[OBJECTS_NOT_CARRIED] = refused.get(OBJECTS_NOT_CARRIED, 0) + 1
            why = (f"the image has {n_objects} object row(s), which a move does not carry: the old key keeps its "
                   "selection and objects")
        if why is not None:
            skipped.append(f"{new!r} (was {old!r}): {why}")
            continue
        assert latest is not None
        same = [r for r in history if r[C.ETAG] == latest[C.ETAG]]
        standing = next((r for r in same if r["__initial"]), None)
        tags = list(dict.fromkeys(t for r in same for t in (r.get(C.TAGS) or [])))
        moves.append(Move(new, old, str(latest[C.ETAG]), standing is not None,
                          None if standing is None else int(standing.get(C.PICK_RANK) or 0), tuple(tags), None,
                          replaced))
    unembedded = [m.old_key for m in moves if not run[m.new_key]["__embedded"]]
    if not unembedded:
        return moves
    # (the run left the new file without an embedding, a duplicate's: the old key's, of the same content)
    found = snap.select([C.KEY, C.EMBEDDING, C.ETAG, COMMIT_VERSION], "", values_in=(C.KEY, unembedded))
    found = latest_per_key(found.filter(pc.is_valid(found.column(C.EMBEDDING))))
    embeddings = {(r[C.KEY], str(r[C.ETAG])): r[C.EMBEDDING] for r in found.to_pylist()}
    return [replace(m, embedding=embeddings.get((m.old_key, m.old_etag))) for m in moves]


def _objects_of(snap: Snapshot, keys: list[str]) -> dict[tuple[str, str], int]:
    """How many objects (distinct object keys) each ``(image key, etag)`` of ``keys`` has on ``snap``."""
    found = snap.select([C.KEY, C.PARENT_KEY, C.ETAG], "", values_in=(C.PARENT_KEY, keys))
    if not found.num_rows:
        return {}
    # (in Arrow: 100,000 objects in 200,000 rows took 0.35-0.41 s of CPU as Python tuples, 0.03-0.07 s so)
    found = pa.table({name: found.column(name).cast(pa.string()) for name in (C.PARENT_KEY, C.ETAG, C.KEY)})
    found = found.set_column(1, C.ETAG, pc.fill_null(found.column(C.ETAG), "None"))  # (the caller's str(etag))
    distinct = found.group_by([C.PARENT_KEY, C.ETAG, C.KEY], use_threads=False).aggregate([])
    counts = distinct.group_by([C.PARENT_KEY, C.ETAG], use_threads=False).aggregate([(C.KEY, "count")])
    return dict(zip(zip(counts.column(C.PARENT_KEY).to_pylist(), counts.column(C.ETAG).to_pylist(), strict=True),
                    counts.column(f"{C.KEY}_count").to_pylist(), strict=True))


def _not_carried(latest: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """Why the old key's ``latest`` row cannot be taken over by the run's ``new`` row, or ``None``."""
    if latest is None:
        return "the pool has no row of the old key"
    if str(latest.get(C.STATUS_REASON) or "").startswith(SUPERSEDED_PREFIX):
        return "the old key's sample was already superseded"
    if latest.get(C.STATUS) != C.STATUS_OK:
        return f"the old key's sample is {latest.get(C.STATUS)!r}, not ok"
    old_hash, new_hash = latest.get(C.CONTENT_HASH), new.get(C.CONTENT_HASH)
    if old_hash is not None and new_hash is not None and old_hash != new_hash:
        return "the content differs (another content hash)"
    return None


def _same_content(run_row: dict[str, Any], pool_row: dict[str, Any]) -> bool:
    """Whether the run's row of a key holds the content of the pool's row of it (content hash where both have
    one, else etag)."""
    a, b = run_row.get(C.CONTENT_HASH), pool_row.get(C.CONTENT_HASH)
    if a is not None and b is not None:
        return bool(a == b)
    return str(run_row.get(C.ETAG)) == str(pool_row.get(C.ETAG))


def with_moves(rows: pa.Table, moves: Sequence[Move]) -> pa.Table:
    """The run's ``rows`` with each move applied: the new key's row ok, selected as the old key was (its rank),
    ``moved_from`` set, its embedding the old one where the run has none; one tombstone row per old key. (The
    moved rows are edited apart and come after the others: the run's embeddings are not copied into Python.) A move
    onto a key the run writes anew (:attr:`Move.replaced`) gets no tombstone: the run's row of that key is its
    latest, and ends the former content's selection as any new version of a file does."""
    if not moves:
        return rows
    by_new = {m.new_key: m for m in moves}
    for name in (MOVED_FROM, C.STATUS_REASON):
        if name not in rows.column_names:
            rows = rows.append_column(name, pa.nulls(rows.num_rows, pa.string()))
    mask = pc.is_in(rows.column(C.KEY).cast(pa.string()), value_set=pa.array(list(by_new), pa.string()))
    taken = []
    for row in rows.filter(mask).to_pylist():
        move = by_new[row[C.KEY]]
        row.update({name: _taken_over(name, move) for name in (C.STATUS, C.SELECTED, C.PICK_RANK, MOVED_FROM,
                                                               C.STATUS_REASON, C.DUPLICATE_OF) if name in row})
        if row[C.EMBEDDING] is None:
            row[C.EMBEDDING] = move.embedding
        taken.append(row)
    return pa.concat_tables([rows.filter(pc.invert(mask)), pa.Table.from_pylist(taken, schema=rows.schema),
                             _tombstones(rows.schema, [m for m in moves if not m.replaced])])


def _taken_over(name: str, move: Move) -> Any:
    """The value of column ``name`` in the row of ``move``'s new key (the reason and duplicate_of cleared)."""
    return {C.STATUS: C.STATUS_OK, C.SELECTED: move.selected, C.PICK_RANK: move.pick_rank,
            MOVED_FROM: move.old_key}.get(name)


def _tombstones(schema: pa.Schema, moves: Sequence[Move]) -> pa.Table:
    """One tombstone row per move's old key, typed as ``schema`` (other columns null)."""
    n = len(moves)
    values = {
        C.KEY: [m.old_key for m in moves], C.ETAG: [m.old_etag for m in moves],
        C.STATUS: [C.STATUS_MISSING] * n, C.SELECTED: [False] * n,
        C.STATUS_REASON: [f"{MOVED_PREFIX}{m.new_key!r} (same content; that key took its sample over)" for m in moves],
        # (a frame's tombstone names its video and index, as a replaced video's frame's does: video.supersede)
        C.VIDEO: [None if m.frame is None else m.frame[1] for m in moves],
        C.FRAME_INDEX: [None if m.frame is None else m.frame[2] for m in moves],
    }
    return pa.table({f.name: pa.array(values[f.name], f.type) if f.name in values else pa.nulls(n, f.type)
                     for f in schema}, schema=schema)


def carry_tags(data: pa.Table, moves: Sequence[Move]) -> pa.Table:
    """``data`` (the rows as stored) with each move's new row carrying the old key's tags instead of the run's:
    the run did not pick it, it took over the old key's picks."""
    if not moves:
        return data
    by_new = {m.new_key: list(m.tags) for m in moves}
    tags = [by_new.get(k, t) for k, t in zip(data.column(C.KEY).to_pylist(), data.column(C.TAGS).to_pylist())]
    idx = data.schema.get_field_index(C.TAGS)
    return data.set_column(idx, data.schema.field(idx), pa.array(tags, data.schema.field(idx).type))
