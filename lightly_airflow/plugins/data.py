"""What the UI pages show, as plain data: a datapool's history and tags, a tag's samples, a run's report files.

No FastAPI here: :mod:`lightly_airflow.plugins.app` turns these into HTML and JSON. Every function takes a
configured :class:`~lightly_airflow.plugins.config.PoolSpec`; nothing here accepts a URI from a request, and
report files are served only when their folder and file names match strict patterns *and* are listed in the
store.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lightly_airflow import columns as C
from lightly_airflow.plugins.config import PoolSpec
from lightly_airflow.staging import REPORTS_DIR as REPORTS_DIR  # the report folder name, used by app.py
from lightly_airflow.staging import reports_root, run_slug

if TYPE_CHECKING:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.snapshot import Snapshot
    from lightly_airflow.storage import StorageCredentials

log = logging.getLogger(__name__)

REPORT_INDEX = "index.html"
#: A run slug as :func:`lightly_airflow.staging.run_slug` makes it: safe characters, ``-``, 8 hex digits.
SLUG_PATTERN = re.compile(r"^[A-Za-z0-9._-]{0,80}-[0-9a-f]{8}$")
#: A report file: no separators, no leading dot, one of the served extensions.
FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(html|png|parquet)$")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "png": "image/png",
    "parquet": "application/vnd.apache.parquet",
}
#: Largest report file served (the PNGs are a few hundred kB).
MAX_FILE_BYTES = 64 * 1024 * 1024
SAMPLE_COLUMNS = (C.KEY, C.RUN_ID, C.STATUS, C.PICK_RANK)


class NotFoundError(LookupError):
    """The datapool, tag, run or file does not exist; the message says which (safe to show)."""


class GoneError(Exception):
    """The pool version a page's links pin (:func:`tag_samples`) can no longer be read (a vacuum deleted files it
    needs); the message names it and says to start again from the first page (safe to show)."""


class VersionRangeError(ValueError):
    """A query parameter naming a pool version past the latest (``name``, the ``value`` given, the ``latest``)."""

    def __init__(self, name: str, value: int, latest: int) -> None:
        super().__init__(f"{name} must be a version from 0 to {latest}, got {value}.")
        self.name, self.value, self.latest = name, value, latest


def credentials(spec: PoolSpec) -> StorageCredentials | None:
    """Credentials of the pool's connection (``None``: ambient credentials of the API server)."""
    from lightly_airflow.hooks.storage import credentials_for

    return credentials_for(spec.conn_id)


def open_pool(spec: PoolSpec, creds: StorageCredentials | None) -> Datapool:
    from lightly_airflow.datapool import Datapool

    return Datapool(spec.uri, creds)


def reports_uri(spec: PoolSpec) -> str:
    return reports_root(spec.uri)


def report_slugs(spec: PoolSpec, creds: StorageCredentials | None) -> set[str]:
    """Names of the run folders under ``<pool>/_reports/`` (empty when there are none)."""
    from lightly_airflow.storage import filesystem

    fs, root = filesystem(reports_uri(spec), creds)
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        return set()
    names = {posixpath.basename(str(e).rstrip("/")) for e in entries}
    return {n for n in names if SLUG_PATTERN.match(n)}


def _proposal_waits(names: Collection[str]) -> bool:
    """A report folder with these file names holds a proposal for review and no record of its end (a discard or a
    dry run writes ``dry-run-summary.json``; a commit is in the pool's history)."""
    from lightly_airflow.pipeline import DRY_RUN_SUMMARY
    from lightly_airflow.review import PROPOSAL_FILE

    return PROPOSAL_FILE in names and DRY_RUN_SUMMARY not in names


def refused(review: dict[str, Any]) -> bool:
    """A proposal's recorded review (:func:`~lightly_airflow.review.recorded_review`) is a reviewer's Commit that
    the run refused: nothing awaits a reviewer any more; the user proposes again (clears the run's select task)."""
    from lightly_airflow.review import NOT_COMMITTED_AFTER_REVIEW

    return review.get("state") == NOT_COMMITTED_AFTER_REVIEW


