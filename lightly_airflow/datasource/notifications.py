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

import json
from collections.abc import Collection, Mapping
from typing import Any
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


def notified_objects(body: Any) -> list[tuple[str, str, str]]:
    """``(event, bucket, key)`` of every object an SQS message ``body`` (text or parsed) notifies, the key
    decoded; ``[]`` for a body that is no notification (S3's ``s3:TestEvent``, a message of something else)."""
    msg = _json(body)
    if isinstance(msg, Mapping) and msg.get("Type") == "Notification" and "Message" in msg:  # (through SNS)
        msg = _json(msg["Message"])
    if not isinstance(msg, Mapping):
        return []
    out: list[tuple[str, str, str]] = []
    if isinstance(msg.get("detail-type"), str):  # EventBridge
        detail = msg.get("detail")
        if isinstance(detail, Mapping):
            bucket, obj = detail.get("bucket"), detail.get("object")
            if isinstance(bucket, Mapping) and isinstance(obj, Mapping) and isinstance(obj.get("key"), str):
                out.append((msg["detail-type"], str(bucket.get("name", "")), obj["key"]))
        return out
    for record in msg.get("Records") or []:
        s3 = record.get("s3") if isinstance(record, Mapping) else None
        if not isinstance(s3, Mapping):
            continue
        bucket, obj = s3.get("bucket"), s3.get("object")
        if isinstance(bucket, Mapping) and isinstance(obj, Mapping) and isinstance(obj.get("key"), str):
            out.append((str(record.get("eventName", "")), str(bucket.get("name", "")), unquote_plus(obj["key"])))
    return out


def is_new_file_event(event: str) -> bool:
    """Whether an S3 event name or EventBridge detail type means an object a run can now read."""
    return event.startswith(NEW_FILE_EVENTS) or event in NEW_FILE_DETAIL_TYPES


def new_file_keys(body: Any, datasource_uri: str, extensions: Collection[str] = DEFAULT_EXTENSIONS) -> list[str]:
    """Keys (relative to ``datasource_uri``, an ``s3://bucket/prefix``) of the files the message ``body``
    announces that the list task would list: created or restored objects in the bucket, under the prefix, of
    one of ``extensions``, not OS or tool metadata, not in a ``.lightly/`` or hidden folder."""
    parts = urlsplit(datasource_uri)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    keys = [key[len(prefix):] for event, b, key in notified_objects(body)
            if is_new_file_event(event) and b == bucket and key.startswith(prefix) and len(key) > len(prefix)]
    if not keys:
        return []
    arr = pa.array(keys, pa.string())
    keep = pc.and_(base_mask(arr, extension_regex(normalise_extensions(list(extensions)))),
                   pc.invert(os_file_mask(arr)))
    return [k for k, ok in zip(keys, keep.to_pylist(), strict=True) if ok]
