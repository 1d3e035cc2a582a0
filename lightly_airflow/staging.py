"""The run's staging area and reports: every path, the manifest shard (one reader, one type) and the
per-file error files every stage writes.

Layout (everything a run writes before its one datapool commit, and its report after it)::

    <datapool>/_staging/<run slug>/manifest/shard-NNNNN.parquet      the listing task's manifest shards
    <datapool>/_staging/<run slug>/<kind>/shard-NNNNN.parquet        a stage's output for one shard
    <datapool>/_staging/<run slug>/errors/<stage>-shard-NNNNN.parquet a stage's per-file problems
    <datapool>/_staging/<run slug>/reuse-embeddings.parquet          the pool's embeddings of unchanged files
    <datapool>/_reports/<run slug>/index.html, problems.parquet, …   the run's report

Each task writes only files whose names derive from (run, kind, shard index), so a retried task overwrites
its own output and nothing else; the select task reads them all and is the only writer of the datapool.
This module is the only place these paths are spelled out; the stages (embedding, metadata, predictions,
videos, objects) import them from here, and the one owner of the counts a shard task writes into its staging file
and the run sums into its summary (:func:`with_counts`, :func:`summed_counts`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.storage import (
    StorageCredentials,
    filesystem,
    join_uri,
    protocol_of,
    write_bytes,
    write_parquet,
)

if TYPE_CHECKING:
    from lightly_airflow.datasource.query import ListingSkips

STAGING_DIR = "_staging"
#: Folder of the run reports inside a datapool: ``<datapool>/_reports/<run slug>/``.
REPORTS_DIR = "_reports"
MANIFEST = "manifest"
EMBEDDINGS = "embeddings"
METADATA = "metadata"
PREDICTIONS = "predictions"
ERRORS = "errors"
OBJECTS = "objects"
KINDS = (MANIFEST, EMBEDDINGS, METADATA, PREDICTIONS, ERRORS, OBJECTS)
REUSE_FILE = "reuse-embeddings.parquet"
PROBLEMS_FILE = "problems.parquet"


def run_slug(run_id: str) -> str:
    """A path-safe, unique folder name for an Airflow run id (``manual__2026-01-01T00:00:00+00:00``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_")[:80]
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def run_dir(datapool_uri: str, run_id: str) -> str:
    """The staging folder of one run."""
    return join_uri(datapool_uri, STAGING_DIR, run_slug(run_id))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"Unknown staging kind {kind!r}; allowed: {KINDS}.")


def shard_uri(datapool_uri: str, run_id: str, kind: str, index: int) -> str:
    """The file of one shard of one kind (``manifest``, ``embeddings``, ``metadata``, ``predictions``, ``errors``)."""
    _check_kind(kind)
    return join_uri(run_dir(datapool_uri, run_id), kind, f"shard-{index:05d}.parquet")


def sibling_uri(manifest_uri: str, kind: str) -> str:
    """The output of ``kind`` for the shard whose manifest is ``manifest_uri`` (same run, same index)."""
    _check_kind(kind)
    head, _, name = manifest_uri.rstrip("/").rpartition("/")
    parent, _, folder = head.rpartition("/")
    if folder != MANIFEST:
        raise ValueError(f"{manifest_uri!r} is not a manifest shard (expected …/{MANIFEST}/shard-NNNNN.parquet).")
    return f"{parent}/{kind}/{name}"


def datapool_of(staging_uri: str) -> str | None:
    """The datapool a staging file belongs to (``<datapool>/_staging/<run>/…``); ``None`` when it is not under
    a ``_staging/`` folder (a loose manifest written by hand)."""
    head, found, _ = staging_uri.rpartition(f"/{STAGING_DIR}/")
    return head if found and head else None


def errors_uri(manifest_uri: str, stage: str) -> str:
    """The error report of ``stage`` for a manifest shard: ``…/errors/<stage>-shard-NNNNN.parquet``."""
    head, _, name = sibling_uri(manifest_uri, ERRORS).rpartition("/")
    return f"{head}/{stage}-{name}"


def reuse_uri(datapool_uri: str, run_id: str) -> str:
    """The run's file of reusable embeddings (the pool's embeddings of files whose content is unchanged)."""
    return join_uri(run_dir(datapool_uri, run_id), REUSE_FILE)


