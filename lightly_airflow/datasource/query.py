"""``NewFilesQuery``: the one definition of "which files does this run process".

The wait-for-new-files sensor, its deferrable trigger and the list task used to each take their own copy of
the inputs (policy, extensions, relevant filenames, ``process_all``) and disagreed: the sensor ignored
``worker_config.datasource.process_all``. Now each builds the same frozen query with
:meth:`NewFilesQuery.build` from the run's parameters and the parsed worker config, the trigger serialises it
as it is (:meth:`NewFilesQuery.to_dict` / :meth:`NewFilesQuery.from_dict`), and :func:`find_new_files` is the
one evaluation both the "are there new files?" check and the listing step run.

Connections appear here only as ids (strings); the Airflow layer turns them into
:class:`~lightly_airflow.storage.StorageCredentials` (``lightly_airflow.hooks.storage``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lightly_airflow.datasource.diff import POLICIES
from lightly_airflow.datasource.expiration import HANDLING
from lightly_airflow.datasource.listing import clashing_renames, list_files
from lightly_airflow.datasource.records import DEFAULT_EXTENSIONS, MANIFEST_SCHEMA
from lightly_airflow.storage import StorageCredentials, protocol_of, secret_in_uri

if TYPE_CHECKING:
    from lightly_airflow.config import WorkerConfig

logger = logging.getLogger(__name__)

#: Warnings a repeated check (the sensor's and the event watcher's, every poke interval) said before: each said once
#: per process (the triggerer's lives for days), at debug level afterwards; the most recent 256 texts are kept.
_SAID: dict[str, None] = {}
_SAID_LOCK = threading.Lock()  # (the triggerer may run several checks at once in threads)


def _warn(text: str, repeated: bool) -> None:
    """Log a listing's warning. For a check that repeats (``repeated``) only the first time this process meets the
    same text: the same Live Photo or archive warning every 5 minutes buried the triggerer's log. The run's list
    task always warns (and its report counts every skipped file)."""
    if repeated:
        with _SAID_LOCK:
            said = text in _SAID
            if not said:
                _SAID[text] = None
                if len(_SAID) > 256:
                    del _SAID[next(iter(_SAID))]
        if said:
            logger.debug("(said before) %s", text)
            return
    logger.warning("%s", text)

KnownFiles = Callable[[str, StorageCredentials | None], pa.Table | None]


class RelevantFilenamesMissing(FileNotFoundError):
    """The query's relevant-filenames file does not exist (a parameter problem, not a transient one)."""


def parse_bool(value: Any, name: str) -> bool:
    """A boolean parameter: ``True``/``False``, or the text a template renders (``"True"``, ``"false"``);
    empty or ``"None"`` (an unset template) is false; anything else is an error naming the parameter."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", "", "none"):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean; use true or false.")


def _text(value: Any) -> str | None:
    """An optional string parameter; a template that rendered nothing (``""``, ``"None"``) is unset."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None") else text


