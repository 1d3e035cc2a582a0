"""``S3NotificationsTrigger``: Airflow's ``SqsSensorTrigger`` that fires only for notifications of new files.

The example DAG's watcher with ``LIGHTLY_NEW_FILES_QUEUE`` reads a queue that receives the datasource bucket's
S3 event notifications. Airflow's trigger fired for any message, so S3's ``s3:TestEvent``, a removal, an object
outside the datasource's prefix (the ``.lightly/frames/`` the runs write beside the images, when the bucket
notifies for the whole bucket) or a ``.txt`` each started a run that skipped; and its own filters leave the
messages they reject in the queue, where they come back after the visibility timeout, forever. This trigger
reads as Airflow's does, deletes every message it read (with ``delete_message_on_reception``, as Airflow's
does with the ones it keeps) and fires with the messages that announce a file the list task would list
(:func:`~lightly_airflow.datasource.notifications.new_file_keys`); the others are counted in its log. A batch
of only such messages is read past at once (up to :data:`SKIP_POLLS` receives), not after ``waiter_delay``.
What a run processes is still decided by its list task.

Given the runs' ``query`` (the example DAG's), the trigger also applies what that query's listing would leave out
of the runs: its ``extensions``, its ``relevant_filenames_file`` (read from ``.lightly/`` with the query's
connection in the first poke that has notifications of files, then again only when the file's identity changes:
one ``HEAD`` a poke, its ETag and size, a local file's ``stat``; an edited file applies from the next poke) and,
with ``input_expiration`` ``SKIP``, the files the bucket's lifecycle rules delete within ``min_days_to_expiration``
days (the rules have no identity to ask for: read again every :data:`LIFECYCLE_REFRESH_MINUTES` minutes, and
before rules read earlier leave a notified file out, so a rule removed meanwhile drops nothing). A notified file's creation time is the notification's ``eventTime`` and
its size the notified ``size``, evaluated by the listing's own :func:`~lightly_airflow.datasource.expiration.
expiring_files`: the object S3 notifies of was created at or before the event (a multipart upload's ``Last-
Modified`` is its start; a restored file's event is its restore, later than its creation), so its expiry is never
earlier than the one the run's listing computes, and a file a run would process is never left out; a notification
without them counts as created now and of unknown size (a rule with a size condition then does not apply). A
``worker_config_uri`` (``LIGHTLY_WORKER_CONFIG=s3://…``) is read in the triggerer and again when its ETag changes,
as :class:`~lightly_airflow.triggers.NewFilesEventTrigger` reads it (:class:`~lightly_airflow.triggers.
new_files_event.WorkerConfigOfUri`: the last good config kept, every problem logged). Its ``process_all`` changes
nothing here: the trigger never consults the datapool, so every notification of a file the runs list fires
anyway. A relevant-filenames file or lifecycle rules that cannot be read are logged, and the notifications are then
kept (the run starts, and its first task fails naming the problem when it persists), never dropped unseen; once
read, one that cannot be read again is logged as a warning and the last one read applies (a replaced one is
logged too).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

from lightly_airflow.storage import place_key, protocol_of
from lightly_airflow.triggers.new_files_event import WORKER_CONFIG_VARIABLE, WorkerConfigOfUri, expiration_text

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import TriggerEvent

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.datasource.expiration import Lifecycle
    from lightly_airflow.datasource.relevant import RelevantFilenames
    from lightly_airflow.storage import StorageCredentials

logger = logging.getLogger(__name__)

CLASSPATH = "lightly_airflow.triggers.s3_notifications.S3NotificationsTrigger"

#: The modules a poke reads messages with (``lightly_airflow.datasource``: numpy, pyarrow, ~1.3 s to import):
#: imported in a thread when the trigger starts, never in the triggerer's event loop, which every deferred task
#: and watcher of the deployment shares (the triggerer imports this module and builds the trigger in that loop).
POKE_MODULES = ("lightly_airflow.datasource.notifications", "lightly_airflow.datasource.records")

#: receives in a row that may return only messages announcing nothing to process before a poke gives up
SKIP_POLLS = 50

#: minutes the bucket's lifecycle rules, once read, are used before they are read again (they have no identity
#: to ask for cheaply, unlike the relevant-filenames file, read again as soon as its identity changes)
LIFECYCLE_REFRESH_MINUTES = 15


class KeyFilter(Protocol):
    """Which of a message's keys the runs' listing keeps, given each one's creation time and size as notified
    (``None``, or a ``None`` in them: unknown, the file taken as created now, of a size no size filter matches)."""

    def __call__(self, keys: list[str], created: Sequence[dt.datetime | None] | None = None,
                 sizes: Sequence[int | None] | None = None) -> list[str]: ...


@dataclass
class _Read:
    """A value the trigger read from a store: of what (``source``: the URI, name, connection), the file's identity
    then (``None``: none, read again at the next poke), when it was read and when a read was last tried."""

    source: tuple[str | None, ...]
    value: Any
    identity: str | None
    read_at: dt.datetime
    tried_at: dt.datetime


class ListingCache:
    """What the trigger read for its key filter, kept between pokes: the relevant-filenames file (read again when
    its identity changes) and the bucket's lifecycle rules (read again after :data:`LIFECYCLE_REFRESH_MINUTES`)."""

    def __init__(self) -> None:
        self.relevant: _Read | None = None
        self.lifecycle: _Read | None = None
        #: the last filter took the lifecycle rules from the cache (not read then): before it leaves a notified
        #: file out, the rules are read again (:meth:`S3NotificationsTrigger.poke`), never dropped on old rules
        self.lifecycle_cached = False

    def read_lifecycle_again(self) -> None:
        """Make the next filter read the lifecycle rules (whatever their age)."""
        if self.lifecycle is not None:
            self.lifecycle.tried_at = dt.datetime.min.replace(tzinfo=dt.UTC)