#: Rows per row group of the reuse file (:func:`write_reuse_file`). 100,000 rows of 1,280 random float32 (475 MB),
#: 390 shards of ~256 rows: a task read 3.8 MB in 3 requests with 512 (footer 116 kB, more than pyarrow's first
#: 64 kB read), 6.1 MB in 2 with 1,024 (59 kB), 11.0 MB in 2 with 2,048 (30 kB); means of all shards, 2026-12-06.
REUSE_ROW_GROUP_ROWS = 1024


def write_reuse_file(table: pa.Table, datapool_uri: str, run_id: str,
                     credentials: StorageCredentials | None = None) -> str:
    """Write the run's reuse file sorted by key in row groups of :data:`REUSE_ROW_GROUP_ROWS`: a manifest shard
    is a range of keys in that order, so its embed task fetches the footer and one or two row groups
    (:func:`read_staging` with ``keep``), not the whole file."""
    return write_parquet(table.sort_by(C.KEY), reuse_uri(datapool_uri, run_id), credentials,
                         row_group_size=REUSE_ROW_GROUP_ROWS)


LISTING_FILE = "listing.json"


def listing_uri(datapool_uri: str, run_id: str) -> str:
    """What the listing step skipped (``listing.json``: entries not listed and why, unsupported and OS files)."""
    return join_uri(run_dir(datapool_uri, run_id), LISTING_FILE)


def write_listing_skips(
    datapool_uri: str, run_id: str, skips: ListingSkips, credentials: StorageCredentials | None = None, *,
    limit: int = 10_000,
) -> str:
    """Write ``listing.json`` (always, so a retried listing replaces a stale one); at most ``limit`` entries."""
    from lightly_airflow.storage import write_bytes

    return write_bytes(json.dumps(skips.to_dict(limit)).encode(), listing_uri(datapool_uri, run_id), credentials)


def read_listing_skips(datapool_uri: str, run_id: str, credentials: StorageCredentials | None = None) -> dict[str, Any]:
    """``listing.json`` of a run (``{}`` when the listing wrote none); :meth:`ListingSkips.from_dict` reads it.

    :raises DamagedStagingFile: when it is not JSON (cut short), naming it and the list task.
    """
    uri = listing_uri(datapool_uri, run_id)
    fs, path = filesystem(uri, credentials)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return {}
    try:
        value = json.loads(data)
    except ValueError as exc:  # (a bare "Expecting property name enclosed in double quotes" in the select task)
        raise DamagedStagingFile(f"Staging file {uri} is damaged: {exc}. Fix: clear the {WRITER[MANIFEST]} so it "
                                 "writes the file again, then this task.") from None
    return value if isinstance(value, dict) else {}


def reports_root(datapool_uri: str) -> str:
    """The folder holding every run's report folder: ``<datapool>/_reports``."""
    return join_uri(datapool_uri, REPORTS_DIR)


def reports_dir(datapool_uri: str, run_id: str) -> str:
    """The folder of one run's report and problem list: ``<datapool>/_reports/<run slug>/``."""
    return join_uri(reports_root(datapool_uri), run_slug(run_id))


def write_record(datapool_uri: str, run_id: str, name: str, record: Any,
                 credentials: StorageCredentials | None = None) -> str:
    """Write ``record`` as JSON to ``name`` in the run's report folder (:func:`reports_dir`): what a retry of the
    run's select task reads back (:func:`read_record`) once its staging files are gone; its URI."""
    uri = join_uri(reports_dir(datapool_uri, run_id), name)
    write_bytes(json.dumps(record).encode(), uri, credentials)
    return uri


def read_record(datapool_uri: str, run_id: str, name: str,
                credentials: StorageCredentials | None = None) -> tuple[Any, str]:
    """``(record, uri)`` of a :func:`write_record` record: ``None`` where there is none.

    :raises ValueError: for a damaged record (not JSON)."""
    uri = join_uri(reports_dir(datapool_uri, run_id), name)
    fs, path = filesystem(uri, credentials)
    try:
        return json.loads(fs.cat_file(path)), uri
    except FileNotFoundError:
        return None, uri


