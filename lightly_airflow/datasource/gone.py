"""Files the datapool holds that the datasource no longer has: counted from the listing every run makes.

A bucket loses files (a lifecycle rule, a cleanup, a re-organisation) after a run processed them; the pool keeps
their rows (it is history: nothing is deleted) and an export would hand a labelling tool paths that no longer
exist. The list step already lists the datasource, so the pool's keys that the listing no longer holds cost no
extra request to the datasource; only a pool key the listing *could* have listed counts:

- its latest row was committed by a run of this same datasource root (keys are relative to each run's root:
  another bucket, a narrower or wider prefix is never compared);
- it passes this run's filters: extensions, OS and tool files, ``relevant_filenames_file`` (a key that is only
  filtered out is not gone);
- it is not one of the listing's skipped entries (a symlink not followed, a name that is not UTF-8, …);
- object rows (``parent_key``) are never counted (their image is); a video's frames count as their video file.

The count, the first examples (selected samples first) and every gone key are recorded per run: the count and
examples in the run's listing record (summary and report), every key in ``_reports/<run>/gone.parquet``, which
``datapool export`` reads to say which exported samples' files are gone. Every moved pair (a new file with a gone
file's etag) is in ``_reports/<run>/moved.parquet``, which the select task hands to the commit: the new key takes
over the gone key's sample (:mod:`lightly_airflow.datapool.moves`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.storage import StorageCredentials

if TYPE_CHECKING:
    from lightly_airflow.datasource.query import NewFiles

logger = logging.getLogger(__name__)

#: The file beside a run's report with every gone key (column ``key``) its listing found.
GONE_FILE = "gone.parquet"
#: The file beside a run's report with every moved pair its listing found (columns ``key``: the new key,
#: ``moved_from``: the gone key).
MOVED_FILE = "moved.parquet"
_EXAMPLES = 5


@dataclass
class GoneFiles:
    """The pool's files of this datasource that its listing no longer holds."""

    #: every gone file's key (a video once, not its frames), selected ones first, then by key
    keys: list[str] = field(default_factory=list)
    #: the pool's samples behind them (a video's frames each count)
    samples: int = 0
    #: of those samples, how many are selected (``initial-tag``): an export of them hands out missing files
    selected: int = 0
    #: ``(new key, former key)`` of this run's new files with the content identity (etag) of a gone file, or of a
    #: file whose key the run processes with other content (a rename while a new file took the old name): the
    #: file was moved or renamed, and the run's commit lets it take over its former key's sample (when that one
    #: was ok: ``datapool.moves``)
    moved: list[tuple[str, str]] = field(default_factory=list)
    #: of the selected gone samples, those of the gone keys in ``moved`` (their selection goes to the new key)
    moved_selected: int = 0
    #: ``key, file`` (and ``selected``) of the gone samples (not recorded)
    rows: pa.Table | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.keys)

    def listing_fields(self) -> dict[str, Any]:
        """The ``gone*`` fields of the run's :class:`~lightly_airflow.datasource.ListingSkips`."""
        return {"gone": self.count, "gone_samples": self.samples, "gone_selected": self.selected,
                "gone_examples": self.keys[:_EXAMPLES], "gone_moved": len(self.moved),
                "gone_moved_selected": self.moved_selected,
                "gone_moved_examples": [list(p) for p in self.moved[:_EXAMPLES]]}