class S3NotificationsTrigger(WorkerConfigOfUri, SqsSensorTrigger):
    """Fires with the SQS messages that announce new files under ``datasource_uri`` (an ``s3://`` URI).

    :param datasource_uri: the datasource the runs list (``s3://bucket/prefix``).
    :param query: the runs' :class:`~lightly_airflow.datasource.NewFilesQuery` (or its ``to_dict()``) on the same
        datasource: its extensions, relevant-filenames file and ``input_expiration`` decide too (see the module's
        docstring); ``None``: the default extensions alone.
    :param worker_config_uri: a worker config read where the trigger runs and applied to ``query`` (needs
        ``query``), as :class:`~lightly_airflow.triggers.NewFilesEventTrigger`'s.
    :param worker_config_variable: what gave ``worker_config_uri``, named by its errors.
    Every other argument is :class:`~airflow.providers.amazon.aws.triggers.sqs.SqsSensorTrigger`'s; its message
    filters (``message_filtering``, …) are not taken: the datasource decides.

    The event's payload is Airflow's: ``status`` ``"success"``, ``message_batch`` (the kept messages).
    """

    _UNREAD = ("the notifications are filtered WITHOUT its relevant_filenames_file and datasource.input_expiration "
               "(none of it was read yet): notifications of files those keys exclude start runs that skip at once")

    def __init__(
        self,
        *,
        datasource_uri: str,
        query: NewFilesQuery | Mapping[str, Any] | None = None,
        worker_config_uri: str | None = None,
        worker_config_variable: str = WORKER_CONFIG_VARIABLE,
        **kwargs: Any,
    ) -> None:
        for name in ("message_filtering", "message_filtering_match_values", "message_filtering_config"):
            if kwargs.get(name) is not None:
                raise ValueError(f"S3NotificationsTrigger filters by its datasource_uri; {name} is not taken.")
        if not _on_s3(str(datasource_uri)):
            raise ValueError(f"S3NotificationsTrigger reads S3 event notifications; datasource_uri "
                             f"{datasource_uri!r} is not an s3:// URI.")
        query_dict = None if query is None else dict(query) if isinstance(query, Mapping) else query.to_dict()
        if query_dict is not None and place_key(str(query_dict.get("datasource_uri"))) != place_key(str(datasource_uri)):
            raise ValueError(f"S3NotificationsTrigger: query.datasource_uri {query_dict.get('datasource_uri')!r} is "
                             f"not datasource_uri {str(datasource_uri)!r}: give the runs' query of this datasource.")
        if worker_config_uri is not None and query_dict is None:
            raise ValueError("S3NotificationsTrigger: worker_config_uri needs the runs' query (where .lightly/ is, "
                             "with which connection): pass query= as well.")
        super().__init__(**kwargs)
        self.datasource_uri = str(datasource_uri)
        self._query = query_dict or {}
        self._watch_worker_config(worker_config_uri, worker_config_variable)
        self._listing = ListingCache()  # (not an argument: what this trigger read, kept between its pokes)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and exactly the constructor's arguments (connection ids only, no secrets)."""
        _, kwargs = super().serialize()
        for name in ("message_filtering", "message_filtering_match_values", "message_filtering_config"):
            kwargs.pop(name)
        return CLASSPATH, {"datasource_uri": self.datasource_uri, "query": dict(self._query) if self._query else None,
                           "worker_config_uri": self.worker_config_uri,
                           "worker_config_variable": self.worker_config_variable, **kwargs}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Airflow's SQS trigger, after the modules a poke needs were imported in a thread (:data:`POKE_MODULES`)."""
        import importlib

        for name in POKE_MODULES:
            await asyncio.to_thread(importlib.import_module, name)
        async for event in super().run():
            yield event

    def _applied(self, query: Mapping[str, Any]) -> str:
        return (f"relevant_filenames_file={query.get('relevant_filenames_file')!r}, input_expiration="
                f"{expiration_text(query)} (process_all={query.get('process_all')}: no effect on which notifications "
                "count, the watcher never consults the datapool)")

    async def _key_filter(self) -> KeyFilter | None:
        """Which notified keys the runs' listing keeps, by the query (with the worker config applied): ``None``
        when it leaves out none by name or lifecycle, or when what it needs cannot be read (logged)."""
        if not self._query:
            return None
        query = await self._query_with_worker_config(float(self.waiter_delay))
        try:
            return await asyncio.to_thread(_listing_filter, query, cache=self._listing, log=self.log)
        except Exception as exc:  # noqa: BLE001 - logged; the notifications are kept, the run's first task says it
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            self.log.error("the runs' relevant_filenames_file / input_expiration cannot be applied to the S3 "
                           "notifications of %s: %s\nthese notifications are kept (their run's first task fails "
                           "with this problem if it persists); read again at the next poke", self.datasource_uri,
                           message)
            return None

    def _kept(self, messages: list[Any], keys: list[list[str]], key_filter: KeyFilter | None) -> list[Any]:
        """The messages announcing a file the runs list (``keys``: each one's, :func:`new_file_keys`), by
        ``key_filter`` with the times and sizes they notify."""
        from lightly_airflow.datasource.notifications import notified_facts

        return [m for m, k in zip(messages, keys, strict=True)
                if k and (key_filter is None or key_filter(k, *notified_facts(m.get("Body"), self.datasource_uri, k)))]

    async def poke(self, client: Any) -> list[Any]:
        # (imported by run() in a thread: here a lookup in sys.modules, never an import in the event loop)
        from lightly_airflow.datasource.notifications import new_file_keys
        from lightly_airflow.datasource.records import DEFAULT_EXTENSIONS

        batch: list[Any] = []
        batches = skipped_polls = 0
        extensions = self._query.get("extensions") or DEFAULT_EXTENSIONS
        key_filter: KeyFilter | None = None
        filter_made = False
        while batches < self.num_batches:
            response = await self.poll_sqs(client=client)
            messages = list(response.get("Messages", []) if isinstance(response, dict) else [])
            if not messages:
                break
            keys = [new_file_keys(m.get("Body"), self.datasource_uri, extensions) for m in messages]
            if any(keys) and not filter_made:  # (once a poke, and only when a file is announced)
                key_filter, filter_made = await self._key_filter(), True
            keep = self._kept(messages, keys, key_filter)
            left_out = sum(1 for k in keys if k) - len(keep)
            if left_out and self._listing.lifecycle_cached:
                # (a file left out with the rules read minutes ago: again with the rules as they are now, so a rule
                # removed meanwhile drops nothing; one read per poke at most, as before the cache)
                self._listing.read_lifecycle_again()
                key_filter = await self._key_filter()
                keep = self._kept(messages, keys, key_filter)
                left_out = sum(1 for k in keys if k) - len(keep)
            if self.delete_message_on_reception:  # (every message read: a kept-back one would return forever)
                entries = [{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages]
                response = await client.delete_message_batch(QueueUrl=self.sqs_queue, Entries=entries)
                if response.get("Failed"):
                    self.log.warning("Could not delete %d of %d SQS messages from %s: %s", len(response["Failed"]),
                                     len(entries), self.sqs_queue, response["Failed"][:3])
            if len(keep) < len(messages):
                self.log.info("%d of %d SQS messages announce no file the runs list under %s (S3's test event, a "
                              "removal, another prefix or bucket, a .lightly/ or hidden folder, another "
                              "extension): no run for them.", len(messages) - len(keep), len(messages),
                              self.datasource_uri)
            if left_out:
                self.log.info("(%d of them announce only files the runs leave out by the worker config: not in its "
                              "relevant_filenames_file, or deleted by the bucket's lifecycle within its "
                              "input_expiration, SKIP.)", left_out)
            batch.extend(keep)
            if keep:
                batches += 1
            else:
                skipped_polls += 1
                if skipped_polls >= SKIP_POLLS:
                    break
        return batch


def _listing_filter(query: Mapping[str, Any], now: dt.datetime | None = None, *, cache: ListingCache | None = None,
                    log: Any = None) -> KeyFilter | None:
    """Which keys (relative to the datasource) the listing of ``query`` keeps by its relevant-filenames file and,
    with ``input_expiration`` ``SKIP``, the bucket's lifecycle rules (read with the query's connections, or taken
    from ``cache``: see :class:`ListingCache`; blocking: a thread). ``None``: it leaves out no key by either.
    ``now``: the time of the expiration check and of the cache's reads (default: now); ``log``: where the reads
    are told (default: this module's logger).

    :raises FileNotFoundError, ValueError: a relevant-filenames file missing or invalid (and none read before).
    :raises LifecycleUnreadableError: the bucket's lifecycle rules cannot be read (and none read before).
    """
    from lightly_airflow.datasource import NewFilesQuery

    q = NewFilesQuery.from_dict(query)
    skip_expiring = q.min_days_to_expiration is not None and q.expiration_handling == "SKIP"
    if not q.relevant_filenames_file and not skip_expiring:
        return None
    from lightly_airflow.triggers.new_files import resolve_credentials

    creds = resolve_credentials(q)
    cache = ListingCache() if cache is None else cache
    log = logger if log is None else log
    at = now or dt.datetime.now(dt.UTC)
    relevant = _relevant(q, creds.lightly, cache, log, at) if q.relevant_filenames_file else None
    lifecycle = _lifecycle(q, creds.datasource, cache, log, at) if skip_expiring else None

    return _key_filter_of(relevant, lifecycle, at, float(q.min_days_to_expiration or 0.0))


def _key_filter_of(relevant: RelevantFilenames | None, lifecycle: Lifecycle | None, at: dt.datetime,
                   min_days: float) -> KeyFilter:
    """The filter of the keys a listing keeps: those ``relevant`` names (``None``: all), less those ``lifecycle``
    deletes less than ``min_days`` days after ``at`` (``None``: none), evaluated as the listing evaluates its files
    (:func:`~lightly_airflow.datasource.expiration.expiring_files`)."""
    import pyarrow as pa

    def keep(keys: list[str], created: Sequence[dt.datetime | None] | None = None,
             sizes: Sequence[int | None] | None = None) -> list[str]:
        n = len(keys)
        files = pa.table({"key": pa.array(keys, pa.string()),
                          "size": pa.array(list(sizes) if sizes is not None else [None] * n, pa.int64()),
                          "mtime": pa.array(list(created) if created is not None else [None] * n,
                                            pa.timestamp("us", tz="UTC"))})
        if relevant is not None:
            files = files.filter(relevant.mask(files.column("key")))
        if lifecycle is not None and files.num_rows:
            from lightly_airflow.datasource.expiration import expiring_files

            # Created at the notification's eventTime, of its size, as the listing evaluates its files; unknown:
            # created now, of no size a size condition matches (left out only when it expires within it even so).
            files = files.filter(pa.array(~expiring_files(files, lifecycle, now=at, min_days=min_days).mask))
        kept: list[str] = files.column("key").to_pylist()
        return kept

    return keep


def _relevant(q: NewFilesQuery, credentials: StorageCredentials | None, cache: ListingCache, log: Any,
              at: dt.datetime) -> RelevantFilenames:
    """The query's relevant-filenames file, parsed: the one in ``cache`` while the file's identity is the same; a
    file that cannot be read again: the last one read (a warning)."""
    from lightly_airflow.datasource.relevant import RelevantFilenames
    from lightly_airflow.lightly_dir import read_relevant_filenames

    name = str(q.relevant_filenames_file)
    source = (q.effective_lightly_uri, name, q.lightly_conn_id or q.datasource_conn_id)
    last = cache.relevant if cache.relevant is not None and cache.relevant.source == source else None
    identity = _relevant_identity(q.effective_lightly_uri, name, credentials)
    if last is not None and identity is not None and identity == last.identity:
        return last.value  # type: ignore[no-any-return]
    try:
        text = read_relevant_filenames(q.effective_lightly_uri, name, credentials)
        value = RelevantFilenames.parse(text, source=f"relevant_filenames_file {name!r}")
    except Exception as exc:
        if last is None:
            raise  # (none read yet: the caller keeps the notifications and says why)
        message = str(exc) if isinstance(exc, (ValueError, FileNotFoundError)) else f"{type(exc).__name__}: {exc}"
        log.warning("relevant_filenames_file %r cannot be read again (%s): the S3 notifications are filtered with "
                    "the one read at %s; read again at the next poke", name, message, f"{last.read_at:%Y-%m-%d %H:%M:%S} UTC")
        last.identity, last.tried_at = None, at  # (read again at the next poke, whatever its identity)
        return last.value  # type: ignore[no-any-return]
    if cache.relevant is not None:
        log.info("relevant_filenames_file %r read again (%s): it replaces the one read at %s for the S3 "
                 "notifications", name, "the file changed" if last is not None else "another file",
                 f"{cache.relevant.read_at:%Y-%m-%d %H:%M:%S} UTC")
    else:
        log.info("relevant_filenames_file %r read for the S3 notifications; read again when it changes", name)
    cache.relevant = _Read(source, value, identity, at, at)
    return value


def _relevant_identity(lightly_uri: str, name: str, credentials: StorageCredentials | None) -> str | None:
    """The relevant-filenames file's identity without reading it (an S3 ``HEAD``: its ETag, size, modification
    time; a local file's ``stat``), ``None`` when it cannot be had (the file is then read, which names a problem)."""
    from lightly_airflow.lightly_dir import lightly_root, relevant_filenames_relpath
    from lightly_airflow.storage import filesystem

    try:
        relpath = relevant_filenames_relpath(name)
        fs, root = filesystem(lightly_root(lightly_uri), credentials)
        path = posixpath.join(root, relpath)
        fs.invalidate_cache(path)  # (a listing of the same store in this process must not answer for the file)
        return str(fs.ukey(path))
    except Exception:  # noqa: BLE001 - read_relevant_filenames reports it
        return None


def _lifecycle(q: NewFilesQuery, credentials: StorageCredentials | None, cache: ListingCache, log: Any,
               at: dt.datetime) -> Lifecycle:
    """The datasource bucket's lifecycle rules: the ones in ``cache`` for :data:`LIFECYCLE_REFRESH_MINUTES` after
    they were read (or a read was tried); rules that cannot be read again: the last ones read (a warning)."""
    from lightly_airflow.datasource.expiration import read_lifecycle

    source = (q.datasource_uri, q.datasource_conn_id)
    last = cache.lifecycle if cache.lifecycle is not None and cache.lifecycle.source == source else None
    refresh = dt.timedelta(minutes=LIFECYCLE_REFRESH_MINUTES)
    cache.lifecycle_cached = False
    if last is not None and dt.timedelta(0) <= at - last.tried_at < refresh:
        cache.lifecycle_cached = True
        return last.value  # type: ignore[no-any-return]
    try:
        value = read_lifecycle(q.datasource_uri, credentials)
    except Exception as exc:
        if last is None:
            raise  # (none read yet: the caller keeps the notifications and says why)
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        log.warning("the lifecycle rules of %s cannot be read again (%s): the S3 notifications are filtered with "
                    "the ones read at %s; read again in %d minutes", q.datasource_uri, message,
                    f"{last.read_at:%Y-%m-%d %H:%M:%S} UTC", LIFECYCLE_REFRESH_MINUTES)
        last.tried_at = at
        return last.value  # type: ignore[no-any-return]
    if last is None or value != last.value:
        log.info("the lifecycle rules of %s %s: %d rules delete objects (%s); read again in %d minutes",
                 q.datasource_uri, "read for the S3 notifications" if last is None else
                 f"changed since {last.read_at:%Y-%m-%d %H:%M:%S} UTC, the new ones replace them",
                 len(value.rules), "; ".join(r.describe() for r in value.rules[:5]) or "none",
                 LIFECYCLE_REFRESH_MINUTES)
    else:
        log.debug("the lifecycle rules of %s read again: unchanged", q.datasource_uri)
    cache.lifecycle = _Read(source, value, None, at, at)
    return value


def _on_s3(uri: str) -> bool:
    """Whether ``uri`` is on S3 however spelt (``s3://``, ``S3://``, ``s3a://``: ``storage.protocol_of``)."""
    try:
        return protocol_of(uri) == "s3"
    except ValueError:
        return False