@dataclass(frozen=True)
class NewFilesQuery:
    """Which files of a datasource a run processes.

    :param datasource_uri: the datasource root (``s3://``, ``gs://``, ``az://``/``abfs://``, ``file://``).
    :param datapool_uri: the datapool whose known files are excluded (a missing pool knows nothing).
    :param lightly_uri: the folder holding ``.lightly/`` (``None``: the datasource).
    :param datasource_conn_id: Airflow connection of the datasource's store (``None``: ambient credentials).
    :param datapool_conn_id: Airflow connection of the datapool's store.
    :param lightly_conn_id: connection of the ``.lightly/`` store (``None``: ``datasource_conn_id``).
    :param relevant_filenames_file: only the files listed in this file of ``.lightly/`` are considered.
    :param extensions: file extensions to list (lower case, without the dot).
    :param policy: ``content`` (a changed file is new again) or ``key`` (only new keys are new).
    :param process_all: every listed file is processed, also those the datapool already holds.
    :param min_days_to_expiration: files the datasource bucket's lifecycle rules delete within this many days are
        handled by ``expiration_handling`` (``worker_config.datasource.input_expiration``; ``None``: not checked).
    :param expiration_handling: ``SKIP`` (not processed, reported) or ``ABORT`` (the list step fails).
    :param live_photo_videos: process the motion clips of Live Photos (a short ``.MOV`` beside the photo of the
        same name: :mod:`~lightly_airflow.datasource.live_photos`) as videos too; default: the photo is the
        sample and its clip is not processed (counted and reported).
    :raises ValueError: for an unknown policy, an empty or unsupported URI, or no extensions.
    """

    datasource_uri: str
    datapool_uri: str
    lightly_uri: str | None = None
    datasource_conn_id: str | None = None
    datapool_conn_id: str | None = None
    lightly_conn_id: str | None = None
    relevant_filenames_file: str | None = None
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    policy: str = "content"
    process_all: bool = False
    min_days_to_expiration: float | None = None
    expiration_handling: str = "SKIP"
    live_photo_videos: bool = False

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; use one of {POLICIES}.")
        for name in ("datasource_uri", "datapool_uri"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} is empty: pass a URI such as s3://bucket/prefix or file:///data.")
        for name in ("datasource_uri", "datapool_uri", "lightly_uri"):
            secret = secret_in_uri(getattr(self, name) or "")
            if secret:  # the sensor's trigger would store and log it
                raise ValueError(f"{name}: {secret}; put the credentials into the store's Airflow connection.")
        protocol_of(self.datasource_uri)
        if isinstance(self.extensions, str):
            object.__setattr__(self, "extensions", (self.extensions,))
        exts = tuple(str(e).lower().lstrip(".") for e in self.extensions)
        if not exts:
            raise ValueError("extensions is empty: name the file extensions to list, e.g. ('jpg', 'png').")
        object.__setattr__(self, "extensions", exts)
        for name in ("process_all", "live_photo_videos"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} is not a boolean; use true or false.")
        if self.expiration_handling not in HANDLING:
            raise ValueError(f"expiration_handling={self.expiration_handling!r}; use one of {HANDLING}.")

    @classmethod
    def build(
        cls,
        *,
        datasource_uri: str,
        datapool_uri: str,
        worker_config: WorkerConfig | Mapping[str, Any] | str | None = None,
        lightly_uri: str | None = None,
        datasource_conn_id: str | None = None,
        datapool_conn_id: str | None = None,
        lightly_conn_id: str | None = None,
        relevant_filenames_file: str | None = None,
        extensions: Collection[str] = DEFAULT_EXTENSIONS,
        policy: str = "content",
        process_all: bool | str | None = False,
        live_photo_videos: bool | str | None = False,
    ) -> NewFilesQuery:
        """The query of a run, from its (rendered) parameters and its worker config.

        ``process_all`` is true when the parameter or ``worker_config.datasource.process_all`` is (Lightly
        users set the latter); the relevant-filenames file comes from ``worker_config.relevant_filenames_file``
        unless given here. Templates that rendered nothing (``""``, ``"None"``) count as unset.

        :raises ValueError: for a bad boolean, two different relevant-filenames files, or a bad field.
        :raises lightly_airflow.config.ConfigError: for an invalid worker config.
        """
        query = cls(
            datasource_uri=str(datasource_uri),
            datapool_uri=str(datapool_uri),
            lightly_uri=_text(lightly_uri),
            datasource_conn_id=_text(datasource_conn_id),
            datapool_conn_id=_text(datapool_conn_id),
            lightly_conn_id=_text(lightly_conn_id),
            relevant_filenames_file=_text(relevant_filenames_file),
            extensions=tuple(extensions),
            policy=policy,
            process_all=parse_bool(process_all, "process_all"),
            live_photo_videos=parse_bool(live_photo_videos, "live_photo_videos"),
        )
        return query.with_worker_config(worker_config)

    def with_worker_config(self, worker_config: WorkerConfig | Mapping[str, Any] | str | None) -> NewFilesQuery:
        """This query with the keys of ``worker_config`` that decide what is new applied, as :meth:`build` applies
        them: ``relevant_filenames_file`` (unless this query names one: the same name, or an error),
        ``datasource.process_all`` (true when either is) and ``datasource.input_expiration`` (replaces this
        query's). ``build(..., worker_config=w)`` is ``build(..., worker_config=None).with_worker_config(w)``: the
        event watcher builds its query without a worker config kept in a bucket (not read when the DAG file is
        parsed) and applies it where it runs (:class:`~lightly_airflow.triggers.NewFilesEventTrigger`).

        :raises ValueError: for two different relevant-filenames files.
        :raises lightly_airflow.config.ConfigError: for an invalid worker config.
        """
        from lightly_airflow.config import parse_worker_config

        worker = parse_worker_config(worker_config)  # type: ignore[arg-type]
        explicit = self.relevant_filenames_file
        configured = _text(worker.relevant_filenames_file)
        if explicit and configured and explicit != configured:
            raise ValueError(
                f"relevant_filenames_file={explicit!r} but worker_config.relevant_filenames_file={configured!r}: "
                "give it in one place."
            )
        expiring = worker.datasource.input_expiration
        return replace(
            self,
            relevant_filenames_file=explicit or configured,
            process_all=self.process_all or bool(worker.datasource.process_all),
            min_days_to_expiration=(self.min_days_to_expiration if expiring is None
                                    else float(expiring.min_days_to_expiration)),
            expiration_handling=self.expiration_handling if expiring is None else expiring.handling_strategy,
        )

    # ---------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe (what the trigger stores; connection ids only, never secrets)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["extensions"] = list(self.extensions)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NewFilesQuery:
        """Inverse of :meth:`to_dict`; an unknown key is an error that names the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown NewFilesQuery keys {unknown}; allowed: {sorted(known)}.")
        values = dict(data)
        if "extensions" in values:
            values["extensions"] = tuple(values["extensions"])
        return cls(**values)

    # ------------------------------------------------------------------------------------ derived
    @property
    def effective_lightly_uri(self) -> str:
        """Where ``.lightly/`` lives: ``lightly_uri`` or the datasource."""
        return self.lightly_uri or self.datasource_uri


@dataclass(frozen=True)
class QueryCredentials:
    """The credentials of the three stores a query reads (``None``: ambient credentials)."""

    datasource: StorageCredentials | None = None
    datapool: StorageCredentials | None = None
    lightly: StorageCredentials | None = None

    @property
    def portable(self) -> bool:
        """Whether :meth:`to_dict` carries them whole (no credential objects such as an impersonation chain)."""
        return not any(c is not None and (c.google_credentials is not None or c.azure_credential is not None)
                       for c in (self.datasource, self.datapool, self.lightly))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, secrets included: only for a pipe to a child process, never for logs, XCom or triggers."""
        return {f.name: None if (c := getattr(self, f.name)) is None else c.to_dict() for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryCredentials:
        """Inverse of :meth:`to_dict`."""
        return cls(**{f.name: None if data.get(f.name) is None else StorageCredentials.from_dict(data[f.name])
                      for f in fields(cls)})


@dataclass
class ListingSkips:
    """What a run's listing did not list (or did not reuse): the one record the listing (:class:`NewFiles`), the
    list step (``pipeline.list_new``), the run's ``listing.json`` (:meth:`to_dict` / :meth:`from_dict`), the run
    summary's ``listing`` entry (:meth:`summary` / :meth:`from_summary`) and the report carry.

    In memory the lists hold every entry; ``listing.json`` keeps the first ``limit`` of them and the counts, the
    summary the first few.
    """

    #: ``(key, reason)`` of entries not listed for safety or because they cannot be read (see ``list_files``).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: files whose extension is not listed, and the first few of their keys
    unsupported: int = 0
    unsupported_examples: list[str] = field(default_factory=list)
    #: of those, images the default list holds but the extensions given leave out (HEIC/HEIF, AVIF, not among
    #: Lightly's formats): the number per extension, for
    #: the report's totals and what to do (``records.unlisted_image_hint``)
    unlisted_images: dict[str, int] = field(default_factory=dict)
    #: OS and tool metadata files (``._photo.jpg``, ``.DS_Store``, hidden folders, …), never samples, and the
    #: first few of their keys
    os_files: int = 0
    os_files_examples: list[str] = field(default_factory=list)
    #: Live Photos' motion clips (:mod:`~lightly_airflow.datasource.live_photos`) not processed, and the first few
    #: ``(clip, photo)`` pairs
    live_photo_clips: int = 0
    live_photo_clips_examples: list[tuple[str, str]] = field(default_factory=list)
    #: unchanged files whose pool values were computed under older pixel rules: decoded and embedded again
    older_pixel_rules: int = 0
    #: ``(video, note)`` per video stream a video has but that is not used (a second camera, cover art)
    video_streams: list[tuple[str, str]] = field(default_factory=list)
    #: the number of entries of ``skipped`` / ``video_streams`` when those lists hold only the first ones
    skipped_count: int = 0
    video_streams_count: int = 0
    #: what else the listing found that the run summary and report must say (e.g. another datasource)
    notes: list[str] = field(default_factory=list)
    #: files the datapool holds that the datasource no longer has (:mod:`lightly_airflow.datasource.gone`): their
    #: number, the pool's samples behind them, how many of those are selected, the first few keys
    gone: int = 0
    gone_samples: int = 0
    gone_selected: int = 0
    gone_examples: list[str] = field(default_factory=list)
    #: of this run's new files, those with the content of a gone file (moved or renamed), and the first
    #: ``[new key, gone key]`` pairs
    gone_moved: int = 0
    gone_moved_examples: list[list[str]] = field(default_factory=list)
    #: of ``gone_selected``, the samples of gone keys that moved (a commit hands their selection to the new keys)
    gone_moved_selected: int = 0
    #: files the listing kept (the datasource's samples-to-be, before videos become frames), and of them those this
    #: run did not process: the report's first lines say both. The two splits below add up to them
    #: (:meth:`adds_up`); the list step's ``find_new_files`` counts them, from its one anti-join.
    listed: int = 0
    not_processed: int = 0
    #: the files processed (``listed - not_processed``): keys the pool does not hold, new content under a key it
    #: holds, and (``process_all``) content it holds, processed again
    new_keys: int = 0
    replaced: int = 0
    processed_again: int = 0
    #: the files not processed: content the pool holds, changed under a key it holds (policy ``key``), Live Photo
    #: clips (``live_photo_clips``), archived (not restored), expiring (``input_expiration`` SKIP)
    unchanged: int = 0
    changed_under_key: int = 0
    archived: int = 0
    expiring: int = 0
    #: the relevant-filenames file the listing applied (``None``: none)
    relevant: RelevantApplied | None = None

    def __post_init__(self) -> None:
        self.skipped_count = max(int(self.skipped_count), len(self.skipped))
        self.video_streams_count = max(int(self.video_streams_count), len(self.video_streams))

    @property
    def processed_files(self) -> int:
        return self.listed - self.not_processed

    def file_counts(self) -> dict[str, int]:
        """What became of the listed files: the summary's and ``listing.json``'s counts (zeros included)."""
        return {"listed": self.listed, "processed_files": self.processed_files, "new_keys": self.new_keys,
                "replaced": self.replaced, "processed_again": self.processed_again,
                "not_processed": self.not_processed, "unchanged": self.unchanged,
                "changed_under_key": self.changed_under_key, "live_photo_clips": self.live_photo_clips,
                "archived": self.archived, "expiring": self.expiring}

    def adds_up(self) -> bool:
        """The splits add up to the files processed and not processed (``False`` for a summary written before they
        were counted: it has none)."""
        return (self.new_keys + self.replaced + self.processed_again == self.processed_files
                and self.unchanged + self.changed_under_key + self.live_photo_clips + self.archived + self.expiring
                == self.not_processed)

    def counts(self) -> dict[str, int]:
        """The counts of the list task's XCom (``ListResult``)."""
        return {"skipped": self.skipped_count, "unsupported": self.unsupported, "os_files": self.os_files,
                "live_photo_clips": self.live_photo_clips, "older_pixel_rules": self.older_pixel_rules,
                "gone": self.gone}

    def to_dict(self, limit: int = 10_000) -> dict[str, Any]:
        """``listing.json``: every count, at most ``limit`` skipped entries and unused video streams."""
        return {"skipped_count": self.skipped_count, "skipped": [list(e) for e in self.skipped[:limit]],
                "unsupported": self.unsupported, "unsupported_examples": list(self.unsupported_examples),
                "os_files": self.os_files, "os_files_examples": list(self.os_files_examples),
                **(self._live_photos() if self.live_photo_clips else {}),
                "older_pixel_rules": self.older_pixel_rules,
                "video_streams_count": self.video_streams_count,
                "video_streams": [list(e) for e in self.video_streams[:limit]],
                # only when there are any: without, the file is the previous version's, key for key
                **({"unlisted_images": dict(self.unlisted_images)} if self.unlisted_images else {}),
                **({"notes": list(self.notes)} if self.notes else {}),
                **(self._gone() if self.gone or self.gone_moved else {}),
                **self._listed()}

    def _listed(self) -> dict[str, Any]:
        return {**(self.file_counts() if self.listed else {}),
                **({"relevant_filenames": self.relevant.to_dict()} if self.relevant else {})}

    def _live_photos(self) -> dict[str, Any]:
        return {"live_photo_clips": self.live_photo_clips,
                "live_photo_clips_examples": [list(p) for p in self.live_photo_clips_examples]}

    def _gone(self) -> dict[str, Any]:
        return {"gone": self.gone, "gone_samples": self.gone_samples, "gone_selected": self.gone_selected,
                "gone_examples": list(self.gone_examples),
                **({"gone_moved": self.gone_moved, "gone_moved_selected": self.gone_moved_selected,
                    "gone_moved_examples": [list(p) for p in self.gone_moved_examples]}
                   if self.gone_moved else {})}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ListingSkips:
        """Read :meth:`to_dict` (or ``list_files``' ``stats``); a key an older version did not write counts as
        none, so a retried run reads the ``listing.json`` of an attempt before an upgrade."""
        return cls(
            skipped=_pairs(value.get("skipped")), skipped_count=int(value.get("skipped_count") or 0),
            unsupported=int(value.get("unsupported") or 0),
            unsupported_examples=[str(k) for k in value.get("unsupported_examples") or []],
            unlisted_images={str(k): int(n) for k, n in (value.get("unlisted_images") or {}).items()},
            os_files=int(value.get("os_files") or 0),
            os_files_examples=[str(k) for k in value.get("os_files_examples") or []],
            live_photo_clips=int(value.get("live_photo_clips") or 0),
            live_photo_clips_examples=_pairs(value.get("live_photo_clips_examples")),
            older_pixel_rules=int(value.get("older_pixel_rules") or 0),
            video_streams=_pairs(value.get("video_streams")),
            video_streams_count=int(value.get("video_streams_count") or 0),
            notes=[str(n) for n in value.get("notes") or []],
            gone=int(value.get("gone") or 0), gone_samples=int(value.get("gone_samples") or 0),
            gone_selected=int(value.get("gone_selected") or 0),
            gone_examples=[str(k) for k in value.get("gone_examples") or []],
            gone_moved=int(value.get("gone_moved") or 0),
            gone_moved_selected=int(value.get("gone_moved_selected") or 0),
            gone_moved_examples=[[str(k) for k in p] for p in value.get("gone_moved_examples") or []],
            relevant=RelevantApplied.from_dict(value.get("relevant_filenames")),
            **{name: int(value.get(name) or 0) for name in _FILE_COUNTS},
        )

    def summary(self) -> dict[str, Any]:
        """The run summary's ``listing`` entry: the counts that are not zero and the first examples."""
        out: dict[str, Any] = {}
        if self.skipped_count:
            out.update(skipped=self.skipped_count, skipped_examples=[list(e) for e in self.skipped[:5]])
        if self.unsupported:
            out.update(unsupported=self.unsupported, unsupported_examples=list(self.unsupported_examples))
        if self.unlisted_images:
            out["unlisted_images"] = dict(self.unlisted_images)
        if self.os_files:
            out.update(os_files=self.os_files, os_files_examples=list(self.os_files_examples))
        if self.live_photo_clips:
            out.update(self._live_photos())
        if self.older_pixel_rules:
            out["older_pixel_rules"] = self.older_pixel_rules
        if self.video_streams:
            out.update(unused_video_streams=self.video_streams_count,
                       unused_video_streams_examples=[list(e) for e in self.video_streams[:20]])
        if self.notes:
            out["notes"] = list(self.notes)
        if self.gone or self.gone_moved:  # (a move onto a replaced key: nothing gone)
            out.update(self._gone())
        out.update(self._listed())
        return out

    @classmethod
    def from_summary(cls, value: Mapping[str, Any] | None) -> ListingSkips:
        """Read :meth:`summary` (the report reads a run summary's ``listing`` entry)."""
        value = value or {}
        return cls.from_dict({**value, "skipped": value.get("skipped_examples"), "skipped_count": value.get("skipped"),
                              "video_streams": value.get("unused_video_streams_examples"),
                              "video_streams_count": value.get("unused_video_streams")})


#: the counts of :meth:`ListingSkips.file_counts` read back (``processed_files`` and ``live_photo_clips`` are not
#: among them: the one derived, the other read with its examples)
_FILE_COUNTS = ("listed", "not_processed", "new_keys", "replaced", "processed_again", "unchanged",
                "changed_under_key", "archived", "expiring")


@dataclass(frozen=True)
class RelevantApplied:
    """The relevant-filenames file (Lightly's ``relevant_filenames_file``) a listing applied: where it is, the
    file names it lists (and how many of them the datasource holds) and its folder or pattern lines."""

    file: str
    names: int = 0
    names_matched: int = 0
    patterns: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "names": self.names, "names_matched": self.names_matched,
                "patterns": self.patterns}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> RelevantApplied | None:
        if not value:
            return None
        return cls(file=str(value.get("file") or ""), names=int(value.get("names") or 0),
                   names_matched=int(value.get("names_matched") or 0), patterns=int(value.get("patterns") or 0))