def proposal_review(spec: PoolSpec, creds: StorageCredentials | None, slug: str) -> dict[str, Any] | None:
    """Where a run's proposal stands: None without a proposal waiting for its end (:func:`_proposal_waits`), else
    its recorded review (:func:`~lightly_airflow.review.recorded_review`: ``awaiting review``, or a Commit refused
    with the reason and the fix); ``{}`` for a record that cannot be read (logged; taken as awaiting review)."""
    from lightly_airflow.review import PROPOSAL_FILE, ReviewError, parse_proposal, recorded_review
    from lightly_airflow.storage import filesystem

    fs, root = filesystem(reports_uri(spec), creds)
    try:
        names = {posixpath.basename(str(e).rstrip("/")) for e in fs.ls(f"{root}/{slug}", detail=False)}
    except FileNotFoundError:
        return None
    if not _proposal_waits(names):
        return None
    try:
        return recorded_review(parse_proposal(fs.cat_file(f"{root}/{slug}/{PROPOSAL_FILE}"), f"{slug}/{PROPOSAL_FILE}"))
    except (OSError, ReviewError, AttributeError, TypeError) as exc:
        log.warning("The proposal record of %s in %s cannot be read: %s", slug, spec.name, exc)
        return {}


def proposals_awaiting_review(spec: PoolSpec, creds: StorageCredentials | None, committed: set[str]
                              ) -> list[dict[str, Any]]:
    """The runs whose proposal waits for a reviewer (``LIGHTLY_REVIEW``): a report folder with the proposal
    record, no record of its end (a discard writes ``dry-run-summary.json``) and no commit (``committed``: the
    slugs of the runs in the pool's history). One recursive listing of ``_reports/`` and one read per waiting
    proposal: ``[{run_id, slug, version (the pool version its selection read), picks, candidates, warnings,
    review}]``, newest report folder first (``review``: where it stands, :func:`~lightly_airflow.review.recorded_review`:
    awaiting review, or a Commit refused because the datapool changed meanwhile, with the reason and the fix). A
    record that cannot be read is shown with ``picks`` None."""
    from lightly_airflow.pipeline import DRY_RUN_SUMMARY
    from lightly_airflow.review import PROPOSAL_FILE, ReviewError, parse_proposal, recorded_review
    from lightly_airflow.storage import filesystem

    fs, root = filesystem(reports_uri(spec), creds)
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return []
    files: dict[str, dict[str, Any]] = {}
    for path, info in found.items():
        rel = posixpath.relpath(str(path), str(root).rstrip("/"))
        slug, _, name = rel.partition("/")
        if SLUG_PATTERN.match(slug) and name in (PROPOSAL_FILE, DRY_RUN_SUMMARY):
            files.setdefault(slug, {})[name] = info
    out = []
    for slug, names in files.items():
        if not _proposal_waits(names) or slug in committed:
            continue
        entry: dict[str, Any] = {"slug": slug, "run_id": None, "version": None, "picks": None, "candidates": None,
                                 "warnings": None, "review": {}, "at": _jsonable(names[PROPOSAL_FILE].get("LastModified")
                                                                   or names[PROPOSAL_FILE].get("mtime"))}
        try:
            record = parse_proposal(fs.cat_file(f"{root}/{slug}/{PROPOSAL_FILE}"), f"{slug}/{PROPOSAL_FILE}")
            summary = record.get("summary") or {}
            entry.update(run_id=record.get("run_id"), version=record.get("version"), picks=len(record["picks"]),
                         candidates=summary.get("candidates"), warnings=len(summary.get("warnings") or []),
                         review={k: v for k, v in recorded_review(record).items() if k in ("state", "text", "by")})
        except (OSError, ReviewError, AttributeError, TypeError) as exc:  # (a summary of another shape)
            log.warning("The proposal record of %s in %s cannot be read: %s", slug, spec.name, exc)
        out.append(entry)
    return sorted(out, key=lambda e: str(e["at"] or ""), reverse=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def overview(spec: PoolSpec, *, offset: int, limit: int, tag_offset: int, tag_limit: int, before: int | None = None,
             tags_before: int | None = None) -> dict[str, Any]:
    """A pool's versions (newest first) and tags (``initial-tag``, then the newest first), a page of each
    (:func:`page_of`), each run with the folder of its report if one was written.

    :param offset: the first version on the page (0: the latest); ``limit``: versions on the page.
    :param tag_offset: the first tag on the page (0: ``initial-tag``); ``tag_limit``: tags on the page.
    :param before: a cursor: the page lists the versions older than this one, ``offset`` counted from there.
    :param tags_before: a cursor: the page lists the tags a version older than this one made (no ``initial-tag``),
        ``tag_offset`` counted from there. A commit makes one tag at most: a tag's version is its key.
    :returns: ``{name, uri, exists, version, history: [...], vacuums: [...], tags: [...], awaiting_review:
        [...], not_committed_after_review: [...], paging: {history: {...}, tags: {...}}}``
        (:func:`proposals_awaiting_review`, split: those that wait for a reviewer, and those whose Commit was
        refused (:func:`refused`): they wait for the user to propose again; also before the pool's first commit); each history entry has the fields of :meth:`Datapool.history` plus ``report`` (the
        run's report folder name or ``None``) and ``vacuumed`` (the day of the vacuum that deleted files the
        version needs, or ``None``); ``vacuums``: those that ran while a version of the page was the latest, as
        :func:`~lightly_airflow.datapool.reclaim.vacuum_history`, with Delta's own VACUUMs run by hand
        (:func:`~lightly_airflow.datapool.reclaim.delta_vacuums`: ``by`` ``"Delta VACUUM"``), oldest first.
    """
    from lightly_airflow.datapool.reclaim import (
        delta_lost_ranges,
        delta_vacuums,
        lost_range,
        lost_ranges,
        newest_record,
        vacuum_history,
    )

    creds = credentials(spec)
    snap = open_pool(spec, creds).snapshot()
    history = snap.history()
    slugs = report_slugs(spec, creds)
    committed = {run_slug(e["run_id"]) for e in history if e.get("run_id")}
    waiting = proposals_awaiting_review(spec, creds, committed) if slugs - committed else []
    record = newest_record(spec.uri, creds) if history else None  # one LIST of _vacuum/, one GET when vacuumed
    by_delta = delta_vacuums(history)  # Delta's own VACUUM run by hand: its versions in the log, no record
    lost = lost_ranges(record) + delta_lost_ranges(by_delta)
    latest = history[-1]["version"] if history else None
    shown, history_page = page_of(history[::-1], offset, limit, ("offset", "limit", "before"), before)
    entries = []
    for entry in shown:
        slug = run_slug(entry["run_id"]) if entry.get("run_id") else None
        hit = lost_range(lost, entry["version"]) if entry["version"] != latest else None
        entries.append({**_jsonable(entry), "report": slug if slug in slugs else None,
                        "vacuumed": None if hit is None else str(hit.get("vacuum") or "")[:10]})
    vacuums = (vacuum_history(spec.uri, creds, record) if record is not None else []) + by_delta
    on_page = {e["version"] for e in shown}
    tags = _all_tags(pool_tags(spec, snap), history)
    newest_first = tags[:1] + sorted(tags[1:], key=lambda t: t["version"], reverse=True)  # (initial-tag on top)
    tags_shown, tags_page = page_of(newest_first, tag_offset, tag_limit, ("tag_offset", "tag_limit", "tags_before"),
                                    tags_before, head=1)
    return {
        "name": spec.name,
        "uri": spec.uri,
        "exists": bool(history),
        "version": latest,
        "history": entries,
        "vacuums": _jsonable(sorted((v for v in vacuums if v.get("version") in on_page),
                                    key=lambda v: str(v.get("started_at")))),
        "tags": _jsonable(tags_shown),
        "awaiting_review": [w for w in waiting if not refused(w["review"])],
        "not_committed_after_review": [w for w in waiting if refused(w["review"])],
        "paging": {"history": history_page, "tags": tags_page},
    }


#: The most data files of a pool's latest version whose distinct samples the home page counts (one query reading
#: the ``sample_id`` column, :func:`distinct_samples`); a pool of more shows its runs' processed counts, summed.
#: Measured on a shared, loaded 2-core machine (2026-12-07): the query 0.09-0.11 s for 200 files of 100,000 rows
#: (100 versions), the home page 0.15-0.35 s cold (0.07-0.15 s from the history alone); 0.53-0.58 s for 2,000 files
#: of 2,000 rows (1,000 uncompacted versions): ~0.27 ms a file.
EXACT_SAMPLES_FILES = 400
#: The most rows (the Delta log's ``numRecords``, summed over the version's data files: no data file read) of a
#: pool's latest version whose distinct samples the home page counts. The files alone did not bound the query: a
#: few large files (a compacted pool, runs of 200,000) took it through every row on the home page's first view of
#: each new version. Measured cold on the shared, loaded 2-core machine (2026-12-08, load 5-7): 200,000 rows in 10
#: files 0.10-0.78 s (0.08-0.28 s CPU), 1,000,000 rows in 5 files 1.0-2.3 s (0.31-0.60 s CPU); the summed figure
#: from the history 0.01-0.03 s.
EXACT_SAMPLES_ROWS = 250_000

#: A pool version's distinct samples (:func:`distinct_samples`), by pool URI, version and commit time.
_samples_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}


