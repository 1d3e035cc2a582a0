"""What started a run: the schedule, a person, a backfill, the new-file watcher's announcement, or the bucket's S3
event notifications (the watcher on an SQS queue, ``LIGHTLY_NEW_FILES_QUEUE``).

A run that started when files landed (``LIGHTLY_SCHEDULE=new-files``, :mod:`lightly_airflow.triggers.new_files_event`)
and one the daily schedule started look alike in the datapool unless the run says which it was. The Airflow layer
(:func:`lightly_airflow.operators.base.run_origin`) reads the run's type, the user who triggered it and the asset
events it consumed; this module, free of Airflow, keeps them as :class:`RunOrigin` for the run summary, the commit's
metadata and the report's header (:meth:`RunOrigin.text`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AssetEventOrigin", "RunOrigin", "WATCHER_STATUS", "short_time"]

#: the ``status`` of the new-file watcher's event payload (``NewFilesEventTrigger``)
WATCHER_STATUS = "new_files"
#: Airflow's ``SqsSensorTrigger`` and ours, ``S3NotificationsTrigger`` (the watcher with ``LIGHTLY_NEW_FILES_QUEUE``):
#: ``{"status": "success", "message_batch": [SQS messages]}``, each message's body an S3 event notification
SQS_STATUS = "success"

#: Airflow's run types (``DagRunType`` values) in words; another value is shown as it is
RUN_TYPES = {
    "scheduled": "the schedule",
    "manual": "a manual trigger",
    "backfill": "a backfill",
    "asset_triggered": "asset events",
    "operator_triggered": "another DAG (TriggerDagRunOperator)",
    "asset_materialization": "an asset materialization",
}


def _when(value: Any) -> str | None:
    """An ISO 8601 text of a datetime (or the text given), None for None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def short_time(iso: str | None) -> str:
    """``2026-12-05T12:03:07.123+00:00`` as ``2026-12-05 12:03 UTC`` (other offsets kept)."""
    if not iso:
        return "?"
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    offset = dt.utcoffset()
    zone = "UTC" if offset is not None and not offset else (dt.strftime("%z") if offset is not None else "")
    return f"{dt:%Y-%m-%d %H:%M} {zone}".rstrip()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class AssetEventOrigin:
    """One asset event a run consumed: the watcher's announcement (``watcher``) or another task's update."""

    asset: str
    at: str | None  #: the event's time, ISO 8601
    watcher: bool = False  #: announced by the new-file watcher (its payload's counts below)
    new_files: int | None = None  #: new files the watcher's check found
    announced: int | None = None  #: of those, not announced by an earlier event
    listed: int | None = None  #: files the check listed
    source: str | None = None  #: ``dag_id/run_id`` (``.task_id``) of the task that emitted it, when one did
    notified: int | None = None  #: S3 notifications of created files among the SQS messages it carried
    messages: int | None = None  #: SQS messages it carried (test events and others included)

    @classmethod
    def from_event(cls, asset: str, extra: Mapping[str, Any] | None, at: Any, source: str | None = None
                   ) -> AssetEventOrigin:
        """From an asset event's name, ``extra`` and timestamp. The triggerer stores a watcher's event as
        ``{"from_trigger": True, "payload": <the trigger's event payload>}``."""
        extra = extra or {}
        payload = extra.get("payload") if extra.get("from_trigger") else None
        if isinstance(payload, Mapping) and payload.get("status") == WATCHER_STATUS:
            return cls(asset=asset, at=_when(at), watcher=True, new_files=_int(payload.get("new")),
                       announced=_int(payload.get("unannounced")), listed=_int(payload.get("listed")), source=source)
        batch = payload.get("message_batch") if isinstance(payload, Mapping) else None
        if isinstance(batch, list) and isinstance(payload, Mapping) and payload.get("status") == SQS_STATUS:
            return cls(asset=asset, at=_when(at), source=source, messages=len(batch), notified=_created(batch))
        return cls(asset=asset, at=_when(at), source=source)

    def text(self) -> str:
        if self.messages is not None:
            n, m = self.notified or 0, self.messages
            return (f"{n:,} S3 notification{'s' * (n != 1)} of new files (of {m:,} SQS message{'s' * (m != 1)}) at "
                    f"{short_time(self.at)} (asset {self.asset})")
        if self.watcher:
            count = "new files" if self.new_files is None else f"{self.new_files:,} new files"
            fresh = (f", {self.announced:,} not announced before"
                     if self.announced is not None and self.new_files is not None and self.announced != self.new_files
                     else "")
            return f"the new-file watcher announced {count}{fresh} at {short_time(self.at)} (asset {self.asset})"
        by = f" by {self.source}" if self.source else ""
        return f"an event on asset {self.asset}{by} at {short_time(self.at)}"