def _pairs(value: Any) -> list[tuple[str, str]]:
    return [(str(k), str(r)) for k, r in value or []]


@dataclass(frozen=True)
class NewFiles:
    """The answer to a query: everything listed, what the run processes, and the pool's known files.

    :param listing: every listed file (``key, size, etag, mtime``).
    :param files: the files the run processes (``listing`` itself with ``process_all``).
    :param known: the datapool's ``key, etag, …`` (``None``: no datapool yet, or not read with ``process_all``).
    """

    query: NewFilesQuery
    listing: pa.Table
    files: pa.Table
    known: pa.Table | None
    #: what the listing did not list (skipped entries, unsupported and OS files)
    skips: ListingSkips = field(default_factory=ListingSkips)
    #: ``(key, reason)`` of the files to process that the bucket's lifecycle deletes within
    #: ``query.min_days_to_expiration`` days when ``expiration_handling`` is ``ABORT`` (the list step fails on
    #: them; with ``SKIP`` they are in ``skips.skipped`` and not in ``files``)
    expiring: list[tuple[str, str]] = field(default_factory=list)
    #: the text of the relevant-filenames file the listing applied (``None``: none)
    relevant: str | None = None
    #: the entries the listing itself skipped (present but not listed), without the relevant-filenames file's
    #: names that the datasource does not hold (those are in ``skips.skipped`` too)
    unlisted: list[tuple[str, str]] = field(default_factory=list)

    @property
    def known_count(self) -> int:
        return 0 if self.known is None else int(self.known.num_rows)