def distinct_samples(spec: PoolSpec, snap: Snapshot) -> int | None:
    """How many distinct samples (images and video frames: rows without a ``parent_key``, each ``sample_id`` once
    however many runs processed it) the snapshot's version holds, as its grid counts them; kept per version (what a
    version holds never changes; its commit time in the key: a pool made anew at the same place is counted anew).
    ``None`` where the version has more than :data:`EXACT_SAMPLES_FILES` data files (compaction brings it under),
    more than :data:`EXACT_SAMPLES_ROWS` rows or files whose log records no row count, or no ``sample_id`` column."""
    from lightly_airflow.datapool.reading import query, quote_ident
    from lightly_airflow.plugins.query import _cached

    history, columns = snap.history(), snap.column_names()
    if snap.table is None or not history or C.SAMPLE_ID not in columns:
        return None
    rows = _logged_rows(snap.table)
    if rows is None or rows[0] > EXACT_SAMPLES_FILES or rows[1] is None or rows[1] > EXACT_SAMPLES_ROWS:
        return None
    images = f" WHERE {quote_ident(C.PARENT_KEY)} IS NULL" if C.PARENT_KEY in columns else ""
    text = f"SELECT COUNT(DISTINCT {quote_ident(C.SAMPLE_ID)}) AS n FROM pool{images}"
    table = snap.table
    try:
        count = _cached(_samples_cache, (spec.uri, snap.version, history[-1]["timestamp"]),
                        lambda: int(query(table, text).column("n")[0].as_py()))
    except Exception as exc:  # (a data file deleted outside lightly-airflow: the pool's line stays, its pages say why)
        log.warning("Datapool %s (%s): cannot count the samples of version %s (%s): the home page shows its runs' "
                    "processed counts, summed.", spec.name, spec.uri, snap.version, exc)
        return None
    return int(count)


