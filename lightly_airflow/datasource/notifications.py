"""S3 event notifications read from an SQS queue: which of them announce a file a run would list.

A queue that receives a bucket's notifications also gets S3's ``s3:TestEvent`` (when the notification is set
up), removals and other events if the bucket sends them, objects outside the datasource's prefix (another
team's folder, the ``.lightly/frames/`` the runs write beside the images) and files no run lists (``.txt``,
``.DS_Store``); each of those started a run that found nothing to do. :func:`new_file_keys` keeps what the
list task would list: created or restored-from-archive objects in the datasource's bucket, under its prefix,
of a listed extension, not OS or tool metadata, not in a ``.lightly/`` or hidden folder (the listing's own
filters: :func:`~lightly_airflow.datasource.records.base_mask`, :data:`~lightly_airflow.datasource.records.
OS_FILE_REGEX`).

Three shapes of message body are read: S3's own notification (``Records[].s3.bucket.name`` /
``.s3.object.key``, the key URL-encoded with ``+`` for a space), the same sent through SNS (an envelope whose
``Message`` is that text) and an EventBridge event (``detail-type`` ``Object Created``, ``detail.bucket.name``,
``detail.object.key``, not encoded).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote_plus, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow.datasource.records import (
    DEFAULT_EXTENSIONS,
    base_mask,
    extension_regex,
    normalise_extensions,
    os_file_mask,
)

#: S3 event names (prefixes) of objects a run can now read: created (put, post, copy, multipart upload) or
#: restored from an archive tier (a restored file is listed again: ``docs/datasources.md``, archived files)
NEW_FILE_EVENTS = ("ObjectCreated:", "ObjectRestore:Completed")
#: The same in EventBridge's ``detail-type``
NEW_FILE_DETAIL_TYPES = ("Object Created", "Object Restore Completed")


def _json(text: Any) -> Any:
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


class NotifiedObject(NamedTuple):
    """One object a notification announces: the S3 event name (EventBridge: its ``detail-type``), the bucket, the
    key (decoded), and as the message says them (``None`` where it does not, or not as a time / a size): the
    event's time (``eventTime``; EventBridge: ``time``) and the object's size."""

    event: str
    bucket: str
    key: str
    time: dt.datetime | None = None
    size: int | None = None


def notified_objects(body: Any) -> list[NotifiedObject]:
    """Every object an SQS message ``body`` (text or parsed) notifies; ``[]`` for a body that is no notification
    (S3's ``s3:TestEvent``, a message of something else)."""
    msg = _json(body)
    if isinstance(msg, Mapping) and msg.get("Type") == "Notification" and "Message" in msg:  # (through SNS)
        msg = _json(msg["Message"])
    if not isinstance(msg, Mapping):
        return []
    out: list[NotifiedObject] = []
    if isinstance(msg.get("detail-type"), str):  # EventBridge
        detail = msg.get("detail")
        if isinstance(detail, Mapping):
            bucket, obj = detail.get("bucket"), detail.get("object")
            if isinstance(bucket, Mapping) and isinstance(obj, Mapping) and isinstance(obj.get("key"), str):
                out.append(NotifiedObject(msg["detail-type"], str(bucket.get("name", "")), obj["key"],
                                          _event_time(msg.get("time")), _size(obj.get("size"))))
        return out
    for record in msg.get("Records") or []:
        s3 = record.get("s3") if isinstance(record, Mapping) else None
        if not isinstance(s3, Mapping):
            continue
        bucket, obj = s3.get("bucket"), s3.get("object")
        if isinstance(bucket, Mapping) and isinstance(obj, Mapping) and isinstance(obj.get("key"), str):
            out.append(NotifiedObject(str(record.get("eventName", "")), str(bucket.get("name", "")),
                                      unquote_plus(obj["key"]), _event_time(record.get("eventTime")),
                                      _size(obj.get("size"))))
    return out


def _event_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _size(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        size = int(value)
    except ValueError:
        return None
    return size if size >= 0 else None


def _datasource_prefix(datasource_uri: str) -> tuple[str, str]:
    """The bucket and the key prefix (``""`` or ending in ``/``) of an ``s3://bucket/prefix`` datasource."""
    parts = urlsplit(datasource_uri)
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def is_new_file_event(event: str) -> bool:
    """Whether an S3 event name or EventBridge detail type means an object a run can now read."""
    return event.startswith(NEW_FILE_EVENTS) or event in NEW_FILE_DETAIL_TYPES


def new_file_keys(body: Any, datasource_uri: str, extensions: Collection[str] = DEFAULT_EXTENSIONS) -> list[str]:
    """Keys (relative to ``datasource_uri``, an ``s3://bucket/prefix``) of the files the message ``body``
    announces that the list task would list: created or restored objects in the bucket, under the prefix, of
    one of ``extensions``, not OS or tool metadata, not in a ``.lightly/`` or hidden folder."""
    bucket, prefix = _datasource_prefix(datasource_uri)
    keys = [o.key[len(prefix):] for o in notified_objects(body)
            if is_new_file_event(o.event) and o.bucket == bucket and o.key.startswith(prefix)
            and len(o.key) > len(prefix)]
    if not keys:
        return []
    arr = pa.array(keys, pa.string())
    keep = pc.and_(base_mask(arr, extension_regex(normalise_extensions(list(extensions)))),
                   pc.invert(os_file_mask(arr)))
    return [k for k, ok in zip(keys, keep.to_pylist(), strict=True) if ok]


def notified_facts(body: Any, datasource_uri: str, keys: Sequence[str]
                   ) -> tuple[list[dt.datetime | None], list[int | None]]:
    """The creation time and size of each of ``keys`` (relative to ``datasource_uri``, as :func:`new_file_keys`
    gives them) as the message ``body`` notifies them (:class:`NotifiedObject`'s ``time`` and ``size``; ``None``
    where it does not say). A key notified twice in the message: its latest time (the object now there), and its
    size when both say the same."""
    bucket, prefix = _datasource_prefix(datasource_uri)
    facts: dict[str, tuple[dt.datetime | None, int | None]] = {}
    for o in notified_objects(body):
        if not (is_new_file_event(o.event) and o.bucket == bucket and o.key.startswith(prefix)):
            continue
        rel, fact = o.key[len(prefix):], (o.time, o.size)
        if rel in facts:  # (twice: the later time, unknown when either is; the size when both agree)
            (t0, s0), (t1, s1) = facts[rel], fact
            fact = (None if t0 is None or t1 is None else max(t0, t1), s0 if s0 == s1 else None)
        facts[rel] = fact
    known = [facts.get(k, (None, None)) for k in keys]
    return [t for t, _ in known], [n for _, n in known]
