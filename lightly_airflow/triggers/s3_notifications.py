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
connection, once per poke that has notifications of files: an edited file applies from the next poke) and, with
``input_expiration`` ``SKIP``, the files the bucket's lifecycle rules delete within ``min_days_to_expiration`` days
(its rules read once per such poke; a notified file's age is taken as none, so a file the run would process is never
left out: an older restored file, or a rule with a size condition, still starts its run, which skips it). A
``worker_config_uri`` (``LIGHTLY_WORKER_CONFIG=s3://…``) is read in the triggerer and again when its ETag changes,
as :class:`~lightly_airflow.triggers.NewFilesEventTrigger` reads it (:class:`~lightly_airflow.triggers.
new_files_event.WorkerConfigOfUri`: the last good config kept, every problem logged). Its ``process_all`` changes
nothing here: the trigger never consults the datapool, so every notification of a file the runs list fires
anyway. A relevant-filenames file or lifecycle rules that cannot be read are logged, and the notifications are then
kept (the run starts, and its first task fails naming the problem when it persists), never dropped unseen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

from lightly_airflow.datasource.notifications import new_file_keys
from lightly_airflow.datasource.records import DEFAULT_EXTENSIONS
from lightly_airflow.triggers.new_files_event import WORKER_CONFIG_VARIABLE, WorkerConfigOfUri, expiration_text

if TYPE_CHECKING:
    from lightly_airflow.datasource import NewFilesQuery

CLASSPATH = "lightly_airflow.triggers.s3_notifications.S3NotificationsTrigger"

#: receives in a row that may return only messages announcing nothing to process before a poke gives up
SKIP_POLLS = 50

#: which of a message's keys the runs' listing keeps (``None``: every key)
KeyFilter = Callable[[list[str]], list[str]]


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
        if not str(datasource_uri).startswith("s3://"):
            raise ValueError(f"S3NotificationsTrigger reads S3 event notifications; datasource_uri "
                             f"{datasource_uri!r} is not an s3:// URI.")
        query_dict = None if query is None else dict(query) if isinstance(query, Mapping) else query.to_dict()
        if query_dict is not None and query_dict.get("datasource_uri") != str(datasource_uri):
            raise ValueError(f"S3NotificationsTrigger: query.datasource_uri {query_dict.get('datasource_uri')!r} is "
                             f"not datasource_uri {str(datasource_uri)!r}: give the runs' query of this datasource.")
        if worker_config_uri is not None and query_dict is None:
            raise ValueError("S3NotificationsTrigger: worker_config_uri needs the runs' query (where .lightly/ is, "
                             "with which connection): pass query= as well.")
        super().__init__(**kwargs)
        self.datasource_uri = str(datasource_uri)
        self._query = query_dict or {}
        self._watch_worker_config(worker_config_uri, worker_config_variable)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and exactly the constructor's arguments (connection ids only, no secrets)."""
        _, kwargs = super().serialize()
        for name in ("message_filtering", "message_filtering_match_values", "message_filtering_config"):
            kwargs.pop(name)
        return CLASSPATH, {"datasource_uri": self.datasource_uri, "query": dict(self._query) if self._query else None,
                           "worker_config_uri": self.worker_config_uri,
                           "worker_config_variable": self.worker_config_variable, **kwargs}

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
            return await asyncio.to_thread(_listing_filter, query)
        except Exception as exc:  # noqa: BLE001 - logged; the notifications are kept, the run's first task says it
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            self.log.error("the runs' relevant_filenames_file / input_expiration cannot be applied to the S3 "
                           "notifications of %s: %s\nthese notifications are kept (their run's first task fails "
                           "with this problem if it persists); read again at the next poke", self.datasource_uri,
                           message)
            return None

    async def poke(self, client: Any) -> list[Any]:
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
            keep = [m for m, k in zip(messages, keys, strict=True) if k and (key_filter is None or key_filter(k))]
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


def _listing_filter(query: Mapping[str, Any], now: dt.datetime | None = None) -> KeyFilter | None:
    """Which keys (relative to the datasource) the listing of ``query`` keeps by its relevant-filenames file and,
    with ``input_expiration`` ``SKIP``, the bucket's lifecycle rules (each read once here, with the query's
    connections; blocking: a thread). ``None``: it leaves out no key by either.

    :raises FileNotFoundError, ValueError: a relevant-filenames file missing or invalid.
    :raises LifecycleUnreadableError: the bucket's lifecycle rules cannot be read.
    """
    from lightly_airflow.datasource import NewFilesQuery

    q = NewFilesQuery.from_dict(query)
    skip_expiring = q.min_days_to_expiration is not None and q.expiration_handling == "SKIP"
    if not q.relevant_filenames_file and not skip_expiring:
        return None
    import pyarrow as pa

    from lightly_airflow.triggers.new_files import resolve_credentials

    creds = resolve_credentials(q)
    relevant = None
    if q.relevant_filenames_file:
        from lightly_airflow.datasource.relevant import RelevantFilenames
        from lightly_airflow.lightly_dir import read_relevant_filenames

        text = read_relevant_filenames(q.effective_lightly_uri, q.relevant_filenames_file, creds.lightly)
        relevant = RelevantFilenames.parse(text, source=f"relevant_filenames_file {q.relevant_filenames_file!r}")
    lifecycle = None
    if skip_expiring:
        from lightly_airflow.datasource.expiration import read_lifecycle

        lifecycle = read_lifecycle(q.datasource_uri, creds.datasource)
    at = now or dt.datetime.now(dt.UTC)

    def keep(keys: list[str]) -> list[str]:
        arr = pa.array(keys, pa.string())
        if relevant is not None:
            arr = arr.filter(relevant.mask(arr))
        if lifecycle is not None and len(arr):
            from lightly_airflow.datasource.expiration import expiring_files

            # Created now, size unknown: left out only when it expires within the window even so (conservative).
            n = len(arr)
            files = pa.table({"key": arr, "size": pa.nulls(n, pa.int64()),
                              "mtime": pa.nulls(n, pa.timestamp("us", tz="UTC"))})
            arr = arr.filter(pa.array(~expiring_files(files, lifecycle, now=at,
                                                      min_days=float(q.min_days_to_expiration or 0.0)).mask))
        kept: list[str] = arr.to_pylist()
        return kept

    return keep
