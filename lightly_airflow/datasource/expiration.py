"""Files a bucket's lifecycle rules will delete soon: ``worker_config.datasource.input_expiration``.

A Lightly user whose input bucket deletes objects after some days (an S3 lifecycle ``Expiration``, a GCS
``Delete`` rule) sets ``input_expiration: {min_days_to_expiration: N, handling_strategy: SKIP|ABORT}`` so that a
run does not curate files that vanish before anyone labels them. Here the list step reads the datasource
bucket's lifecycle configuration (**one request** a run) and computes each new file's expiry from its key,
size and creation time, which the listing already has:

- **S3** (``GetBucketLifecycleConfiguration``): enabled rules with ``Expiration.Days`` (the object's creation
  time plus the days, rounded up to the next midnight UTC, as S3 does) or ``Expiration.Date``; filters on
  ``Prefix`` (also the legacy top-level one) and ``ObjectSizeGreaterThan``/``ObjectSizeLessThan``. A rule that
  filters on object tags is not applied (tags are one request per file) and says so.
- **GCS** (the bucket's ``lifecycle``): ``Delete`` rules on live objects with ``age`` (days after creation)
  and/or ``createdBefore``, ``matchesPrefix``/``matchesSuffix``. Conditions that need per-object values the
  listing does not have (``customTime``, ``matchesStorageClass``) make the rule not applied, said.
- **Azure**: lifecycle management policies belong to the storage account's management API and cannot be read
  through a container's connection; **local** folders have none. Both are said, never silent.

A file "expires soon" when its expiry is less than ``min_days_to_expiration`` days after the run's listing.
This module is pure (no Airflow): :func:`read_lifecycle` does the request, :func:`expiring_files` the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow.datasource.listing import utc
from lightly_airflow.storage import StorageCredentials, filesystem, protocol_of

logger = logging.getLogger(__name__)

HANDLING = ("SKIP", "ABORT")
_DAY_US = 86_400 * 1_000_000
_NONE = np.iinfo(np.int64).max  # "never expires", in microseconds since the epoch


@dataclass(frozen=True)
class ExpirationRule:
    """One lifecycle rule that deletes current objects, as the listing can evaluate it.

    :param rule_id: the rule's name in the bucket configuration (S3 ``ID``; GCS: ``rule <n>``).
    :param prefixes: bucket keys the rule applies to start with one of these (``("",)``: every key).
    :param suffixes: ... and end with one of these (GCS ``matchesSuffix``; empty: any).
    :param size_above: only objects larger than this many bytes (S3 ``ObjectSizeGreaterThan``).
    :param size_below: only objects smaller than this (S3 ``ObjectSizeLessThan``).
    :param days: expiry this many days after the object's creation (S3 ``Days``, GCS ``age``).
    :param date: S3 ``Date``: objects expire on it (or at creation when created later).
    :param created_before: GCS ``createdBefore``: only objects created before it (then at once, or after
        ``days``).
    :param midnight: S3 rounds creation plus ``days`` up to the next midnight UTC.
    """

    rule_id: str
    prefixes: tuple[str, ...] = ("",)
    suffixes: tuple[str, ...] = ()
    size_above: int | None = None
    size_below: int | None = None
    days: float | None = None
    date: dt.datetime | None = None
    created_before: dt.datetime | None = None
    midnight: bool = False

    def describe(self) -> str:
        """The rule in words, for the skipped files' reason and the error."""
        when = []
        if self.days is not None:
            when.append(f"{self.days:g} days after creation")
        if self.date is not None:
            when.append(f"on {self.date:%Y-%m-%d}")
        if self.created_before is not None:
            when.append(f"created before {self.created_before:%Y-%m-%d}")
        where = [f"prefix {p!r}" for p in self.prefixes if p]
        where += [f"suffix {s!r}" for s in self.suffixes]
        if self.size_above is not None:
            where.append(f"larger than {self.size_above} bytes")
        if self.size_below is not None:
            where.append(f"smaller than {self.size_below} bytes")
        return f"lifecycle rule {self.rule_id!r}: deletes {' and '.join(where) or 'every object'}, {', '.join(when)}"