def _logged_rows(table: Any) -> tuple[int, int | None] | None:
    """A Delta table's data files and their rows as its log records them (``None`` rows: a file without the
    count; ``None``: the log's file list could not be read, logged)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        files = pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=False)).read_all()
    except Exception as exc:  # noqa: BLE001 - only the choice of the figure: the history's sum is shown
        log.warning("Cannot read the data files of %s from its log (%s): the home page shows its runs' processed "
                    "counts, summed.", table.table_uri, exc)
        return None
    counts = files.column("num_records")
    return files.num_rows, (None if counts.null_count else int(pc.sum(counts).as_py() or 0))


def pool_summary(spec: PoolSpec) -> dict[str, Any]:
    """The home page's line of a pool: ``{exists, version, timestamp, samples, exact, selected}``. ``samples``:
    the distinct samples of its latest version (``exact``: :func:`distinct_samples`), else the samples its runs
    processed, summed over their commits from its history alone (``exact`` false: a sample processed again, a
    changed file or a ``process_all`` run, counts once a run: 100,000 for the 98,000 samples of a pool of 100
    versions where every tenth run processed 200 samples again); ``selected``:
    ``initial-tag``'s count as the latest commit recorded it (``None`` where a writer recorded none: the pool page
    counts it by a scan)."""
    from lightly_airflow.datapool.snapshot import INITIAL_TAG_COUNT
    from lightly_airflow.plugins.pages import run_samples

    snap = open_pool(spec, credentials(spec)).snapshot()
    history = snap.history()
    if not history:
        return {"exists": False, "version": None, "timestamp": None, "samples": None, "exact": False,
                "selected": None}
    latest = history[-1]
    selected = latest.get(INITIAL_TAG_COUNT)
    exact = distinct_samples(spec, snap)
    return {
        "exists": True, "version": latest["version"], "timestamp": latest["timestamp"],
        "samples": exact if exact is not None else sum(int(run_samples(e) or 0) for e in history if e.get("run_id")),
        "exact": exact is not None,
        "selected": selected if isinstance(selected, int) and not isinstance(selected, bool) else None,
    }


def page_of(items: list[dict[str, Any]], offset: int, limit: int, names: tuple[str, str, str],
            before: int | None = None, head: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``limit`` of ``items`` from ``offset``, and where they stand: ``{offset, limit, total, next, previous}``.

    The items after the first ``head`` ones (``initial-tag`` on top of the tags) are newest first by ``version``;
    the cursor ``before`` starts the count of ``offset`` at the first of them older than that version (the head is
    not listed then), so that a commit landing while a client walks the pages moves nothing. ``offset`` answered
    is the page's first item's place in the whole list. ``next`` and ``previous``: the query parameters of the
    next (older) and previous page, named ``names`` (offset, limit, cursor), ``None`` on the last / first page:
    the cursor of the version of the item above that page (``next``: the oldest of this page), an offset for a
    page that starts within the head."""
    offset_name, limit_name, cursor_name = names
    start = 0 if before is None else head + sum(1 for item in items[head:] if item["version"] >= before)
    at = start + offset

    def query(first: int) -> dict[str, int]:
        if first > head:
            return {cursor_name: items[first - 1]["version"], limit_name: limit}
        return {offset_name: first, limit_name: limit}

    return items[at:at + limit], paging(at, limit, len(items), query)