def problems_uri(datapool_uri: str, run_id: str) -> str:
    """The run's list of every per-file problem of every stage: ``<datapool>/_reports/<run slug>/problems.parquet``."""
    return join_uri(reports_dir(datapool_uri, run_id), PROBLEMS_FILE)


# ------------------------------------------------------------------------------------------------ counts
@dataclass(frozen=True)
class StageCounts:
    """A stage's counts summed over the run's shards (:func:`summed_counts`), and :attr:`not_known`: how many of
    the shards' staging files hold no counts at all (written before the stage counted): their counts are not
    known, not 0, and whoever shows the counts says so."""

    counts: dict[str, int] = field(default_factory=dict)
    not_known: int = 0


def _counts_key(stage: str) -> str:
    _check_kind(stage)
    return f"lightly.counts.{stage}"


def _not_known_key(stage: str) -> str:
    _check_kind(stage)
    return f"lightly.counts_not_known.{stage}"


def _encoded(counts: Mapping[str, int]) -> str:
    return json.dumps({str(name): int(n) for name, n in counts.items()}, sort_keys=True)


def with_counts(table: pa.Table, stage: str, counts: Mapping[str, int], not_known: int = 0) -> pa.Table:
    """``table``, a shard's staging file of ``stage``, with the counts its task wrote as schema metadata (one JSON
    object per stage, ``lightly.counts.objects``: ``{"boxes_outside_image": 7, …}``) that the select task sums over
    the run's shards (:func:`summed_counts`) into the run summary. It replaces the stage's counts ``table`` had (a
    stacked run's, or a retried task's own): a shard's counts are written once. ``not_known``, a stacked run's
    shards whose counts are not known (:attr:`StageCounts.not_known`), is kept too
    (``lightly.counts_not_known.<stage>``)."""
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != _not_known_key(stage).encode()}
    meta[_counts_key(stage).encode()] = _encoded(counts).encode()
    if not_known:
        meta[_not_known_key(stage).encode()] = str(not_known).encode()
    return table.replace_schema_metadata(meta)


def _decoded(source: pa.Table | Mapping[Any, Any] | None) -> dict[str, str]:
    meta = (source.schema.metadata if isinstance(source, pa.Table) else source) or {}
    return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)):
            (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for k, v in meta.items()}


def _written_by(source: pa.Table | Mapping[Any, Any] | None, meta: Mapping[str, str], stage: str) -> bool:
    """Whether ``source`` holds a staging file of ``stage`` by what its writer always wrote besides the counts
    (a shard's file of an older release has no counts, but is one): the predictions stage's categories; the
    objects stage's rows (a table with ``parent_key``)."""
    if stage == PREDICTIONS:
        return C.CATEGORIES_METADATA_KEY in meta
    if stage == OBJECTS:
        return isinstance(source, pa.Table) and C.PARENT_KEY in source.column_names
    return False


def _source_counts(source: pa.Table | Mapping[Any, Any] | None, stage: str) -> tuple[dict[str, int], int]:
    """One source's counts of ``stage`` and how many shards' counts it does not know: its own counts (and, a
    stacked or merged source, the number it recorded); else, a file of the stage without counts: none, 1 not
    known."""
    meta = _decoded(source)
    value = meta.get(_counts_key(stage))
    not_known = int(meta.get(_not_known_key(stage)) or 0)  # (a stacked or merged source's)
    if value is not None:
        return {str(k): int(n) for k, n in json.loads(value).items()}, not_known
    return {}, not_known if not_known or not _written_by(source, meta, stage) else 1


def summed_counts(sources: Sequence[pa.Table | Mapping[Any, Any] | None], stage: str) -> StageCounts:
    """The :func:`with_counts` counts of ``stage`` summed over ``sources``: staging tables or their schema metadata
    (as read, or decoded to ``str``). A file of the stage without any counts adds to :attr:`StageCounts.not_known`,
    never a silent 0."""
    out: dict[str, int] = {}
    not_known = 0
    for source in sources:
        counts, unknown = _source_counts(source, stage)
        for name, n in counts.items():
            out[name] = out.get(name, 0) + n
        not_known += unknown
    return StageCounts(out, not_known)