def find_gone(
    listing: pa.Table, pool_files: pa.Table | None, *, extensions: Any, relevant: str | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> GoneFiles:
    """The files of ``pool_files`` that ``listing`` does not hold although this run's filters would list them.

    :param listing: this run's listing (``key`` column).
    :param pool_files: ``key, file`` and optionally ``selected`` of the pool's samples of this datasource
        (:func:`known.pool_files`): ``file`` is the sample's datasource file (a frame's video), ``selected``
        whether it is in ``initial-tag`` (those are counted and shown first).
    :param extensions: this run's extensions; a key with another extension was not listed, not deleted.
    :param relevant: the text of this run's relevant-filenames file (``None``: every file).
    :param skipped: the listing's skipped entries (present, but not listed).
    """
    from lightly_airflow.datasource.records import base_mask, extension_regex, normalise_extensions, os_file_mask
    from lightly_airflow.datasource.relevant import RelevantFilenames

    if pool_files is None or not pool_files.num_rows:
        return GoneFiles()
    files = pool_files.column("file").combine_chunks().cast(pa.string())
    listed = listing.column(C.KEY).combine_chunks().cast(pa.string())
    gone = pc.invert(pc.is_in(files, value_set=listed))
    if skipped:
        gone = pc.and_(gone, pc.invert(pc.is_in(files, value_set=pa.array([k for k, _ in skipped], pa.string()))))
    # Only what this run's filters would have listed: a key of another extension or outside the relevant
    # filenames was not listed, which says nothing about whether it exists.
    gone = pc.and_(gone, base_mask(files, extension_regex(normalise_extensions(extensions))))
    gone = pc.and_(gone, pc.invert(os_file_mask(files)))
    if relevant is not None:
        gone = pc.and_(gone, RelevantFilenames.parse(relevant).mask(files))
    gone = pc.fill_null(gone, False)
    rows = pool_files.filter(gone)
    if not rows.num_rows:
        return GoneFiles()
    is_selected = (pc.fill_null(rows.column(C.SELECTED), False) if C.SELECTED in rows.column_names
                   else pa.array([False] * rows.num_rows))
    n_selected = int(pc.sum(is_selected).as_py() or 0)
    first = sorted(set(rows.filter(is_selected).column("file").to_pylist())) if n_selected else []
    rest = sorted(set(rows.column("file").to_pylist()) - set(first))
    return GoneFiles(keys=[*first, *rest], samples=rows.num_rows, selected=n_selected,
                     rows=rows.select([C.KEY, "file"]).append_column(C.SELECTED, is_selected))


def moved_selected(gone: GoneFiles) -> int:
    """The selected samples of the gone keys that moved (``gone.moved``): what the report no longer calls selected
    paths that no longer exist once the commit lets the new keys take them over."""
    if not gone.moved or gone.rows is None:
        return 0
    old = pc.is_in(gone.rows.column("file"), value_set=pa.array([o for _, o in gone.moved], pa.string()))
    return int(pc.sum(pc.and_(old, gone.rows.column(C.SELECTED))).as_py() or 0)


def moved_files(gone: GoneFiles, new: pa.Table, known: pa.Table) -> list[tuple[str, str]]:
    """``(new key, former key)`` of the ``new`` files whose etag is that of the latest row of a key whose content
    left it, by new key: a move or a rename (same store, so the same bytes keep their etag; an S3 multipart upload
    does not). The content left a key that is gone (``gone.rows``), or a key the run processes with other content
    (a file renamed while a new file was written under its old name, :func:`replaced_keys`: the new file under the
    old key is new, the renamed one takes over the old key's sample).

    A file the pool holds already under its own key with that etag is no move, whatever the run processes
    (``process_all`` processes every listed file: a copy ``b.png`` of a deleted ``a.png``, processed in the run
    that processed ``a.png``, was named "moved from a.png"); a video by its frames' rows, as the new-file diff."""
    from lightly_airflow.datasource.diff import new_files
    from lightly_airflow.video.listing import known_videos

    if known is None or not known.num_rows or not new.num_rows:
        return []
    vacated = replaced_keys(new, known)
    if gone.rows is not None and gone.rows.num_rows:
        vacated = pa.concat_tables([gone.rows.select([C.KEY, "file"]).cast(vacated.schema), vacated])
    if not vacated.num_rows:
        return []
    new = new_files(new, known_videos(known))
    ids = pa.table({C.KEY: known.column(C.KEY).cast(pa.string()), C.ETAG: known.column(C.ETAG).cast(pa.string())})
    ids = ids.join(vacated, keys=C.KEY, join_type="inner").select([C.ETAG, "file"])
    ids = ids.filter(pc.fill_null(pc.not_equal(ids.column(C.ETAG), ""), False)).group_by([C.ETAG, "file"]).aggregate([])
    files = pa.table({"new": new.column(C.KEY).cast(pa.string()), C.ETAG: new.column(C.ETAG).cast(pa.string())})
    pairs = files.join(ids, keys=C.ETAG, join_type="inner")
    out: dict[str, str] = {}
    for key, was in zip(pairs.column("new").to_pylist(), pairs.column("file").to_pylist()):
        out[key] = min(was, out.get(key, was))
    return sorted(out.items())


def replaced_keys(files: pa.Table, known: pa.Table) -> pa.Table:
    """``key, file`` (both the key) of the ``files`` a run processes whose key the pool knows as an ok sample of
    other content (another etag): the content that was there may have moved to a new key of the run
    (:func:`moved_files`). Video frames are not among them (a frame's key is no listed key)."""
    if known.num_rows > 4 * files.num_rows:
        # (the pool's rows of the run's keys first: a hash set of the run's few keys probed by the pool's, not a join
        # that hashes the pool's rows on every listing: 10,000 files, 1,000,000 known: 0.31 s of CPU -> 0.02 s)
        keys = files.column(C.KEY).combine_chunks().cast(pa.string())
        known = known.filter(pc.is_in(known.column(C.KEY).cast(pa.string()), value_set=keys))
    ok = known if C.STATUS not in known.column_names else known.filter(
        pc.fill_null(pc.equal(known.column(C.STATUS), C.STATUS_OK), False))
    pool = pa.table({C.KEY: ok.column(C.KEY).cast(pa.string()), "__was": ok.column(C.ETAG).cast(pa.string())})
    listed = pa.table({C.KEY: files.column(C.KEY).cast(pa.string()), C.ETAG: files.column(C.ETAG).cast(pa.string())})
    both = listed.join(pool, keys=C.KEY, join_type="inner")
    keys = pc.unique(both.filter(pc.fill_null(pc.not_equal(both.column(C.ETAG), both.column("__was")), True))
                     .column(C.KEY))
    return pa.table({C.KEY: keys, "file": keys}, schema=pa.schema([(C.KEY, pa.string()), ("file", pa.string())]))


def gone_files(found: NewFiles, snapshot: Any) -> GoneFiles:
    """The pool's files of the query's datasource that this listing no longer holds (:func:`find_gone`), logged.

    Reads nothing from the datasource; from the pool only when one of its known keys is neither listed nor among
    the listing's skipped entries (a cheap first check against the known files the listing read anyway, a frame
    checked by its video, an object by its image): then its key, video, parent, selected and tags columns, once.
    (A skipped key cost those reads, 3 GETs of a pool on S3, every run, to find nothing gone.)

    :param found: the listing's answer (:func:`~lightly_airflow.datasource.find_new_files`), with the pool's
        known files.
    :param snapshot: the pool version the known files came from (``None``: no pool yet).
    """
    from lightly_airflow.datasource import known as known_module

    known = found.known
    if snapshot is None or known is None or not known.num_rows:
        return GoneFiles()
    listed = found.listing.column(C.KEY)
    if found.unlisted:  # (present, not listed: a key skipped by rule needs no second read of the pool)
        listed = pa.chunked_array([*listed.chunks, pa.array([k for k, _ in found.unlisted], pa.string())])
    query = found.query
    gone = GoneFiles()
    if _unlisted(known.column(C.KEY), listed):
        gone = find_gone(found.listing, known_module.pool_files(snapshot, query.datasource_uri),
                         extensions=query.extensions, relevant=found.relevant, skipped=found.unlisted)
    gone.moved = moved_files(gone, found.files, known)  # (also onto a key written anew: nothing gone then)
    gone.moved_selected = moved_selected(gone)
    log_gone(gone, query.datasource_uri)
    return gone


def _unlisted(known: pa.ChunkedArray, listing: pa.ChunkedArray) -> bool:
    """Whether a known key may be gone: it is not listed, nor is the video of a frame or the image of an object."""
    from lightly_airflow.lightly_dir import parse_frame_name

    listed = listing.combine_chunks().cast(pa.string())
    keys = known.combine_chunks().cast(pa.string())
    keys = keys.filter(pc.invert(pc.is_in(keys, value_set=listed)))
    if not len(keys):
        return False
    # an object id is "<image key>#<task>#<index>"; a frame "<video stem>-<index>-<ext>.png"
    parents = pc.replace_substring_regex(keys, r"#[^#/]*#[0-9]+$", "")
    keys = keys.filter(pc.invert(pc.and_(pc.not_equal(parents, keys), pc.is_in(parents, value_set=listed))))
    videos = pa.array([(parsed[0] if (parsed := parse_frame_name(k)) else k) for k in keys.to_pylist()], pa.string())
    return not pc.all(pc.is_in(videos, value_set=listed)).as_py()


def log_gone(gone: GoneFiles, datasource_uri: str) -> None:
    """Warn about the gone files (their count, the first examples and what to do) and the moved ones."""
    if gone.count:
        one = gone.count == 1
        logger.warning(
            "%s the datapool holds (%s, %d of them selected) %s no longer in the datasource %s, e.g. %s: the pool "
            "keeps their rows (it is history) and exports still name them. Restore the files, or leave their "
            "samples out of the labelling task (datapool export warns about each exported one).",
            "1 file" if one else f"{gone.count} files", "1 sample" if gone.samples == 1 else f"{gone.samples} samples",
            gone.selected, "is" if one else "are", datasource_uri, ", ".join(repr(k) for k in gone.keys[:_EXAMPLES]))
    if gone.moved:
        logger.warning(
            "%d new files of this run have the content of a file the datasource no longer has under its key (moved "
            "or renamed?), e.g. %s: each one takes over its former key's sample (its selection and tags) in the "
            "run's commit.",
            len(gone.moved), ", ".join(f"{new!r} (was {old!r})" for new, old in gone.moved[:_EXAMPLES]))


def write_gone(gone: GoneFiles, datapool_uri: str, run_id: str, credentials: StorageCredentials | None) -> str | None:
    """Every gone key of the run in ``_reports/<run>/gone.parquet`` (what ``datapool export`` reads) and every
    moved pair in ``moved.parquet`` (what the commit reads, :func:`read_moves`; also when nothing is gone: a move
    onto a key written anew); ``None`` when none is gone (no ``gone.parquet`` is written)."""
    if not gone.count and not gone.moved:
        return None
    from lightly_airflow import staging
    from lightly_airflow.storage import join_uri, write_parquet

    reports = staging.reports_dir(datapool_uri, run_id)
    if gone.moved:
        write_parquet(pa.table({C.KEY: pa.array([n for n, _ in gone.moved], pa.string()),
                                "moved_from": pa.array([o for _, o in gone.moved], pa.string())}),
                      join_uri(reports, MOVED_FILE), credentials)
    if not gone.count:
        return None
    return write_parquet(pa.table({C.KEY: pa.array(gone.keys, pa.string())}), join_uri(reports, GONE_FILE), credentials)


def read_moves(datapool_uri: str, run_id: str, credentials: StorageCredentials | None) -> list[tuple[str, str]]:
    """The ``(new key, gone key)`` pairs a run's listing recorded (:func:`write_gone`); ``[]`` when none."""
    from lightly_airflow import staging
    from lightly_airflow.storage import join_uri, read_parquet

    table = read_parquet(join_uri(staging.reports_dir(datapool_uri, run_id), MOVED_FILE), credentials, missing_ok=True)
    if table is None:
        return []
    return list(zip(table.column(C.KEY).to_pylist(), table.column("moved_from").to_pylist(), strict=True))


def read_gone(datapool_uri: str, run_id: str, credentials: StorageCredentials | None) -> set[str] | None:
    """The gone keys a run recorded (:func:`write_gone`); ``None`` when the run has no such record."""
    from lightly_airflow import staging
    from lightly_airflow.storage import join_uri, read_parquet

    uri = join_uri(staging.reports_dir(datapool_uri, run_id), GONE_FILE)
    table = read_parquet(uri, credentials, missing_ok=True)
    return None if table is None else set(table.column(C.KEY).to_pylist())