def paging(at: int, limit: int, total: int, query: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Where a page of ``limit`` items from place ``at`` of ``total`` stands: ``{offset, limit, total, next,
    previous}``, ``next`` and ``previous`` the query (``query(first place)``) of the next and previous page, ``None``
    on the last / first page."""
    return {
        "offset": at, "limit": limit, "total": total,
        "next": query(at + limit) if at + limit < total else None,
        "previous": query(max(0, min(at, total) - limit)) if at > 0 else None,
    }


#: The tags of a pool version (``Snapshot.tags``) kept a while, by pool URI, version and commit time.
_tags_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}


def pool_tags(spec: PoolSpec, snap: Snapshot) -> list[dict[str, Any]]:
    """The snapshot's tags (``Snapshot.tags``), kept per pool version: what a version holds never changes, and
    where its commit recorded no ``initial-tag`` count (a pool written before counts were recorded, another
    engine's commit) the count reads every data file (0.44 s at 400 versions before a compaction). The key holds
    the version's commit time too, so a pool made anew at the same place (or a last version deleted and committed
    anew: ``datapool check``) is counted anew."""
    from lightly_airflow.plugins.query import _cached

    history = snap.history()
    if not history:
        return snap.tags()
    key = (spec.uri, snap.version, history[-1]["timestamp"])
    return [dict(t) for t in _cached(_tags_cache, key, snap.tags)]


def _all_tags(tags: list[dict[str, Any]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pool's run tags plus the hand-made ones (UI filters and map selections)."""
    from lightly_airflow.datapool.tagging import hand_made_tags

    names = {t["name"] for t in tags}
    return tags + [t for t in hand_made_tags(history) if t["name"] not in names]


def report_files(spec: PoolSpec, slug: str, creds: StorageCredentials | None) -> set[str]:
    """Names of the files in one run's report folder (empty when it has none)."""
    from lightly_airflow.storage import filesystem

    if not SLUG_PATTERN.match(slug):
        return set()
    fs, root = filesystem(f"{reports_uri(spec)}/{slug}", creds)
    try:
        return {posixpath.basename(str(e).rstrip("/")) for e in fs.ls(root, detail=False)}
    except FileNotFoundError:
        return set()


def tag_samples(spec: PoolSpec, tag: str, *, offset: int = 0, limit: int = 100, version: int | None = None
                ) -> dict[str, Any]:
    """The samples carrying ``tag`` in one version of the pool (the latest unless ``version``), in commit then key
    order, one page of them.

    ``paging``'s ``next`` and ``previous`` (:func:`paging`) name the version read (``pool_version``), so that a
    client walking them reads one snapshot: a run that commits meanwhile (new picks in ``initial-tag``, a
    replaced file out of it) moves no key from one page to another, and each key of the tag as of the first page
    comes once. A vacuum may delete what an old version needs: that version's pages answer :class:`GoneError`.

    :param tag: a tag name of the pool (``initial-tag``: every selected sample).
    :param offset: index of the first sample on the page.
    :param limit: samples per page.
    :param version: the pool version to read (time travel; the links of an earlier page carry it).
    :raises NotFoundError: the pool has no such tag (or no versions) in that version.
    :raises VersionRangeError: ``version`` is past the latest.
    :raises GoneError: ``version`` can no longer be read.
    """
    from lightly_airflow.datapool.errors import DatapoolError, DatapoolUnreachableError, MissingDataFileError

    pool = open_pool(spec, credentials(spec))
    snap = pool.snapshot()
    latest = snap.version
    if version is not None and latest is not None and version != latest:
        if version > latest:
            raise VersionRangeError("version", version, latest)
        try:
            snap = pool.snapshot(version, latest=snap)  # (the log loaded above, not loaded again)
        except DatapoolUnreachableError:
            raise
        except DatapoolError as exc:  # a vacuum's record says files it needs are gone
            raise _gone(spec, tag, version, latest, exc) from None
    pinned = snap.version != latest
    tags = {t["name"]: t for t in pool_tags(spec, snap)}
    if tag not in tags:
        raise NotFoundError(f"Datapool {spec.name!r} has no tag {tag!r}" + (f" at version {version}." if pinned else "."))
    try:
        rows = snap.read(tag=tag, columns=list(SAMPLE_COLUMNS))
    except MissingDataFileError as exc:  # a file gone at the read (Delta's own VACUUM run by hand)
        if not pinned:
            raise
        raise _gone(spec, tag, version, latest, exc) from None
    read = snap.version
    return {
        "datapool": spec.name,
        "tag": tag,
        "run_id": tags[tag]["run_id"],
        "version": tags[tag]["version"],
        "pool_version": read,
        "latest_version": latest,
        "total": rows.num_rows,
        "offset": offset,
        "limit": limit,
        "samples": _jsonable(rows.slice(offset, limit).to_pylist()),
        "paging": paging(offset, limit, rows.num_rows,
                         lambda first: {"version": read, "offset": first, "limit": limit}),
    }


def _gone(spec: PoolSpec, tag: str, version: int | None, latest: int | None, exc: Exception) -> GoneError:
    """The answer to a page of ``tag`` pinned at ``version`` that a vacuum made unreadable (``exc`` says how)."""
    log.info("Tag %r of datapool %r: version %s can no longer be read: %s", tag, spec.name, version, exc)
    return GoneError(
        f"{str(exc).replace(spec.uri, repr(spec.name))} These pages of tag {tag!r} read version {version} "
        f"(version={version} in their links): start again from the tag's first page, which reads the latest "
        f"version ({latest})."
    )


@dataclass
class RunLocation:
    """Where a DAG run's curation shows up among the configured datapools.

    :param committed: ``(pool, history entry)`` of the run's commit, if it committed.
    :param reports: ``(pool, report folder)`` pairs holding a report for the run id (a dry run writes one too).
    :param problems: ``(pool name, message)`` for pools that could not be read.
    :param awaiting_review: the run proposed a selection that no reviewer has answered yet (``LIGHTLY_REVIEW``,
        :mod:`lightly_airflow.review`): its report is what the reviewer opens.
    :param not_committed: the run's proposal was approved but its Commit refused (:func:`refused`): the recorded
        decision, why nothing was committed and the fix (its ``text``); None otherwise.
    """

    dag_id: str
    run_id: str
    slug: str
    committed: tuple[PoolSpec, dict[str, Any]] | None = None
    reports: list[PoolSpec] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    awaiting_review: bool = False
    not_committed: str | None = None

    @property
    def report_pool(self) -> PoolSpec | None:
        """The pool whose report belongs to the run: the one it committed to, else the only one holding a report."""
        if self.committed is not None:
            return self.committed[0] if self.committed[0] in self.reports else None
        return self.reports[0] if len(self.reports) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "report_folder": self.slug,
            "committed": None if self.committed is None else {
                "datapool": self.committed[0].name, **_jsonable(self.committed[1]),
            },
            "reports": [p.name for p in self.reports],
            "awaiting_review": self.awaiting_review,
            "not_committed_after_review": self.not_committed,
            "problems": [{"datapool": n, "error": m} for n, m in self.problems],
        }