def merged_metadata(meta: Mapping[str, str], shard_meta: Mapping[str, str]) -> dict[str, str]:
    """The run's decoded schema metadata with one more shard's: the shard's value wins, but each stage's counts
    (:func:`with_counts`) add up, and so do the shards whose counts are not known (:func:`summed_counts`)."""
    out = {**meta, **shard_meta}
    for stage in KINDS:
        summed = summed_counts([meta, shard_meta], stage)
        for key in (_counts_key(stage), _not_known_key(stage)):
            out.pop(key, None)
        if summed.counts or any(_counts_key(stage) in m for m in (meta, shard_meta)):
            out[_counts_key(stage)] = _encoded(summed.counts)
        if summed.not_known:
            out[_not_known_key(stage)] = str(summed.not_known)
    return out


def counts_not_known_note(stage: str, not_known: int, total: int | None = None) -> str | None:
    """What the run summary says of a stage's counts that some shards did not write (:attr:`StageCounts.not_known`):
    ``None`` when every shard counted."""
    if not not_known:
        return None
    of = f" of {total}" if total is not None else ""
    return (f"the {stage} counts of {not_known}{of} shard{'s' if (total or not_known) != 1 else ''} are not known (their "
            f"staging files were written by a release before the {stage} stage counted): the {stage} figures "
            f"leave those shards out. Fix, for every count: clear the run's {_COUNTING_TASK[stage]} tasks, then its "
            "select task")


#: the shard task that writes a stage's counts (what to clear for them)
_COUNTING_TASK = {OBJECTS: "embed", PREDICTIONS: "predictions"}


# ------------------------------------------------------------------------------------------------ manifest
def manifest_schema_metadata(datasource_uri: str, lightly_uri: str | None,
                             pool_embedding: Mapping[str, Any] | None = None) -> dict[bytes, bytes]:
    """The schema metadata of a manifest shard: where its files and its ``.lightly/`` folder live, and the
    embedding model of the pool the run commits to (the embed tasks check theirs against it before working)."""
    meta = {
        C.DATASOURCE_URI_METADATA_KEY.encode(): json.dumps(datasource_uri).encode(),
        C.LIGHTLY_URI_METADATA_KEY.encode(): json.dumps(lightly_uri or datasource_uri).encode(),
    }
    if pool_embedding:
        meta[C.POOL_EMBEDDING_METADATA_KEY.encode()] = json.dumps(
            {"model": str(pool_embedding["model"]), "dim": int(pool_embedding["dim"])}).encode()
    return meta


class PoolModelMismatchError(ValueError):
    """An embed task's model is not the pool's (:meth:`Manifest.check_embedding`): no retry can fix it."""


@dataclass(frozen=True)
class Manifest:
    """One manifest shard: its rows and where its files and ``.lightly/`` folder live.

    :param uri: the shard (``…/manifest/shard-NNNNN.parquet``).
    :param table: ``key, size, etag, mtime`` (and whatever else the listing wrote).
    :param metadata: the decoded ``lightly.*`` schema metadata, e.g. ``{"lightly.datasource_uri": "s3://b/i"}``.
    """

    uri: str
    table: pa.Table
    metadata: dict[str, Any] = field(default_factory=dict)

    def _text(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) and value else None

    @property
    def datasource_uri(self) -> str | None:
        """Where the shard's files live (``lightly.datasource_uri``)."""
        return self._text(C.DATASOURCE_URI_METADATA_KEY)

    @property
    def lightly_uri(self) -> str | None:
        """Where the ``.lightly/`` folder lives (``lightly.lightly_uri``)."""
        return self._text(C.LIGHTLY_URI_METADATA_KEY)

    @property
    def keys(self) -> list[str]:
        return [str(k) for k in self.table.column(C.KEY).to_pylist()]

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def unreadable_videos(self) -> set[str]:
        """Keys of the rows that stand for a video without a decodable frame (``video_problem`` set, no
        ``frame_index``: corrupt, empty, no video stream). Such a row is the video's ``corrupt`` row, not a sample:
        no prediction or metadata file is looked for. (Here, not in the predictions shard, which the metadata
        shard imported for it: 0.013 s of CPU a process.)"""
        names = self.table.column_names
        if C.VIDEO_PROBLEM not in names or C.FRAME_INDEX not in names:
            return set()
        rows = self.table.select([C.KEY, C.VIDEO_PROBLEM, C.FRAME_INDEX]).to_pydict()
        return {str(k) for k, problem, index in zip(rows[C.KEY], rows[C.VIDEO_PROBLEM], rows[C.FRAME_INDEX])
                if problem is not None and index is None}

    def check_embedding(self, model: str, dim: int) -> None:
        """Refuse to embed with another model than the pool's (recorded by the list task): the commit would
        refuse the run after every shard was embedded (``EmbeddingMismatchError``)."""
        pool = self.metadata.get(C.POOL_EMBEDDING_METADATA_KEY)
        if not isinstance(pool, dict) or (pool.get("model"), pool.get("dim")) == (model, int(dim)):
            return
        raise PoolModelMismatchError(
            f"The datapool of {self.uri} holds embeddings of model {pool.get('model')!r} (dim {pool.get('dim')}) but "
            f"this task embeds with {model!r} (dim {int(dim)}): the commit would refuse the run after every shard "
            "is embedded. Fix: embed with the pool's model, input size, dimension and weights (the embed tasks' "
            "model/input_size/dim/weights_uri, lightly_config's collate.input_size and model.num_ftrs), or commit "
            "to a new datapool."
        )

    def require_datasource_uri(self) -> str:
        """The datasource URI, or a ``ValueError`` that says how the shard should have been written."""
        uri = self.datasource_uri
        if uri is None:
            raise ValueError(
                f"Manifest shard {self.uri!r} has no {C.DATASOURCE_URI_METADATA_KEY!r} schema metadata, so its files "
                "cannot be located: write it with datasource.write_manifests(datasource_uri=...)."
            )
        return uri