def unmatched_relevant(text: str, listing: pa.Table, name: str, repeated: bool,
                        near: Mapping[str, str] | None = None,
                        unlisted: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """``(entry, reason)`` for each file the relevant-filenames file lists by name that the listing does not
    hold (a typo, another case or extension, a deleted file): reported with the listing's skipped entries
    instead of being dropped without a word; ``near`` (``list_files``' ``relevant_near``): keys that such a name
    meant but for case or Unicode normalization, named in its reason with the fix. A name the listing skipped
    (``unlisted``: present, with its own reason and fix, e.g. a tab in it) is not one: it was counted twice, the
    second time as "the datasource has no such file"."""
    import pyarrow.compute as pc

    from lightly_airflow.datasource.relevant import RelevantFilenames, fold_names, near_reason

    near = near or {}

    names = RelevantFilenames.parse(text).exact_array
    if not len(names):
        return []
    found = pc.is_in(names, value_set=listing.column("key").combine_chunks())
    if unlisted:
        found = pc.or_(found, pc.is_in(names, value_set=pa.array([key for key, _ in unlisted], pa.string())))
    missing = names.filter(pc.invert(found)).to_pylist()
    if not missing:
        return []
    _warn(f"{len(missing)} of the {len(names)} files {name} lists by name are not in the datasource (or have an "
          f"extension that is not listed), e.g. {', '.join(repr(m) for m in missing[:5])}", repeated)
    reason = (f"listed in {name}, but the datasource has no such file (or its extension is not listed): check the "
              "name, its case and extension")
    from lightly_airflow.datasource.records import os_file_mask

    junk = os_file_mask(pa.array(missing, pa.string())).to_pylist()
    os_reason = (f"listed in {name}, but it is an OS or tool metadata file or lies in a hidden folder (see "
                 "docs/datasources.md), never a sample: rename it or its folder, or point the datasource at that folder")
    folded = fold_names(pa.array(missing, pa.string())).to_pylist()
    return [(m, os_reason if j else near_reason(name, m, near[f]) if f in near else reason)
            for m, j, f in zip(missing, junk, folded, strict=True)]


def find_new_files(
    query: NewFilesQuery,
    credentials: QueryCredentials | None = None,
    *,
    known: KnownFiles | None = None,
    read_known_with_process_all: bool = False,
    now: dt.datetime | None = None,
    repeated: bool = False,
    retry_missing: bool = True,
) -> NewFiles:
    """List the datasource and keep what ``query`` says the run processes.

    :param query: the run's query.
    :param credentials: credentials of the datasource, datapool and ``.lightly/`` stores.
    :param known: how to read the pool's known files (default :func:`known.known_files`).
    :param read_known_with_process_all: read the pool's known files also when every file is processed
        (the list step needs them to reuse unchanged embeddings; the new-file check does not).
    :param now: the clock of ``input_expiration`` (default: the current time).
    :param repeated: a check that runs again and again (sensor, watcher): its warnings (Live Photo clips, archived
        or expiring files, names the relevant-filenames file lists but the datasource lacks) are logged once per
        process each (:func:`_warn`).
    :param retry_missing: process again the listed files whose key's latest pool row is ``missing``
        (:func:`~lightly_airflow.datapool.snapshot.known_rows`, the one rule of the known files); a sensor's check
        passes ``False``: a file that stays unreadable would start a run at every poke.
    :raises RelevantFilenamesMissing: when the relevant-filenames file does not exist.
    :raises LifecycleUnreadableError: when ``input_expiration`` is set and the bucket's rules cannot be read.
    :raises FileNotFoundError: when the datasource does not exist.
    """
    from lightly_airflow.datasource import known as known_module

    creds = credentials or QueryCredentials()
    relevant = _read_relevant(query, creds)
    listing, skipped, stats = _listed(query, creds, relevant, repeated)
    unlisted = list(skipped)
    applied = None
    if relevant is not None:
        missing = unmatched_relevant(relevant, listing, str(query.relevant_filenames_file), repeated,
                                     stats.pop("relevant_near", None), unlisted)
        skipped.extend(missing)
        applied = _relevant_applied(query, relevant, len(missing))
    pool: pa.Table | None = None
    if not query.process_all or read_known_with_process_all:
        pool = (known or known_module.known_files)(query.datapool_uri, creds.datapool)
    from lightly_airflow.datapool.snapshot import known_rows
    from lightly_airflow.video.listing import known_videos

    # A video is known by its frames' rows (same video key and content identity): unchanged videos are not new.
    pool_ids = known_videos(None if pool is None else known_rows(pool, missing=not retry_missing))
    split = _split(listing, pool_ids, query, counted=not repeated)
    notes: list[str] = []
    if unlisted and pool is not None and not repeated:
        _held_by_pool(skipped, len(unlisted), pool_ids)
    split, clips_count = _without_live_photo_clips(query, listing, split, stats, repeated)
    if split.changed.num_rows and not repeated:  # (a run's note: not every sensor poke)
        _changed_under_key_policy(split.changed, notes)
    files, counts, expiring = _not_readable_in_time(query, split.files, stats, skipped, notes, creds, now, repeated)
    # (a sensor's poke counts nothing: no one reads it, and its one join is the policy's own, without the probe)
    counts = {} if repeated else {**counts, **split.counts(files, listing.num_rows, clips_count + sum(counts.values()))}
    logger.info(
        "%s: %d files listed, %d to process (%s), %d known to the datapool %s",
        query.datasource_uri, listing.num_rows, files.num_rows,
        "process_all" if query.process_all else f"policy {query.policy}",
        0 if pool is None else pool.num_rows, query.datapool_uri,
    )
    skips = ListingSkips.from_dict({**stats, "skipped": skipped, "notes": notes, **counts})
    return NewFiles(query=query, listing=listing, files=files, known=pool, expiring=expiring,
                    skips=replace(skips, relevant=applied), relevant=relevant, unlisted=unlisted)


def _read_relevant(query: NewFilesQuery, creds: QueryCredentials) -> str | None:
    """The text of the query's relevant-filenames file (``None``: none set).

    :raises RelevantFilenamesMissing: when the file does not exist."""
    if not query.relevant_filenames_file:
        return None
    from lightly_airflow.lightly_dir import read_relevant_filenames

    try:
        return read_relevant_filenames(query.effective_lightly_uri, query.relevant_filenames_file, creds.lightly)
    except FileNotFoundError as exc:
        raise RelevantFilenamesMissing(str(exc)) from None


def _listed(query: NewFilesQuery, creds: QueryCredentials, relevant: str | None,
            repeated: bool) -> tuple[pa.Table, list[tuple[str, str]], dict[str, Any]]:
    """The datasource's listing as one table, with the entries it skipped and its stats (:func:`list_files`);
    skipped keys that a rename as their reason says would clash with a listed file are warned of."""
    skipped: list[tuple[str, str]] = []
    stats: dict[str, Any] = {}
    listing = pa.Table.from_batches(
        list(list_files(query.datasource_uri, credentials=creds.datasource, relevant_filenames=relevant,
                        extensions=query.extensions, skipped=skipped, stats=stats)),
        schema=MANIFEST_SCHEMA,
    )
    clashes = clashing_renames(skipped, listing.column("key").combine_chunks())
    if clashes:  # (the listing's own warning named the plain rename)
        _warn(f"{len(clashes)} skipped keys would overwrite another file if renamed as said above, e.g. "
              + "; ".join(f"{key!r}: {reason}" for key, reason in clashes[:3]), repeated)
    return listing, skipped, stats


def _without_live_photo_clips(query: NewFilesQuery, listing: pa.Table, split: _Split, stats: dict[str, Any],
                              repeated: bool) -> tuple[_Split, int]:
    """``split`` without the Live Photos' motion clips (a Live Photo is its photo: the clip beside it is not a
    sample) unless ``live_photo_videos``, and how many clips the listing holds (added to ``stats``, warned)."""
    if query.live_photo_videos:
        return split, 0
    from lightly_airflow.datasource.live_photos import clips_note, live_photo_clips, without_clips

    clips = live_photo_clips(listing)
    if not clips.count:
        return split, 0
    stats.update(live_photo_clips=clips.count, live_photo_clips_examples=clips.examples)
    _warn(clips_note(clips.count, clips.examples), repeated)
    return replace(split, files=without_clips(split.files, clips, listing),
                   changed=without_clips(split.changed, clips, listing)), clips.count


def _not_readable_in_time(
    query: NewFilesQuery, files: pa.Table, stats: dict[str, Any], skipped: list[tuple[str, str]], notes: list[str],
    creds: QueryCredentials, now: dt.datetime | None, repeated: bool,
) -> tuple[pa.Table, dict[str, int], list[tuple[str, str]]]:
    """``files`` without the archived ones (:func:`_without_archived`) and, with ``input_expiration`` SKIP, those
    that expire soon (both added to ``skipped``); their counts (``archived``, ``expiring``) and, with ABORT, the
    expiring ``(key, reason)`` the list step fails on."""
    archived = stats.get("archived") or {}
    before = files.num_rows
    if archived and files.num_rows:  # (archived files the pool holds already are not new: not said every run)
        files = _without_archived(files, archived, skipped, repeated)
    counts = {"archived": before - files.num_rows}
    expiring: list[tuple[str, str]] = []
    if query.min_days_to_expiration is not None:
        before = files.num_rows
        files, expiring = _expiring(query, files, creds.datasource, now, notes, repeated)
        counts["expiring"] = before - files.num_rows
        if query.expiration_handling == "SKIP":
            skipped.extend((key, f"{reason}; input_expiration SKIP: not processed") for key, reason in expiring)
            expiring = []
    return files, counts, expiring


def _relevant_applied(query: NewFilesQuery, text: str, unmatched: int) -> RelevantApplied:
    """What the report says of the relevant-filenames file: where, its names (and how many the datasource holds:
    those :func:`unmatched_relevant` did not name), its folder or pattern lines."""
    from lightly_airflow.datasource.relevant import RelevantFilenames
    from lightly_airflow.lightly_dir import lightly_root, relevant_filenames_relpath
    from lightly_airflow.storage import join_uri, masked_uri

    parsed = RelevantFilenames.parse(text)  # (cached: the listing's own parse)
    where = join_uri(lightly_root(query.effective_lightly_uri), relevant_filenames_relpath(str(query.relevant_filenames_file)))
    return RelevantApplied(file=masked_uri(where), names=len(parsed.exact), names_matched=len(parsed.exact) - unmatched,
                           patterns=len(parsed.selections))


@dataclass(frozen=True)
class _Split:
    """The listing against the pool: the files the query processes (before clips, archived and expiring files
    leave), those changed under a key the pool holds that the ``key`` policy leaves (empty with ``content``), and
    the keys of the processed files' kinds (new keys, content replaced under a known key)."""

    files: pa.Table
    changed: pa.Table
    new_keys: pa.Array
    replaced_keys: pa.Array

    def counts(self, files: pa.Table, listed: int, left_out: int) -> dict[str, int]:
        """:class:`ListingSkips`' file counts of the processed ``files`` (of ``listed``); ``left_out``: the Live
        Photo clips, archived and expiring files not processed (counted by the caller)."""
        import pyarrow.compute as pc

        keys = files.column("key")
        new = int(pc.sum(pc.is_in(keys, value_set=self.new_keys)).as_py() or 0) if len(self.new_keys) else 0
        replaced = int(pc.sum(pc.is_in(keys, value_set=self.replaced_keys)).as_py() or 0) if len(self.replaced_keys) else 0
        not_processed = listed - files.num_rows
        return {"listed": listed, "not_processed": not_processed, "new_keys": new, "replaced": replaced,
                "processed_again": files.num_rows - new - replaced, "changed_under_key": self.changed.num_rows,
                "unchanged": not_processed - self.changed.num_rows - left_out}


def _split(listing: pa.Table, pool: pa.Table | None, query: NewFilesQuery, *, counted: bool = True) -> _Split:
    """One anti-join of ``listing`` against the ``pool``'s identities (:func:`~lightly_airflow.datasource.diff.
    split_new_files`) for the files to process and their counts under either policy (``process_all``: every listed
    file). Policy ``key`` ran a second anti-join, on (key, etag), for its note on files changed under their key.
    1,000,000 listed and known files, 20,000 new keys and 20,000 changed, 2-core machine shared with other test
    runs (load 2-10), best of 5, before and now in the same round: the list step under policy ``key`` 2.60 / 2.12,
    3.36 / 1.96, 2.53 / 1.80, 1.64 / 1.04 s (0.58-0.82x); under ``content`` 1.97 / 1.63 s (the key probe costs
    less than the noise). Not ``counted`` (a sensor's poke, which needs no note and no counts): the policy's own join,
    as before (under ``key`` 0.6-1.3 s; the join on (key, etag) and the probe took 1.6-2.6 s)."""
    if not counted and not query.process_all:
        from lightly_airflow.datasource.diff import new_files

        files = new_files(listing, pool, policy=query.policy)
        return _Split(files=files, changed=files.slice(0, 0), new_keys=files.column("key").combine_chunks(),
                      replaced_keys=pa.array([], pa.string()))
    import pyarrow.compute as pc

    from lightly_airflow.datasource.diff import split_new_files

    if query.process_all and pool is None:  # (a sensor's check, or a first run: each key is new, no sort)
        keys = listing.column("key").combine_chunks()
        return _Split(files=listing, changed=listing.slice(0, 0), new_keys=keys, replaced_keys=keys.slice(0, 0))
    new, held = split_new_files(listing, pool)
    keys = new.column("key").combine_chunks()
    kept = new.filter(pc.invert(held)) if query.policy == "key" else new
    return _Split(files=listing if query.process_all else kept,
                  changed=new.filter(held) if query.policy == "key" and not query.process_all else new.slice(0, 0),
                  new_keys=keys.filter(pc.invert(held)), replaced_keys=keys.filter(held))


def _held_by_pool(skipped: list[tuple[str, str]], n: int, known: pa.Table) -> None:
    """Say in the reasons of the listing's own first ``n`` skipped entries which keys the datapool holds a sample
    of (an earlier run processed them, e.g. before keys with a tab or an empty path segment were skipped): their
    rows stay, and they are not counted as gone (the listing met them); warned with their number."""
    import pyarrow.compute as pc

    keys = pa.array([key for key, _ in skipped[:n]], pa.string())
    hits = pc.indices_nonzero(pc.is_in(keys, value_set=known.column("key").combine_chunks().cast(pa.string())))
    for i in hits.to_pylist():
        skipped[i] = (skipped[i][0], f"{skipped[i][1]}; the datapool holds a sample of this key from an earlier run: "
                                     "its rows stay, and it is not counted as gone (the listing met it)")
    if len(hits):
        logger.warning("%d of the %d skipped keys have samples in the datapool from earlier runs, e.g. %s: their rows "
                       "stay and are not counted as gone; each skipped entry says what to do", len(hits), n,
                       ", ".join(repr(k) for k in keys.take(hits[:5]).to_pylist()))


def _changed_under_key_policy(changed: pa.Table, notes: list[str]) -> None:
    """Name in ``notes`` (and warn of) the listed files whose key the pool holds with another content identity,
    which the ``key`` policy does not process (``changed``: :class:`_Split`'s): the report counted them as
    "unchanged since the datapool processed them"."""
    examples = ", ".join(repr(k) for k in changed.column("key").to_pylist()[:5])
    note = (f"{changed.num_rows} listed files changed since the datapool processed them (another content identity "
            f"under the same key), e.g. {examples}: the new-file policy 'key' does not process them, so the pool keeps "
            "their former rows. To process them, run with policy='content' (or process_all).")
    notes.append(note)
    logger.warning("%s", note)


def _without_archived(files: pa.Table, archived: Mapping[str, str], skipped: list[tuple[str, str]],
                      repeated: bool) -> pa.Table:
    """``files`` without those that cannot be read until restored (S3 Glacier, Azure Archive), each one added to
    ``skipped`` with the fix: not processed, so still new when a later run finds it restored."""
    import pyarrow.compute as pc

    from lightly_airflow.datasource.listing import archived_reason

    keys = files.column("key")
    hit = pc.is_in(keys, value_set=pa.array(list(archived), pa.string()))
    gone = keys.filter(hit).to_pylist()
    if not gone:
        return files
    skipped.extend((k, archived_reason(archived[k])) for k in gone)
    _warn(f"{len(gone)} new files are archived and cannot be read until restored (not processed), e.g. "
          f"{', '.join(f'{k!r} ({archived[k]})' for k in gone[:5])}", repeated)
    return files.filter(pc.invert(hit))


def _expiring(query: NewFilesQuery, files: pa.Table, credentials: StorageCredentials | None, now: dt.datetime | None,
              notes: list[str], repeated: bool) -> tuple[pa.Table, list[tuple[str, str]]]:
    """``input_expiration``: the files the bucket's lifecycle deletes within the window, as ``(key, reason)``,
    and ``files`` without them with ``SKIP`` (with ``ABORT``: unchanged). What cannot be checked goes to
    ``notes``."""
    from lightly_airflow.datasource.expiration import expiring_files, read_lifecycle

    lifecycle = read_lifecycle(query.datasource_uri, credentials)
    for note in lifecycle.notes:
        _warn(f"input_expiration: {note}", repeated)
        notes.append(f"worker_config.datasource.input_expiration: {note}.")
    found = expiring_files(files, lifecycle, now=now or dt.datetime.now(dt.UTC),
                           min_days=float(query.min_days_to_expiration or 0.0))
    logger.info("input_expiration: %d lifecycle rules of %s delete objects; %d of the %d files to process expire "
                "within %g days (%s)", len(lifecycle.rules), query.datasource_uri, found.count, files.num_rows,
                query.min_days_to_expiration, query.expiration_handling)
    if found.count and query.expiration_handling == "SKIP":
        _warn(f"input_expiration: {found.count} files expire within {query.min_days_to_expiration:g} days and are "
              f"skipped, e.g. {'; '.join(f'{k!r}: {r}' for k, r in found.reasons[:3])}", repeated)
        files = files.filter(pa.array(~found.mask))
    return files, found.reasons