@dataclass(frozen=True)
class RunOrigin:
    """What started a run (Airflow's run type, the user, the data interval, the asset events it consumed)."""

    run_type: str  #: Airflow's ``DagRunType`` value (``scheduled``, ``manual``, ``asset_triggered`` …)
    user: str | None = None  #: who triggered it (manual runs, backfills)
    interval_start: str | None = None  #: the data interval (scheduled runs, backfills), ISO 8601
    interval_end: str | None = None
    events: tuple[AssetEventOrigin, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (the run summary, the commit's metadata); empty fields left out."""
        out = {k: v for k, v in asdict(self).items() if v not in (None, (), [])}
        if self.events:
            out["events"] = [{k: v for k, v in asdict(e).items() if v not in (None, False)} for e in self.events]
        out["text"] = self.text()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunOrigin:
        """The inverse of :meth:`to_dict` (``text`` is derived, so ignored)."""
        events = tuple(AssetEventOrigin(**{k: v for k, v in e.items() if k in AssetEventOrigin.__dataclass_fields__})
                       for e in data.get("events") or ())
        return cls(run_type=str(data.get("run_type") or "unknown"), user=data.get("user"),
                   interval_start=data.get("interval_start"), interval_end=data.get("interval_end"), events=events)

    @property
    def watcher_events(self) -> list[AssetEventOrigin]:
        return [e for e in self.events if e.watcher]

    def short(self) -> str:
        """A table cell (``datapool history``): ``watcher: 6 new``, ``schedule``, ``manual by alice``, ``backfill``."""
        watched = self.watcher_events
        if watched and len(watched) == len(self.events):
            counts = [e.new_files for e in watched]
            return (f"watcher: {counts[-1]:,} new" if counts[-1] is not None else "watcher") + (
                f" ({len(watched)} events)" if len(watched) > 1 else "")
        if self.events and all(e.messages is not None for e in self.events):
            return f"S3 notices: {sum(e.notified or 0 for e in self.events):,}"
        if self.events and self.run_type in ("asset_triggered", "asset_materialization"):
            return "asset event" if len(self.events) == 1 else f"{len(self.events)} asset events"
        what = {"scheduled": "schedule", "operator_triggered": "another DAG"}.get(self.run_type, self.run_type)
        return f"{what} by {self.user}" if self.user and self.run_type in ("manual", "backfill") else what

    def text(self) -> str:
        """One line for people: ``the new-file watcher announced 6 new files at 2026-12-05 12:03 UTC (asset
        lightly-datasource)``, ``the schedule (data interval 2026-12-04 00:00 UTC – 2026-12-05 00:00 UTC)``,
        ``a manual trigger by alice``."""
        if self.events and self.run_type in ("asset_triggered", "asset_materialization"):
            watched = self.watcher_events
            if len(self.events) == 1:
                return self.events[0].text()
            if len(watched) == len(self.events) and all(e.new_files is not None for e in watched):
                times = sorted(e.at for e in watched if e.at)
                span = (short_time(times[0]) if len(times) == 1 or times[0] == times[-1]
                        else f"{short_time(times[0])} – {short_time(times[-1])}") if times else "?"
                assets = ", ".join(sorted({e.asset for e in watched}))
                return (f"{len(watched)} announcements of the new-file watcher ({span}; the latest: "
                        f"{watched[-1].new_files:,} new files; asset {assets})")
            return f"{len(self.events)} asset events: " + "; ".join(e.text() for e in self.events)
        what = RUN_TYPES.get(self.run_type, f"a run of type {self.run_type}")
        if self.user and self.run_type in ("manual", "backfill"):
            what += f" by {self.user}"
        if self.interval_start and self.interval_end and self.interval_start != self.interval_end:
            what += f" (data interval {short_time(self.interval_start)} – {short_time(self.interval_end)})"
        return what


def _created(messages: list[Any]) -> int:
    """How many objects created (or restored from an archive) the S3 event notifications among SQS ``messages``
    announce (:func:`~lightly_airflow.datasource.notifications.notified_objects`: S3's own, through SNS, or
    EventBridge's; a body that is no notification, e.g. S3's ``s3:TestEvent``, counts none)."""
    from lightly_airflow.datasource.notifications import is_new_file_event, notified_objects

    return sum(1 for m in messages if isinstance(m, Mapping)
               for o in notified_objects(m.get("Body")) if is_new_file_event(o.event))


def origin_of_events(events: Sequence[tuple[str, Mapping[str, Any] | None, Any, str | None]]) -> tuple[AssetEventOrigin, ...]:
    """:class:`AssetEventOrigin` of ``(asset name, extra, timestamp, source)`` tuples, oldest first."""
    out = [AssetEventOrigin.from_event(a, x, t, s) for a, x, t, s in events]
    return tuple(sorted(out, key=lambda e: e.at or ""))