def missing_hint(uri: str) -> str:
    """What to add to "staging file missing" errors: on a local datapool the likely cause is a distributed
    executor whose workers do not share the folder (each task wrote to its own machine's disk)."""
    try:
        local = protocol_of(uri) == "file"
    except ValueError:
        return ""
    return (
        " The datapool is a local folder: every task of a run must see the same folder. Under a distributed "
        "executor (Celery, Kubernetes) or in GPU pods, put the datapool on shared storage (NFS) or on "
        "s3:// / gs:// / az://."
    ) if local else ""


#: the task that writes each kind of staging file (what to run again when one is damaged)
WRITER = {MANIFEST: "list task of this run (and the shard tasks after it)", EMBEDDINGS: "embed task of this shard",
          METADATA: "metadata task of this shard", PREDICTIONS: "predictions task of this shard",
          OBJECTS: "embed task of this shard"}


class DamagedStagingFile(ValueError):
    """A staging file that is not a whole Parquet file (cut short by a store or a copy, emptied by hand) or whose
    bytes changed after it was written (a page checksum or the decoder fails)."""


def rows_with(table: pa.Table | pa.RecordBatch, column: str, values: pa.Array | pa.ChunkedArray
              ) -> pa.Table | pa.RecordBatch:
    """The rows of ``table`` (or of one record batch) whose (string) ``column`` holds one of ``values``."""
    import pyarrow.compute as pc

    wanted = (values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values).cast(pa.string())
    return table.filter(pc.is_in(table.column(column).cast(pa.string()), value_set=wanted))


#: Rows :func:`read_staging` decodes at a time when it keeps some rows: 8,192 x 1,280 float32 = 40 MB.
KEEP_BATCH_ROWS = 8192


