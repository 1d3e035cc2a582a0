"""One curation run, as plain functions: what the Airflow tasks (and ``lightly-airflow run``) call.

``list_new`` is the first step (list the datasource, keep what the datapool has not seen, write manifest
shards); ``select_and_commit`` is the last (join the run's staging files, drop corrupt files and exact
duplicates, select with everything already selected as context, commit one datapool version). The stages in
between are mapped over the manifest shards and live in ``embedding``, ``metadata`` and ``predictions``.
Nothing here imports Airflow.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.arrow import filtered
from lightly_airflow.datasource.query import ListingSkips, NewFiles, NewFilesQuery, QueryCredentials
from lightly_airflow.review import (
    COMMITTED_AFTER_REVIEW,
    PROPOSAL_FILE,
    Review,
    ReviewError,
    answered_before,
    mismatch,
    parse_proposal,
    proposal_record,
    refused_record,
    sequences_as_reviewed,
)
from lightly_airflow.storage import (
    StorageCredentials,
    filesystem,
    join_uri,
    map_io,
    masked_uri,
    protocol_of,
    read_parquet,
    secret_in_uri,
    write_bytes,
    write_parquet,
)

if TYPE_CHECKING:
    from lightly_airflow.datapool import Snapshot
    from lightly_airflow.selection.engine import StopReason

log = logging.getLogger(__name__)

#: Stages whose per-shard outputs are joined onto the manifest, in this order.
STAGE_KINDS = (staging.EMBEDDINGS, staging.METADATA, staging.PREDICTIONS)


class ParamError(ValueError):
    """A run parameter is wrong; the message names the parameter and the fix."""

    def __init__(self, param: str, problem: str, fix: str) -> None:
        self.param = param
        super().__init__(f"Parameter '{param}': {problem} Fix: {fix}")


@dataclass
class ListResult:
    """What the listing step found; small enough for XCom."""

    manifests: list[str]
    seen: int
    new: int
    known: int
    process_all: bool
    reusable: int = 0
    reuse_uri: str | None = None
    new_files: int = 0  #: files (a video counts once) behind the ``new`` samples (a video adds all its frames)
    #: the counts of :meth:`ListingSkips.counts <lightly_airflow.datasource.ListingSkips.counts>` (what the
    #: listing did not list or reuse; ``listing.json`` has the entries)
    skipped: int = 0
    unsupported: int = 0
    os_files: int = 0
    live_photo_clips: int = 0  #: Live Photos' motion clips not processed (``datasource.live_photos``)
    older_pixel_rules: int = 0
    gone: int = 0  #: files the pool holds that the datasource no longer has (``datasource.gone``)
    #: what became of the listed files (processed: new keys, replaced, processed again; not processed: unchanged,
    #: changed under the key policy, Live Photo clips, archived, expiring): :meth:`ListingSkips.file_counts
    #: <lightly_airflow.datasource.ListingSkips.file_counts>`, as in the run summary's ``listing``
    files: dict[str, int] = field(default_factory=dict)
    #: the relevant-filenames file the listing applied (:class:`~lightly_airflow.datasource.query.RelevantApplied`
    #: as a dict: its names that match no file are no skipped file, ``run_metrics.skipped_files``); empty: none
    relevant_filenames: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Selected sequences a run's summary lists with their frames (``metrics.sequences``; the summary is the select
#: task's XCom: ~70 bytes a frame, 7 MB at 100,000 frames unlisted); ``metrics.sequences_listed`` says a cut.
SEQUENCES_LISTED = 100


@dataclass
class RunSummary:
    """What the select-and-commit step did; small enough for XCom and printed by the demo."""

    run_id: str
    tag: str | None
    version: int | None
    already_committed: bool = False
    dry_run: bool = False
    candidates: int = 0
    processed: int = 0
    selected: int = 0
    corrupt: int = 0
    duplicate: int = 0
    missing: int = 0
    #: the commit's counts of its moves (:func:`~lightly_airflow.datapool.moves.move_counts`: ``moved``, of them
    #: ``moved_selected``, and the pairs refused because the image has objects); empty: none, or not committed.
    #: ``moved`` (a property, and a key of :meth:`to_dict`) is read from it.
    moves: dict[str, int] = field(default_factory=dict)
    pool_selected_before: int = 0
    report_uri: str | None = None
    problems: int = 0
    problems_uri: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Options the run was given that have no effect here, each with the reason (worker_config keys).
    notes: list[str] = field(default_factory=list)
    #: Samples lacking an input a strategy reads, per input column (``preselected:<column>`` for the pool's).
    missing_inputs: dict[str, int] = field(default_factory=dict)
    #: Goals the selection missed and why (e.g. a BALANCE class whose samples all lack a WEIGHTS score).
    warnings: list[str] = field(default_factory=list)
    #: the new picks this run was asked for when it is not the config's own count: with ``n_samples_meaning:
    #: total``, ``n_samples`` minus the samples already selected (never below 0); what the report's "Missed goals"
    #: compares the selection with. ``None``: the config's ``n_samples`` / ``proportion_samples`` counts.
    n_wanted: int | None = None
    #: entries the run's report lists under "Missed goals" (:func:`~lightly_airflow.report.goals.count_listed_goals`:
    #: the goals missed and the ``warnings``), counted as the report is written; ``None``: no report written now
    goals_missed: int | None = None
    #: predictions without ``probabilities`` per task, taken from their ``score`` (the predictions shards' counts,
    #: summed: :func:`~lightly_airflow.staging.with_counts`); the report's notes
    derived_probabilities: dict[str, int] = field(default_factory=dict)
    #: selected video frames written as PNG (``written``, ``existing``, ``failed``, ``folder``)
    frames: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)
    #: what the listing did not list: :meth:`ListingSkips.summary <lightly_airflow.datasource.ListingSkips.summary>`
    listing: dict[str, Any] = field(default_factory=dict)
    #: the pool's small-file merge after the commit (:class:`~lightly_airflow.datapool.compaction.CompactionResult`)
    compaction: dict[str, Any] = field(default_factory=dict)
    #: what started the run (:meth:`RunOrigin.to_dict <lightly_airflow.run_origin.RunOrigin.to_dict>`: the schedule, a
    #: person, the new-file watcher's announcement …); empty when the caller did not say
    started_by: dict[str, Any] = field(default_factory=dict)
    #: a reviewed run's state (:meth:`Review.to_dict <lightly_airflow.review.Review.to_dict>`: awaiting review,
    #: committed after review, discarded in review; who answered, when); empty without review
    review: dict[str, Any] = field(default_factory=dict)

    @property
    def committed(self) -> bool:
        """Whether the run committed a datapool version (not a dry run, nor a proposal awaiting review or a
        discarded one; a retry of a committed run did)."""
        return (self.version is not None and not self.dry_run
                and (not self.review or self.review.get("state") == COMMITTED_AFTER_REVIEW))

    @property
    def moved(self) -> int:
        """New files that took over a moved file's sample (``datapool.moves``: a new key with a gone key's content):
        ``moves["moved"]``, 0 without moves."""
        from lightly_airflow.datapool.moves import MOVED

        return int(self.moves.get(MOVED, 0))

    def to_dict(self) -> dict[str, Any]:
        """The fields, ``committed`` and ``moved``."""
        return {**asdict(self), "committed": self.committed, "moved": self.moved}


def check_uri_param(param: str, uri: str, credentials: StorageCredentials | None, *, must_exist: bool) -> None:
    """Validate a URI parameter once, at the edge: supported scheme and (optionally) an existing folder."""
    if not uri or not isinstance(uri, str):
        raise ParamError(param, f"got {uri!r}.", "pass a URI such as file:///data/images or s3://bucket/prefix.")
    secret = secret_in_uri(uri)  # before any message names the URI
    if secret:
        raise ParamError(param, f"{secret}, which would be written into logs, XComs, the datapool and reports.",
                         "remove the credentials from the URI and put them into the Airflow connection of that store.")
    try:
        protocol_of(uri)
    except ValueError as exc:
        raise ParamError(param, str(exc), "use a file://, s3://, gs:// or az:// URI.") from None
    if not re.match(r"(/|[A-Za-z][A-Za-z0-9+.-]*://)", uri):  # (the example DAG's form checks the same pattern)
        raise ParamError(param, f"{uri!r} is neither an absolute path nor a <scheme>:// URI: a relative path (or a typo "
                         "such as s3//bucket or file:/data) names a folder under whatever directory each worker runs "
                         "in.", "give an absolute path or a URI such as file:///data/images or s3://bucket/prefix.")
    problem = (credentials or StorageCredentials()).store_problem(uri)  # (ambient: an Azure URI naming no account)
    if problem:
        raise ParamError(param, *problem)
    if must_exist:
        fs, path = filesystem(uri, credentials)
        if protocol_of(uri) != "file":
            _check_store_prefix(param, uri, fs, path)
        elif not fs.exists(path) or not fs.isdir(path):
            raise ParamError(
                param,
                f"{uri!r} does not exist or is not a folder.",
                "point it at the folder (or bucket prefix) that holds your images, and check the connection.",
            )


def _check_store_prefix(param: str, uri: str, fs: Any, path: str) -> None:
    """An object store has no folders: a prefix with no objects under a bucket (or container) that can be
    listed is an empty folder (a run waits for files, or finds nothing new); a bucket that does not exist or
    cannot be listed, or a URI naming a file, is a :class:`ParamError` with the store's reason (an Azure container
    name Azure refuses: the listing's message, with its rules, where adlfs raised Azure's whole XML error)."""
    from lightly_airflow.datasource.listing import bad_container
    from lightly_airflow.storage import describe_store_error

    fix = "point it at the bucket prefix that holds your images, and check the connection."
    try:
        if fs.exists(path):
            if fs.isdir(path):
                return
            raise ParamError(param, f"{uri!r} is a file, not a folder (a bucket prefix).", fix)
        # Nothing under the prefix: list it (one request; it raises for a missing or unreadable bucket).
        found = fs.find(path)
        bucket = path.partition("/")[0]
        if not found and not fs.exists(bucket):  # (adlfs lists a missing container as empty: no error, and a run
            # waited for files that never come, while S3 and GCS said the bucket did not exist)
            raise FileNotFoundError(f"{bucket!r} not found")
    except ParamError:
        raise
    except Exception as exc:  # (FileNotFoundError, PermissionError: what s3fs, gcsfs and adlfs raise)
        bad = bad_container(uri, path.partition("/")[0], str(exc))
        if bad is not None:
            raise ParamError(param, *str(bad).split(" Fix: ", 1)) from None
        described = describe_store_error(exc)  # (also botocore's NoCredentialsError, which is no OSError)
        if described is not None:
            what, store_fix = described
            raise ParamError(param, f"{uri!r} cannot be listed: {what}.", f"{store_fix}.") from None
        if not isinstance(exc, OSError):
            raise
        if isinstance(exc, FileNotFoundError):
            raise ParamError(param, f"{uri!r} cannot be listed: its bucket (or container) does not exist ({exc}).",
                             "create the bucket, or correct the URI.") from None
        if isinstance(exc, PermissionError):
            raise ParamError(param, f"{uri!r} cannot be listed: access was denied ({exc}).",
                             "give the connection's identity list and read access on it, or use another "
                             "connection.") from None
        raise  # a transient or unknown error: as it is (a retry may pass)
    if not found:
        log.info("%s: %s holds no objects yet: an empty folder (a run waits for files, or finds nothing new).",
                 param, uri)


class CheckedParams(NamedTuple):
    """What :func:`validate_params` checked: the parsed configs, and where the custom embeddings CSV lives."""

    #: the parsed selection config
    selection: Any
    #: the parsed worker config
    worker: Any
    #: ``worker_config.embeddings`` resolved inside ``.lightly/embeddings/`` (:func:`custom_embeddings_uri`; its
    #: header read and checked once, here), ``None`` without one: what the list task hands to the embed tasks
    embeddings_csv: str | None
    #: the embed step's options the Lightly configs ask for (:func:`embed_option_overrides`, computed once here:
    #: ``lightly_config`` parsed and its keys without effect logged once)
    embed_overrides: dict[str, Any]


def validate_params(
    *,
    datasource_uri: str,
    datapool_uri: str,
    lightly_uri: str | None,
    selection_config: Any,
    worker_config: Any = None,
    datasource_credentials: StorageCredentials | None = None,
    lightly_credentials: StorageCredentials | None = None,
    lightly_config: Any = None,
    datapool_credentials: StorageCredentials | None = None,
    active_learning: Mapping[str, Any] | None = None,
) -> CheckedParams:
    """Check every run parameter before any work starts; return the parsed selection and worker configs and the
    custom embeddings CSV's URI (:class:`CheckedParams`: the list task reuses it instead of reading the CSV's
    header from the store a second time).

    ``lightly_config`` (Lightly's embedding settings) is checked when given; :func:`embed_option_overrides`
    turns it and the worker config into the embed step's options.
    """
    from lightly_airflow.config import ConfigError, parse_selection_config, parse_worker_config

    check_uri_param("datasource_uri", datasource_uri, datasource_credentials, must_exist=True)
    check_uri_param("datapool_uri", datapool_uri, datapool_credentials, must_exist=False)
    check_pool_location(datasource_uri, datapool_uri)
    if lightly_uri:
        check_uri_param("lightly_uri", lightly_uri, lightly_credentials, must_exist=False)
    try:
        selection = parse_selection_config(selection_config)
    except ConfigError as exc:
        raise ParamError(
            "selection_config", f"is not a valid Lightly selection config:\n{exc}\n",
            "correct the listed keys (see docs/selection.md for every strategy and input).",
        ) from None
    worker = _lightly_config_param("worker_config", parse_worker_config, worker_config)
    overrides = embed_option_overrides(worker, lightly_config)
    dim = overrides.get("dim") if lightly_config else None
    for note in selection.notes():
        log.warning("selection_config.%s", note)
    # (num_ftrs against the CSV's width from the same header read: the embed step checks it only after the listing)
    embeddings_csv = custom_embeddings_uri(worker, lightly_uri or datasource_uri,
                                           lightly_credentials or datasource_credentials, dim=dim)
    check_relevant_filenames(worker, lightly_uri or datasource_uri, lightly_credentials or datasource_credentials)
    from lightly_airflow.objects.spec import check_object_level, check_tasks, objects_spec

    # (the configs' object-level settings first: a SCORES input naming an auto task is named as such, not as a
    # task missing from .lightly/predictions/tasks.json)
    object_problem = check_object_level(selection, worker)
    if object_problem is not None:
        raise ParamError(*object_problem)
    check_selection_inputs(
        selection, lightly_uri or datasource_uri, lightly_credentials or datasource_credentials,
        datapool_credentials=datapool_credentials, worker=worker,
    )
    if active_learning:
        check_active_learning(active_learning, datapool_uri, datapool_credentials)
    from lightly_airflow.selection.sequences import check_sequence_config

    problem = check_sequence_config(selection, worker.selected_sequence_length)
    if problem:
        raise ParamError("worker_config.selected_sequence_length", problem, "make n_samples a multiple of it.")
    # (the object tasks against .lightly/predictions: here too, not only in the listing, so the sensor that waits
    # for new files fails on a misspelt crops.enable_upload_for_tasks before it waits)
    object_problem = check_tasks(
        objects_spec(selection, worker), lightly_uri or datasource_uri, lightly_credentials or datasource_credentials)
    if object_problem is not None:
        raise ParamError(*object_problem)
    return CheckedParams(selection, worker, embeddings_csv, overrides)


def check_active_learning(
    options: Mapping[str, Any], datapool_uri: str, credentials: StorageCredentials | None = None
) -> None:
    """The active-learning params (``query_tag_name``, ``preselected_tag_name``, ``n_samples_meaning``) are
    valid and name tags the datapool has."""
    from lightly_airflow.active_learning import QueryOptions

    try:
        al = QueryOptions(**dict(options))
    except (TypeError, ValueError) as exc:
        raise ParamError("n_samples_meaning", str(exc), "use 'new' or 'total'.") from None
    names = [(p, getattr(al, p)) for p in ("query_tag_name", "preselected_tag_name") if getattr(al, p)]
    if not names:
        return
    from lightly_airflow.datapool import Datapool

    pool = Datapool(datapool_uri, credentials)
    known = {t["name"] for t in pool.tags()} if pool.exists() else set()
    for param, name in names:
        if name not in known:
            raise ParamError(param, f"the datapool {datapool_uri} has no tag {name!r} (tags: {sorted(known)}).",
                             "name a tag of an earlier run (`lightly-airflow datapool tags`), or leave it empty.")


def _lightly_config_param(param: str, parse: Any, value: Any) -> Any:
    """Parse a ``worker_config``/``lightly_config`` param (ParamError naming it) and log its no-effect notes."""
    from lightly_airflow.config import ConfigError

    try:
        parsed = parse(value or {})
    except ConfigError as exc:
        raise ParamError(
            param, f"is not valid:\n{exc}\n",
            "remove or correct the listed keys (docs/lightly-compat.md lists every key and what it does here).",
        ) from None
    for note in parsed.notes():
        log.warning("%s.%s", param, note)
    return parsed


def check_selection_inputs(
    selection: Any, lightly_uri: str, credentials: StorageCredentials | None = None, *,
    datapool_credentials: StorageCredentials | None = None, worker: Any = None,
) -> None:
    """Fail in seconds when the selection config reads what ``.lightly/`` does not hold (a prediction task,
    a score of another task type, a category, a custom metadata key, a query set), naming each and the fix."""
    from lightly_airflow.config.inputs import check_config_inputs
    from lightly_airflow.objects.spec import objects_spec

    spec = objects_spec(selection, worker)  # (the tasks whose objects are cropped: crops' upload list too)
    problems = check_config_inputs(
        selection, lightly_uri, credentials, query_credentials=datapool_credentials,
        check_remote_queries=datapool_credentials is not None, object_tasks=() if spec is None else spec.all_tasks,
    )
    if problems:
        lines = "\n".join(f"  - {path or '<.lightly>'}: {problem}. Fix: {fix}." for path, problem, fix in problems)
        raise ParamError(
            "selection_config",
            f"reads inputs that {lightly_uri.rstrip('/')}/.lightly/ does not provide:\n{lines}\n",
            "correct the config or add the missing files to .lightly/ (docs/metadata-and-predictions.md).",
        )


def embed_option_overrides(worker: Any, lightly_config: Any) -> dict[str, Any]:
    """The embed step's options a run's Lightly configs ask for (``EmbedOptions`` field names), checked.

    ``lightly_config`` (``model.name``, ``model.num_ftrs``, ``loader.batch_size``, ``loader.num_workers``,
    ``collate.input_size``) first, then ``worker_config``'s ``num_threads`` / ``num_processes``; keys that have
    no effect here are logged.
    """
    from lightly_airflow.config import parse_lightly_config

    lightly = _lightly_config_param("lightly_config", parse_lightly_config, lightly_config)
    overrides = {**lightly.embed_overrides(), **worker.embed_overrides()}
    if str(overrides.get("model", "")).startswith("resnet"):
        from lightly_airflow.config.worker import resnet_weights_refusal

        raise ParamError("lightly_config.model.name", *resnet_weights_refusal(str(overrides["model"])))
    from lightly_airflow.embedding.options import FEATURE_DIMS, EmbedOptions

    try:  # (the ranges every embed task's EmbedOptions refuses: collate.input_size 16 or 4000 passed this check, the
        # listing and the metadata, then failed every embed task; the dimension's ceiling is the largest model's here,
        # the embed tasks know theirs)
        EmbedOptions.from_mapping({k: v for k, v in overrides.items() if k != "dim"})
    except ValueError as exc:
        raise ParamError("lightly_config", str(exc).replace("input_size=", "collate.input_size=", 1),
                         "correct the key, or remove it for the default.") from None
    if overrides.get("dim") is not None and overrides["dim"] > max(FEATURE_DIMS.values()):
        raise ParamError("lightly_config.model.num_ftrs", f"is {overrides['dim']}, more than any model's feature "
                         f"dimension ({max(FEATURE_DIMS.values())})", "use the model's dimension or less.")
    return overrides


def check_pool_location(datasource_uri: str, datapool_uri: str) -> None:
    """A datapool inside (or equal to, or containing) the datasource is a :class:`ParamError` (issue 14.4)."""
    from lightly_airflow.datapool.guards import check_pool_location as check

    try:
        check(datasource_uri, datapool_uri)
    except ValueError as exc:
        raise ParamError("datapool_uri", str(exc), "choose a datapool_uri outside the datasource.") from None


def check_run_tag(
    datapool_uri: str, tag: str | None, run_id: str, credentials: StorageCredentials | None = None
) -> str:
    """The run's tag, checked in the first task as the commit would check it (issue 14.6); return it."""
    from lightly_airflow.datapool.errors import DatapoolUnreachableError
    from lightly_airflow.datapool.guards import check_tag_available

    try:
        return check_tag_available(datapool_uri, tag, run_id, credentials)
    except DatapoolUnreachableError as exc:  # the first look at the pool's store
        raise ParamError("datapool_uri", exc.problem, exc.fix) from None
    except ValueError as exc:
        raise ParamError("tag_name", str(exc), "pass a new tag_name (letters, digits, . _ : + -).") from None


def check_relevant_filenames(worker: Any, lightly_uri: str, credentials: StorageCredentials | None = None) -> None:
    """``worker_config.relevant_filenames_file`` exists in ``.lightly/``, is UTF-8 text and every line parses:
    checked by the first task, which fails for good in seconds (the listing would fail the same way on every
    retry)."""
    name = getattr(worker, "relevant_filenames_file", None)
    if not name or not str(name).strip():
        return
    from lightly_airflow.datasource.relevant import RelevantFilenames
    from lightly_airflow.lightly_dir import lightly_root, read_relevant_filenames

    try:
        text = read_relevant_filenames(lightly_uri, name, credentials)
        where = str(name).strip().lstrip("/").removeprefix(".lightly/")
        RelevantFilenames.parse(text, source=f"{lightly_root(lightly_uri)}/{where}")
    except (FileNotFoundError, ValueError) as exc:
        raise relevant_filenames_error(exc) from None


def relevant_filenames_error(exc: FileNotFoundError | ValueError) -> ParamError:
    """The first task's error for a ``relevant_filenames_file`` that cannot be used, with the fix: absent,
    not a file of ``.lightly/`` or not UTF-8 text (``LightlyFileError``), or a line that does not parse."""
    from lightly_airflow.lightly_dir import LightlyFileError

    param = "worker_config.relevant_filenames_file"
    if isinstance(exc, FileNotFoundError):
        return ParamError(param, str(exc), "give the file's path inside .lightly/, or remove the key.")
    if isinstance(exc, LightlyFileError):  # e.g. a symbolic link out of .lightly/: a retry cannot fix it
        where = f".lightly/{exc.relpath}" + (f": {exc.field}" if exc.field else "")
        return ParamError(param, f"{where}: {exc.problem}.", exc.fix or "put the file itself, as UTF-8 text, into the "
                          ".lightly/ folder.")
    return ParamError(param, str(exc), "correct that line, or name a file inside .lightly/ (docs/datasources.md, "
                      "Relevant filenames).")


def custom_embeddings_uri(
    worker: Any, lightly_uri: str, credentials: StorageCredentials | None = None, *, dim: int | None = None
) -> str | None:
    """Where ``worker_config.embeddings`` (a Lightly custom embeddings CSV) lives, checked in seconds.

    The name is resolved inside ``<lightly_uri>/.lightly/embeddings/`` as the Lightly Worker does; absolute
    paths, URIs, ``..`` and symlinks out of that folder are refused. The CSV's header is checked too, and its
    width against ``dim`` (``lightly_config.model.num_ftrs``; ``None``: not asked). No error message shows the
    file's content.
    """
    from lightly_airflow.embedding.custom import EmbeddingsDimMismatchError, check_embeddings_dim
    from lightly_airflow.lightly_dir import UnsafeLocationError, resolve_embeddings_csv

    name = getattr(worker, "embeddings", None)
    if not name:
        return None
    param = "worker_config.embeddings"
    try:
        uri = resolve_embeddings_csv(lightly_uri, name, credentials)
    except UnsafeLocationError as exc:
        raise ParamError(param, f"{exc}.", "put the CSV into .lightly/embeddings/ and give its file name.") from None
    except FileNotFoundError as exc:
        raise ParamError(
            param, f"{exc}.",
            "put the CSV (filenames,embedding_0,…,labels) into .lightly/embeddings/ and give its file name.",
        ) from None
    try:
        check_embeddings_dim(uri, dim, credentials)
    except EmbeddingsDimMismatchError as exc:
        why, _, fix = str(exc).partition(" Fix: ")
        raise ParamError("lightly_config", why, fix or "match model.num_ftrs to the CSV.") from None
    except ValueError as exc:
        raise ParamError(param, f"{exc}", "write the CSV with Lightly's save_embeddings layout.") from None
    return uri


def list_new(
    query: NewFilesQuery,
    *,
    run_id: str,
    credentials: QueryCredentials | None = None,
    max_shards: int = 1024,
    min_shard_size: int = 256,
    objects: Any = None,
    embed_overrides: Mapping[str, Any] | None = None,
) -> ListResult:
    """List the datasource, keep the files ``query`` says this run processes, shard them into manifests.

    :param query: what is new (the same :class:`~lightly_airflow.datasource.NewFilesQuery` the sensor waits
        on): datasource, datapool, ``.lightly/`` location, relevant filenames, policy, ``process_all``.
    :param run_id: the Airflow run id (staging paths derive from it, so a retry overwrites its own shards).
    :param credentials: credentials of the datasource, datapool and ``.lightly/`` stores.
    :param max_shards: at most this many manifest shards (Airflow's ``max_map_length`` is 1024).
    :param min_shard_size: files per shard before a run is split into more shards.
    :raises ParamError: when the relevant-filenames file does not exist.
    :param objects: the run's :class:`~lightly_airflow.objects.ObjectsSpec` (object-level work the embed tasks
        do), written next to the manifests; ``None``: none. Its tasks are those :func:`validate_params` checked
        against ``.lightly/predictions`` (``objects.spec.check_tasks``; the list task read ``tasks.json`` and the
        schemas a second time here).
    :param embed_overrides: the embedding options the run's Lightly configs ask for
        (:func:`embed_option_overrides`): an input size or dimension other than the pool's is refused here.
    """
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datasource import write_manifests
    from lightly_airflow.datasource.gone import gone_files, write_gone

    creds = credentials or QueryCredentials()
    # The pool this run commits to, read once: its known files, and what the commit would refuse after the run.
    latest = Datapool(query.datapool_uri, creds.datapool).snapshot()
    snapshot = latest if latest.exists() else None
    found = _found_files(query, creds, snapshot)
    gone = gone_files(found, snapshot)
    pool_embedding = None if snapshot is None else snapshot.embedding_info()
    if snapshot is not None:
        check_custom_metadata_types(query, creds, snapshot)
        check_embed_overrides(embed_overrides or {}, pool_embedding)
    samples = _samples(found.files, query, creds)
    # (the listing's file counts are find_new_files': here process_all counted none not processed, though it
    # never processes Live Photo clips, archived or expiring files)
    skips = replace(found.skips, **gone.listing_fields())
    manifests: list[str] = []
    reuse_uri, reusable = None, 0
    if samples.files.num_rows:
        write_gone(gone, query.datapool_uri, run_id, creds.datapool)
        manifests = write_manifests(
            samples.files, query.datapool_uri, run_id, datasource_uri=query.datasource_uri,
            lightly_uri=query.effective_lightly_uri, credentials=creds.datapool, max_shards=max_shards,
            min_shard_size=min_shard_size, pool_embedding=pool_embedding,
        )
        reuse_uri, reusable, skips = _stage_listing(query, run_id, creds, _Listing(snapshot, found.known, samples),
                                                    skips, objects)
    return ListResult(
        manifests=manifests, seen=found.listing.num_rows, new=samples.files.num_rows, known=found.known_count,
        process_all=query.process_all, reusable=reusable, reuse_uri=reuse_uri, new_files=samples.new_files,
        files=skips.file_counts(), relevant_filenames=skips.relevant.to_dict() if skips.relevant else {},
        **skips.counts(),
    )


def _found_files(query: NewFilesQuery, creds: QueryCredentials, snapshot: Any) -> NewFiles:
    """Step 1 of :func:`list_new`: the datasource's files and the pool's known files (``snapshot``'s, read once;
    ``None``: no pool yet), what the query keeps; a relevant-filenames, Lightly-file or lifecycle problem, or
    files about to expire under ``handling_strategy`` ABORT, fail the task here (a retry cannot fix them)."""
    from lightly_airflow.datasource import RelevantFilenamesMissing, find_new_files
    from lightly_airflow.datasource.expiration import LifecycleUnreadableError
    from lightly_airflow.lightly_dir import LightlyFileError

    try:
        found = find_new_files(query, creds, read_known_with_process_all=True,
                               known=None if snapshot is None else (lambda _uri, _creds: snapshot.known_files()))
    except (RelevantFilenamesMissing, LightlyFileError) as exc:  # a retry cannot fix either
        raise relevant_filenames_error(exc) from None
    except LifecycleUnreadableError as exc:
        raise ParamError("worker_config.datasource.input_expiration", exc.problem, exc.fix) from None
    if found.expiring:  # input_expiration ABORT
        raise ParamError(
            "worker_config.datasource.input_expiration",
            f"{len(found.expiring)} of the files to process expire within {query.min_days_to_expiration:g} days "
            "under the datasource bucket's lifecycle rules, and handling_strategy is ABORT: "
            + "; ".join(f"{k!r} {r}" for k, r in found.expiring[:5]) + (" …" if len(found.expiring) > 5 else "."),
            "copy or move them out of the rule's reach, or set handling_strategy to SKIP to process the others.")
    return found


@dataclass(frozen=True)
class _Samples:
    """The files :func:`list_new` keeps as the run's samples: new or replaced videos (by content identity) are
    their frames, one row a frame under Lightly's names."""

    files: pa.Table  #: one row a sample
    new_files: int  #: the files listed as new, before their videos became frames
    stream_notes: list[tuple[str, str]]  #: video streams not used (a second camera, cover art): reported
    video_notes: list[str]  #: videos whose frames leave something out (alpha, a still image): the run's notes


def _samples(files: pa.Table, query: NewFilesQuery, creds: QueryCredentials) -> _Samples:
    """Step 2 of :func:`list_new`: the new files as samples (:class:`_Samples`)."""
    from lightly_airflow.video.listing import expand_videos

    stream_notes: list[tuple[str, str]] = []
    video_notes: list[str] = []
    frames = expand_videos(files, query.datasource_uri, creds.datasource, stream_notes=stream_notes, notes=video_notes)
    if frames.num_rows != files.num_rows:
        log.info("%d new files are %d samples (video frames included).", files.num_rows, frames.num_rows)
    return _Samples(frames, files.num_rows, stream_notes, video_notes)


@dataclass(frozen=True)
class _Listing:
    """What :func:`_stage_listing` writes the run's listing files from, besides the query."""

    snapshot: Any  #: the pool's latest snapshot (``None``: no pool yet)
    known: pa.Table | None  #: the pool's known files, as :func:`find_new_files` read them
    samples: _Samples


def _stage_listing(query: NewFilesQuery, run_id: str, creds: QueryCredentials, listing: _Listing,
                   skips: ListingSkips, objects: Any) -> tuple[str | None, int, ListingSkips]:
    """Step 3 of :func:`list_new`, after the manifests: the reusable embeddings, the objects spec and the
    listing's skips (with its notes) written to the run's staging folder.

    :returns: the reusable embeddings' file (``None``: none), their number and the skips as written.
    """
    from lightly_airflow.objects import write_spec

    files, known, snapshot = listing.samples.files, listing.known, listing.snapshot
    reuse_uri, reusable, older = None, 0, 0
    if known is not None and known.num_rows:
        reuse_uri, reusable, older = write_reusable_embeddings(snapshot, files, query.datapool_uri, run_id,
                                                               creds.datapool)
    write_spec(objects, staging.run_dir(query.datapool_uri, run_id), creds.datapool)
    other = other_datasources_note(query, files, known, snapshot)
    skips = replace(skips, older_pixel_rules=older, video_streams=listing.samples.stream_notes,
                    notes=[*skips.notes, *listing.samples.video_notes, *([other] if other else [])])
    staging.write_listing_skips(query.datapool_uri, run_id, skips, creds.datapool)
    return reuse_uri, reusable, skips


def check_embed_overrides(overrides: Mapping[str, Any], pool_embedding: Mapping[str, Any] | None) -> None:
    """Refuse in the first task a Lightly config that asks for another input size or dimension than the
    pool's embeddings (``collate.input_size: 96`` against a pool of 64 px): each embed task would refuse it (or
    the commit). Options the DAG's embed tasks set themselves are checked by those tasks."""
    from lightly_airflow.embedding.options import model_id_sizes

    parts = model_id_sizes((pool_embedding or {}).get("model", ""))
    if parts is None:
        return
    # (a model name has spellings the encoder resolves: the embed tasks compare the resolved model id)
    conflicts = [f"{name} {overrides[name]!r} (the pool's: {parts[name]})" for name in ("input_size", "dim")
                 if overrides.get(name) is not None and str(overrides[name]) != str(parts[name])]
    if conflicts:
        raise ParamError(
            "lightly_config", f"asks to embed with {', '.join(conflicts)}, but the datapool holds embeddings of "
            f"{pool_embedding['model']!r} (dim {pool_embedding['dim']}): every embed task would refuse the run.",  # type: ignore[index]
            "remove these keys (or give the pool's values), or commit to a new datapool.")


def check_custom_metadata_types(query: NewFilesQuery, credentials: QueryCredentials, snapshot: Any) -> None:
    """Refuse in the first task a ``.lightly/metadata/schema.json`` whose field changed its type against the
    pool's column (``NUMERIC_INT`` → ``CATEGORICAL_STRING``): the commit cannot store it and failed as the
    run's last step. A schema the metadata step cannot read is its own per-file problem, not checked here."""
    from lightly_airflow.lightly_dir import METADATA_SCHEMA_FILE, LightlyDir, LightlyFileError
    from lightly_airflow.metadata.custom import parse_metadata_schema, type_change_problem

    try:
        raw = LightlyDir(query.effective_lightly_uri, credentials.lightly).read_json(METADATA_SCHEMA_FILE)
    except (FileNotFoundError, LightlyFileError):
        return
    fields, _problems = parse_metadata_schema(raw)
    table = snapshot.table
    if not fields or table is None:
        return
    pool_types = {f.name: f.type for f in pa.schema(table.schema().to_arrow())}
    problems = [p for f in fields if f.column in pool_types and (p := type_change_problem(f, pool_types[f.column]))]
    if problems:
        raise ParamError("lightly_uri", "; ".join(p for p, _ in problems) + ".", "; ".join(f for _, f in problems) + ".")


def other_datasources_note(query: NewFilesQuery, files: pa.Table, known: pa.Table | None, snapshot: Any) -> str | None:
    """What the run summary says (and the log warns) when earlier runs of the pool read other datasources.

    A pool's keys are relative to each run's datasource and the pool keeps the latest row per key: a file this
    run shares a key with (``DSC_0001.JPG`` in two camera buckets) is taken as a new version of the earlier
    sample, which leaves ``initial-tag``. Legitimate (a bucket moved, two DAGs feeding one pool), never silent.
    """
    if known is None or not known.num_rows or snapshot is None:
        return None
    from lightly_airflow.datapool.export import run_datasources
    from lightly_airflow.storage import place_key

    here = place_key(query.datasource_uri)  # (gcs:// and gs://, file:///x/./y and /x/y: one datasource)
    earlier = run_datasources(snapshot.history()).values()
    others = sorted({masked_uri(u) for u in earlier if place_key(u) != here})
    if not others:
        return None
    shared = int(pc.sum(pc.is_in(files.column(C.KEY), known.column(C.KEY))).as_py() or 0)
    note = (f"earlier runs of this pool read another datasource ({', '.join(others[:3])}"
            f"{f' and {len(others) - 3} more' if len(others) > 3 else ''}) than this run "
            f"({masked_uri(query.datasource_uri)}): keys are relative to each run's datasource; {shared:,} files "
            "of this run have the key of an earlier sample and replace it as its new version (the pool keeps the "
            "latest row per key)")
    log.warning("%s%s.", note[0].upper(), note[1:])
    return note


def write_reusable_embeddings(
    pool: Any, files: pa.Table, datapool_uri: str, run_id: str, credentials: StorageCredentials | None
) -> tuple[str | None, int, int]:
    """Write the pool's embeddings of files whose content is unchanged, so the embed tasks copy, not recompute.

    The file records the pool's embedding model; the embed runner refuses it for another model. Values computed
    under older pixel rules (``columns.PIXEL_RULES_VERSION``) are not reused.
    :returns: the file's URI (None when nothing can be reused), the number of reusable embeddings and the number
        of unchanged files not reused because their values are of older pixel rules.
    """
    reuse = pool.embeddings_for(files.select([C.KEY, C.ETAG]), with_rules=True)
    info = pool.embedding_info() or {}
    if not reuse.num_rows or not info.get("model"):
        return None, 0, 0
    older = 0
    if C.PIXEL_RULES in reuse.column_names:
        current = pc.fill_null(pc.equal(reuse.column(C.PIXEL_RULES), C.PIXEL_RULES_VERSION), False)
        older = reuse.num_rows - int(pc.sum(current).as_py() or 0)
        if older:
            log.warning(
                "%d of %d unchanged files have values in the pool computed under older pixel rules (before "
                "pixel rules version %d: e.g. EXIF orientation, video rotation, edit lists): they are decoded and "
                "embedded again, not reused.", older, reuse.num_rows, C.PIXEL_RULES_VERSION,
            )
        reuse = reuse.filter(current).drop_columns([C.PIXEL_RULES])
        if not reuse.num_rows:
            return None, 0, older
    from lightly_airflow.video.listing import with_pool_frame_values

    reuse = with_pool_frame_values(pool, reuse)  # unchanged videos' frames: hash and metrics too, never decoded again
    reuse = reuse.replace_schema_metadata({
        C.EMBEDDING_MODEL_METADATA_KEY.encode(): json.dumps(info["model"]).encode(),
        C.EMBEDDING_DIM_METADATA_KEY.encode(): json.dumps(info.get("dim")).encode(),
    })
    uri = staging.write_reuse_file(reuse, datapool_uri, run_id, credentials)  # (each embed task reads its part)
    log.info("%d of %d files have unchanged content and embeddings in the pool: they will be reused.", reuse.num_rows, files.num_rows)
    return uri, reuse.num_rows, older


def assemble_run(
    manifests: list[str], credentials: StorageCredentials | None = None
) -> tuple[pa.Table, dict[str, Any], list[pa.Table]]:
    """Join every stage's staging file onto its manifest shard and stack the shards (in manifest order).

    Shards are read on threads (:func:`~lightly_airflow.storage.map_io`): one after another, a run of 100
    shards on S3 waited for ~400 round trips in a row. The first failing shard's error is raised.

    :returns: the run's rows (one per listed file, column convention of :mod:`lightly_airflow.columns`),
        the merged schema metadata (embedding model and dimension, prediction categories), and the per-file
        error tables the stages wrote.
    """
    shards = map_io(lambda m: _assemble_shard(m, credentials), manifests)
    tables: list[pa.Table] = []
    meta: dict[str, Any] = {}
    errors: list[pa.Table] = []
    for rows, shard_meta, shard_errors in shards:  # (metadata: a later shard's value wins, counts add up)
        tables.append(rows)
        meta = _merged_meta(meta, shard_meta)
        errors.extend(shard_errors)
    if not tables:
        return pa.table({C.KEY: pa.array([], pa.string())}), meta, errors
    from lightly_airflow.predictions import finalize_prediction_scores

    # Scores that need the whole run (object_frequency's rescaling) are finished once all shards are joined.
    return finalize_prediction_scores(pa.concat_tables(tables, promote_options="permissive")), meta, errors


def _merged_meta(meta: dict[str, Any], shard_meta: dict[str, Any]) -> dict[str, Any]:
    """The run's schema metadata with one more shard's: its value wins, but the counts each shard's stages wrote
    (:func:`staging.with_counts`: predictions without probabilities) add up. (The metadata stage's guesses, a bit
    depth or a reduced decode, need no such sum: each is a row of the shard's problems file, which the report lists.)"""
    return staging.merged_metadata(meta, shard_meta)


def _prediction_counts(meta: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    """The predictions stage's counts, summed once over the run's shards (by :func:`_merged_meta`): the run's
    predictions without probabilities per task (the tasks that had any), and the run summary's note of the shards
    whose counts are not known (their staging files written before the stage counted:
    :attr:`staging.StageCounts.not_known`; none when every shard counted)."""
    summed = staging.summed_counts([meta], staging.PREDICTIONS)
    note = staging.counts_not_known_note(staging.PREDICTIONS, summed.not_known)
    return {task: n for task, n in sorted(summed.counts.items()) if n}, [note] if note else []


def _assemble_shard(
    manifest_uri: str, credentials: StorageCredentials | None
) -> tuple[pa.Table, dict[str, Any], list[pa.Table]]:
    """One shard of :func:`assemble_run`: its rows, its stages' schema metadata and its error tables."""
    meta: dict[str, Any] = {}
    manifest = staging.read_manifest(manifest_uri, credentials)  # a missing shard: its error names the fix
    rows = manifest.table
    rows = rows.select([c for c in (*C.MANIFEST_COLUMNS, *C.VIDEO_COLUMNS) if c in rows.column_names])
    from_manifest = set(rows.column_names)
    for kind in STAGE_KINDS:
        stage = _stage_output(manifest_uri, kind, credentials)
        if stage is None:
            continue  # predictions are optional: no .lightly/predictions means no scores
        for key, value in (stage.schema.metadata or {}).items():
            meta[key.decode()] = value.decode()
        rows = _joined_stage(rows, stage, kind, from_manifest)
    status = _shard_status(rows)
    rows = _with_status(rows, status)
    errors = staging.read_errors(manifest_uri, STAGE_KINDS, credentials)
    unreported = _unreported_problems(rows.column(C.KEY), status.status, status.reason, status.by, errors,
                                      manifest.datasource_uri)
    return rows.sort_by(C.KEY), meta, errors if unreported is None else [*errors, unreported]


def _stage_output(manifest_uri: str, kind: str, credentials: StorageCredentials | None) -> pa.Table | None:
    """The staging file the ``kind`` task of the shard wrote; ``None`` for predictions none were written for."""
    out_uri = staging.sibling_uri(manifest_uri, kind)
    stage = staging.read_staging(out_uri, credentials, staging.WRITER[kind])
    if stage is None and kind != staging.PREDICTIONS:
        raise FileNotFoundError(
            f"Stage output {out_uri} is missing: the {kind} task of this shard did not finish. "
            f"Clear that task instance so it runs again.{staging.missing_hint(out_uri)}"
        )
    return stage


def _joined_stage(rows: pa.Table, stage: pa.Table, kind: str, from_manifest: set[str]) -> pa.Table:
    """``rows`` with the ``kind`` stage's values, its status as ``__s_<kind>`` and its reason as ``__r_<kind>``:
    aligned to the manifest by key (a left join; Acero cannot join list columns)."""
    index = pc.index_in(rows.column(C.KEY), value_set=stage.column(C.KEY))
    ok = pa.array([C.STATUS_OK] * stage.num_rows, pa.string())
    aligned = {
        f"__s_{kind}": stage.column(C.STATUS) if C.STATUS in stage.column_names else ok,
        f"__r_{kind}": stage.column(C.STATUS_REASON) if C.STATUS_REASON in stage.column_names
        else pa.nulls(stage.num_rows, pa.string()),
    }
    drop = {C.KEY, C.ETAG, C.SIZE, C.MTIME, C.STATUS, C.STATUS_REASON, *from_manifest}
    aligned.update({c: stage.column(c) for c in stage.column_names if c not in drop})
    for name, column in aligned.items():
        if name in rows.column_names:  # two stages give a value (frames: the embed task's decode): first wins
            at = rows.column_names.index(name)
            merged = pc.coalesce(rows.column(name), column.take(index).cast(rows.schema.field(name).type))
            rows = rows.set_column(at, rows.schema.field(name), merged)
            continue
        field = stage.schema.field(name) if name in stage.column_names else pa.field(name, column.type)
        rows = rows.append_column(field, column.take(index))
    return rows


@dataclass(frozen=True)
class _ShardStatus:
    """Each file's status in a shard (:func:`_shard_status`), one value a row."""

    status: pa.Array
    reason: pa.Array
    by: pa.Array  #: the stage that found the file not ok (null: ok)


def _shard_status(rows: pa.Table) -> _ShardStatus:
    """A file is ok only if every stage found it ok; the first stage that did not says why. A file a required
    stage has no row for is reported, never silently selected without its embedding."""
    st = pa.array([C.STATUS_OK] * rows.num_rows, pa.string())
    rs = pa.nulls(rows.num_rows, pa.string())
    by = pa.nulls(rows.num_rows, pa.string())
    for kind in STAGE_KINDS:
        if f"__s_{kind}" not in rows.column_names:
            continue
        s_col, r_col = rows.column(f"__s_{kind}"), rows.column(f"__r_{kind}")
        if kind != staging.PREDICTIONS:
            absent = pc.is_null(s_col)
            s_col = pc.if_else(absent, C.STATUS_MISSING, s_col)
            r_col = pc.if_else(absent, f"no {kind} output for this file", r_col)
        bad = pc.and_(pc.equal(st, C.STATUS_OK), pc.and_(pc.is_valid(s_col), pc.not_equal(s_col, C.STATUS_OK)))
        st = pc.if_else(bad, s_col, st)
        rs = pc.if_else(bad, r_col, rs)
        by = pc.if_else(bad, kind, by)
    return _ShardStatus(st, rs, by)


def _with_status(rows: pa.Table, status: _ShardStatus) -> pa.Table:
    """``rows`` without the stages' ``__`` columns and with the combined status and reason, last."""
    keep = [c for c in rows.column_names if not c.startswith("__")]
    rows = rows.select(keep)
    for name in (C.STATUS, C.STATUS_REASON):
        if name in rows.column_names:
            rows = rows.drop_columns([name])
    return rows.append_column(C.STATUS, status.status).append_column(C.STATUS_REASON, status.reason)


def _unreported_problems(keys: pa.ChunkedArray | pa.Array, status: pa.Array, reasons: pa.Array, by: pa.Array,
                         errors: list[pa.Table], datasource_uri: str | None) -> pa.Table | None:
    """Problem rows for the files a stage found corrupt or missing without listing them in its error report
    (the embed task's decode of a video that cannot be opened, ends early or holds no video stream; a stage
    with no output for a file), so that ``problems.parquet`` lists every file not ok but duplicates; None when
    there are none. The stage column names the stage whose status the file got."""
    bad = pc.or_(pc.equal(status, C.STATUS_CORRUPT), pc.equal(status, C.STATUS_MISSING))
    if errors:  # (in Arrow: a shard of 10,000 ok rows converts nothing to Python)
        listed = pa.chunked_array([t.column(C.KEY) for t in errors], pa.string())
        bad = pc.and_(bad, pc.invert(pc.is_in(keys, value_set=listed.combine_chunks())))
    idx = pc.indices_nonzero(pc.fill_null(bad, False))
    if not len(idx):
        return None
    found = list(zip(*(pc.take(col, idx).to_pylist() for col in (keys, status, reasons, by)), strict=True))
    tables = []
    for stage in sorted({b for *_, b in found}):
        problems = staging.ProblemLog(stage)
        for key, st, reason, _ in (f for f in found if f[3] == stage):
            problems.add(key, "file", f"{st}: {reason or 'no reason given'}",
                         join_uri(datasource_uri, key) if datasource_uri else None)
        tables.append(problems.to_table())
    return pa.concat_tables(tables)


@dataclass(frozen=True)
class _RunIO:
    """Which run, and the stores it reads and writes with their credentials: the one bundle the steps of
    :func:`select_and_commit` and :func:`finish_committed_run` pass."""

    datapool_uri: str
    run_id: str
    credentials: StorageCredentials | None  #: the datapool's (staging files, records, reports)
    datasource_credentials: StorageCredentials | None  #: to decode the selected frames and objects
    lightly_credentials: StorageCredentials | None  #: to write frames and crops under ``<lightly_uri>/.lightly/``


@dataclass(frozen=True)
class _Request:
    """What :func:`select_and_commit` was asked to do, its parameters parsed once: what every attempt reads."""

    io: _RunIO
    dag_id: str
    tag: str | None
    config: Any  #: the parsed selection config
    al: Any  #: the :class:`~lightly_airflow.active_learning.QueryOptions`
    origin: dict[str, Any]  #: what started the run (:meth:`RunOrigin.to_dict`), empty when not said
    dry_run: bool
    review: Review | None
    #: the proposal a ``decide`` review that approved it commits (:func:`_approved_proposal`); ``None`` otherwise
    proposal: dict[str, Any] | None
    notes: tuple[str, ...]  #: options of the run that have no effect here
    selected_sequence_length: int
    query_embeddings: Mapping[tuple[str, str], np.ndarray]

    @property
    def approving(self) -> bool:
        """A ``decide`` review that approved: the run commits the proposal's picks."""
        return self.proposal is not None


@dataclass(frozen=True)
class _RunInputs:
    """What the run's staging files and listing hold, read once (:func:`_read_inputs`): every attempt selects from
    these."""

    rows: pa.Table  #: one row per listed file (:func:`assemble_run`), corruption threshold and object metadata applied
    meta: dict[str, Any]  #: the stages' merged schema metadata
    model: Any  #: the embedding model and dimension the embed stage recorded
    dim: Any
    spec: Any  #: the run's :class:`~lightly_airflow.objects.ObjectsSpec`; ``None``: no object-level work
    run_objects: pa.Table | None  #: the run's object rows (with ``spec``)
    skips: ListingSkips
    moves: list[tuple[str, str]]  #: moved files' ``(gone key, new key)`` (``datapool.moves``)
    problems_uri: str | None
    problems: int


@dataclass(frozen=True)
class _PoolView:
    """The run's rows as one attempt sees them on the pool version it pinned (:func:`_pool_view`)."""

    snap: Snapshot
    known: pa.Table | None  #: every processed file of the pool (``None``: no pool yet)
    marked: pa.Table  #: the run's rows, exact duplicates of the pool's (or of each other) marked
    #: the samples selected before: ``initial-tag``, or the ``preselected_tag_name``'s (``None``: no pool yet)
    preselected: pa.Table | None
    #: per row of ``marked``: whether ``preselected`` holds this very file (:func:`selected_before`); ``None`` when
    #: nothing is preselected. Computed once: the candidates leave these out, and without ``preselected_tag_name``
    #: they are the rows that stay in ``initial-tag`` (:func:`_still_selected`)
    before: Any

    @property
    def n_preselected(self) -> int:
        return 0 if self.preselected is None else self.preselected.num_rows


@dataclass(frozen=True)
class _Picks:
    """What one attempt's selection picked (:func:`_select`), and the picks a reviewer left out (:func:`_reviewed`)."""

    keys: list[str]  #: the selection's picks, in pick order
    #: the new picks asked for when it is not the config's own count (``n_samples_meaning: total``)
    wanted: int | None
    metrics: dict[str, Any]
    stop: StopReason
    details: pa.Table | None = None  #: the engine's per-pick ``selection.*`` values (single samples)
    sequences: list[dict[str, Any]] = field(default_factory=list)  #: the selected sequences (``selection.sequences``)
    left_out: frozenset[str] = frozenset()  #: picks the reviewer left out: not selected

    @property
    def kept(self) -> list[str]:
        """The picks to commit, in pick order."""
        return [k for k in self.keys if k not in self.left_out] if self.left_out else self.keys

    @property
    def rank(self) -> dict[str, int]:
        """Each kept pick's rank in the selection (as the reviewer saw it: leaving picks out changes no rank)."""
        return {k: i for i, k in enumerate(self.keys) if k not in self.left_out}


@dataclass(frozen=True)
class _Outcome:
    """One attempt's result, to commit (:func:`_commit`) or to end without a commit (:func:`_end_uncommitted`)."""

    rows: pa.Table  #: the run's rows with ``selected`` and ``pick_rank`` (and ``selection.*``, ``sequence``)
    object_rows: pa.Table | None  #: committed with them (``objects.run.commit_rows``)
    picks: _Picks
    counts: dict[str, Any]  #: the commit's counts
    summary: RunSummary


def select_and_commit(
    *,
    datapool_uri: str,
    run_id: str,
    dag_id: str,
    manifests: list[str],
    selection_config: Any,
    tag: str | None = None,
    dry_run: bool = False,
    datapool_credentials: StorageCredentials | None = None,
    query_embeddings: Mapping[tuple[str, str], np.ndarray] | None = None,
    max_attempts: int = 3,
    notes: list[str] | None = None,
    active_learning: Any = None,
    corruption_threshold: float = 0.1,
    selected_sequence_length: int = 1,
    datasource_credentials: StorageCredentials | None = None,
    lightly_credentials: StorageCredentials | None = None,
    compaction: Any = None,
    started_by: Any = None,
    review: Review | None = None,
) -> RunSummary:
    """Select from the run's samples and commit them to the datapool in one atomic, idempotent version.

    A retry of a run that already committed changes nothing. If another run commits between our read and our
    commit, the pool is read again and the selection redone (diversity depends on what the pool holds).

    :param datapool_uri: the datapool table.
    :param run_id: the Airflow run id (the idempotence key).
    :param dag_id: recorded in the commit.
    :param manifests: the run's manifest shard URIs (from the list step).
    :param selection_config: a Lightly selection config (dict or parsed).
    :param tag: the run's tag name (default derived from the run id).
    :param dry_run: select and report, but commit nothing (``enable_datapool_update=false``).
    :param query_embeddings: SIMILARITY query sets by (dataset_id, tag_name); default: resolved from the
        config (a datapool URI or Parquet file and a tag, read with the datapool's credentials).
    :param max_attempts: how often to re-read and re-select when another run commits concurrently.
    :param notes: options of the run that have no effect here, with the reason; shown in the summary.
    :param active_learning: a :class:`~lightly_airflow.active_learning.QueryOptions` (``query_tag_name``,
        ``preselected_tag_name``, ``n_samples_meaning``); default: every candidate, ``initial-tag``
        preselected, ``n_samples`` new picks.
    :param corruption_threshold: ``corruptness_check.corruption_threshold``: video frames whose corruptness
        score (``video.quality``) is above it are corrupt.
    :param selected_sequence_length: select sequences of this many consecutive frames
        (``selection.sequences``); 1 selects single samples.
    :param datasource_credentials: to decode the selected frames (written as PNG after the commit).
    :param lightly_credentials: to write them under ``<lightly_uri>/.lightly/frames/``.
    :param compaction: a :class:`~lightly_airflow.datapool.compaction.CompactionOptions`: when the pool's small
        files are merged after the commit (default: ``auto``); also after a retry that finds the run committed.
    :param started_by: a :class:`~lightly_airflow.run_origin.RunOrigin` (or its dict): what started the run, in
        the summary, the commit's metadata and the report's header.
    :param review: review before commit (:mod:`lightly_airflow.review`): ``Review("propose")`` selects, writes
        the report and the proposal, commits nothing and keeps the staging files; a ``decide`` review commits
        only picks equal to the proposal's (else :class:`~lightly_airflow.review.ReviewError`, nothing committed)
        or, discarded, commits nothing and removes the staging files.
    """
    from lightly_airflow.active_learning import QueryOptions
    from lightly_airflow.config import parse_selection_config
    from lightly_airflow.datapool import Datapool, with_snapshots
    from lightly_airflow.run_origin import RunOrigin

    config = parse_selection_config(selection_config)
    origin = (started_by.to_dict() if isinstance(started_by, RunOrigin)
              else RunOrigin.from_dict(started_by).to_dict() if started_by else {})
    al = active_learning if isinstance(active_learning, QueryOptions) else QueryOptions(**(active_learning or {}))
    io = _RunIO(datapool_uri, run_id, datapool_credentials, datasource_credentials, lightly_credentials)
    pool = Datapool(datapool_uri, datapool_credentials)
    first = pool.snapshot()
    done = first.committed_version(run_id)
    if done is not None:
        return _compacted(pool, finish_committed_run(
            pool, first, done, run_id=run_id, tag=tag, manifests=manifests, config=config,
            credentials=datapool_credentials, datasource_credentials=datasource_credentials,
            lightly_credentials=lightly_credentials, dag_id=dag_id,
        ), compaction)
    if dry_run or review is not None:  # (a finished dry run's or discarded proposal's record)
        finished = finished_dry_run(datapool_uri, run_id, datapool_credentials)
        if finished is not None:
            return finished
    proposal = _approved_proposal(io, review)
    if query_embeddings is None:
        from lightly_airflow.selection.queries import resolve_query_sets

        query_embeddings = resolve_query_sets(config, credentials=datapool_credentials)
    run = _Request(io=io, dag_id=dag_id, tag=tag, config=config, al=al, origin=origin, dry_run=dry_run, review=review,
                   proposal=proposal, notes=tuple(notes or ()), selected_sequence_length=selected_sequence_length,
                   query_embeddings=query_embeddings)
    inputs = _read_inputs(io, manifests, corruption_threshold)
    summary = with_snapshots(pool, lambda snap: _attempt(pool, snap, run, inputs), max_attempts=max_attempts,
                             first=first)
    return _compacted(pool, summary, compaction)


def _approved_proposal(io: _RunIO, review: Review | None) -> dict[str, Any] | None:
    """The proposal a ``decide`` review that approved it commits (its picks are the only ones it may commit);
    ``None`` for any other run.

    :raises ReviewError: the run has no proposal (nothing is committed)."""
    if review is None or review.step != "decide" or not review.approved:
        return None
    proposal = _read_proposal(io.datapool_uri, io.run_id, io.credentials)
    if proposal is None:
        raise ReviewError(f"Run {io.run_id!r} has no proposal to commit ({join_uri(reports_dir(io.datapool_uri, io.run_id), PROPOSAL_FILE)} "
                          "is missing): its select task proposes first; clear that task to propose again. Nothing was "
                          "committed.")
    if (stale := answered_before(proposal, review)) is not None:  # (not refused: this proposal awaits its review)
        raise ReviewError(f"Run {io.run_id!r}: {stale}")
    return proposal


def _read_inputs(io: _RunIO, manifests: list[str], corruption_threshold: float) -> _RunInputs:
    """Join the run's staging files, mark the frames above the corruption threshold corrupt, add the objects'
    metadata, read what the listing skipped and moved, and write the problems file: once, for every attempt."""
    from lightly_airflow import objects as objects_run
    from lightly_airflow.datasource.gone import read_moves
    from lightly_airflow.video.quality import apply_corruption_threshold

    rows, meta, errors = assemble_run(manifests, io.credentials)
    rows = _one_embedding_chunk(rows)
    _release_freed_pages()  # (the shards' chunks, freed with the old table)
    rows = apply_corruption_threshold(rows, corruption_threshold)
    spec = objects_run.read_spec(manifests[0], io.credentials) if manifests else None
    run_objects = objects_run.load_run_objects(manifests, io.credentials) if spec is not None else None
    if spec is not None:
        rows = objects_run.with_object_metadata(rows, run_objects, spec.all_tasks)
    skips, listing_errors = listing_skips(io.datapool_uri, io.run_id, io.credentials)
    moves = read_moves(io.datapool_uri, io.run_id, io.credentials) if skips.gone_moved else []
    problems_uri, problems = _write_problems([*listing_errors, *errors], io.datapool_uri, io.run_id, io.credentials,
                                             rows=rows)
    return _RunInputs(rows=rows, meta=meta, model=_meta_value(meta, C.EMBEDDING_MODEL_METADATA_KEY),
                      dim=_meta_value(meta, C.EMBEDDING_DIM_METADATA_KEY), spec=spec, run_objects=run_objects,
                      skips=skips, moves=moves, problems_uri=problems_uri, problems=problems)


def _attempt(pool: Any, snap: Snapshot, run: _Request, inputs: _RunInputs) -> RunSummary:
    """One try at selecting and committing: every read of it and its commit use the one pinned version ``snap``
    (another run's commit in between makes the commit raise, and ``with_snapshots`` tries again on the new
    version: diversity depends on what the pool holds)."""
    from lightly_airflow import objects as objects_run

    view = _pool_view(snap, run.al, inputs.rows, inputs.moves)
    candidates = _candidates(view, run.al, inputs.meta)
    try:
        picks = _reviewed(_select(candidates, view, run, inputs), run, snap.version)
    except ReviewError as exc:  # (nothing committed: the decision is recorded, on the proposal's data, not these)
        del view, candidates
        refused = _record_refusal(pool, run, inputs, str(exc))
        exc.summary = None if refused is None else refused.to_dict()  # (the run's metrics: committed nothing)
        raise
    object_rows = objects_run.commit_rows(inputs.run_objects, view.marked, set(picks.kept), kept=_still_selected(
        view, run.al.preselected_tag_name) if inputs.run_objects is not None else ())
    counts = _counts(view.marked, candidates, picks, run.review, inputs.skips)
    summary = _attempt_summary(run, inputs, view, candidates, picks, counts, object_rows)
    for line in summary.warnings:
        log.warning("selection: %s", line)
    del candidates  # (a filtered copy of the embeddings: not held through the layout, commit and report)
    outcome = _Outcome(_selected_rows(view.marked, picks), object_rows, picks, counts, summary)
    if run.dry_run or (run.review is not None and not run.approving):
        return _end_uncommitted(run, view, outcome, inputs.moves)
    return _commit(pool, run, inputs, view, outcome)


def _pool_view(snap: Snapshot, al: Any, rows: pa.Table, moves: list[tuple[str, str]]) -> _PoolView:
    """The run's rows against the pool at ``snap``: exact duplicates marked (and the moved files that take over the
    sample of a key the run writes anew: ``datapool.moves.held_for_moves``), the preselected samples read, and
    which rows they hold (:func:`selected_before`, once)."""
    from lightly_airflow.datapool.moves import held_for_moves
    from lightly_airflow.metadata import mark_duplicates

    known = snap.known_files() if snap.version is not None else None
    known_ok = None
    if known is not None and known.num_rows:
        # Every key's ok row, the run's keys too: a reprocessed file keeps its place against a new copy of it
        # (without its row, process_all made the pool's selected b.png a duplicate of a new a.png and selected
        # the picture again); mark_duplicates lets the run's row of a key supersede the pool's.
        known_ok = known.filter(pc.equal(known.column(C.STATUS), C.STATUS_OK)).select([C.KEY, C.CONTENT_HASH])
    marked = mark_duplicates(rows, known_ok) if C.CONTENT_HASH in rows.column_names else rows
    marked = held_for_moves(snap, marked, moves) if snap.version is not None else marked
    # Preselected: everything selected so far (initial-tag), or the samples of preselected_tag_name.
    preselected = al.preselected(snap) if snap.version is not None else None
    before = selected_before(marked, preselected) if preselected is not None and preselected.num_rows else None
    return _PoolView(snap, known, marked, preselected, before)


def _candidates(view: _PoolView, al: Any, meta: dict[str, Any]) -> pa.Table:
    """The run's ok rows the pool did not select before (in ``query_tag_name``, with one), with the stages' schema
    metadata."""
    ok_mask = pc.equal(view.marked.column(C.STATUS), C.STATUS_OK)
    if view.before is not None:
        # Samples the pool already selected are context for this run, not candidates again.
        ok_mask = pc.and_(ok_mask, pc.invert(view.before))
    # (all ok, the usual case: the candidates are the rows themselves, no filtered copy of their embeddings)
    candidates = filtered(view.marked, ok_mask)
    if view.snap.version is not None:
        candidates = al.restrict(candidates, view.snap)  # query_tag_name: only that tag's samples
    return _with_schema_metadata(candidates, meta)


def _select(candidates: pa.Table, view: _PoolView, run: _Request, inputs: _RunInputs) -> _Picks:
    """Select from the candidates with the preselected samples as context: sequences of
    ``selected_sequence_length`` frames, else single samples; nothing without a candidate or a new pick wanted."""
    from lightly_airflow import objects as objects_run
    from lightly_airflow.selection import select
    from lightly_airflow.selection.engine import StopReason

    run_config, wanted = run.al.dag_count(run.config, view.n_preselected)
    log.info(
        "Selecting from %d candidates (%d of the run's files are not ok or were selected before) with %d "
        "samples already selected in the pool (version %s).", candidates.num_rows,
        view.marked.num_rows - candidates.num_rows, view.n_preselected, view.snap.version,
    )
    if not candidates.num_rows or wanted == 0:
        stop = StopReason.NO_CANDIDATES if not candidates.num_rows else StopReason.LABELLED_SET_FULL
        return _Picks([], wanted, {"stop_reason": stop.value}, stop)
    pre_objects = objects_run.pool_objects(view.snap, view.preselected) if inputs.spec is not None else None
    seed = run_seed(run.io.run_id)
    if run.selected_sequence_length > 1:
        from lightly_airflow.selection.sequences import select_sequences

        seq = select_sequences(candidates, run_config, run.selected_sequence_length, preselected=view.preselected,
                               query_embeddings=run.query_embeddings, seed=seed,
                               objects=inputs.run_objects, preselected_objects=pre_objects)
        metrics = dict(seq.metrics)
        # (the summary is the select task's XCom: the first SEQUENCES_LISTED sequences' frames, said when cut;
        # every selected frame's sequence is the pool's ``sequence`` column)
        metrics["sequences"] = seq.sequences[:SEQUENCES_LISTED]
        if len(seq.sequences) > SEQUENCES_LISTED:
            metrics["sequences_listed"] = SEQUENCES_LISTED
        return _Picks(list(seq.keys), wanted, metrics, seq.stop_reason, sequences=seq.sequences)
    result = select(candidates, run_config, preselected=view.preselected, query_embeddings=run.query_embeddings,
                    objects=inputs.run_objects, preselected_objects=pre_objects, seed=seed)
    return _Picks(list(result.keys), wanted, dict(result.metrics), result.stop_reason, details=result.pick_details)


def _reviewed(picks: _Picks, run: _Request, read_version: int | None) -> _Picks:
    """The picks as the review leaves them: a ``decide`` review that approved commits only the proposal's picks
    (:func:`~lightly_airflow.review.mismatch`), less those the reviewer left out (a sequence run's metrics then
    list only the sequences committed, and those left out apart: :func:`~lightly_airflow.review.sequences_as_reviewed`).

    :raises ReviewError: the picks are not the proposal's, or the reviewer's answer cannot be committed as given
        (nothing is committed; :func:`_attempt` records the refusal: :func:`_record_refusal`)."""
    if run.proposal is not None and (problem := mismatch(run.proposal, picks.keys, read_version)) is not None:
        raise ReviewError(f"Run {run.io.run_id!r}: {problem}")
    if run.review is None or not run.review.dropped:
        return picks
    kept = run.review.keep(picks.keys, picks.sequences)  # (a sequence is left out whole or not at all)
    left_out = frozenset(k for k in picks.keys if k not in kept)
    return replace(picks, left_out=left_out,
                   metrics=sequences_as_reviewed(picks.metrics, picks.sequences, left_out, SEQUENCES_LISTED))


def _record_refusal(pool: Any, run: _Request, inputs: _RunInputs, reason: str) -> RunSummary | None:
    """Record a reviewer's Commit that the run refused (nothing committed) in the proposal's record, and write the
    proposal's report again with it (:func:`_proposal_report`): the run, the report and the UI's "Awaiting review" then
    say that the decision was taken and why nothing was committed, with the fix (:meth:`Review.refusing
    <lightly_airflow.review.Review.refusing>`). A failure to record is logged: the task fails with the reason anyway.

    :returns: the refused run's summary (the proposal's, with the decision: it committed nothing), what the select
        task sends as the run's metrics before it fails; ``None`` without a proposal."""
    if run.review is None or run.proposal is None:
        return None
    io, refused = run.io, replace(run, review=run.review.refusing(reason))
    assert refused.review is not None
    folder = reports_dir(io.datapool_uri, io.run_id)
    summary = _summary_from_record(run.proposal.get("summary") or {})
    summary.review = refused.review.to_dict()
    try:
        write_bytes(refused_record(run.proposal, refused.review), join_uri(folder, PROPOSAL_FILE), io.credentials)
        summary.report_uri = _proposal_report(pool, refused, inputs, summary)
    except Exception:  # noqa: BLE001 - the task fails with the reason; the record is what the UI shows
        log.exception("Could not record the refused review in %s.", folder)
    return summary


def _proposal_report(pool: Any, run: _Request, inputs: _RunInputs, summary: RunSummary) -> str | None:
    """The proposal's report written again, as the proposing task wrote it, with ``summary`` (the proposal's recorded
    one, its review now the decision): from the same data, not from the deciding attempt's (whose pool, and so picks
    and duplicates, may have changed): the proposal's picks, and the run's staging rows against the pool version the
    proposal read (time travel). The report reads no per-pick ``selection.*`` value, the one thing not recorded."""
    from lightly_airflow.selection.engine import StopReason

    assert run.proposal is not None
    version = run.proposal.get("version")
    snap = pool.snapshot(int(version)) if version is not None else pool.snapshot_of(None)
    view = _pool_view(snap, run.al, inputs.rows, inputs.moves)
    # (_selected_rows reads the picks' order; their stop reason is the summary's, recorded)
    picks = _Picks(list(run.proposal["picks"]), summary.n_wanted, {}, StopReason.N_REACHED)
    return _report(_selected_rows(view.marked, picks), run.io.datapool_uri, run.io.run_id, summary, run.config,
                   view.preselected, run.io.credentials, dag_id=run.dag_id)


def _selected_rows(marked: pa.Table, picks: _Picks) -> pa.Table:
    """The run's rows with ``selected`` and ``pick_rank`` (and the engine's ``selection.*`` values, the selected
    frames' ``sequence``): what the commit writes."""
    rank = picks.rank
    ranks = [rank.get(k) for k in marked.column(C.KEY).to_pylist()]
    out = (marked.append_column(C.SELECTED, pa.array([r is not None for r in ranks], pa.bool_()))
           .append_column(C.PICK_RANK, pa.array(ranks, pa.int64())))
    out = _with_pick_details(out, picks.details, ranks)
    if picks.sequences:
        from lightly_airflow.selection.sequences import sequence_column

        # (a sequence the reviewer left out keeps its number, as the reviewer saw it, but no frame: its frames
        # are not selected, so they are in no selected sequence)
        kept = [{**s, "frames": []} if picks.left_out.intersection(s["frames"]) else s for s in picks.sequences]
        out = out.append_column("sequence", sequence_column(out.column(C.KEY), kept))
    return out


def _counts(marked: pa.Table, candidates: pa.Table, picks: _Picks, review: Review | None,
            skips: ListingSkips) -> dict[str, Any]:
    """The commit's counts (the summary's too)."""
    statuses = marked.column(C.STATUS).to_pylist()
    return {
        "processed": marked.num_rows,
        "candidates": candidates.num_rows,
        "selected": len(picks.kept),
        # (n_samples_meaning total: the new picks asked for)
        **({"wanted": picks.wanted} if picks.wanted is not None else {}),
        **({"left_out_in_review": len(review.dropped)} if review is not None and review.dropped else {}),
        "corrupt": statuses.count(C.STATUS_CORRUPT),
        "duplicate": statuses.count(C.STATUS_DUPLICATE),
        "missing": statuses.count(C.STATUS_MISSING),
        **({"gone": skips.gone} if skips.gone else {}),  # what datapool export reads (datasource.gone)
    }


def _attempt_summary(run: _Request, inputs: _RunInputs, view: _PoolView, candidates: pa.Table, picks: _Picks,
                     counts: dict[str, Any], object_rows: pa.Table | None) -> RunSummary:
    """The attempt's :class:`RunSummary` before its commit (or its end without one)."""
    from lightly_airflow import objects as objects_run

    metrics = picks.metrics
    derived_probabilities, counts_notes = _prediction_counts(inputs.meta)
    return RunSummary(
        run_id=run.io.run_id, tag=run.tag, version=view.snap.version, dry_run=run.dry_run,
        candidates=counts["candidates"], processed=counts["processed"], selected=counts["selected"],
        corrupt=counts["corrupt"], duplicate=counts["duplicate"], missing=counts["missing"],
        pool_selected_before=view.n_preselected, problems=inputs.problems, problems_uri=inputs.problems_uri,
        metrics=_jsonable(metrics),
        notes=[*run.notes, *run.config.notes(), *_listing_notes(inputs.skips), *counts_notes],
        missing_inputs={str(k): int(v) for k, v in (metrics.get("missing_inputs") or {}).items()},
        # (n_selected: the selection's picks, before a reviewer left any out)
        warnings=selection_warnings(candidates, run.config, metrics, stop=picks.stop, n_selected=len(picks.keys)),
        n_wanted=picks.wanted,
        objects=objects_run.summary(inputs.run_objects, object_rows, inputs.spec, metrics),
        listing=inputs.skips.summary(), derived_probabilities=derived_probabilities,
        started_by=run.origin, review=run.review.to_dict() if run.review is not None else {},
    )


def _end_uncommitted(run: _Request, view: _PoolView, outcome: _Outcome, moves: list[tuple[str, str]]) -> RunSummary:
    """End a run that commits nothing: a dry run and a discarded proposal write the report and record their
    summary (:func:`_finish_dry_run`); a proposal writes the report and the proposal, and keeps the staging files
    for the decision."""
    io, summary = run.io, outcome.summary
    if run.dry_run:
        _note_moves_a_commit_would_make(summary, view.snap, outcome.rows, moves)
    if run.review is not None and run.review.step == "propose":  # (after a refused Commit: the report, the record
        # and the review form say so, with what changed; the record it read is replaced below)
        summary.review = run.review.proposing_after(_earlier_proposal(io), view.snap.version,
                                                    outcome.picks.kept).to_dict()
    summary.report_uri = _report(outcome.rows, io.datapool_uri, io.run_id, summary, run.config, view.preselected,
                                 io.credentials, dag_id=run.dag_id)
    if run.review is not None and run.review.step == "propose":  # (the staging files stay for the decision)
        _write_proposal(io.datapool_uri, io.run_id, view.snap.version, outcome.picks.kept, summary, io.credentials)
        log.info("Proposed %d picks for review (datapool version %s read); %s.", len(outcome.picks.kept),
                 view.snap.version, run.review.text())
        return summary
    if run.dry_run:
        log.info("Dry run (enable_datapool_update=false): selected %d samples, committed nothing.",
                 len(outcome.picks.kept))
    elif run.review is not None:  # (a discarded proposal)
        log.info("Review: %s.", run.review.text())
    _finish_dry_run(io.datapool_uri, io.run_id, summary, io.credentials)
    return summary


def _commit(pool: Any, run: _Request, inputs: _RunInputs, view: _PoolView, outcome: _Outcome) -> RunSummary:
    """Commit the attempt's rows and their objects as one pool version on the version it read, then write what the
    run writes after its commit (:func:`_after_commit`)."""
    from lightly_airflow.datapool.tagging import readable_tag

    io, summary = run.io, outcome.summary
    outcome, superseded = _with_superseded(view.snap, outcome, io)
    run_tag = run.tag or readable_tag(io.run_id, {e["tag"] for e in view.snap.history() if e.get("tag")})
    # (before the commit: a retry that finds the run committed reads its counts, metrics and notes back)
    _record_committing_summary(io.datapool_uri, io.run_id, summary, io.credentials)
    committed = pool.commit(
        outcome.rows if outcome.object_rows is None
        else pa.concat_tables([outcome.rows, outcome.object_rows], promote_options="permissive"),
        run_id=io.run_id, dag_id=run.dag_id, tag=run_tag, config=run.config.model_dump(mode="json", exclude_none=True),
        counts=outcome.counts, embedding_model=str(inputs.model), embedding_dim=int(inputs.dim), snapshot=view.snap,
        datasource_uri=_meta_value(inputs.meta, C.DATASOURCE_URI_METADATA_KEY), started_by=run.origin or None,
        stop_reason=outcome.picks.metrics.get("stop_reason"), review=summary.review or None, moves=inputs.moves,
    )
    _release_freed_pages()  # (the commit's buffers: the report's map and frames come on top of what is left)
    summary.version = committed.version
    summary.tag = committed.tag
    summary.already_committed = committed.already_committed
    from lightly_airflow.datapool.moves import move_notes

    summary.moves = dict(committed.moves)
    summary.notes.extend(move_notes(committed.moves))  # (what it took over and refused: not only in the log)
    return _after_commit(run, inputs, view, outcome, superseded, committed.carried_frames)


def _with_superseded(snap: Snapshot, outcome: _Outcome, io: _RunIO) -> tuple[_Outcome, Any]:
    """The rows to commit with the UI's map positions (computed once) and the tombstones of a replaced video's
    former frames, said in the counts and notes; and those frames (``video.supersede``: tombstones, PNGs)."""
    from lightly_airflow.report.layout import with_layout
    from lightly_airflow.video.supersede import superseded_frames, with_tombstones

    superseded = superseded_frames(snap, outcome.rows)  # a replaced video's former frames (tombstones, PNGs)
    out = with_layout(outcome.rows, io.datapool_uri, io.credentials)  # the UI's map positions, computed once
    if superseded.rows is not None:
        notes = outcome.summary.notes
        outcome.counts["superseded"] = superseded.rows.num_rows
        n_video_rows = superseded.rows.column(C.FRAME_INDEX).null_count
        if superseded.rows.num_rows - n_video_rows:
            notes.append(f"{superseded.rows.num_rows - n_video_rows} frames of replaced videos no longer "
                         "exist: committed as missing ('superseded: …'), no longer current samples")
        if n_video_rows:
            notes.append(f"{n_video_rows} problem rows of replaced videos (could not be opened or ended "
                         "early) no longer apply: committed as missing ('superseded: …')")
        out = with_tombstones(out, superseded)
    return replace(outcome, rows=out), superseded


def _after_commit(run: _Request, inputs: _RunInputs, view: _PoolView, outcome: _Outcome,
                  superseded: Any, carried_frames: Sequence[str] = ()) -> RunSummary:
    """After the commit, every side effect of the run; a retry after a kill here writes each one that is missing
    (:func:`finish_committed_run`). Frames only of committed selections: an attempt that lost a race and selected
    again leaves no PNGs of frames it did not commit."""
    from lightly_airflow import objects as objects_run

    io, summary, rows, objects, spec = run.io, outcome.summary, outcome.rows, outcome.object_rows, inputs.spec
    summary.frames = _write_selected_frames(rows, inputs.meta, io.datasource_credentials, io.lightly_credentials,
                                            superseded, carried_frames)
    # The report names the committed version and tag, so it is written after the commit.
    summary.report_uri = _report(
        rows, io.datapool_uri, io.run_id, summary, run.config, view.preselected, io.credentials,
        objects_figure=objects_run.report_figure(objects, outcome.picks.kept, inputs.meta, io.datasource_credentials,
                                                 rows=rows, lightly_credentials=io.lightly_credentials),
        dag_id=run.dag_id,
    )
    # (every run: selected images without objects are pruned, and a replaced image's crops removed, also by a
    # run without object-level work or with crops.enable_upload off)
    crops = objects_run.write_crops(
        objects, spec, inputs.meta, datasource_credentials=io.datasource_credentials,
        lightly_credentials=io.lightly_credentials, rows=rows, known=view.known, datapool_uri=io.datapool_uri,
        run_id=io.run_id, datapool_credentials=io.credentials,
    )
    if crops:
        summary.objects["crops"] = objects_run.record_crops(crops, io.datapool_uri, io.run_id, io.credentials)
    remove_staging(io.datapool_uri, io.run_id, io.credentials)
    log.info("Committed datapool version %d with tag %r: %d processed, %d selected.",
             summary.version, summary.tag, outcome.counts["processed"], outcome.counts["selected"])
    return summary


def _one_embedding_chunk(rows: pa.Table) -> pa.Table:
    """The run's rows with their ``embedding`` column in one chunk (one per shard after the assembly): the
    selection's read, the report's map and the commit then view its values buffer (``arrow.one_array``) instead
    of each concatenating the shards into a copy of their own. The pages of the assembly's freed read and join
    buffers (Arrow's allocator keeps them: ~2x the matrix at 40,000 x 1,280) go back to the OS before the chunk is
    allocated; the shards' chunks are freed once the caller drops the old table."""
    _release_freed_pages()
    if C.EMBEDDING not in rows.column_names or rows.column(C.EMBEDDING).num_chunks <= 1:
        return rows
    at = rows.column_names.index(C.EMBEDDING)
    return rows.set_column(at, rows.schema.field(at), rows.column(at).combine_chunks())


def _release_freed_pages() -> None:
    """Hand the pages of freed buffers back to the OS: Arrow's default pool's and the C allocator's (the system
    pool's ``release_unused`` is ``malloc_trim``: the staging files' bytes read on I/O threads stay in their
    arenas otherwise)."""
    pa.default_memory_pool().release_unused()
    pa.system_memory_pool().release_unused()


def _compacted(pool: Any, summary: RunSummary, options: Any) -> RunSummary:
    """Merge the pool's small files once the run is committed, when due (:mod:`lightly_airflow.datapool.compaction`;
    never fails the run). A dry run committed nothing and compacts nothing."""
    if summary.dry_run or summary.version is None:
        return summary
    from lightly_airflow.datapool.compaction import compact_if_due

    summary.compaction = compact_if_due(pool, options).to_dict()
    return summary


def _with_pick_details(rows: pa.Table, details: pa.Table | None, ranks: list[int | None]) -> pa.Table:
    """Add the engine's per-pick ``selection.*`` values (why each sample was picked) to the run's rows."""
    if details is None:
        return rows
    for name in details.column_names:
        if name.startswith(C.SELECTION_PREFIX):
            col = details.column(name).combine_chunks()
            rows = rows.append_column(name, col.take(pa.array(ranks, pa.int64())))
    return rows


#: Where run reports live (owned by :mod:`lightly_airflow.staging`; re-exported for existing callers).
REPORTS_DIR = staging.REPORTS_DIR
reports_dir = staging.reports_dir


def selection_warnings(
    candidates: pa.Table, config: Any, metrics: Mapping[str, Any], *, stop: StopReason | str | None = None,
    n_selected: int | None = None,
) -> list[str]:
    """Goals the selection missed, each with the cause where the inputs show it.

    A BALANCE class whose share of the selection stays well below its target is reported; when every
    candidate of that class lacks the input of another strategy (e.g. photos without the digits task's
    ``uncertainty_margin``: the missing-input rule ranks them last, docs/selection.md), the warning names that
    input and the fix. A run that selects nothing says why and the fix (:func:`_nothing_selected`); a
    ``proportion_samples`` below one sample says that it selected one (:func:`_proportion_below_one`); a BALANCE
    target class that matches no candidate is named (:func:`_unmatched_targets`), a TYPICALITY with more neighbours
    than candidates too (:func:`_fewer_neighbours`).

    :param stop: why the selection stopped (``SelectionResult.stop_reason``); default: ``metrics["stop_reason"]``.
    :param n_selected: how many it selected; default: ``metrics``' count (sequences for sequence selection).
    """
    from lightly_airflow.selection.inputs import input_column

    reason, n = _outcome(metrics, stop, n_selected)
    out: list[str] = [*_nothing_selected(candidates, config, metrics, reason, n),
                      *_proportion_below_one(candidates, config, metrics), *_unmatched_targets(metrics),
                      *_fewer_neighbours(metrics)]
    reports = metrics.get("objectives") or {}
    for i, entry in enumerate(getattr(config, "strategies", [])):
        if entry.strategy.type != "BALANCE":
            continue
        report = reports.get(f"strategies[{i}]") or next(
            (r for r in reports.values() if isinstance(r, dict) and r.get("input") == input_column(entry.input)
             and r.get("kind") == "BALANCE"), None)
        if not isinstance(report, dict) or "classes" not in report:
            continue
        for name, target, achieved in zip(report["classes"], report["target"], report["achieved"]):
            if target is None or achieved is None or target <= 0 or achieved >= 0.5 * target:
                continue
            line = (f"strategies[{i}] BALANCE: class {name!r} got {achieved:.0%} of the selection, target "
                    f"{target:.0%}.")
            cause = _class_lacks_input(candidates, config, i, str(name))
            out.append(line + (f" {cause}" if cause else ""))
    return out


def _outcome(metrics: Mapping[str, Any], stop: StopReason | str | None, n_selected: int | None
             ) -> tuple[StopReason | None, int]:
    """The stop reason (typed; ``None`` for a reason this version does not know, e.g. a pool's older record) and the
    number selected, as given, else read from the engine's ``metrics``."""
    from lightly_airflow.selection.engine import StopReason

    if stop is None:
        stop = metrics.get("stop_reason")
    try:
        reason = None if stop is None else StopReason(stop)
    except ValueError:
        reason = None
    if n_selected is None:
        n_selected = int(metrics.get("sequences_selected", metrics.get("n_selected")) or 0)
    return reason, n_selected


#: Why a run selected nothing, by its stop reason (:class:`~lightly_airflow.selection.engine.StopReason`, a ``str``
#: enum: its values are the keys, so that importing this module does not load the engine; every reason has one):
#: ``(why, fix)``, filled in by :func:`_nothing_selected` with ``n`` (the candidates), ``n_samples``, ``length``,
#: ``videos``, ``images``, ``left_out`` (sequence selection) and ``conditions`` (the config's stopping conditions,
#: for the reason's own).
_NOTHING_SELECTED: dict[str, tuple[str, str]] = {
    "no_candidates": (
        "this run has no candidates (every file of the run is corrupt, a duplicate, missing, or was selected "
        "before; the report's problems list them)",
        "add new files, or pass process_all=true to select among the files again."),
    "labelled_set_full": (
        "n_samples_meaning 'total' reads n_samples={n_samples} as the size of the labelled set, and the "
        "datapool's preselected samples (preselected_tag_name, default every sample selected so far) already "
        "number {n_samples} or more, so no new pick is wanted from the {n} candidates",
        "raise n_samples above the number already selected, or use n_samples_meaning 'new' (n_samples new picks "
        "per run)."),
    "no_complete_sequences": (
        "worker_config.selected_sequence_length={length} selects runs of {length} consecutive frames of one "
        "video, and none of the {n} candidates form one ({videos} are video frames, {images} are images or other "
        "files; {left_out} left out)",
        "remove selected_sequence_length (or set it to 1) to select single images, or add videos whose frames "
        "form complete runs."),
    "thresholds_left_none": (
        "the THRESHOLD strategies left none of the {n} candidates (a candidate without the input fails the "
        "filter)",
        "loosen the thresholds, or check the inputs' values in the report."),
    "no_embeddings": (
        "none of the {n} candidates has an embedding, and the config's DIVERSITY, SIMILARITY or TYPICALITY "
        "places candidates by theirs (a sample without one is no candidate)",
        "check the embed step (the report's problems list the files it could not embed) or that a custom "
        "embeddings CSV names the run's files."),
    "minimum_distance": (
        "the selection stopped before its first pick, because its best candidate lies closer to a sample selected "
        "before than the stopping condition allows ({conditions})",
        "lower stopping_condition_minimum_distance (-1: no stop), or check that the new files differ from those "
        "selected before."),
    "max_sum": (
        "the selection stopped before its first pick, because its best candidate's value alone would pass the "
        "stopping condition ({conditions})",
        "raise stopping_condition_max_sum, or check the input's values in the report."),
    "minimum_typicality": (
        "the selection stopped before its first pick, because its best candidate's typicality is below the "
        "stopping condition ({conditions})",
        "lower stopping_condition_minimum_typicality."),
    "no_candidates_left": (
        "the selection found no candidate left to pick among the {n}",
        "check the report's missing inputs and the THRESHOLD strategies."),
    "n_reached": (
        "the selection was asked for 0 of the {n} candidates",
        "check n_samples / proportion_samples."),
}

#: the stopping condition of each stop reason that has one (the config's key)
_CONDITIONS = {"minimum_distance": "stopping_condition_minimum_distance", "max_sum": "stopping_condition_max_sum",
               "minimum_typicality": "stopping_condition_minimum_typicality"}


def _nothing_selected(candidates: pa.Table, config: Any, metrics: Mapping[str, Any], stop: StopReason | None,
                      n_selected: int) -> list[str]:
    """``Nothing selected: <why>. Fix: <what>`` when the run picked no sample, else nothing: the why and the fix of
    its stop reason (:data:`_NOTHING_SELECTED`)."""
    if n_selected:
        return []
    n = candidates.num_rows
    entry = _NOTHING_SELECTED.get(stop) if stop is not None else None
    if entry is None:  # (no reason given, or one this version does not know: as generic as it has to be)
        if not n:
            return []
        said = stop or metrics.get("stop_reason") or "no stop reason"
        return [f"Nothing selected from {n} candidates: the selection stopped at once ({said}). "
                "Fix: check the stopping conditions (stopping_condition_minimum_distance, stopping_condition_max_sum, "
                "stopping_condition_minimum_typicality) and n_samples / proportion_samples."]
    videos = candidates.column(C.VIDEO).drop_null() if C.VIDEO in candidates.column_names else []
    key = _CONDITIONS.get(stop) if stop is not None else None
    conditions = ", ".join(
        f"strategies[{i}] {key}={value:g}" for i, e in enumerate(getattr(config, "strategies", []))
        if key and isinstance(value := getattr(e.strategy, key, None), (int, float))) or "see the config"
    why, fix = entry
    fields = {"n": n, "n_samples": getattr(config, "n_samples", None), "videos": len(videos),
              "images": n - len(videos), "length": metrics.get("selected_sequence_length"),
              # (sequence selection: the frames in no complete window and the candidates that are no frame)
              "left_out": (int(metrics.get("sequence_frames_left_out", n)) + int(metrics.get("sequence_images_left_out", 0))
                           if "sequence_frames_left_out" in metrics else n), "conditions": conditions}
    return [f"Nothing selected: {why.format_map(fields)}. Fix: {fix.format_map(fields)}"]


def _proportion_below_one(candidates: pa.Table, config: Any, metrics: Mapping[str, Any]) -> list[str]:
    """``proportion_samples`` of the candidates is less than one sample: the run selected one (the least a
    proportion above 0 selects, :func:`~lightly_airflow.config.selection.proportion_count`), said here."""
    from lightly_airflow.config.selection import proportion_below_one

    if "selected_sequence_length" in metrics or not hasattr(config, "proportion_samples"):
        return []
    below = proportion_below_one(config, int(metrics.get("n_candidates", candidates.num_rows)))
    return [below] if below else []


def _unmatched_targets(metrics: Mapping[str, Any]) -> list[str]:
    """Each BALANCE target class that matches no candidate (a misspelt class, or one this run's files lack):
    its share went to the other classes."""
    out = []
    for path, report in sorted((metrics.get("objectives") or {}).items()):
        if not isinstance(report, Mapping) or not report.get("targets_not_among_candidates"):
            continue
        classes = report.get("classes_among_candidates") or []
        out.append(f"{path} BALANCE: target classes {report['targets_not_among_candidates']} match no candidate's "
                   f"{report.get('input')!r} (classes here: {classes[:20]}); their share went to the other classes. "
                   "Fix: spell each class as the values are written (a boolean field: true/false), or remove it "
                   "from target if this run's files have none.")
    return out


def _fewer_neighbours(metrics: Mapping[str, Any]) -> list[str]:
    """Each TYPICALITY whose ``num_nearest_neighbors`` is not below the candidates with an embedding: the density
    of each is its mean distance to all the others (a fallback, said)."""
    out = []
    for path, report in sorted((metrics.get("objectives") or {}).items()):
        if isinstance(report, Mapping) and report.get("num_nearest_neighbors_used") is not None:
            out.append(f"{path} TYPICALITY: num_nearest_neighbors={report['num_nearest_neighbors']}, but only "
                       f"{report['num_nearest_neighbors_used']} other candidates have an embedding: each typicality "
                       "is the mean distance to all of them. Fix: a smaller num_nearest_neighbors.")
    return out


def _class_lacks_input(candidates: pa.Table, config: Any, balance_index: int, name: str) -> str | None:
    """Why a BALANCE class on a METADATA key missed: every candidate of it lacks another strategy's input."""
    from lightly_airflow.selection.inputs import class_name, input_column

    balance = config.strategies[balance_index].input
    if balance.type != "METADATA":
        return None
    class_col = input_column(balance)
    if class_col not in candidates.column_names:
        return None
    col = candidates.column(class_col)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        members = pc.equal(col, name)
    else:  # (the class names as the engine spells them: True/False of a boolean field, str of a number)
        boolean = pa.types.is_boolean(col.type)
        members = pa.array([v is not None and class_name(v, boolean) == name for v in col.to_pylist()], pa.bool_())
    rows = candidates.filter(pc.fill_null(members, False))
    if rows.num_rows == 0:
        return "No candidate of this run has it."
    for j, entry in enumerate(config.strategies):
        if j == balance_index or entry.strategy.type not in ("WEIGHTS", "THRESHOLD") or entry.input.type == "RANDOM":
            continue
        col = input_column(entry.input)
        if col not in rows.column_names or "*" in col:
            continue
        values = rows.column(col)
        lacking = pc.sum(pc.cast(pc.or_kleene(pc.is_null(values), pc.is_nan(pc.cast(values, pa.float64()))),
                                 pa.int64())).as_py() if pa.types.is_floating(values.type) or pa.types.is_integer(
            values.type) else pc.sum(pc.cast(pc.is_null(values), pa.int64())).as_py()
        if lacking == rows.num_rows:
            effect = "fails the filter" if entry.strategy.type == "THRESHOLD" else "ranks last"
            return (f"All {rows.num_rows} of its candidates lack {col!r} (strategies[{j}], {entry.strategy.type}): "
                    f"a sample without it {effect} (docs/selection.md, Missing inputs). Fix: give those samples the "
                    "input (e.g. predictions for them), or remove that strategy.")
    return None
def _write_selected_frames(
    rows: pa.Table, meta: dict[str, Any], datasource_credentials: StorageCredentials | None,
    lightly_credentials: StorageCredentials | None, superseded: Any = None, carried_frames: Sequence[str] = (),
) -> dict[str, Any]:
    """Write the run's selected video frames as PNG after the commit (idempotent; see ``video.export``), plus
    the PNGs a replaced video's former version left (rewritten or removed; ``video.supersede``) and those of a
    moved video's frames whose selection the commit carried (``carried_frames``: ``datapool.moves``)."""
    if C.VIDEO not in rows.column_names:
        return {}
    wanted = pc.fill_null(rows.column(C.SELECTED), False)
    if carried_frames:
        wanted = pc.or_(wanted, pc.is_in(rows.column(C.KEY), pa.array(sorted(carried_frames), pa.string())))
    if superseded is not None and superseded.refresh:
        wanted = pc.or_(wanted, pc.is_in(rows.column(C.KEY), pa.array(sorted(superseded.refresh), pa.string())))
    picked = rows.filter(pc.and_(wanted, pc.is_valid(rows.column(C.VIDEO))))
    remove = superseded.remove if superseded is not None else set()
    if not picked.num_rows and not remove:
        return {}
    from lightly_airflow.video.export import write_selected_frames

    datasource_uri = _meta_value(meta, C.DATASOURCE_URI_METADATA_KEY)
    lightly_uri = meta.get(C.LIGHTLY_URI_METADATA_KEY)
    return write_selected_frames(
        picked, datasource_uri=datasource_uri, lightly_uri=json.loads(lightly_uri) if lightly_uri else None,
        datasource_credentials=datasource_credentials, lightly_credentials=lightly_credentials, remove=remove,
    )


@dataclass(frozen=True)
class _CommittedRun:
    """A run committed as ``version`` that :func:`finish_committed_run` finishes: the rows it committed, and what
    its post-commit steps write them with."""

    pool: Any
    version: int
    io: _RunIO
    rows: pa.Table  #: its files' rows
    objects: pa.Table | None  #: its object rows (``None``: none)
    meta: dict[str, Any]  #: its manifest's ``lightly.*`` schema metadata (empty: its staging files are gone)

    @functools.cached_property
    def previous(self) -> Snapshot | None:
        """The pool at the version before the run's (``None``: the run made version 0), opened once for both
        steps that read it, the crops' known files and the report's selected set, and only when one asks."""
        return self.pool.snapshot(self.version - 1) if self.version > 0 else None


def finish_committed_run(
    pool: Any, snap: Any, version: int, *, run_id: str, tag: str | None, manifests: list[str], config: Any,
    credentials: StorageCredentials | None, datasource_credentials: StorageCredentials | None = None,
    lightly_credentials: StorageCredentials | None = None, dag_id: str | None = None,
) -> RunSummary:
    """Finish the work of a run that committed before (a worker killed right after its commit, or a re-run):
    every side effect the run writes after its commit, each idempotent and checking its own output first;
    nothing is committed again.

    1. the commit receipt (``_commits/<run>.json``, what ``datapool check`` compares with the log);
    2. the problems file (from the staging files, if they survived);
    3. the selected video frames' PNGs under ``.lightly/frames/`` (frames that exist are not written again);
    4. the selected objects' crops when ``crops.enable_upload`` (identical bytes rewritten), but of the images a
       later version processed again (an out-of-order retry: their crops are the later run's);
    5. the report, rebuilt from the pool alone (the run's rows at its version, the selected set before it, the
       counts of its commit), so it is the same whether or not the staging files survived;
    6. the staging files are removed, last: while they exist the run is not finished, and steps 3 and 4 run.
    """
    from lightly_airflow import objects as objects_run

    io = _RunIO(pool.uri, run_id, credentials, datasource_credentials, lightly_credentials)
    entry = snap.entry(version) or {}
    recorded = _committed_summary(io.datapool_uri, run_id, credentials)
    summary = _committed_run_summary(recorded, entry, run_id=run_id, tag=tag, version=version)
    pool.record_commit(run_id, version, summary.tag)
    out_dir = staging.reports_dir(io.datapool_uri, run_id)
    fs, path = filesystem(out_dir, credentials)
    unfinished = bool(manifests) and fs.exists(filesystem(staging.run_dir(io.datapool_uri, run_id), credentials)[1])
    _committed_problems(io, summary, manifests if unfinished else None, fs.exists(f"{path}/{staging.PROBLEMS_FILE}"))
    has_report = fs.exists(f"{path}/index.html")
    rows, objects = _committed_rows(pool, version, run_id) if unfinished or not has_report else (None, None)
    spec = objects_run.read_spec(manifests[0], credentials) if unfinished else None
    # (the object summary the run recorded before its commit, with its crops' counts)
    summary.objects = objects_run.recorded_summary(io.datapool_uri, run_id, credentials, manifests=manifests,
                                                   recorded=None if recorded is None else recorded.objects,
                                                   committed=objects, spec=spec)
    meta: dict[str, Any] = {}
    if unfinished and rows is not None:  # (rows: read whenever the staging files are there)
        meta = _manifest_meta(manifests[0], credentials)
        if C.DATASOURCE_URI_METADATA_KEY not in meta and entry.get("datasource_uri"):
            meta[C.DATASOURCE_URI_METADATA_KEY] = json.dumps(entry["datasource_uri"])
    committed = None if rows is None else _CommittedRun(pool, version, io, rows, objects, meta)
    if unfinished and committed is not None:
        _rewrite_after_commit(committed, spec, summary)
    if has_report:
        summary.report_uri = f"{out_dir}/index.html"
        log.info("Run %s is already committed as datapool version %d and has its report.", run_id, version)
    elif committed is not None:
        summary.report_uri = _rebuild_report(committed, summary, config, dag_id)
    remove_staging(io.datapool_uri, run_id, credentials)
    return summary


def _committed_run_summary(recorded: RunSummary | None, entry: Mapping[str, Any], *, run_id: str, tag: str | None,
                           version: int) -> RunSummary:
    """A committed run's summary: the one it recorded before its commit (:func:`_committed_summary`), else rebuilt
    from its commit's counts; either with what the commit recorded (tag, moves, origin, review). The notes of its
    moves are the commit's (the record was written before the commit: it has none of them)."""
    from lightly_airflow.datapool.moves import move_notes, recorded_move_counts

    counts = entry.get("counts") or {}
    moves = recorded_move_counts(counts)
    committed: dict[str, Any] = {
        "version": version, "already_committed": True, "moves": moves,
        "started_by": dict(entry.get("started_by") or {}), "review": dict(entry.get("review") or {}),
    }
    if recorded is not None:
        return replace(recorded, tag=entry.get("tag") or recorded.tag, report_uri=None, goals_missed=None,
                       notes=[*recorded.notes, *move_notes(moves)], **committed)
    return RunSummary(
        run_id=run_id, tag=entry.get("tag") or tag,
        candidates=int(counts.get("candidates", 0)), processed=int(counts.get("processed", entry.get("rows") or 0)),
        selected=int(counts.get("selected", entry.get("selected") or 0)), corrupt=int(counts.get("corrupt", 0)),
        duplicate=int(counts.get("duplicate", 0)), missing=int(counts.get("missing", 0)),
        n_wanted=None if counts.get("wanted") is None else int(counts["wanted"]),
        metrics={"stop_reason": entry["stop_reason"]} if entry.get("stop_reason") else {}, notes=move_notes(moves),
        **committed,
    )


def _committed_problems(io: _RunIO, summary: RunSummary, manifests: list[str] | None, has_file: bool) -> None:
    """A committed run's problems file into ``summary``: the one it wrote, else (``manifests``: its staging files
    survived) rebuilt from its staging files; with them, what the listing skipped too."""
    if has_file:
        summary.problems_uri = f"{staging.reports_dir(io.datapool_uri, io.run_id)}/{staging.PROBLEMS_FILE}"
        summary.problems = int(read_parquet(summary.problems_uri, io.credentials).num_rows)
    if manifests is None:
        return
    skips, listing_errors = listing_skips(io.datapool_uri, io.run_id, io.credentials)
    summary.listing = skips.summary()
    if has_file:
        return
    try:
        rows, _meta, errors = assemble_run(manifests, io.credentials)
        summary.problems_uri, summary.problems = _write_problems(
            [*listing_errors, *errors], io.datapool_uri, io.run_id, io.credentials, rows=rows)
    except FileNotFoundError as exc:
        log.warning("Could not rebuild the problems file of committed run %s: %s", io.run_id, exc)


def _committed_rows(pool: Any, version: int, run_id: str) -> tuple[pa.Table, pa.Table | None]:
    """The rows the run committed as ``version``: its files' rows and its object rows (``None``: none)."""
    rows = pool.snapshot(version).read()
    rows = rows.filter(pc.equal(rows.column(C.RUN_ID), run_id))
    if C.PARENT_KEY not in rows.column_names:
        return rows, None
    is_object = pc.is_valid(rows.column(C.PARENT_KEY))  # object rows are committed with their images
    objects = rows.filter(is_object)
    return rows.filter(pc.invert(is_object)), objects if objects.num_rows else None


def _rewrite_after_commit(run: _CommittedRun, spec: Any, summary: RunSummary) -> None:
    """Steps 3 and 4 of :func:`finish_committed_run`: the selected frames' PNGs and the objects' crops."""
    from lightly_airflow import objects as objects_run
    from lightly_airflow.video.supersede import superseded_by_committed_run

    io, version = run.io, run.version
    log.warning("Run %s is committed as datapool version %d but did not finish (its staging files are still "
                "there): writing what it writes after its commit.", io.run_id, version)
    summary.frames = _write_selected_frames(run.rows, run.meta, io.datasource_credentials, io.lightly_credentials,
                                            superseded_by_committed_run(run.pool, version, run.rows))
    crops = objects_run.write_crops(
        run.objects, spec, run.meta, datasource_credentials=io.datasource_credentials,
        lightly_credentials=io.lightly_credentials, rows=run.rows,
        known=None if run.previous is None else run.previous.known_files(),
        later=objects_run.processed_later(run.pool, version),  # (a later run's crops are its own)
        datapool_uri=io.datapool_uri, run_id=io.run_id, datapool_credentials=io.credentials,
    )
    if crops:
        summary.objects["crops"] = objects_run.record_crops(crops, io.datapool_uri, io.run_id, io.credentials)


def _rebuild_report(run: _CommittedRun, summary: RunSummary, config: Any, dag_id: str | None) -> str | None:
    """Step 5 of :func:`finish_committed_run`: the report of a committed run that has none, from the pool alone."""
    from lightly_airflow import objects as objects_run

    io, rows = run.io, run.rows
    log.warning(
        "Run %s is committed as datapool version %d but its report is missing (the worker stopped after the "
        "commit): writing it now from the pool.", io.run_id, run.version,
    )
    before = run.previous.selected() if run.previous is not None and run.version > 1 else None
    summary.pool_selected_before = 0 if before is None else before.num_rows
    picked = rows.filter(pc.fill_null(rows.column(C.SELECTED), False)).sort_by(C.PICK_RANK)
    figure = objects_run.report_figure(run.objects, picked.column(C.KEY).to_pylist(), run.meta,
                                       io.datasource_credentials, rows=rows, lightly_credentials=io.lightly_credentials)
    return _report(rows, io.datapool_uri, io.run_id, summary, config, before, io.credentials,
                   objects_figure=figure, dag_id=dag_id)


def _manifest_meta(manifest_uri: str, credentials: StorageCredentials | None) -> dict[str, Any]:
    """The ``lightly.*`` schema metadata of a manifest shard, as the staging files carry it (JSON text)."""
    try:
        manifest = staging.read_manifest(manifest_uri, credentials)
    except (FileNotFoundError, ValueError) as exc:
        log.warning("Cannot read %s: %s", manifest_uri, exc)
        return {}
    return {k: json.dumps(v) for k, v in manifest.metadata.items()}


def _listing_notes(skips: ListingSkips) -> list[str]:
    """What the listing changed beyond its counts, for the summary's notes."""
    older = skips.older_pixel_rules
    if not older:
        return list(skips.notes)
    return [*skips.notes, f"{older:,} unchanged files were decoded and embedded again instead of reused: their "
            f"values in the pool were computed under older pixel rules (before version {C.PIXEL_RULES_VERSION}: "
            "upright images and video frames, high bit depths, JPEGs above the pixel limit, 16-bit and planar TIFFs, "
            "PNG transparency, colour profiles converted to sRGB)"]


def listing_skips(
    datapool_uri: str, run_id: str, credentials: StorageCredentials | None
) -> tuple[ListingSkips, list[pa.Table]]:
    """What the run's listing did not list (``listing.json``), and the skipped entries as a ``listing`` problems
    table for ``problems.parquet``."""
    skips = ListingSkips.from_dict(staging.read_listing_skips(datapool_uri, run_id, credentials))
    skipped = skips.skipped
    if skips.skipped_count:
        log.warning("%d entries of the datasource were not listed (e.g. %s); they are in the problems file.",
                    skips.skipped_count, "; ".join(f"{k!r}: {r}" for k, r in skipped[:5]))
    if not skipped:
        return skips, []
    problems = staging.ProblemLog("listing")
    for key, reason in skipped:
        problems.add(key, "file", reason)
    return skips, [problems.to_table()]


def run_seed(run_id: str) -> int:
    """The seed of RANDOM inputs without ``random_seed`` in a run: derived from the run id, so a retried
    select-and-commit picks exactly what the killed attempt would have (power sampling in the active-learning
    recipe is random), and two runs differ."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")


#: The summary of the attempt that commits, recorded just before its commit: a retry that finds the run committed
#: (a worker killed after the commit, a cleared task) answers with its metrics, notes and warnings and rebuilds the
#: report from them instead of from the commit's counts alone.
COMMITTED_SUMMARY = "run-summary.json"


def _record_committing_summary(datapool_uri: str, run_id: str, summary: RunSummary,
                               credentials: StorageCredentials | None) -> None:
    """Record ``summary`` as :data:`COMMITTED_SUMMARY` (each attempt that commits writes it first; one that lost a
    race and selects again rewrites it). A failed write is logged: the run commits, and a retry after a kill falls
    back to the commit's counts."""
    try:
        staging.write_record(datapool_uri, run_id, COMMITTED_SUMMARY, summary.to_dict(), credentials)
    except Exception:  # noqa: BLE001 - the run commits; a retry after the commit says less
        log.exception("Could not record the run's summary in %s: a retry after the commit rebuilds it from the "
                      "commit's counts, without the selection's metrics and notes.",
                      staging.reports_dir(datapool_uri, run_id))


def _committed_summary(datapool_uri: str, run_id: str, credentials: StorageCredentials | None) -> RunSummary | None:
    """The :data:`COMMITTED_SUMMARY` a committed run recorded; ``None`` (logged) where there is none (a run committed
    before the record existed, 2026-12-07, or a failed write) or it is damaged."""
    try:
        recorded, uri = staging.read_record(datapool_uri, run_id, COMMITTED_SUMMARY, credentials)
    except ValueError:
        recorded, uri = None, join_uri(staging.reports_dir(datapool_uri, run_id), COMMITTED_SUMMARY)
        log.warning("The run's recorded summary %s is damaged (not JSON).", uri)
    if not isinstance(recorded, dict):
        log.warning("Run %s has no recorded summary (%s): its summary is rebuilt from the commit's counts, without the "
                    "selection's metrics, notes and warnings.", run_id, uri)
        return None
    return _summary_from_record(recorded)


def _summary_from_record(recorded: Mapping[str, Any]) -> RunSummary:
    """A :class:`RunSummary` from its :meth:`~RunSummary.to_dict` (keys it does not know, e.g. ``committed`` and
    ``moved``, left out)."""
    known = {f.name for f in fields(RunSummary)}
    return RunSummary(**{k: v for k, v in recorded.items() if k in known})


#: A finished dry run's summary (or a proposal's discarded in review), in its report folder: what a retry of its
#: select tasks answers with once the staging files are gone (it commits nothing, so the pool cannot tell).
DRY_RUN_SUMMARY = "dry-run-summary.json"


def _note_moves_a_commit_would_make(summary: RunSummary, snap: Snapshot, rows: pa.Table,
                                    moves: list[tuple[str, str]]) -> None:
    """A dry run's note of the moved files whose new keys a commit of it would let take over their former key's
    sample (``datapool.moves``, planned on the version the run read; nothing is written), and of those refused
    because the image has objects. ``summary.moved`` stays 0: nothing was taken over."""
    if not moves:
        return
    from lightly_airflow.datapool.moves import MOVED, OBJECTS_NOT_CARRIED, move_counts, objects_refused_note, plan_moves

    refused: dict[str, int] = {}
    plan = plan_moves(snap, rows, moves, refused)  # (a moved video's frames each a move: count the files)
    taken = move_counts(plan, {}).get(MOVED, 0)
    summary.notes.append(f"Dry run: a commit would let {taken} of the {len(moves)} moved or renamed files take over "
                         "their former key's sample (its selection and tags; datapool.moves); nothing was written")
    if refused.get(OBJECTS_NOT_CARRIED):
        summary.notes.append(objects_refused_note(refused[OBJECTS_NOT_CARRIED]))


def _finish_dry_run(datapool_uri: str, run_id: str, summary: RunSummary, credentials: StorageCredentials | None) -> None:
    """Record the summary of a run that ends without a commit (a dry run, a proposal discarded in review), then
    delete its staging files: they hold every processed sample's embedding and nothing reads them again (each dry
    run left them behind before). Without the record the staging files stay, so a retry can select again."""
    try:
        staging.write_record(datapool_uri, run_id, DRY_RUN_SUMMARY, summary.to_dict(), credentials)
    except Exception:  # noqa: BLE001 - the dry run's result stands; its staging files stay for a retry
        log.exception("Could not record the dry run's summary in %s; its staging files stay.",
                      staging.reports_dir(datapool_uri, run_id))
        return
    remove_staging(datapool_uri, run_id, credentials)


def finished_dry_run(datapool_uri: str, run_id: str, credentials: StorageCredentials | None) -> RunSummary | None:
    """The summary a dry run (or a discarded proposal, :mod:`lightly_airflow.review`) recorded when it finished (its
    select task retried or cleared after that), else ``None``."""
    try:
        recorded, uri = staging.read_record(datapool_uri, run_id, DRY_RUN_SUMMARY, credentials)
    except ValueError:
        log.warning("The dry run's recorded summary in %s is damaged: the run selects again.",
                    staging.reports_dir(datapool_uri, run_id))
        return None
    if recorded is None:
        return None
    log.info("Dry run %s finished before (its summary: %s); nothing to do.", run_id, uri)
    remove_staging(datapool_uri, run_id, credentials)  # a retry after a kill between the record and the removal
    return _summary_from_record(recorded)


def _write_proposal(datapool_uri: str, run_id: str, version: int | None, picks: list[str], summary: RunSummary,
                    credentials: StorageCredentials | None) -> None:
    """Record a proposal for review (:data:`~lightly_airflow.review.PROPOSAL_FILE` in the run's report folder):
    what the deciding step compares its picks with. Written after the report, so a proposal the reviewer can see
    has its report."""
    uri = join_uri(reports_dir(datapool_uri, run_id), PROPOSAL_FILE)
    write_bytes(proposal_record(run_id, version, picks, summary.to_dict()), uri, credentials)
    log.info("Proposal for review: %s", uri)


def _earlier_proposal(io: _RunIO) -> dict[str, Any] | None:
    """The run's proposal record a new proposal replaces (a Commit of it may have been refused:
    :meth:`Review.proposing_after <lightly_airflow.review.Review.proposing_after>`); ``None`` when there is none or it
    cannot be read (logged: the new proposal then does not say how the earlier one ended)."""
    try:
        return _read_proposal(io.datapool_uri, io.run_id, io.credentials)
    except (ReviewError, OSError) as exc:
        log.warning("The run's earlier proposal was not read (%s): the new one does not say how it ended.", exc)
        return None


def _read_proposal(datapool_uri: str, run_id: str, credentials: StorageCredentials | None) -> dict[str, Any] | None:
    """The run's recorded proposal, or None when there is none.

    :raises ReviewError: the record is damaged (nothing can be committed as reviewed)."""
    uri = join_uri(reports_dir(datapool_uri, run_id), PROPOSAL_FILE)
    fs, path = filesystem(uri, credentials)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return parse_proposal(data, uri)


def remove_staging(datapool_uri: str, run_id: str, credentials: StorageCredentials | None) -> None:
    """Delete a committed run's staging files (its samples now live in the datapool; a retry of the run
    finds the commit and needs none of them). A failure is logged, never fatal."""
    uri = staging.run_dir(datapool_uri, run_id)
    try:
        if staging.remove_run(datapool_uri, run_id, credentials):
            log.info("Removed the committed run's staging files %s.", uri)
    except Exception:  # noqa: BLE001 - leftover staging files cost space, never correctness
        log.exception("Could not remove the staging files %s; they can be deleted by hand.", uri)


def _write_problems(
    errors: list[pa.Table], datapool_uri: str, run_id: str, credentials: StorageCredentials | None,
    rows: pa.Table | None = None,
) -> tuple[str | None, int]:
    """Gather every stage's per-file problems into one ``problems.parquet`` beside the report, and log them.

    Columns: ``key, stage, field, reason`` (and ``path`` where the stage knows the offending file). ``rows``: the
    run's rows; a corrupt file's missing prediction file is no problem (the predictions task runs beside the
    metadata task, which finds it corrupt: it cannot know), and is left out.
    """
    if not errors:
        return None, 0
    table = _without_corrupt_files_predictions(pa.concat_tables(errors, promote_options="permissive"), rows)
    if not table.num_rows:
        return None, 0
    by_stage: dict[str, int] = {}
    for stage in table.column("stage").to_pylist():
        by_stage[stage] = by_stage.get(stage, 0) + 1
    log.warning(
        "%d problems with input files in this run (%s); every one is listed with its file, field and reason "
        "in the run's problems.parquet. First ones:", table.num_rows,
        ", ".join(f"{n} in {stage}" for stage, n in sorted(by_stage.items())),
    )
    for row in table.slice(0, 10).to_pylist():
        # %r: a file name with a newline cannot forge log lines
        log.warning("  %r [%s] %s: %s", row.get("key"), row.get("stage"), row.get("field"), row.get("reason"))
    uri = write_parquet(table, staging.problems_uri(datapool_uri, run_id), credentials)
    return uri, table.num_rows


def _without_corrupt_files_predictions(problems: pa.Table, rows: pa.Table | None) -> pa.Table:
    """``problems`` less the predictions stage's "no prediction file" rows of files the run found corrupt (an
    image that cannot be decoded is no sample: asking for its prediction file sends the user to write a useless
    file)."""
    needed = {"key", "stage", "reason"}
    if rows is None or not rows.num_rows or C.STATUS not in rows.column_names or not needed <= set(problems.column_names):
        return problems
    corrupt = rows.filter(pc.equal(rows.column(C.STATUS), C.STATUS_CORRUPT)).column(C.KEY)
    if not len(corrupt):
        return problems
    drop = pc.and_(pc.and_(pc.equal(problems.column("stage"), "predictions"),
                           pc.starts_with(pc.fill_null(problems.column("reason"), ""), "no prediction file for task")),
                   pc.is_in(problems.column("key"), value_set=pa.array(corrupt.to_pylist(), pa.string())))
    dropped = int(pc.sum(drop).as_py() or 0)
    if dropped:
        log.info("%d 'no prediction file' problems of files found corrupt left out (no sample, no prediction needed)",
                 dropped)
    return problems.filter(pc.invert(pc.fill_null(drop, False)))


def _report(
    rows: pa.Table, datapool_uri: str, run_id: str, summary: RunSummary, config: Any,
    preselected: pa.Table | None, credentials: StorageCredentials | None, objects_figure: Any = None, *, dag_id: str | None = None,
) -> str | None:
    """Write the run's report to ``<datapool>/_reports/<run>/``; a failure is logged, never fatal."""
    from lightly_airflow.report import write_report
    from lightly_airflow.report.goals import count_listed_goals
    from lightly_airflow.report.links import report_links

    out_uri = reports_dir(datapool_uri, run_id)
    try:  # (what the report's "Missed goals" lists, from what it is given: the lightly.run.goals_missed gauge)
        summary.goals_missed = count_listed_goals(rows, config, summary.to_dict(), preselected)
    except Exception:  # noqa: BLE001 - no count (no gauge) rather than a failed run
        log.exception("Could not count the run's missed goals; the lightly.run.goals_missed gauge is not sent.")
    try:
        uri = write_report(
            rows, out_uri=out_uri, summary=summary.to_dict(), config=config, preselected=preselected,
            credentials=credentials, objects_figure=objects_figure,
            links=report_links(dag_id, run_id, summary.tag if summary.version else None),
        )
    except Exception:  # noqa: BLE001 - the report must never fail a run that selected correctly
        log.exception("Could not write the run report to %s; the selection is unaffected.", out_uri)
        return None
    log.info("Run report: %s", uri)
    return uri


def _still_selected(view: _PoolView, preselected_tag: str | None) -> list[str]:
    """The keys of the run's rows the pool selected before with this very file: not candidates again, they stay in
    ``initial-tag`` after the commit, and so do their objects (``objects.run.commit_rows``). Without
    ``preselected_tag_name`` (or with ``initial-tag``) the preselected samples are ``initial-tag``: the attempt's
    mask (:attr:`_PoolView.before`, computed once for the candidates and here); another tag's are not, and
    ``initial-tag`` is read."""
    before = view.before
    if preselected_tag not in (None, C.INITIAL_TAG):
        initial = view.snap.selected([C.KEY, C.ETAG]) if view.snap.version is not None else None
        before = selected_before(view.marked, initial) if initial is not None and initial.num_rows else None
    if before is None:
        return []
    return [str(k) for k in view.marked.filter(before).column(C.KEY).to_pylist()]


def selected_before(rows: pa.Table, preselected: pa.Table) -> Any:
    """Per row of the run: whether the pool selected this very file before, its key *with its content* (etag).

    A file replaced under its key (a new etag: a re-recorded or re-encoded video, whose frames keep their names when
    the frame count's digits do not change; an image overwritten) is new content: a candidate like any new file.
    Matched by key alone, the frames of a replaced video named like frames selected before were never candidates,
    in that run or any later one, ``process_all`` included (the pool's ``initial-tag`` keeps the former row)."""
    def identity(table: pa.Table) -> pa.Array:
        key = pc.cast(table.column(C.KEY), pa.string())
        if C.ETAG in rows.column_names and C.ETAG in preselected.column_names:
            key = pc.binary_join_element_wise(key, pc.fill_null(pc.cast(table.column(C.ETAG), pa.string()), ""), "\x00")
        return key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key

    return pc.is_in(identity(rows), value_set=identity(preselected))


def _meta_value(meta: dict[str, Any], key: str) -> Any:
    value = meta.get(key)
    if value is None:
        raise ValueError(f"The embedding staging files lack the schema metadata {key!r}; re-run the embed tasks.")
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return value


def _with_schema_metadata(table: pa.Table, meta: dict[str, Any]) -> pa.Table:
    merged = dict(table.schema.metadata or {})
    merged.update({k.encode(): str(v).encode() for k, v in meta.items()})
    return table.replace_schema_metadata(merged)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
