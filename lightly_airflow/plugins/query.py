"""The curation pages' queries over one datapool version: grid, filters, facets, sample, map, export rows.

Everything is SQL over the Delta table (DataFusion through :func:`lightly_airflow.datapool.reading.query`), so a
page of a 1,000,000-sample pool reads only the columns it shows. Column names from a request are accepted only
when the snapshot's schema has them and they are of a filterable kind; values are cast to numbers or quoted as
literals. No FastAPI here.

A *scope* is what a page shows: a datapool version (time travel, default latest), optionally one tag or the rows
one run committed, narrowed by filters (numeric ranges ``lo.<col>``/``hi.<col>``, categorical values
``in.<col>``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.datapool.reading import IN_LIST_MAX, in_list, query, query_batches, quote_ident, quote_literal
from lightly_airflow.datapool.rows import COMMIT_VERSION
from lightly_airflow.datapool.tagging import hand_made_tags
from lightly_airflow.plugins.config import PoolSpec

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.errors import MissingDataFileError

#: Columns never offered as filters, sort keys or colours (identity, lists, the map itself).
HIDDEN = {C.EMBEDDING, C.TAGS, C.LAYOUT_X, C.LAYOUT_Y, C.PIXEL_RULES}
#: String columns shown as categories only when they have at most this many distinct values.
MAX_CATEGORIES = 40
#: Points the map draws at most; the rest of the scope shows in the density grid.
MAP_POINTS = 20_000
MAP_BINS = 96
#: How long a facet summary of a version is reused (versions never change; the cache only bounds memory).
CACHE_SECONDS = 600.0


#: What a scope shows: the samples (images, video frames; rows without ``parent_key``) or the objects of
#: object-level runs (rows with ``parent_key``, docs/objects.md). Every images view excludes object rows.
SHOW_IMAGES, SHOW_OBJECTS = "images", "objects"


#: A grid's ``sort`` by similarity to one sample: ``similar:<sample id>`` orders the scope by the Euclidean
#: distance of each row's embedding to that sample's (unit vectors: the cosine order), nearest first.
SIMILAR = "similar:"


class QueryError(ValueError):
    """A request names an unknown column, a bad value or version; the message is safe to show."""


@dataclass
class Filters:
    """Numeric ranges and categorical values, ANDed."""

    lo: dict[str, float] = field(default_factory=dict)
    hi: dict[str, float] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.lo or self.hi or self.values)

    def to_params(self) -> list[tuple[str, str]]:
        out = [(f"lo.{k}", _num_text(v)) for k, v in self.lo.items()]
        out += [(f"hi.{k}", _num_text(v)) for k, v in self.hi.items()]
        out += [(f"in.{k}", v) for k, vs in self.values.items() for v in vs]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "in": self.values}


@dataclass
class Scope:
    """What a page shows: a version, optionally a tag or a run's rows, and filters."""

    version: int | None = None
    tag: str | None = None
    run: str | None = None
    filters: Filters = field(default_factory=Filters)
    #: ``images`` (default: image and video-frame rows) or ``objects`` (object rows, :data:`SHOW_OBJECTS`).
    show: str = SHOW_IMAGES

    @property
    def objects(self) -> bool:
        return self.show == SHOW_OBJECTS

    def to_params(self, *, with_version: bool = True) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if with_version and self.version is not None:
            out.append(("version", str(self.version)))
        if self.objects:
            out.append(("show", SHOW_OBJECTS))
        if self.tag:
            out.append(("tag", self.tag))
        if self.run:
            out.append(("run", self.run))
        return out + self.filters.to_params()

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "show": self.show, "tag": self.tag, "run": self.run,
                "filters": self.filters.to_dict()}


def _unviewable_sql() -> str:
    """The SQL condition of a row whose key ends in an extension of :data:`~lightly_airflow.datapool.export.
    UNVIEWABLE_IMAGES`, in any case (``export._unviewable_kind``'s rule). ``ends_with`` of the lowered key, not a
    regular expression: DataFusion compiled ``~*``'s pattern for every record batch (0.13 s a scan of 800 files)."""
    from lightly_airflow.datapool.export import UNVIEWABLE_IMAGES

    key = f"lower({quote_ident(C.KEY)})"
    return "(" + " OR ".join(f"ends_with({key}, {quote_literal('.' + e)})" for e in sorted(UNVIEWABLE_IMAGES)) + ")"


def _num_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


@dataclass
class Walk:
    """Where a sample stands in the grid it was opened from (a scope in a sort order): position ``at`` (from 0)
    of ``total``, and the sample ids before and after it (``None`` at either end)."""

    at: int
    total: int
    sort: str
    descending: bool
    before: str | None
    after: str | None


def parse_scope(params: Iterable[tuple[str, str]]) -> Scope:
    """A scope from query parameters (``version``, ``tag``, ``run``, ``lo.<col>``, ``hi.<col>``, ``in.<col>``).

    Empty values are ignored (an untouched form field). Column names are checked later against the snapshot.
    :raises QueryError: a version or bound that is not a number.
    """
    scope = Scope()
    for name, raw in params:
        value = raw.strip()
        if value == "":
            continue
        if name == "version":
            try:
                scope.version = int(value)
            except ValueError:
                raise QueryError(f"version must be a whole number, got {value!r}.") from None
        elif name == "show":
            if value not in (SHOW_IMAGES, SHOW_OBJECTS):
                raise QueryError(f"show must be {SHOW_IMAGES!r} or {SHOW_OBJECTS!r}, got {value!r}.")
            scope.show = value
        elif name == "tag":
            scope.tag = value
        elif name == "run":
            scope.run = value
        elif name.startswith(("lo.", "hi.")):
            try:
                number = float(value)
            except ValueError:
                raise QueryError(f"{name} must be a number, got {value!r}.") from None
            if not math.isfinite(number):
                raise QueryError(f"{name} must be a finite number, got {value!r}.")
            (scope.filters.lo if name.startswith("lo.") else scope.filters.hi)[name[3:]] = number
        elif name.startswith("in."):
            scope.filters.values.setdefault(name[3:], []).append(value)
    return scope


# ------------------------------------------------------------------------------------------------ snapshots
_cache_lock = threading.Lock()
_facet_cache: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}
_dupe_cache: dict[tuple[str, int], tuple[float, Any]] = {}
_count_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
_similar_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
_grid_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
_task_cache: dict[tuple[str, int], tuple[float, Any]] = {}
#: Bars of a numeric facet's histogram (the filter panel draws them above its range inputs)
HISTOGRAM_BINS = 24
#: Values the facets' scan bins and counts at a time (``View._scan``: 32 MB, as float64).
HISTOGRAM_BLOCK_VALUES = 4_000_000
#: Rows of a grid ordered by similarity computed at once and kept (``_similar_cache``, per version, scope and
#: order): its next pages, and the sample page stepping through it, read them instead of every embedding again
#: (at 1,000,000 x 1280 one ordering reads ~5 GB of embeddings: ~12 s).
SIMILAR_BLOCK = 1_000
#: Rows of any other grid read at once and kept (``_grid_cache``; a larger page: a block of its size): four grid
#: pages of 60 (``pages.GRID_PAGE``), so its next pages and the sample pages stepping through them read no data file
#: again (a pool of 800 small files: ~0.3 s a scan; a longer ``LIMIT`` costs next to nothing).
GRID_BLOCK = 240
#: Most blocks of each kind (and queries' embeddings) kept at once: ~0.6 MB of rows a block, ~40 MB at most.
BLOCKS_KEPT = 64
#: Moves followed back to the run that picked a moved file (:meth:`View.original_pick`): one query each.
MOVE_CHAIN_MAX = 8


def _cached(cache: dict[Any, tuple[float, Any]], key: Any, make: Any, most: int = 32) -> Any:
    """``make()`` kept in ``cache`` under ``key`` for :data:`CACHE_SECONDS`; a cache past ``most`` entries starts
    over (entries are small, or bounded: :data:`BLOCKS_KEPT`)."""
    now = time.monotonic()
    with _cache_lock:
        hit = cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    value = make()
    with _cache_lock:
        for k in [k for k, (t, _) in cache.items() if now - t >= CACHE_SECONDS]:
            del cache[k]
        if len(cache) > most:
            cache.clear()
        cache[key] = (now, value)
    return value