def find_run(pools: dict[str, PoolSpec], dag_id: str, run_id: str) -> RunLocation:
    """Look for a DAG run in every configured pool: its commit (by ``run_id`` and ``dag_id`` in ``history()``)
    and its report folder. A pool that cannot be read is recorded in ``problems`` and skipped."""
    where = RunLocation(dag_id=dag_id, run_id=run_id, slug=run_slug(run_id))
    for spec in pools.values():
        try:
            creds = credentials(spec)
            pool = open_pool(spec, creds)
            if where.committed is None:
                for entry in pool.history():
                    if entry.get("run_id") == run_id and entry.get("dag_id") == dag_id:
                        where.committed = (spec, entry)
                        break
            if where.slug in report_slugs(spec, creds):
                where.reports.append(spec)
                review = proposal_review(spec, creds, where.slug) if where.committed is None else None
                if review is not None and refused(review):
                    where.not_committed = where.not_committed or str(review.get("text") or review["state"])
                elif review is not None:
                    where.awaiting_review = True
        except Exception as exc:  # noqa: BLE001 - one unreachable pool must not hide the others
            log.warning("Could not read datapool %r (%s) for run %r: %s", spec.name, spec.uri, run_id, exc)
            where.problems.append((spec.name, f"{type(exc).__name__}: {exc}"))
    return where