def read_staging(uri: str, credentials: StorageCredentials | None, writer: str, *,
                 keep: tuple[str, pa.Array | pa.ChunkedArray] | None = None) -> pa.Table | None:
    """One staging file of a run; ``None`` when it does not exist.

    The file's bytes are fetched first and decoded from memory, so a store's error (permissions, credentials,
    network) stays what it is and every decoding error is the file's own; the page checksums
    :func:`storage.write_parquet` writes are verified (without them, bytes changed inside a zstd page mostly
    decode to other values without any error).

    :param writer: the task that writes it (:data:`WRITER`), named in the fix.
    :param keep: (column, values): only the rows whose (string) ``column`` holds one of ``values``. The file is
        read by ranges: its footer, then only the row groups whose ``column`` statistics (min, max) can hold
        one of ``values``, verified as whole files are (every embed task reads the run's one reuse file for its
        shard's rows: fetched whole, a ``process_all`` over a pool holding a one-hour 30 fps video, 108,041 frames
        in a 191 MB file, downloaded 191 MB per task, 78.5 GiB over its 422 shards, to keep 256 rows). A store's
        error on a range stays what it is. A file without that column is read whole (its reader names what is
        missing). (Parquet's footer has no checksum: bytes changed in a key statistic, not in its structure,
        could skip a row group, whose files are then embedded again, never given other values.)
    :raises DamagedStagingFile: when it is not a whole, intact Parquet file, naming it and the task to run again
        (a retry of the reading task reads the same damaged file).
    """
    import pyarrow.lib
    import pyarrow.parquet as pq

    fs, path = filesystem(uri, credentials)
    try:
        # (keep: read by ranges, pyarrow's reads unbuffered: the footer, then the row groups it needs)
        source = pa.BufferReader(fs.cat_file(path)) if keep is None else _StoreFile(fs.open(path, cache_type="none"))
    except FileNotFoundError:
        return None
    try:
        if keep is None:
            # (not pq.read_table: it imports pyarrow.dataset and pandas, ~0.3-1 s of every mapped task's start)
            return pq.ParquetFile(source, page_checksum_verification=True).read()
        parquet = pq.ParquetFile(source, page_checksum_verification=True)
        column, values = keep
        if column not in parquet.schema_arrow.names:
            return parquet.read()
        groups = row_groups_with(parquet.metadata, column, values)
        batches = parquet.iter_batches(batch_size=KEEP_BATCH_ROWS, row_groups=groups)
        return pa.Table.from_batches([rows_with(b, column, values) for b in batches], schema=parquet.schema_arrow)
    except pyarrow.lib.ArrowMemoryError:
        raise
    except (pyarrow.lib.ArrowException, OSError) as exc:  # (Arrow's IOError is a plain OSError: "Corrupt …")
        if isinstance(source, _StoreFile) and source.error is not None:
            raise source.error from None  # the store's (network, permissions), not the file's
        raise DamagedStagingFile(
            f"Staging file {uri} is damaged: {' '.join(str(exc).split()).rstrip('.')}. Fix: clear the {writer} so it writes "
            "the file again, then this task.") from None
    finally:
        source.close()


class _StoreFile:
    """A store's file read by ranges (pyarrow asks for the footer, then column chunks); the store's own error on a
    read is kept, since pyarrow hands it back as one of its read errors."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.error: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self.handle.read(size))
        except Exception as exc:
            self.error = exc
            raise


def row_groups_with(metadata: Any, column: str, values: pa.Array | pa.ChunkedArray) -> list[int]:
    """The row groups of a Parquet file (its ``metadata``) whose (string) ``column`` can hold one of ``values`` by
    its statistics (min, max, compared as UTF-8 bytes as Parquet orders them); every row group without them."""
    import bisect

    import pyarrow.compute as pc

    wanted = sorted(v for v in pc.unique(values).cast(pa.string()).to_pylist() if v is not None)
    leaves = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    groups = list(range(metadata.num_row_groups))
    if column not in leaves:
        return groups
    at = leaves.index(column)

    def may_hold(group: int) -> bool:
        stats = metadata.row_group(group).column(at).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
            return True
        first = bisect.bisect_left(wanted, stats.min)
        return first < len(wanted) and wanted[first] <= stats.max

    return [g for g in groups if may_hold(g)]


def read_manifest(
    uri: str, credentials: StorageCredentials | None = None, *, required: Sequence[str] = (C.KEY,)
) -> Manifest:
    """Read one manifest shard (every stage, the select task and the CLI read shards through this function).

    :param uri: ``…/_staging/<run>/manifest/shard-NNNNN.parquet``.
    :param credentials: credentials of the datapool's store.
    :param required: the columns the caller needs (default ``key``; :data:`columns.MANIFEST_COLUMNS` for all).
    :raises FileNotFoundError: when the shard does not exist.
    :raises ValueError: when it is not a manifest (columns missing).
    :raises DamagedStagingFile: when it is not a whole Parquet file.
    """
    table = read_staging(uri, credentials, WRITER[MANIFEST])
    if table is None:
        raise FileNotFoundError(
            f"Manifest shard {uri} does not exist: run the listing task of this run first.{missing_hint(uri)}")
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{uri} is not a manifest shard: columns {missing} are missing (has {table.column_names}); manifests "
            "are written by datasource.write_manifests."
        )
    meta: dict[str, Any] = {}
    for raw_key, raw_value in (table.schema.metadata or {}).items():
        key = raw_key.decode("utf-8", "replace")
        if not key.startswith("lightly."):
            continue
        try:
            meta[key] = json.loads(raw_value)
        except ValueError:
            meta[key] = raw_value.decode("utf-8", "replace")
    return Manifest(uri=uri, table=table, metadata=meta)


# ---------------------------------------------------------------------------------------- per-file errors
ERROR_SCHEMA = pa.schema(
    [
        pa.field(C.KEY, pa.string()),
        pa.field("stage", pa.string()),
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("path", pa.string()),
    ]
)


class TooManyErrorsError(ValueError):
    """More than ``max_error_fraction`` of a shard's files were bad (raised after the reports are written)."""