@dataclass
class Lifecycle:
    """A datasource bucket's rules that delete objects, and what could not be applied.

    :param store: ``s3``, ``gs``, ``az`` or ``file``.
    :param rules: the rules the listing evaluates.
    :param notes: rules or whole stores that cannot be evaluated, in words (logged and reported).
    :param key_prefix: the datasource's folder inside the bucket (listed keys are relative to it, rules match
        whole bucket keys).
    """

    store: str
    rules: list[ExpirationRule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key_prefix: str = ""


class LifecycleUnreadableError(ValueError):
    """The datasource bucket's lifecycle configuration cannot be read (a permission is missing): ``problem`` and
    ``fix`` (the first task's ``ParamError`` says both)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} Fix: {fix}")
        self.problem, self.fix = problem, fix


# ------------------------------------------------------------------------------------------------ parsing
def s3_lifecycle(configuration: Mapping[str, Any] | None) -> Lifecycle:
    """The expiring rules of an S3 ``GetBucketLifecycleConfiguration`` answer (``None``: the bucket has none)."""
    out = Lifecycle("s3")
    for n, rule in enumerate((configuration or {}).get("Rules") or []):
        name = str(rule.get("ID") or f"rule {n + 1}")
        expiration = rule.get("Expiration") or {}
        if rule.get("Status") != "Enabled" or ("Days" not in expiration and "Date" not in expiration):
            continue  # (disabled, or only transitions, noncurrent versions or delete markers: current files stay)
        flt = rule.get("Filter")
        flt = {"Prefix": rule.get("Prefix", "")} if flt is None else dict(flt)
        flt = {**flt, **(flt.pop("And", None) or {})}
        if "Tag" in flt or flt.get("Tags"):
            out.notes.append(f"S3 lifecycle rule {name!r} deletes objects by their tags, which the listing does not "
                             "read (a request per file): not applied, its files are processed")
            continue
        date = expiration.get("Date")
        out.rules.append(ExpirationRule(
            rule_id=name, prefixes=(str(flt.get("Prefix") or ""),),
            size_above=_int_or_none(flt.get("ObjectSizeGreaterThan")),
            size_below=_int_or_none(flt.get("ObjectSizeLessThan")),
            days=float(expiration["Days"]) if "Days" in expiration else None,
            date=utc(date) if date is not None else None, midnight=True))
    return out


def gcs_lifecycle(bucket: Mapping[str, Any] | None) -> Lifecycle:
    """The ``Delete`` rules on live objects of a GCS bucket resource (its ``lifecycle`` field)."""
    out = Lifecycle("gs")
    for n, rule in enumerate(((bucket or {}).get("lifecycle") or {}).get("rule") or []):
        name = f"rule {n + 1}"
        cond = rule.get("condition") or {}
        if (rule.get("action") or {}).get("type") != "Delete" or cond.get("isLive") is False or any(
                k in cond for k in ("numNewerVersions", "daysSinceNoncurrentTime", "noncurrentTimeBefore")):
            continue  # (another action, or old versions only: the listed, live files stay)
        unknown = sorted(set(cond) - {"age", "createdBefore", "matchesPrefix", "matchesSuffix", "isLive"})
        if unknown:
            out.notes.append(f"GCS lifecycle {name} deletes objects by {', '.join(unknown)}, which the listing "
                             "does not read: not applied, its files are processed")
            continue
        if "age" not in cond and "createdBefore" not in cond:
            continue
        out.rules.append(ExpirationRule(
            rule_id=name, prefixes=tuple(cond.get("matchesPrefix") or ("",)),
            suffixes=tuple(cond.get("matchesSuffix") or ()),
            days=float(cond["age"]) if "age" in cond else None,
            created_before=utc(dt.datetime.fromisoformat(str(cond["createdBefore"]))) if "createdBefore" in cond
            else None))
    return out


def read_lifecycle(uri: str, credentials: StorageCredentials | None = None) -> Lifecycle:
    """The lifecycle rules of the bucket of datasource ``uri``: one request (S3, GCS), none elsewhere.

    :raises LifecycleUnreadableError: when the store refuses to show them (a missing permission), naming it.
    """
    protocol = protocol_of(uri)
    if protocol == "file":
        return Lifecycle("file", notes=["a local folder has no lifecycle rules: no file expires"])
    if protocol == "az":
        return Lifecycle("az", notes=[
            "Azure lifecycle management policies belong to the storage account's management API and cannot be "
            "read through a container's connection: expirations are not checked, every file is processed"])

    fs, root = filesystem(uri, credentials)
    bucket, _, folder = root.partition("/")
    folder = folder.strip("/")
    lifecycle = _read(fs, protocol, bucket)
    lifecycle.key_prefix = folder + "/" if folder else ""
    return lifecycle


def _read(fs: Any, protocol: str, bucket: str) -> Lifecycle:
    from fsspec.asyn import sync

    try:
        if protocol == "s3":
            try:
                answer = sync(fs.loop, fs._call_s3, "get_bucket_lifecycle_configuration", Bucket=bucket,
                              **getattr(fs, "req_kw", {}))
            except OSError as exc:
                if _s3_code(exc) == "NoSuchLifecycleConfiguration":
                    return Lifecycle("s3")
                raise
            return s3_lifecycle(answer)
        return gcs_lifecycle(sync(fs.loop, fs._call, "GET", "b/{}", bucket, json_out=True, fields="lifecycle"))
    except (OSError, ValueError) as exc:
        if isinstance(exc, PermissionError) or _s3_code(exc) in ("AccessDenied", "Forbidden") or "403" in str(exc):
            permission = "s3:GetLifecycleConfiguration" if protocol == "s3" else "storage.buckets.get"
            raise LifecycleUnreadableError(
                f"the lifecycle rules of bucket {bucket!r} cannot be read ({exc}); worker_config.datasource."
                "input_expiration needs them.",
                f"grant the connection '{permission}' on the bucket, or remove input_expiration.") from None
        raise


# --------------------------------------------------------------------------------------------- evaluation
@dataclass
class Expiring:
    """The files of a listing that expire within the window, with each one's reason."""

    mask: np.ndarray  # one bool per file
    reasons: list[tuple[str, str]]  # (key, reason) of each expiring file, in listing order

    @property
    def count(self) -> int:
        return int(self.mask.sum())


def expiring_files(files: pa.Table, lifecycle: Lifecycle, *, now: dt.datetime, min_days: float) -> Expiring:
    """Which of ``files`` (``key, size, mtime``; keys relative to the datasource) expire less than
    ``min_days`` days after ``now`` under ``lifecycle``."""
    key_prefix = lifecycle.key_prefix
    n = files.num_rows
    if not n or not lifecycle.rules:
        return Expiring(np.zeros(n, dtype=np.bool_), [])
    keys = pc.binary_join_element_wise(pa.scalar(key_prefix), files.column("key"), "") if key_prefix else \
        files.column("key")
    sizes = files.column("size").to_numpy(zero_copy_only=False)
    created = pc.cast(files.column("mtime"), pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(
        _micros(now)).to_numpy(zero_copy_only=False)
    expiry = np.full(n, _NONE, dtype=np.int64)
    which = np.full(n, -1, dtype=np.int64)
    for r, rule in enumerate(lifecycle.rules):
        hit = np.zeros(n, dtype=np.bool_)
        for p in rule.prefixes:
            hit |= pc.starts_with(keys, p).to_numpy(zero_copy_only=False) if p else True
        if rule.suffixes:
            ends = np.zeros(n, dtype=np.bool_)
            for s in rule.suffixes:
                ends |= pc.ends_with(keys, s).to_numpy(zero_copy_only=False)
            hit &= ends
        if rule.size_above is not None:
            hit &= sizes > rule.size_above
        if rule.size_below is not None:
            hit &= sizes < rule.size_below
        at = np.full(n, _NONE, dtype=np.int64)
        if rule.days is not None:
            at = created + int(round(rule.days * _DAY_US))
            if rule.midnight:  # S3: up to the next midnight UTC
                at = (at // _DAY_US + 1) * _DAY_US
        if rule.date is not None:
            at = np.minimum(at, np.maximum(_micros(rule.date), created))
        if rule.created_before is not None:
            hit &= created < _micros(rule.created_before)
            if rule.days is None:
                at = created  # (eligible at once)
        at = np.where(hit, at, _NONE)
        sooner = at < expiry
        expiry = np.where(sooner, at, expiry)
        which = np.where(sooner, r, which)
    limit = _micros(now) + min_days * _DAY_US
    mask = expiry < limit
    hits = np.flatnonzero(mask)
    at = expiry[hits]
    rules = [rule.describe() for rule in lifecycle.rules]  # (each rule's words once, each minute's once)
    minutes, minute = np.unique(at // 60_000_000, return_inverse=True)
    whens = [f"{dt.datetime.fromtimestamp(m * 60, dt.UTC):%Y-%m-%d %H:%M} UTC" for m in minutes.tolist()]
    reasons = [(key, f"expires {'in ' + _days(left) if left > 0 else 'now (its deletion is due)'} ({whens[w]}, "
                     f"{rules[r]})")
               for key, left, w, r in zip(files.column("key").take(hits).to_pylist(),
                                          ((at - _micros(now)) / _DAY_US).tolist(), minute.tolist(), which[hits].tolist())]
    return Expiring(mask, reasons)


def _days(value: float) -> str:
    return f"{value:.1f} days" if value >= 1 else f"{math.ceil(value * 24)} hours"


def _micros(moment: dt.datetime) -> int:
    return int(round(utc(moment).timestamp() * 1_000_000))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _s3_code(exc: BaseException) -> str | None:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    response = getattr(cause, "response", None)
    return (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None