def check_report_path(slug: str, filename: str) -> str:
    """Validate a report folder and file name from a URL; return the file's content type.

    :raises NotFoundError: for anything that is not a plain report file name (``..``, ``/``, other types).
    """
    if not SLUG_PATTERN.match(slug) or slug.startswith("."):
        raise NotFoundError("No such report.")
    match = FILE_PATTERN.match(filename)
    if match is None:
        raise NotFoundError("No such report file.")
    return CONTENT_TYPES[match.group(1)]


def read_report_file(spec: PoolSpec, slug: str, filename: str) -> tuple[bytes, str]:
    """The bytes and content type of one file of a run's report, if the folder listing has it.

    :raises NotFoundError: bad names, a missing folder or a file the folder does not list.
    """
    content_type = check_report_path(slug, filename)
    from lightly_airflow.storage import filesystem

    creds = credentials(spec)
    fs, root = filesystem(f"{reports_uri(spec)}/{slug}", creds)
    try:
        listing = fs.ls(root, detail=True)
    except FileNotFoundError:
        raise NotFoundError(f"Datapool {spec.name!r} has no report folder {slug!r}.") from None
    by_name = {posixpath.basename(str(e["name"]).rstrip("/")): e for e in listing if e.get("type") != "directory"}
    entry = by_name.get(filename)
    if entry is None:
        raise NotFoundError(f"Report {slug!r} of datapool {spec.name!r} has no file {filename!r}.")
    size = entry.get("size")
    if size is not None and int(size) > MAX_FILE_BYTES:
        raise NotFoundError(f"Report file {filename!r} is larger than {MAX_FILE_BYTES} bytes; read it from the store.")
    with fs.open(f"{root.rstrip('/')}/{filename}", "rb") as f:
        return f.read(), content_type