class View:
    """One datapool version, opened for queries.

    :param spec: the configured datapool.
    :param version: the version to read (``None``: latest).
    :raises QueryError: no such version.
    :raises LookupError: no pool there yet.
    """

    def __init__(self, spec: PoolSpec, version: int | None = None, credentials: Any = None) -> None:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        from lightly_airflow.storage import StorageCredentials, delta_uri

        self.spec = spec
        self._credentials = credentials
        # (the URI, not its protocol: an Azure pool of another account is refused with the fix, not delta-rs' error)
        options = (credentials or StorageCredentials()).delta_options(spec.uri) or None
        try:
            self.table = DeltaTable(delta_uri(spec.uri), storage_options=options)
        except TableNotFoundError:
            raise LookupError(f"Datapool {spec.name!r} has no versions yet: no run has committed to it.") from None
        self.latest = int(self.table.version())
        self._lost: list[dict[str, Any]] | None = None
        if version is not None and version != self.latest:
            if not 0 <= version <= self.latest:
                raise QueryError(f"Datapool {spec.name!r} has versions 0..{self.latest}, not {version}.")
            from lightly_airflow.datapool.reclaim import unreadable_version_error

            lost = unreadable_version_error(spec.uri, credentials, version, lost=self.lost())
            if lost is not None:
                raise QueryError(str(lost).replace(spec.uri, repr(spec.name)))
            self.table.load_as_version(version)
        self.version = self.latest if version is None else int(version)
        self.schema = pa.schema(self.table.schema().to_arrow())
        self.columns = [f.name for f in self.schema]
        self._history: list[dict[str, Any]] | None = None
        self._all_history: list[dict[str, Any]] | None = None

    def lost(self) -> list[dict[str, Any]]:
        """The version ranges vacuums made unreadable (``first``, ``last``, ``vacuum``, ...; see
        :func:`~lightly_airflow.datapool.reclaim.lost_ranges`): the newest ``_vacuum/`` record, read once per view."""
        if self._lost is None:
            from lightly_airflow.datapool.reclaim import lost_ranges, newest_record

            self._lost = lost_ranges(newest_record(self.spec.uri, self._credentials))
        return self._lost

    # -------------------------------------------------------------- history, tags, runs
    def datapool(self) -> Datapool:
        """The pool as a :class:`~lightly_airflow.datapool.Datapool`, with the credentials this view resolved."""
        from lightly_airflow.datapool import Datapool

        return Datapool(self.spec.uri, self._credentials)

    def all_history(self) -> list[dict[str, Any]]:
        """The pool's whole history, oldest first (read once per view; :meth:`history` cuts it at this version)."""
        if self._all_history is None:
            self._all_history = self.datapool().history()
        return self._all_history

    def history(self) -> list[dict[str, Any]]:
        """The pool's history up to this version, oldest first (entries as ``Datapool.history()``)."""
        if self._history is None:
            self._history = [e for e in self.all_history() if e["version"] <= self.version]
        return self._history

    def delta_lost(self) -> list[dict[str, Any]]:
        """The version ranges Delta's own VACUUMs (in the log, no ``_vacuum/`` record) may have made unreadable
        (:func:`~lightly_airflow.datapool.reclaim.delta_lost_ranges`), from the history the page reads anyway."""
        from lightly_airflow.datapool.reclaim import delta_lost_ranges, delta_vacuums

        return delta_lost_ranges(delta_vacuums(self.all_history()))

    def tags(self) -> list[dict[str, Any]]:
        """``initial-tag``, each run's tag and each hand-made tag as of this version: ``name, run_id, version,
        count, kind`` (``all``/``run``/``hand``)."""
        out: list[dict[str, Any]] = [{"name": C.INITIAL_TAG, "run_id": None, "version": self.version,
                                      "count": None, "kind": "all"}]
        for entry in self.history():
            if entry.get("run_id") and entry.get("tag"):
                out.append({"name": entry["tag"], "run_id": entry["run_id"], "version": entry["version"],
                            "count": entry.get("selected"), "kind": "run"})
        for tag in hand_made_tags(self.history()):
            out.append({**tag, "kind": "hand"})
        return out

    def runs(self) -> list[dict[str, Any]]:
        return [e for e in self.history() if e.get("run_id")]

    def run_version(self, run_id: str) -> int:
        for entry in self.history():
            if entry.get("run_id") == run_id:
                return int(entry["version"])
        raise QueryError(f"Run {run_id!r} has not committed to datapool {self.spec.name!r} (as of version {self.version}).")

    def datasource_of(self, commit_version: int | None) -> str | None:
        """The datasource root the run that committed ``commit_version`` recorded (``None``: it recorded none)."""
        from lightly_airflow.datapool.export import run_datasources

        return None if commit_version is None else run_datasources(self.history()).get(int(commit_version))

    # -------------------------------------------------------------- columns
    def kind(self, column: str) -> str | None:
        """``number``, ``category`` or ``None`` (not filterable) for a column of this version."""
        if column not in self.columns or column in HIDDEN:
            return None
        typ = self.schema.field(column).type
        if pa.types.is_integer(typ) or pa.types.is_floating(typ):
            return "number"
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_boolean(typ):
            return "category"
        return None

    def numeric_columns(self) -> list[str]:
        return [c for c in self.columns if self.kind(c) == "number"]

    def sortable(self) -> list[str]:
        first = [c for c in (C.PICK_RANK, C.KEY, COMMIT_VERSION) if c in self.columns]
        return first + [c for c in self.numeric_columns() if c not in first]

    # -------------------------------------------------------------- scope -> SQL
    def reprocessed(self) -> int:
        """How many rows of this version are older copies of a sample a later run processed again (e.g. a
        ``process_all`` backfill): :meth:`_whole`."""
        whole = self._whole()
        return whole["rows"] - whole["samples"]

    def _whole(self) -> dict[str, int]:
        """This version's ``rows``, distinct ``samples``, ``images`` (rows of :data:`SHOW_IMAGES`) and ``unviewable``
        images (:meth:`unviewable_count`): one query, cached per version (a commit records none of them). The
        grid of the whole version takes its counts from it where no sample was processed twice (:meth:`_counts`):
        a scan of every data file less on the page a pool opens on (an uncompacted pool of 800 files: ~0.3 s)."""
        def count() -> dict[str, int]:
            images = self.rows_of(SHOW_IMAGES)
            got = self.sql(
                f"SELECT COUNT(*) AS n, COUNT(DISTINCT {quote_ident(C.SAMPLE_ID)}) AS d, "
                f"SUM(CASE WHEN {images} THEN 1 ELSE 0 END) AS i, "
                f"SUM(CASE WHEN {images} AND {_unviewable_sql()} THEN 1 ELSE 0 END) AS u, "
                f"SUM(CASE WHEN {quote_ident(C.SELECTED)} THEN 1 ELSE 0 END) AS s FROM pool"
            ).to_pylist()[0]
            return {"rows": int(got["n"]), "samples": int(got["d"]), "images": int(got["i"] or 0),
                    "unviewable": int(got["u"] or 0), "selected": int(got["s"] or 0)}  # (SUM of no rows: null)

        return dict(_cached(_dupe_cache, (self.spec.uri, self.version), count))

    @property
    def has_objects(self) -> bool:
        """Whether this version can hold object rows (an object-level run committed to the pool)."""
        return C.PARENT_KEY in self.columns

    def rows_of(self, show: str) -> str:
        """The SQL condition of the rows ``show`` names: images (``parent_key IS NULL``) or objects."""
        if not self.has_objects:
            return "TRUE" if show == SHOW_IMAGES else "FALSE"
        return f"{quote_ident(C.PARENT_KEY)} IS {'' if show == SHOW_IMAGES else 'NOT '}NULL"

    def _whole_view(self, scope: Scope) -> bool:
        """Whether ``scope`` is a whole-version view of images (no tag, no run) whose rows' own ``selected`` is not
        ``initial-tag``: each sample once, its latest row (:meth:`where`), selected when the sample is in
        ``initial-tag`` (:meth:`selected_sql`). Where no sample has two rows and the version's commit recorded as
        many samples in ``initial-tag`` as there are selected rows, every selected row stands and the column says
        it: no join. Measured on benchmarks/ui.py's 100,000-sample pool (medians of 7, shared 2-core machine,
        2026-12-07): after a ``process_all`` run over every sample the first grid page takes 0.28 -> 0.34 s, the map
        0.21 -> 0.27 s, the ``selected=true`` count 0.05 -> 0.19 s; the pool of one run keeps its times."""
        from lightly_airflow.datapool.snapshot import INITIAL_TAG_COUNT

        if scope.tag or scope.run or scope.objects or C.TAGS not in self.columns:
            return False
        whole, entry = self._whole(), next((e for e in self.history() if e["version"] == self.version), {})
        return bool(whole["rows"] != whole["samples"] or entry.get(INITIAL_TAG_COUNT) != whole["selected"])

    def selected_sql(self, scope: Scope) -> str:
        """The SQL condition (of a ``WHERE``) that a row of ``scope`` shows as selected. A tag or a run scope shows
        the exact rows it names: their own ``selected``. The whole version shows each sample once, its latest row,
        and calls it selected when the sample is in ``initial-tag`` (``snapshot.initial_tag_sql``, the one owner of
        that rule): a later run that processed the same content again (``process_all``, new pixel rules) wrote a
        newer row with ``selected = false`` but leaves the selection standing, where the map, the grid and its
        ``selected`` filter said "not selected" of samples ``initial-tag`` and its count hold."""
        from lightly_airflow.datapool.snapshot import initial_tag_sql

        if not self._whole_view(scope):
            return quote_ident(C.SELECTED)
        tombstones = C.STATUS_REASON in self.columns
        if not self.reprocessed():  # (each sample has one row: the row itself)
            return f"({initial_tag_sql('pool', tombstones=tombstones)})"
        sid = quote_ident(C.SAMPLE_ID)
        return (f"EXISTS (SELECT 1 FROM pool s WHERE s.{sid} = pool.{sid} AND "
                f"{initial_tag_sql('s', tombstones=tombstones)})")

    def selected_join(self, scope: Scope) -> tuple[str, str]:
        """``(join, column)``: what a query of ``scope``'s rows adds after ``FROM pool`` and selects as whether a
        row shows as selected (:meth:`selected_sql`). DataFusion plans no ``EXISTS`` outside a ``WHERE``, so the
        whole version joins the sample ids of ``initial-tag`` in the same query (a query more was a read of the
        pool more on the grid's first page)."""
        from lightly_airflow.datapool.snapshot import initial_tag_sql

        if not self._whole_view(scope):
            return "", quote_ident(C.SELECTED)
        sid = quote_ident(C.SAMPLE_ID)
        chosen = initial_tag_sql("s", tombstones=C.STATUS_REASON in self.columns)
        return (f" LEFT JOIN (SELECT DISTINCT s.{sid} AS lightly_chosen FROM pool s WHERE {chosen}) lightly_selected"
                f" ON lightly_selected.lightly_chosen = pool.{sid}", "(lightly_selected.lightly_chosen IS NOT NULL)")

    def _repairs_objects(self) -> bool:
        """Whether an object row's ``object_selected`` may understate its image's selection here: object rows
        committed before 2026-12-07 (session 64) by a ``process_all`` run said false for the images it processed again
        but did not pick (kept, still in ``initial-tag``), and a later incremental run does not rewrite them. Such a
        row is a sample's second row, so a version without reprocessed samples (:meth:`reprocessed`, cached) keeps
        its plain column: no join, no query more. Measured on 10,000 images with 50,000 objects after a ``process_all``
        run (cold, medians of 3, twice, shared 2-core machine, 2026-12-07): the objects grid's first page 0.18-0.28 ->
        0.16-0.18 s (within the noise), its ``object_selected=true`` count 0.11-0.14 -> 0.21-0.25 s, the objects'
        facets 0.11-0.14 -> 0.15-0.22 s."""
        return (self.has_objects and C.OBJECT_SELECTED in self.columns and C.TAGS in self.columns
                and bool(self.reprocessed()))

    def _chosen_images(self, alias: str) -> str:
        """The ``initial-tag`` image rows of ``alias`` (``snapshot.initial_tag_sql``): the images whose objects show
        as selected, matched by the image's key and etag (an object row's ``parent_key`` and ``etag``: its image's
        sample, ``rows.sample_id``, as :meth:`selected_join` matches images)."""
        from lightly_airflow.datapool.snapshot import initial_tag_sql

        chosen = initial_tag_sql(alias, tombstones=C.STATUS_REASON in self.columns)
        return f"{alias}.{quote_ident(C.PARENT_KEY)} IS NULL AND {chosen}"

    def object_selected_sql(self) -> str:
        """The SQL condition (of a ``WHERE``) that an object row shows as selected: ``object_selected``, or its image
        is in ``initial-tag`` at this version (:meth:`_repairs_objects`). The grid's filter and counts, the facets
        and the object and image pages agree with the images grid, where such an image shows selected."""
        own = quote_ident(C.OBJECT_SELECTED)
        if not self._repairs_objects():
            return own
        k, e, pk = quote_ident(C.KEY), quote_ident(C.ETAG), quote_ident(C.PARENT_KEY)
        return (f"(COALESCE(pool.{own}, FALSE) OR EXISTS (SELECT 1 FROM pool s WHERE s.{k} = pool.{pk} AND "
                f"COALESCE(s.{e}, '') = COALESCE(pool.{e}, '') AND {self._chosen_images('s')}))")

    def object_selected_join(self) -> tuple[str, str]:
        """``(join, column)`` of :meth:`object_selected_sql` for a ``SELECT`` (DataFusion plans no ``EXISTS``
        outside a ``WHERE``, :meth:`selected_join`)."""
        own = quote_ident(C.OBJECT_SELECTED)
        if not self._repairs_objects():
            return "", own
        k, e, pk = quote_ident(C.KEY), quote_ident(C.ETAG), quote_ident(C.PARENT_KEY)
        return (f" LEFT JOIN (SELECT DISTINCT s.{k} AS lightly_image, COALESCE(s.{e}, '') AS lightly_image_etag "
                f"FROM pool s WHERE {self._chosen_images('s')}) lightly_images ON lightly_images.lightly_image = "
                f"pool.{pk} AND lightly_images.lightly_image_etag = COALESCE(pool.{e}, '')",
                f"(COALESCE(pool.{own}, FALSE) OR lightly_images.lightly_image IS NOT NULL)")

    def image_selected(self, key: str, etag: str | None) -> bool:
        """Whether the image ``key`` with content ``etag`` (an object row's ``parent_key`` and ``etag``) is in
        ``initial-tag`` at this version, where that can differ from its objects' ``object_selected``
        (:meth:`_repairs_objects`; else ``False``: the column says it)."""
        from lightly_airflow.datapool.rows import sample_id

        return self._repairs_objects() and self.in_initial_tag(sample_id(key, etag))

    def in_initial_tag(self, sample_id: str) -> bool:
        """Whether sample ``sample_id`` is in ``initial-tag`` at this version (:meth:`selected_sql`)."""
        this = f"{quote_ident(C.SAMPLE_ID)} = {quote_literal(sample_id)}"
        return bool(self.sql(f"SELECT 1 AS x FROM pool WHERE {this} AND {self.selected_sql(Scope())} LIMIT 1").num_rows)

    def where(self, scope: Scope) -> str:
        parts: list[str] = []
        if self.has_objects or scope.objects:
            parts.append(self.rows_of(scope.show))
        if not scope.tag and not scope.run and self.reprocessed():
            # Every sample once: its latest row (a tag or a run scope shows the exact rows it names).
            sid, cv = quote_ident(C.SAMPLE_ID), quote_ident(COMMIT_VERSION)
            parts.append(f"NOT EXISTS (SELECT 1 FROM pool q WHERE q.{sid} = pool.{sid} AND q.{cv} > pool.{cv})")
        if scope.tag:
            names = {t["name"]: t for t in self.tags()}
            if scope.tag not in names:
                raise LookupError(f"Datapool {self.spec.name!r} has no tag {scope.tag!r} at version {self.version}.")
            hand = names[scope.tag]["kind"] == "hand"
            tag_name: str = scope.tag

            from lightly_airflow.datapool.moves import has_moves, moved_away_sql

            def tagged(t: str) -> str:
                if tag_name == C.INITIAL_TAG:  # the selected rows no newer version of their file replaced
                    from lightly_airflow.datapool.snapshot import initial_tag_sql

                    return initial_tag_sql(t.rstrip(".") or "pool", tombstones=C.STATUS_REASON in self.columns)
                has = f"array_has({t}{quote_ident(C.TAGS)}, {quote_literal(tag_name)})"
                if has_moves(self.columns):  # (a moved file's new key carries the tags: its old rows leave them)
                    has += f" AND NOT {moved_away_sql(t.rstrip('.') or 'pool')}"
                # Run tags sit only on selected rows: the partition prunes every other file.
                return has if hand else f"{t}{quote_ident(C.SELECTED)} AND {has}"

            if scope.objects:  # objects carry no tags: the objects of the tag's images
                k, cv, pk = quote_ident(C.KEY), quote_ident(COMMIT_VERSION), quote_ident(C.PARENT_KEY)
                parts.append(f"EXISTS (SELECT 1 FROM pool t WHERE t.{k} = pool.{pk} AND t.{cv} = pool.{cv} "
                             f"AND {tagged('t.')})")
            else:
                parts.append(tagged(""))
        if scope.run:
            parts.append(f"{quote_ident(COMMIT_VERSION)} = {self.run_version(scope.run)}")
        f = scope.filters
        for bounds, op in ((f.lo, ">="), (f.hi, "<=")):
            for col, value in bounds.items():
                if self.kind(col) != "number":
                    raise QueryError(f"Cannot filter on {col!r}: not a numeric column of this datapool version.")
                parts.append(f"{quote_ident(col)} {op} {float(value)!r}")
        for col, values in f.values.items():
            kind = self.kind(col)
            if kind is None:
                raise QueryError(f"Cannot filter on {col!r}: not a column of this datapool version.")
            if len(values) > IN_LIST_MAX:  # (a longer SQL IN list crashes DataFusion: the server's process)
                raise QueryError(f"Cannot filter on {col!r} by {len(values)} values: at most {IN_LIST_MAX}.")
            typ = self.schema.field(col).type
            # The panel's "(none)" (a facet's null values, :func:`_text`) is the column's nulls: ticking it matched
            # the text "(none)", 0 rows.
            conds = [f"{quote_ident(col)} IS NULL"] if NONE in values else []
            values = [v for v in values if v != NONE]
            if not values:
                pass
            elif pa.types.is_boolean(typ):
                wanted = {v.lower() for v in values}
                bad = wanted - {"true", "false"}
                if bad:
                    raise QueryError(f"{col!r} is true or false, not {sorted(bad)}.")
                expr = (self.selected_sql(scope) if col == C.SELECTED else self.object_selected_sql()
                        if col == C.OBJECT_SELECTED else quote_ident(col))
                conds.extend(expr if v == "true" else f"NOT {expr}" for v in sorted(wanted))
            elif kind == "number":
                try:
                    nums = [float(v) for v in values]
                except ValueError:
                    raise QueryError(f"{col!r} is numeric; values {values!r} are not numbers.") from None
                conds.append(f"{quote_ident(col)} IN ({', '.join(repr(n) for n in nums)})")
            else:
                conds.append(in_list(col, list(values)))
            parts.append(" OR ".join(conds).join("()"))
        return ("WHERE " + " AND ".join(f"({p})" for p in parts)) if parts else ""

    def sql(self, text: str) -> pa.Table:
        from lightly_airflow.datapool.errors import MissingDataFileError

        try:
            return query(self.table, text)
        except MissingDataFileError as exc:  # a VACUUM outside lightly-airflow deleted a file this version reads
            raise self._missing(exc) from None

    def sql_batches(self, text: str) -> Iterator[pa.Table]:
        """:meth:`sql`'s rows batch by batch as they stream back (``reading.query_batches``)."""
        from lightly_airflow.datapool.errors import MissingDataFileError

        try:
            yield from query_batches(self.table, text)
        except MissingDataFileError as exc:
            raise self._missing(exc) from None

    def _missing(self, exc: MissingDataFileError) -> QueryError:
        """A data file this version reads is gone (a VACUUM outside lightly-airflow deleted it): what to say."""
        from lightly_airflow.datapool.reclaim import missing_file_error

        error = missing_file_error(self.spec.uri, exc, self.latest, self.all_history())
        return QueryError(str(error).replace(self.spec.uri, repr(self.spec.name)))

    def count(self, scope: Scope) -> int:
        return self._counts(scope)[0]

    def unviewable_count(self, scope: Scope) -> int:
        """How many of the scope's images a browser cannot show (:data:`~lightly_airflow.datapool.export.
        UNVIEWABLE_IMAGES`: iPhone HEIC, TIFF; video frames are exported as PNG): a labelling tool in the browser
        shows an export of them blank, and the grid says so beside its export links."""
        return 0 if scope.objects else self._counts(scope)[1]

    def _counts(self, scope: Scope) -> tuple[int, int]:
        """The scope's rows and its :meth:`unviewable_count`: one query (a scan of every data file where the scope
        has a condition), cached per version and scope (the grid reads both, its next pages them again); none for
        the whole version where no sample was processed twice (:meth:`_whole` counted it)."""
        unviewable = "0" if scope.objects else f"SUM(CASE WHEN {_unviewable_sql()} THEN 1 ELSE 0 END)"
        text = f"SELECT COUNT(*) AS n, {unviewable} AS u FROM pool {self.where(scope)}"

        def counts() -> tuple[int, int]:
            if not scope.tag and not scope.run and scope.filters.empty():
                whole = self._whole()
                if whole["rows"] == whole["samples"]:  # (else the scope is each sample's latest row: counted below)
                    if scope.objects:
                        return whole["rows"] - whole["images"], 0
                    return whole["images"], whole["unviewable"]
            got = self.sql(text).to_pylist()[0]
            return int(got["n"]), int(got["u"] or 0)  # (SUM of no rows: null)

        key = (self.spec.uri, self.version, tuple(scope.to_params(with_version=False)))
        return tuple(_cached(_count_cache, key, counts))

    # -------------------------------------------------------------- grid
    def similarity(self, sample_id: str) -> tuple[str, str]:
        """The SQL distance of each row's embedding to sample ``sample_id``'s (its latest row in this version that
        has one) and that sample's key: for :data:`SIMILAR` sorts.

        :raises QueryError: the version has no embeddings, or the sample none (a corrupt file: never embedded)."""
        if C.EMBEDDING not in self.columns:
            raise QueryError("This datapool version has no embeddings to compare samples by.")
        emb = quote_ident(C.EMBEDDING)
        rows = self.sql(
            f"SELECT {quote_ident(C.KEY)} AS k, {emb} AS e FROM pool WHERE {quote_ident(C.SAMPLE_ID)} = "
            f"{quote_literal(sample_id)} AND {emb} IS NOT NULL ORDER BY {quote_ident(COMMIT_VERSION)} DESC LIMIT 1"
        ).to_pylist()
        if not rows:
            raise QueryError(f"Sample {sample_id!r} has no embedding in version {self.version} (corrupt or missing "
                             "files are not embedded), so there is nothing to compare with.")
        vector = np.asarray(rows[0]["e"], dtype=np.float64)
        if not len(vector) or not np.isfinite(vector).all():
            raise QueryError(f"Sample {sample_id!r} has an empty or non-finite embedding.")
        literal = ", ".join(repr(float(v)) for v in vector)  # (numbers only: repr of floats)
        return f"array_distance({emb}, make_array({literal}))", str(rows[0]["k"])

    def grid(self, scope: Scope, *, sort: str | None, descending: bool, offset: int, limit: int) -> dict[str, Any]:
        """One page of the scope: ``{total, sort, descending, items: [{sample_id, key, pick_rank, selected, status,
        commit_version, value}]}`` in the sort order (nulls last, then sample id). A :data:`SIMILAR` sort orders by
        the distance to that sample's embedding (``value``; rows without one last) and adds ``similar_key``. A run's
        rows in pick order (``run``) are in the pool's order: the picks its moves carried in first (``moved_from``:
        their ranks are an earlier run's), then its own."""
        from lightly_airflow.datapool.moves import MOVED_FROM

        by_rank = (scope.tag or scope.run) and C.PICK_RANK in self.columns and not scope.objects
        sort = sort or (C.PICK_RANK if by_rank else C.KEY)
        extra: dict[str, Any] = {}
        similar = sort.startswith(SIMILAR)
        if similar:  # (a computed sort value, in the same query as a column's)
            value, extra["similar_key"] = _cached(_similar_cache, (self.spec.uri, self.version, sort),
                                                  lambda: self.similarity(sort[len(SIMILAR):]), BLOCKS_KEPT)
        elif sort in self.sortable():
            value = quote_ident(sort)
        else:
            raise QueryError(f"Cannot sort by {sort!r}; sortable columns: {self.sortable()} or "
                             f"{SIMILAR}<sample id>.")
        shown: tuple[str, ...] = (C.SAMPLE_ID, C.KEY, C.PICK_RANK, C.SELECTED, C.STATUS, COMMIT_VERSION, MOVED_FROM,
                                  C.VIDEO, C.FRAME_INDEX)  # (a frame's card names its video and frame number)
        if scope.objects:
            shown = (C.SAMPLE_ID, C.KEY, C.STATUS, COMMIT_VERSION, C.PARENT_KEY, C.OBJECT_TASK, C.OBJECT_INDEX,
                     C.OBJECT_CATEGORY, C.OBJECT_SCORE, C.OBJECT_SELECTED)
        wanted = [c for c in shown if c in self.columns]
        direction = "DESC" if descending else "ASC"
        join, chosen = self.selected_join(scope)
        if scope.objects:  # (an object row's ``object_selected`` as the grid shows it: :meth:`object_selected_sql`)
            join, chosen = self.object_selected_join()
        shows = C.OBJECT_SELECTED if scope.objects else C.SELECTED
        columns = [f"{chosen} AS {quote_ident(c)}" if c == shows else quote_ident(c) for c in wanted]

        order = f"lightly_sort_value {direction} NULLS LAST"
        if sort == C.PICK_RANK and (scope.tag == C.INITIAL_TAG or scope.run) and not scope.objects:
            # (a run's rows: the picks its moves carried in hold an earlier run's ranks, which tied with the run's
            # own; the pool's order puts them first, as initial-tag has them. Its rows not picked come after the
            # picks in either direction, as by rank alone: a moved file never picked is no moved pick)
            order = self._pick_order(direction)
            if scope.run:
                order = f"{quote_ident(C.PICK_RANK)} IS NULL, {order}"

        def ordered(skip: int, take: int) -> list[dict[str, Any]]:
            table = self.sql(
                f"SELECT {', '.join(columns)}, {value} AS lightly_sort_value FROM pool{join} "
                f"{self.where(scope)} ORDER BY {order}, {quote_ident(C.SAMPLE_ID)} "
                f"LIMIT {int(take)} OFFSET {int(skip)}"
            )
            found: list[dict[str, Any]] = table.to_pylist()
            return found

        # whole blocks of rows, kept per version, scope and order (a version's rows never change): its next pages and
        # the sample pages stepping through it read them, not every data file again
        size = SIMILAR_BLOCK if similar else max(GRID_BLOCK, limit)
        first, last = offset // size, (offset + limit - 1) // size
        where = tuple(scope.to_params(with_version=False))
        rows = []
        for block in range(first, last + 1):
            got = _cached(_similar_cache if similar else _grid_cache,
                          (self.spec.uri, self.version, where, sort, direction, size, block),
                          lambda block=block: ordered(block * size, size), BLOCKS_KEPT)
            rows += got
            if len(got) < size:  # the ordering's end
                break
        rows = rows[offset - first * size:][:limit]
        total = self.count(scope)
        items = [{**{c: r.get(c) for c in wanted}, "value": r.get("lightly_sort_value")} for r in rows]
        if scope.objects:  # whether each object's image is a video frame (object rows do not say: their parent does)
            frames = self.frames_of_parents(items)
            for item in items:
                item["parent_frame"] = frames.get((item.get(C.PARENT_KEY), item.get(COMMIT_VERSION)))
        return {"total": total, "sort": sort, "descending": descending, "offset": offset, "limit": limit, "items": items,
                **extra}

    def _pick_order(self, direction: str) -> str:
        """``initial-tag`` in the pool's own pick order (``datapool.snapshot.pick_order_terms``: by version, moved picks first,
        then rank, then key), each part in ``direction``. Its picks have every run's ranks: by rank alone the runs
        were interleaved (every run's first pick first). A 50,000-row pool (5 runs, a move): its first page cold
        0.05-0.08 s by either order, its last 0.03 s (0.02 by rank)."""
        from lightly_airflow.datapool.snapshot import pick_order_terms

        return ", ".join(f"{part} {direction} NULLS LAST" for part in pick_order_terms(self.columns))

    def walk(self, scope: Scope, sample_id: str, *, sort: str | None, descending: bool, at: int) -> Walk | None:
        """Sample ``sample_id`` as the ``at``-th row of :meth:`grid` (same scope and sort) with its neighbours
        there: one grid query of up to 3 rows. ``None`` when that grid holds another row at ``at`` (a link edited
        by hand, or of the latest version without ``version``, after a newer commit)."""
        lo = max(at - 1, 0)
        page = self.grid(scope, sort=sort, descending=descending, offset=lo, limit=at - lo + 2)
        ids = [item.get(C.SAMPLE_ID) for item in page["items"]]
        here = at - lo
        if here >= len(ids) or ids[here] != sample_id:
            return None
        return Walk(at=at, total=int(page["total"]), sort=str(page["sort"]), descending=descending,
                    before=ids[here - 1] if here else None, after=ids[here + 1] if here + 1 < len(ids) else None)

    # -------------------------------------------------------------- facets
    def facets(self, show: str = SHOW_IMAGES) -> dict[str, Any]:
        """Per filterable column of this version's images (or objects, ``show``): numbers ``{kind, min, max,
        nulls}``, categories ``{kind, values: [[value, count], ...]}`` (at most :data:`MAX_CATEGORIES` values;
        more: not a category). A column without any value among those rows is left out."""
        return dict(_cached(_facet_cache, (self.spec.uri, self.version, show), lambda: self._facets(show)))

    def _facets(self, show: str) -> dict[str, Any]:
        """The rows counted are the rows the grid of the whole version shows (:meth:`where`): each sample once, its
        latest row, and ``selected`` as the grid shows it (:meth:`selected_join`, in ``initial-tag``), in the same
        scan. Before, every row of every version was counted: after a ``process_all`` run over the same 20 digits
        (tests/plugins/test_whole_version_facets.py) ``status`` said 40 of 20 samples, ``run_id`` both runs' 20
        and ``selected`` false 34 where the grid's ``selected=false`` finds 14; benchmarks/ui.py's 100,000-sample
        pool after a ``process_all`` run: ``selected`` false 190,000 of 100,000 samples. That scan (once per
        version, cached) took 0.12 -> 0.19 s there (medians of 5, shared 2-core machine, 2026-12-07); a pool
        without reprocessed samples keeps its plain scan (no anti-join, no join). It asks :meth:`_whole` whether a
        sample has two rows: the page's first query, cached; a cold facets API call alone runs it first."""
        out: dict[str, Any] = {}
        scope = Scope(show=show)
        join, chosen = self.selected_join(scope)
        objects_join, objects_chosen = self.object_selected_join() if show == SHOW_OBJECTS else ("", "")
        rows = f"{join}{objects_join} {self.where(scope)}"
        numeric = [c for c in self.numeric_columns() if show == SHOW_OBJECTS or not c.startswith("object_")]
        skip = {C.KEY, C.SAMPLE_ID, C.ETAG, C.CONTENT_HASH, C.DUPLICATE_OF, C.PARENT_KEY}
        if show == SHOW_OBJECTS:
            skip.add(C.SELECTED)  # object rows are never selected themselves: object_selected says it
        categories = [c for c in self.columns if self.kind(c) == "category" and c not in skip]
        if not numeric and not categories:
            return out
        guessed = self._logged_bounds(numeric)
        total, extremes, bins, counted = self._scan(numeric, guessed, categories, rows,
                                                    {C.SELECTED: chosen, C.OBJECT_SELECTED: objects_chosen})
        for c in numeric:
            mn, mx, n = extremes[c]
            if mn is None or (isinstance(mn, float) and not math.isfinite(mn)):
                continue
            out[c] = {"kind": "number", "min": mn, "max": mx, "nulls": total - n}
        finite = {c: (float(f["min"]), float(f["max"])) for c, f in out.items()
                  if all(isinstance(f[k], (int, float)) and math.isfinite(f[k]) for k in ("min", "max"))}
        ranged = {c: bounds for c, bounds in finite.items() if bounds[1] > bounds[0]}  # (as floats: bins' width > 0)
        wrong = {c: bounds for c, bounds in ranged.items() if guessed.get(c) != bounds}
        if wrong:  # (binned again between the bounds the scan found: a second scan, of these columns only)
            log.info("Facets of datapool %r version %d: %d of %d columns' bounds are not in the Delta log's file "
                     "statistics (columns past the first 32 a commit keeps statistics of, or widened by rows of "
                     "another kind): binned in a second scan.", self.spec.name, self.version, len(wrong), len(ranged))
            bins.update(self._scan(list(wrong), wrong, [], rows)[2])
        for c in ranged:
            out[c]["bins"] = [int(n) for n in bins[c]]
        for c, counts in counted.items():
            if all(v is None for v in counts):
                continue  # a column of the other kind of rows (object columns on images, scores on objects)
            ordered = sorted(counts.items(), key=lambda vn: (-vn[1], _text(vn[0])))  # (ties: by value)
            out[c] = {"kind": "category", "values": [[_text(v), n] for v, n in ordered]}
        return out

    def _logged_bounds(self, columns: list[str]) -> dict[str, tuple[float, float]]:
        """The least and greatest value of each of ``columns`` the Delta log's per-file statistics record (written
        by each commit; none for a column past the table's first 32, ``delta.dataSkippingNumIndexedCols``): the
        bounds the facets' scan bins between, which it checks. Of every row, not only those of a scope's kind."""
        try:
            files = pa.RecordBatchReader.from_stream(self.table.get_add_actions(flatten=True)).read_all()
        except Exception as exc:  # noqa: BLE001 - only a shortcut: every column is binned in a second scan
            log.warning("Facets of %s version %d: the Delta log's file statistics were not read (%s): the histograms "
                        "take a second scan.", self.spec.name, self.version, exc)
            return {}
        out: dict[str, tuple[float, float]] = {}
        for c in columns:
            if f"min.{c}" in files.column_names and f"max.{c}" in files.column_names:
                lo, hi = pc.min(files.column(f"min.{c}")).as_py(), pc.max(files.column(f"max.{c}")).as_py()
                if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo) \
                        and math.isfinite(hi):
                    out[c] = (float(lo), float(hi))
        return out

    def _scan(self, numeric: list[str], bounds: Mapping[str, tuple[float, float]], categories: list[str], rows: str,
              shown: Mapping[str, str] | None = None,
              ) -> tuple[int, dict[str, list[Any]], dict[str, np.ndarray], dict[str, dict[Any, int]]]:
        """One scan of ``numeric`` and ``categories`` columns of ``rows`` (what follows ``FROM pool``; a category
        ``shown`` names is read as its SQL expression there, :meth:`selected_join`), reduced block by block as the rows stream
        back: the rows; each numeric column's ``[min, max, values]`` as SQL's ``MIN``, ``MAX`` and ``COUNT`` give
        them (:func:`_extremes`); :data:`HISTOGRAM_BINS` counts of equal width from ``bounds``' low to high value
        (the last bin holds the high one; bin ``floor((value - low) / width)``, nulls and NaN in none) of each
        column ``bounds`` names; the counts by value of each category column with at most :data:`MAX_CATEGORIES`
        values (one with more is left out: not a category).

        One scan, not one per column: a ``UNION ALL`` of a ``SELECT`` per column scanned the table once per
        column, and its time and memory grew faster than the columns (a 20,000-image pool with 250 / 1,000
        category-count columns: 2 s, 0.9 GB / 11 s, 3.1 GB for the histograms alone, 2026-12-06); a ``GROUP BY``
        per category column scanned every data file once each (a pool of 800 small files: 0.3 s a column); the
        bounds from a ``MIN``/``MAX`` query first: a scan more (0.24 s there)."""
        total = 0
        extremes: dict[str, list[Any]] = {c: [None, None, 0] for c in numeric}
        binned = {c: bounds[c] for c in numeric if c in bounds and bounds[c][1] > bounds[c][0]}
        counts = {c: np.zeros(HISTOGRAM_BINS, dtype=np.int64) for c in binned}
        counted: dict[str, dict[Any, int]] = {c: {} for c in categories}

        def add(tables: list[pa.Table]) -> None:
            nonlocal total
            batch = pa.concat_tables(tables)
            total += batch.num_rows
            for i, c in enumerate(numeric):
                column = batch.column(i)
                v = pc.fill_null(pc.cast(column, pa.float64(), safe=False), np.nan).to_numpy()
                missing = np.isnan(v)
                v = v[~missing]  # (nulls and NaN in no bin)
                extremes[c] = _merge_extremes(extremes[c], column, v, int(missing.sum()) > column.null_count)
                if c in binned and len(v):
                    low, high = binned[c]
                    b = np.clip(np.floor((v - low) / ((high - low) / HISTOGRAM_BINS)), 0, HISTOGRAM_BINS - 1)
                    counts[c] += np.bincount(b.astype(np.int64), minlength=HISTOGRAM_BINS)
            for j, c in enumerate(categories):
                seen = counted.get(c)
                if seen is None:  # (more values than a category has)
                    continue
                column = batch.column(len(numeric) + j)
                if column.null_count:
                    seen[None] = seen.get(None, 0) + column.null_count
                for got in pc.value_counts(column.drop_null()).to_pylist():  # (string_view: nulls dropped first)
                    seen[got["values"]] = seen.get(got["values"], 0) + got["counts"]
                if len(seen) > MAX_CATEGORIES:
                    del counted[c]

        values = [f"{quote_ident(c)} AS h{i}" for i, c in enumerate(numeric)]
        values += [f"{(shown or {}).get(c) or quote_ident(c)} AS c{j}" for j, c in enumerate(categories)]
        pending: list[pa.Table] = []
        held = 0
        for batch in self.sql_batches(f"SELECT {', '.join(values)} FROM pool {rows}"):
            pending.append(batch)  # (binned in blocks: a pool of many small files streams many tiny batches)
            held += batch.nbytes  # (bytes, not values: a category column's strings may be long)
            if held >= HISTOGRAM_BLOCK_VALUES * 8:
                add(pending)
                pending, held = [], 0
        if pending:
            add(pending)
        return total, extremes, counts, counted

    # -------------------------------------------------------------- one sample
    def sample(self, sample_id: str) -> list[dict[str, Any]]:
        """Every row of the sample in this version (one per run that processed this content), newest first;
        the embedding as its dimension and norm."""
        cols = [c for c in self.columns if c != C.EMBEDDING]
        rows: list[dict[str, Any]] = self.sql(
            f"SELECT {', '.join(quote_ident(c) for c in cols)}"
            + (f", {quote_ident(C.EMBEDDING)}" if C.EMBEDDING in self.columns else "")
            + f" FROM pool WHERE {quote_ident(C.SAMPLE_ID)} = {quote_literal(sample_id)} "
            f"ORDER BY {quote_ident(COMMIT_VERSION)} DESC"
        ).to_pylist()
        for r in rows:
            if r.get(C.PARENT_KEY) is not None and r.get(C.OBJECT_SELECTED) is False:  # as the grid shows it
                r[C.OBJECT_SELECTED] = self.image_selected(str(r[C.PARENT_KEY]), r.get(C.ETAG))
            if C.EMBEDDING not in r:
                continue
            emb = r.pop(C.EMBEDDING)
            # (None kept: a corrupt file's page lists its missing embedding, "—", beside its reason; popped, the
            # row was gone from its page)
            r["embedding"] = None if emb is None else (
                f"{len(emb)} dimensions, norm {float(np.linalg.norm(np.asarray(emb, dtype=np.float64))):.4f}")
        return rows

    def objects_of(self, row: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The object rows of an image row: those the same run committed with it (``parent_key`` = its key),
        by task and index; no embeddings."""
        if not self.has_objects or row.get(C.PARENT_KEY) is not None or row.get(COMMIT_VERSION) is None:
            return []
        cols = [c for c in self.columns if c not in (C.EMBEDDING, C.TAGS, C.LAYOUT_X, C.LAYOUT_Y)]
        rows: list[dict[str, Any]] = self.sql(
            f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM pool "
            f"WHERE {quote_ident(C.PARENT_KEY)} = {quote_literal(str(row.get(C.KEY)))} "
            f"AND {quote_ident(COMMIT_VERSION)} = {int(row[COMMIT_VERSION])} "
            f"ORDER BY {quote_ident(C.OBJECT_TASK)}, {quote_ident(C.OBJECT_INDEX)}"
        ).to_pylist()
        if any(r.get(C.OBJECT_SELECTED) is False for r in rows) and self.image_selected(str(row.get(C.KEY)),
                                                                                       row.get(C.ETAG)):
            for r in rows:  # (its image is in ``initial-tag``: every object of it shows selected, :meth:`sample`)
                r[C.OBJECT_SELECTED] = True
        return rows

    def tasks(self) -> tuple[str, ...]:
        """The version's object tasks, by name (one scan of the object rows' task column, kept per version):
        the ``among`` of ``colours.task_colours``, so a task has one box colour on every page of the version."""
        if not self.has_objects or C.OBJECT_TASK not in self.columns:
            return ()

        def scan() -> tuple[str, ...]:
            got = self.sql(f"SELECT DISTINCT {quote_ident(C.OBJECT_TASK)} AS t FROM pool WHERE "
                           f"{quote_ident(C.PARENT_KEY)} IS NOT NULL AND {quote_ident(C.OBJECT_TASK)} IS NOT NULL")
            return tuple(sorted(str(t) for t in got.column("t").to_pylist()))

        return tuple(_cached(_task_cache, (self.spec.uri, self.version), scan))

    def frames_of_parents(self, objects: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, Any], dict[str, Any]]:
        """The parents of ``objects`` (object rows) that are video frames: ``{video, frame_index}`` by
        ``(parent_key, commit_version)``; one query for a grid page, none in a pool without video frames."""
        if C.VIDEO not in self.columns or C.FRAME_INDEX not in self.columns:
            return {}
        wanted: set[tuple[Any, int]] = {(o.get(C.PARENT_KEY), int(o[COMMIT_VERSION])) for o in objects
                                         if o.get(C.PARENT_KEY) is not None and o.get(COMMIT_VERSION) is not None}
        if not wanted:
            return {}
        keys = ", ".join(sorted(quote_literal(str(k)) for k in {k for k, _ in wanted}))
        versions = ", ".join(str(v) for v in sorted({v for _, v in wanted}))
        got = self.sql(
            f"SELECT {quote_ident(C.KEY)} AS k, {quote_ident(COMMIT_VERSION)} AS v, {quote_ident(C.VIDEO)} AS video, "
            f"{quote_ident(C.FRAME_INDEX)} AS frame_index FROM pool WHERE {quote_ident(C.KEY)} IN ({keys}) AND "
            f"{quote_ident(COMMIT_VERSION)} IN ({versions}) AND {quote_ident(C.PARENT_KEY)} IS NULL AND "
            f"{quote_ident(C.VIDEO)} IS NOT NULL AND {quote_ident(C.FRAME_INDEX)} IS NOT NULL"
        ).to_pylist()
        return {(r["k"], r["v"]): {C.VIDEO: r["video"], C.FRAME_INDEX: r["frame_index"]} for r in got
                if (r["k"], r["v"]) in wanted}

    def parent_of(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The image row of an object row (same key as its ``parent_key``, committed by the same run)."""
        parent = row.get(C.PARENT_KEY)
        if parent is None or row.get(COMMIT_VERSION) is None:
            return None
        frame = (C.ETAG, *C.VIDEO_COLUMNS, C.lightly_metadata_column("width"), C.lightly_metadata_column("height"))
        cols = [c for c in (C.SAMPLE_ID, C.KEY, C.PICK_RANK, C.SELECTED, C.RUN_ID, COMMIT_VERSION, *frame)
                if c in self.columns]  # (a video frame's picture is decoded from its video: ``media.read_frame``)
        cols += [c for c in self.columns if c.startswith(C.SELECTION_PREFIX)]  # the image's per-pick values
        got = self.sql(
            f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM pool WHERE {quote_ident(C.KEY)} = "
            f"{quote_literal(str(parent))} AND {quote_ident(COMMIT_VERSION)} = {int(row[COMMIT_VERSION])} "
            f"AND {quote_ident(C.PARENT_KEY)} IS NULL"
        ).to_pylist()
        return got[0] if got else None

    def original_pick(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row of the run that picked a moved file's sample (``None`` for a row no move made): a move writes
        the gone key's rank in the version of the run that moved it (``datapool.moves``), so that row names the
        mover, not the picker. Found through ``moved_from``: the gone key's selected row of the same etag, the
        newest before the move, followed along a chain (``a -> b -> c``) for up to :data:`MOVE_CHAIN_MAX` moves,
        one small query each."""
        from lightly_airflow.datapool.moves import MOVED_FROM

        if row.get(C.PICK_RANK) is None or not row.get(MOVED_FROM) or MOVED_FROM not in self.columns:
            return None
        cols = ", ".join(quote_ident(c) for c in (C.SAMPLE_ID, C.KEY, C.RUN_ID, C.PICK_RANK, C.ETAG, COMMIT_VERSION,
                                                  MOVED_FROM))
        image = f" AND {quote_ident(C.PARENT_KEY)} IS NULL" if C.PARENT_KEY in self.columns else ""
        found: dict[str, Any] | None = None
        here: Mapping[str, Any] = row
        for _ in range(MOVE_CHAIN_MAX):
            if not here.get(MOVED_FROM) or here.get(C.ETAG) is None or here.get(COMMIT_VERSION) is None:
                break
            got = self.sql(
                f"SELECT {cols} FROM pool WHERE {quote_ident(C.KEY)} = {quote_literal(str(here[MOVED_FROM]))} AND "
                f"{quote_ident(C.ETAG)} = {quote_literal(str(here[C.ETAG]))} AND {quote_ident(C.SELECTED)} AND "
                f"{quote_ident(C.PICK_RANK)} IS NOT NULL AND {quote_ident(COMMIT_VERSION)} < {int(here[COMMIT_VERSION])}{image} "
                f"ORDER BY {quote_ident(COMMIT_VERSION)} DESC LIMIT 1"
            ).to_pylist()
            if not got:
                break
            found = here = got[0]
        return found

    def neighbours_in_pick_order(self, row: Mapping[str, Any], picked: Mapping[str, Any] | None = None
                                 ) -> dict[str, Any]:
        """The samples its run picked just before and after it (for "why was it picked"): of a moved file's row,
        those of the run that picked it (:meth:`original_pick`). A moved row's rank is of an earlier run: it is
        no neighbour of the moving run's own picks. ``picked``: :meth:`original_pick` of ``row`` when the caller
        has it (the sample page: one lookup, not two)."""
        from lightly_airflow.datapool.moves import MOVED_FROM

        picked = picked or self.original_pick(row) or row
        rank, version = picked.get(C.PICK_RANK), picked.get(COMMIT_VERSION)
        if rank is None or version is None:
            return {}
        own = f" AND {quote_ident(MOVED_FROM)} IS NULL" if MOVED_FROM in self.columns else ""
        frame = [c for c in (C.VIDEO, C.FRAME_INDEX) if c in self.columns]  # (a frame's link names its video)
        cols = ", ".join(quote_ident(c) for c in (C.SAMPLE_ID, C.KEY, C.PICK_RANK, C.ETAG, COMMIT_VERSION, *frame))
        got = self.sql(
            f"SELECT {cols} FROM pool WHERE {quote_ident(COMMIT_VERSION)} = {int(version)} AND "
            f"{quote_ident(C.PICK_RANK)} IN ({int(rank) - 1}, {int(rank) + 1}){own}"
        ).to_pylist()
        return {("before" if r[C.PICK_RANK] < rank else "after"): self.moved_on(r) for r in got}

    def moved_on(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row``'s sample where it is now: the row of the key a later move handed it to (``moved_from`` naming
        ``row``'s key, its etag), followed along a chain for up to :data:`MOVE_CHAIN_MAX` moves at this version;
        ``row`` itself when no move took it over. A pick's neighbour moved by a later run was linked by its gone
        key (a page of the file that is no longer there); the link names the current key, with ``moved_from``."""
        from lightly_airflow.datapool.moves import MOVED_FROM

        if MOVED_FROM not in self.columns:
            return row
        frame = [c for c in (C.VIDEO, C.FRAME_INDEX) if c in self.columns]
        cols = ", ".join(quote_ident(c) for c in (C.SAMPLE_ID, C.KEY, C.PICK_RANK, C.ETAG, COMMIT_VERSION, MOVED_FROM,
                                                  *frame))
        here = row
        for _ in range(MOVE_CHAIN_MAX):
            if here.get(C.ETAG) is None or here.get(COMMIT_VERSION) is None:
                break
            got = self.sql(
                f"SELECT {cols} FROM pool WHERE {quote_ident(MOVED_FROM)} = {quote_literal(str(here[C.KEY]))} AND "
                f"{quote_ident(C.ETAG)} = {quote_literal(str(here[C.ETAG]))} AND "
                f"{quote_ident(COMMIT_VERSION)} > {int(here[COMMIT_VERSION])} "
                f"ORDER BY {quote_ident(COMMIT_VERSION)} LIMIT 1"
            ).to_pylist()
            if not got:
                break
            here = got[0]
        return here

    # -------------------------------------------------------------- map
    def map(self, scope: Scope, *, color: str | None, max_points: int = MAP_POINTS) -> dict[str, Any]:
        """The embedding map of the scope, small enough for the browser at any pool size.

        Every point of the scope is binned into a :data:`MAP_BINS` grid (the density layer); at most
        ``max_points`` of them are sent as points, chosen by their sample id (a hash: a uniform, deterministic
        sample that is the same in every version), each with its colour value.
        """
        if C.LAYOUT_X not in self.columns:
            return {"total": 0, "shown": 0, "points": None, "reason": "no stored map layout in this version "
                    "(the runs that committed it predate the map, or their embeddings were missing)"}
        where = self.where(scope)
        has_xy = f"{quote_ident(C.LAYOUT_X)} IS NOT NULL"
        where = f"{where} AND {has_xy}" if where else f"WHERE {has_xy}"
        xy = self.sql(f"SELECT {quote_ident(C.LAYOUT_X)} AS x, {quote_ident(C.LAYOUT_Y)} AS y FROM pool {where}")
        total = xy.num_rows
        if total == 0:
            return {"total": 0, "shown": 0, "points": None, "reason": "no sample of this scope has a map position"}
        x = xy.column("x").to_numpy(zero_copy_only=False).astype(np.float64)
        y = xy.column("y").to_numpy(zero_copy_only=False).astype(np.float64)
        x0, x1, y0, y1 = float(x.min()), float(x.max()), float(y.min()), float(y.max())
        pad_x, pad_y = (x1 - x0) * 0.02 or 1.0, (y1 - y0) * 0.02 or 1.0
        bounds = [x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y]
        density = grid_counts(x, y, bounds, MAP_BINS)
        join, chosen = self.selected_join(scope) if not color or color == "selected" else ("", "")
        color_expr, legend_kind = self._color_expr(color, chosen)
        fraction = min(1.0, max_points / total)
        sample_where = where
        if fraction < 1.0:
            # sample ids are hex digests: those below a threshold are a uniform sample of the given size.
            threshold = f"{int(fraction * 16**8):08x}"
            sample_where = f"{where} AND {quote_ident(C.SAMPLE_ID)} < {quote_literal(threshold)}"
        pts = self.sql(
            f"SELECT {quote_ident(C.SAMPLE_ID)} AS id, {quote_ident(C.KEY)} AS k, {quote_ident(C.LAYOUT_X)} AS x, "
            f"{quote_ident(C.LAYOUT_Y)} AS y, {color_expr} AS c FROM pool{join} {sample_where} ORDER BY {quote_ident(C.SAMPLE_ID)} LIMIT {int(max_points)}"
        )
        legend: list[Any]
        groups: list[int] = []
        if legend_kind == "number":
            v = pc.fill_null(pc.cast(pts.column("c"), pa.float64()), math.nan).to_numpy(zero_copy_only=False)
            finite = np.isfinite(v)
            lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (0.0, 1.0)
            span = (hi - lo) or 1.0
            codes = np.where(finite, np.rint((np.nan_to_num(v) - lo) / span * 255), -1).astype(np.int64).tolist()
            legend = [lo, hi]
            # (each point's own value for the hover caption, 6 significant digits; null: no value)
            values: list[Any] | None = [float(f"{x:.6g}") if ok else None for x, ok in zip(v.tolist(), finite.tolist())]
        elif not color or color == "selected":
            codes, legend, groups = self._selected_groups(scope, pts)
            values = None
        else:
            values = [_text(value) for value in pts.column("c").to_pylist()]  # (the points' own values)
            names: dict[str, int] = {}
            counts: dict[str, int] = {}
            for value in values:
                key = _text(value)
                counts[key] = counts.get(key, 0) + 1
            ordered = sorted(counts, key=lambda k: -counts[k])
            for i, k in enumerate(ordered[:11]):
                names[k] = i
            other = len(names)
            codes = [names.get(_text(value), other) for value in values]
            legend = [[k, counts[k]] for k in ordered[:11]]
            if len(ordered) > 11:
                legend.append(["other", sum(counts[k] for k in ordered[11:])])
            else:  # each point's value is its legend entry's name (``c``): not sent twice
                values = None
        return {
            "total": total, "shown": pts.num_rows, "bounds": bounds, "bins": MAP_BINS,
            "density": density.tolist(),
            "color": color or "selected", "legend_kind": legend_kind, "legend": legend,
            # by selected/not: each legend entry's group of the report's map (0 not selected, 1 selected by earlier
            # runs, 2 selected), which fixes its colour (static/map.js), whatever the counts
            **({"groups": groups} if not color or color == "selected" else {}),
            "points": {
                "id": pts.column("id").to_pylist(),
                "x": np.round(pts.column("x").to_numpy(zero_copy_only=False).astype(np.float64), 5).tolist(),
                "y": np.round(pts.column("y").to_numpy(zero_copy_only=False).astype(np.float64), 5).tolist(),
                "c": codes,
                # the hover caption: the point's key and the value it is coloured by (the script sets them as text)
                "key": pts.column("k").to_pylist(),
                **({} if values is None else {"value": values}),
            },
        }

    def _selected_groups(self, scope: Scope, pts: pa.Table) -> tuple[list[int], list[Any], list[int]]:
        """``(codes, legend, groups)`` of the points coloured by selected/not, in the report's groups and order
        (``report.data.GROUPS``: not selected, selected by earlier runs, selected): a run's rows (``scope.run``)
        whose key an earlier version's run selected are "selected by earlier runs", its picks "selected in this
        run", as in that run's report; without a run, "selected" and "not selected". Before, the larger group
        got the palette's first colour, so "not selected" was usually blue in the UI and grey in the report."""
        from lightly_airflow.report.data import GROUP_EARLIER, GROUP_NEW, GROUP_NOT_SELECTED

        group = np.where(pc.equal(pts.column("c"), "selected").to_numpy(zero_copy_only=False), 2, 0)
        names = [GROUP_NOT_SELECTED, GROUP_EARLIER, GROUP_NEW if scope.run else "selected"]
        if scope.run and len(group):
            k, cv = quote_ident(C.KEY), quote_ident(COMMIT_VERSION)
            earlier = self.sql(f"SELECT DISTINCT {k} AS k FROM pool WHERE {quote_ident(C.SELECTED)} AND "
                               f"{cv} < {self.run_version(scope.run)}").column("k")
            group[(group == 0) & pc.is_in(pts.column("k"), earlier).to_numpy(zero_copy_only=False)] = 1
        counts = np.bincount(group, minlength=3)
        groups = [g for g in range(3) if counts[g]]
        code = np.full(3, -1, dtype=np.int64)
        code[groups] = np.arange(len(groups))
        return code[group].tolist(), [[names[g], int(counts[g])] for g in groups], groups

    def _color_expr(self, color: str | None, chosen: str = "") -> tuple[str, str]:
        """``(expression, legend kind)`` of the map's colour; by selected/not, ``chosen`` says it
        (:meth:`selected_join`)."""
        if not color or color == "selected":
            return f"CASE WHEN {chosen or quote_ident(C.SELECTED)} THEN 'selected' ELSE 'not selected' END", "category"
        if color == "run":
            return f"CAST({quote_ident(C.RUN_ID)} AS VARCHAR)", "category"
        if color.startswith("tag:"):
            name = color[4:]
            if name not in {t["name"] for t in self.tags()}:
                raise QueryError(f"No tag {name!r} to colour by.")
            return (f"CASE WHEN array_has({quote_ident(C.TAGS)}, {quote_literal(name)}) THEN {quote_literal(name)} "
                    "ELSE 'not in tag' END"), "category"
        kind = self.kind(color)
        if kind is None:
            raise QueryError(f"Cannot colour by {color!r}: not a column of this datapool version.")
        if kind == "number" and color not in (COMMIT_VERSION,):
            return f"CAST({quote_ident(color)} AS DOUBLE)", "number"
        return f"CAST({quote_ident(color)} AS VARCHAR)", "category"

    def in_polygon(self, scope: Scope, polygon: list[tuple[float, float]]) -> pa.Table:
        """``sample_id, commit_version`` of every row of the scope inside the polygon (map coordinates) — all of
        them, not only the points the map drew."""
        if C.LAYOUT_X not in self.columns:
            raise QueryError("This datapool version has no map layout to select from.")
        if len(polygon) < 3:
            raise QueryError("A selection needs at least three corners.")
        where = self.where(scope)
        xs_, ys_ = [p[0] for p in polygon], [p[1] for p in polygon]
        box = (f"{quote_ident(C.LAYOUT_X)} BETWEEN {min(xs_)!r} AND {max(xs_)!r} AND "
               f"{quote_ident(C.LAYOUT_Y)} BETWEEN {min(ys_)!r} AND {max(ys_)!r}")
        where = f"{where} AND {box}" if where else f"WHERE {box}"
        rows = self.sql(
            f"SELECT {quote_ident(C.SAMPLE_ID)}, {quote_ident(COMMIT_VERSION)}, {quote_ident(C.LAYOUT_X)} AS x, "
            f"{quote_ident(C.LAYOUT_Y)} AS y FROM pool {where}"
        )
        inside = points_in_polygon(
            rows.column("x").to_numpy(zero_copy_only=False), rows.column("y").to_numpy(zero_copy_only=False), polygon
        )
        return rows.select([C.SAMPLE_ID, COMMIT_VERSION]).filter(pa.array(inside))

    def members(self, scope: Scope) -> pa.Table:
        """``sample_id, commit_version`` of every row of the scope."""
        return self.sql(
            f"SELECT {quote_ident(C.SAMPLE_ID)}, {quote_ident(COMMIT_VERSION)} FROM pool {self.where(scope)}"
        )

    # -------------------------------------------------------------- export and compare
    def export_rows(self, scope: Scope, *, limit: int | None = None, only: Sequence[str] | None = None) -> pa.Table:
        """The scope's rows for a download: identity, status, pick rank and every metadata/score column (no
        embeddings, no lists), in pick order then key; ``only``: just those of these columns (a file list, Label
        Studio or COCO export reads no metadata: 270,000 rows' 27 columns took 4.1 s as Python rows, 9 took 1.1)."""
        cols = [c for c in self.columns if c not in HIDDEN and not pa.types.is_nested(self.schema.field(c).type)
                and (only is None or c in only)]
        order = f"{quote_ident(C.PICK_RANK)} NULLS LAST, {quote_ident(C.KEY)}" if C.PICK_RANK in self.columns else quote_ident(C.KEY)
        if scope.tag == C.INITIAL_TAG and not scope.objects and C.PICK_RANK in self.columns:
            order = self._pick_order("ASC")  # (the pool's order: by rank alone every run's first pick came first)
        text = f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM pool {self.where(scope)} ORDER BY {order}"
        if limit is not None:
            text += f" LIMIT {int(limit)}"
        return self.sql(text)

    def compare(self, tags: list[str], column: str | None) -> dict[str, Any]:
        """Overlap counts of two or more tags and one column's distribution in each, side by side."""
        if not 2 <= len(tags) <= 4:
            raise QueryError("Compare two to four tags.")
        scopes = [Scope(version=self.version, tag=t) for t in tags]
        sets = []
        for s in scopes:
            ids = self.members(s).column(C.SAMPLE_ID)
            sets.append(set(ids.to_pylist()))
        overlap = [[len(a & b) for b in sets] for a in sets]
        out: dict[str, Any] = {"tags": tags, "sizes": [len(s) for s in sets], "overlap": overlap,
                               "all": len(set.intersection(*sets)), "any": len(set.union(*sets))}
        if column:
            kind = self.kind(column)
            if kind is None:
                raise QueryError(f"Cannot compare {column!r}: not a column of this datapool version.")
            out["column"], out["kind"] = column, kind
            q = quote_ident(column)
            if kind == "number":
                facet = self.facets().get(column, {})
                lo, hi = facet.get("min"), facet.get("max")
                if lo is None:
                    out["bins"], out["series"] = [], []
                else:
                    edges = robust_edges(self, column, lo, hi)
                    out["bins"] = edges
                    out["series"] = []
                    for s in scopes:
                        vals = self.sql(f"SELECT {q} AS v FROM pool {self.where(s)}").column("v")
                        arr = vals.to_numpy(zero_copy_only=False).astype(np.float64)
                        arr = np.clip(arr[np.isfinite(arr)], edges[0], edges[-1])
                        hist, _ = np.histogram(arr, bins=edges)
                        out["series"].append(hist.tolist())
            else:
                out["series"] = []
                keys: dict[str, None] = {}
                per = []
                for s in scopes:
                    got = self.sql(f"SELECT CAST({q} AS VARCHAR) AS v, COUNT(*) AS n FROM pool {self.where(s)} "
                                   f"GROUP BY CAST({q} AS VARCHAR) ORDER BY n DESC LIMIT 30").to_pylist()
                    per.append({_text(r["v"]): r["n"] for r in got})
                    keys.update(dict.fromkeys(_text(r["v"]) for r in got))
                out["bins"] = list(keys)[:30]
                out["series"] = [[p.get(k, 0) for k in out["bins"]] for p in per]
        return out


def _extremes(column: pa.ChunkedArray, numbers: np.ndarray, nan: bool) -> tuple[Any, Any]:
    """The least and greatest value of a numeric column as DataFusion's ``MIN`` and ``MAX`` give them: nulls left
    out, floats in their total order (-0.0 below 0.0, NaN above every number: ``MAX`` is NaN where one is, ``MIN``
    only where all are); ``(None, None)`` without a value. Integers stay integers (exact past 2**53).
    ``numbers``: its values as float64, without nulls and NaN; ``nan``: whether it holds a NaN."""
    if not pa.types.is_floating(column.type):
        got = pc.min_max(column)
        return got["min"].as_py(), got["max"].as_py()
    if not len(numbers):
        return (math.nan, math.nan) if nan else (None, None)
    lo, hi = float(numbers.min()), float(numbers.max())
    zeros = np.signbit(numbers[numbers == 0]) if lo == 0 or hi == 0 else np.zeros(0, dtype=bool)
    if lo == 0:
        lo = -0.0 if zeros.any() else 0.0
    if hi == 0:
        hi = 0.0 if (~zeros).any() else -0.0
    return lo, math.nan if nan else hi


def _merge_extremes(so_far: list[Any], column: pa.ChunkedArray, numbers: np.ndarray, nan: bool) -> list[Any]:
    """``[min, max, values]`` of the column's rows so far, with those of one more block of them (:func:`_extremes`;
    ``values``: SQL's ``COUNT``, NaN counted)."""
    lo, hi = _extremes(column, numbers, nan)
    los, his = [x for x in (so_far[0], lo) if x is not None], [x for x in (so_far[1], hi) if x is not None]
    return [min(los, key=_total_order) if los else None, max(his, key=_total_order) if his else None,
            so_far[2] + len(column) - column.null_count]


def _total_order(x: Any) -> tuple[bool, Any, float]:
    """A number's place in the order DataFusion's ``MIN``/``MAX`` use: NaN last, -0.0 before 0.0."""
    nan = isinstance(x, float) and math.isnan(x)
    return nan, 0 if nan else x, math.copysign(1.0, x) if isinstance(x, float) else 0.0


def robust_edges(view: View, column: str, lo: float, hi: float, bins: int = 20) -> list[float]:
    """Histogram edges between the 1st and 99th percentile (outliers are clipped into the end bins)."""
    q = quote_ident(column)
    try:
        got = view.sql(
            f"SELECT approx_percentile_cont({q}, 0.01) AS a, approx_percentile_cont({q}, 0.99) AS b FROM pool "
            f"WHERE {view.rows_of(SHOW_IMAGES)}"
        ).to_pylist()[0]
        a, b = float(got["a"]), float(got["b"])
    except Exception:  # noqa: BLE001 - an engine without the function: plain range
        a, b = float(lo), float(hi)
    if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
        a, b = float(lo), float(hi) if float(hi) > float(lo) else float(lo) + 1.0
    return [float(v) for v in np.linspace(a, b, bins + 1)]


def grid_counts(x: np.ndarray, y: np.ndarray, bounds: list[float], bins: int) -> np.ndarray:
    """Points per cell of a ``bins`` x ``bins`` grid over ``bounds`` (x0, x1, y0, y1), row-major from the bottom
    row (``y`` up); one bincount, ~20x faster than ``np.histogram2d`` at a million points."""
    ix = np.clip(((x - bounds[0]) * (bins / (bounds[1] - bounds[0]))).astype(np.int64), 0, bins - 1)
    iy = np.clip(((y - bounds[2]) * (bins / (bounds[3] - bounds[2]))).astype(np.int64), 0, bins - 1)
    return np.bincount(iy * bins + ix, minlength=bins * bins)


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd rule, vectorised over the points."""
    inside = np.zeros(len(x), dtype=bool)
    n = len(polygon)
    for i in range(n):
        xi, yi = polygon[i]
        xj, yj = polygon[(i - 1) % n]
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < at)
    return inside


#: How the filter panel names a column's null values (a facet's category, and the value a ticked box sends).
NONE = "(none)"


def _text(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def column_group(name: str) -> str:
    """Where a column shows on the sample page."""
    if name.startswith(C.METADATA_PREFIX):
        return "Metadata"
    if name.startswith(C.SCORES_PREFIX):
        return "Scores"
    if name.startswith(C.PREDICTIONS_PREFIX):
        return "Predictions"
    if name.startswith(C.SELECTION_PREFIX):
        return "Why it was picked"
    return "Sample"