@dataclass
class ProblemLog:
    """Per-file problems found by one stage, written as one error report ``errors/<stage>-shard-NNNNN.parquet``.

    :param stage: ``metadata``, ``predictions``, … (the report's file name and ``stage`` column).
    """

    stage: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, key: str, field_: str, reason: str, path: str | None = None) -> None:
        """Record one problem: the sample ``key`` (or ``.lightly/`` file), the field and why."""
        self.rows.append((key, field_, reason, path if path is not None else key))

    def __len__(self) -> int:
        return len(self.rows)

    def bad_keys(self) -> set[str]:
        return {r[0] for r in self.rows}

    def to_table(self) -> pa.Table:
        keys, fields_, reasons, paths = (list(x) for x in zip(*self.rows)) if self.rows else ([], [], [], [])
        from lightly_airflow.arrow import from_pylist  # (pa.array of a list imports pandas: 0.2 s of a shard task)

        return pa.table(
            {
                C.KEY: from_pylist(keys, pa.string()),
                "stage": from_pylist([self.stage] * len(keys), pa.string()),
                "field": from_pylist(fields_, pa.string()),
                "reason": from_pylist(reasons, pa.string()),
                "path": from_pylist(paths, pa.string()),
            },
            schema=ERROR_SCHEMA,
        )

    def write(self, manifest_uri: str, credentials: StorageCredentials | None = None) -> str:
        """Write the report (always, even empty, so a retried task replaces a stale one)."""
        uri = errors_uri(manifest_uri, self.stage)
        write_parquet(self.to_table(), uri, credentials)
        return uri


def read_errors(manifest_uri: str, stages: Sequence[str], credentials: StorageCredentials | None = None) -> list[pa.Table]:
    """The non-empty error reports the ``stages`` wrote for one manifest shard (a missing report is none)."""
    out = []
    for stage in stages:
        table = read_staging(errors_uri(manifest_uri, stage), credentials, WRITER[stage])
        if table is not None and table.num_rows:
            out.append(table)
    return out


def check_error_fraction(bad: int, total: int, max_error_fraction: float | None, what: str, report_uri: str) -> None:
    """Raise :class:`TooManyErrorsError` when ``bad / total`` exceeds ``max_error_fraction``.

    :param max_error_fraction: a share in [0, 1]; ``None`` never fails.
    """
    if max_error_fraction is None or total == 0:
        return
    if bad / total > max_error_fraction:
        raise TooManyErrorsError(
            f"{bad} of {total} files ({bad / total:.1%}) had bad {what}, more than max_error_fraction="
            f"{max_error_fraction}; see {report_uri} for every file and reason, fix the files or raise the limit."
        )


def validate_fraction(value: float | None, name: str = "max_error_fraction") -> float | None:
    """Validate an optional share in [0, 1] once, at the edge."""
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (a share of files), got {value}.")
    return value


def remove_run(datapool_uri: str, run_id: str, credentials: StorageCredentials | None = None) -> bool:
    """Delete a run's staging folder; returns whether there was one."""
    fs, path = filesystem(run_dir(datapool_uri, run_id), credentials)
    if not fs.exists(path):
        return False
    fs.rm(path, recursive=True)
    return True
