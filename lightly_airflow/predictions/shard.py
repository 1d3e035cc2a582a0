"""``load_predictions_shard``: read ``.lightly/predictions/`` for one manifest shard and score it."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.arrow import from_numpy, from_pylist, list_array, numpy_of, one_array, valid_of
from lightly_airflow.fixes import split_fix
from lightly_airflow.lightly_dir import (
    PREDICTIONS_DIR,
    TASKS_FILE,
    LightlyDir,
    LightlyFileError,
    json_relpath,
    parse_frame_name,
    parse_json_bytes,
)
from lightly_airflow.predictions import scorers as S
from lightly_airflow.predictions.parse import FilePredictions, parse_prediction_file
from lightly_airflow.predictions.schema import TaskSchema, parse_task_schema, parse_tasks
from lightly_airflow.staging import (
    PREDICTIONS,
    ProblemLog,
    check_error_fraction,
    read_manifest,
    sibling_uri,
    validate_fraction,
    with_counts,
)
from lightly_airflow.storage import StorageCredentials, write_parquet
from lightly_airflow.video.past_end import files_past_end, video_ends

logger = logging.getLogger(__name__)

STAGE = "predictions"
#: Missing prediction files per task and shard whose other likely names are all probed; past them, only the
#: kinds of names already found (a run whose predictions exist for a few images only pays a few reads).
PROBE_FIRST = 16
TASK_TYPES_METADATA_KEY = "lightly.task_types"
CATEGORY_IDS_METADATA_KEY = "lightly.category_ids"


def _skipped(reason: str, task: str) -> str:
    """``reason`` saying that ``task`` is skipped, before its fix (after it, the report's fix column read
    "… (task 't' is skipped)")."""
    problem, fix = split_fix("", reason)
    return f"{problem} (task {task!r} is skipped)" + (f". Fix: {fix}" if fix else "")


def load_tasks(folder: LightlyDir, problems: ProblemLog) -> list[TaskSchema]:
    """The usable tasks of ``tasks.json`` with their schemas; every problem is reported, none raises."""
    data = folder.read_bytes(TASKS_FILE)
    if data is None:
        logger.info("no %s/%s: no predictions to load", folder.uri, TASKS_FILE)
        return []
    rel = f".lightly/{TASKS_FILE}"
    try:
        obj = parse_json_bytes(data, TASKS_FILE)
    except LightlyFileError as exc:
        problems.add(rel, "", exc.reason)
        # (every task's predictions are lost: said where the run is watched, not only in the problems file)
        logger.warning("no predictions are loaded: %s/%s: %s", folder.uri, TASKS_FILE, exc.reason)
        return []
    names, task_problems = parse_tasks(obj)
    for f, reason in task_problems:
        problems.add(rel, f, reason)
    schemas: list[TaskSchema] = []
    for task in names:
        srel = f"{PREDICTIONS_DIR}/{task}/schema.json"
        raw = folder.read_bytes(srel)
        if raw is None:
            problems.add(f".lightly/{srel}", "", f"missing schema.json for task {task!r}: the task is skipped. Fix: add "
                         f".lightly/{srel} ({{\"task_type\": …, \"categories\": [{{\"id\": 0, \"name\": …}}, …]}}), or "
                         f"remove {task!r} from tasks.json")
            continue
        try:
            sobj = parse_json_bytes(raw, srel)
        except LightlyFileError as exc:
            problems.add(f".lightly/{srel}", "", _skipped(exc.reason, task))
            continue
        schema, schema_problems = parse_task_schema(task, sobj)
        for f, reason in schema_problems:  # (every problem of the file at once, each at its JSON path)
            problems.add(f".lightly/{srel}", f, reason if schema is not None else _skipped(reason, task))
        if schema_problems and schema is None:
            logger.warning("task %r is skipped: .lightly/%s has %d problems: %s", task, srel, len(schema_problems),
                           "; ".join(f"{f or 'schema.json'} {r}" for f, r in schema_problems))
        if schema is not None:
            schemas.append(schema)
    return schemas


@dataclass
class _TaskRows:
    """Everything one task contributes for the shard's rows (flat arrays with the row index)."""

    schema: TaskSchema
    n: int
    valid: np.ndarray = field(init=False)
    obj_row: list[int] = field(default_factory=list)
    obj_cat: list[int] = field(default_factory=list)
    obj_probs: list[np.ndarray] = field(default_factory=list)
    obj_score: list[float] = field(default_factory=list)
    obj_area: list[float] = field(default_factory=list)
    kp_row: list[int] = field(default_factory=list)
    kp_conf: list[float] = field(default_factory=list)
    cat_row: list[int] = field(default_factory=list)
    cat_index: list[int] = field(default_factory=list)
    derived: int = 0
    derived_example: str | None = None
    bad: int = 0
    bad_example: str | None = None
    ignored: Counter[str] = field(default_factory=Counter)
    ignored_example: str | None = None

    def __post_init__(self) -> None:
        self.valid = np.zeros(self.n, bool)

    def reject(self, where: str, problems: list[tuple[str, str]]) -> None:
        """Count a file that is not read (its rows stay null), keeping the first one's first problem for the log."""
        self.bad += 1
        if self.bad_example is None and problems:
            field_, reason = problems[0]
            self.bad_example = f"{where}: {field_ or 'file'} {reason}"

    def add(self, row: int, preds: FilePredictions, where: str) -> None:
        self.valid[row] = True
        if preds.derived:
            self.derived += preds.derived
            self.derived_example = self.derived_example or where
        if preds.ignored:
            self.ignored.update(preds.ignored)
            self.ignored_example = self.ignored_example or where
        if self.schema.task_type == "keypoint-detection":
            self.kp_row += [row] * len(preds.keypoint_confidence)
            self.kp_conf += preds.keypoint_confidence
        else:
            k = len(preds.category_index)
            self.obj_row += [row] * k
            self.obj_cat += preds.category_index
            self.obj_probs += preds.probabilities
            self.obj_score += preds.scores
            self.obj_area += preds.areas
        self.cat_row += [row] * len(preds.category_index)
        self.cat_index += preds.category_index

    def columns(self) -> dict[str, pa.Array]:
        s = self.schema
        c = s.num_categories
        rows = np.asarray(self.obj_row, np.int64)
        probs = np.stack(self.obj_probs) if self.obj_probs else np.zeros((0, max(c, 1)))
        tt = s.task_type
        if tt == "classification":
            dense = np.zeros((self.n, c))
            dense[rows] = probs
            scores = S.score_classification(dense)
        elif tt in ("object-detection", "instance-segmentation"):
            scores = S.score_object_detection(
                rows, probs, np.asarray(self.obj_score), np.asarray(self.obj_cat), self.n, rescale=False
            )
        elif tt == "semantic-segmentation":
            scores = S.score_semantic_segmentation(rows, probs, np.asarray(self.obj_area), self.n)
        else:
            scores = S.score_keypoint_detection(np.asarray(self.kp_row, np.int64), np.asarray(self.kp_conf), self.n)
        mask = ~self.valid
        out: dict[str, pa.Array] = {}
        for name in S.scores_for_task_type(tt):
            # (arrow's builders, not pa.array: pyarrow's conversion of numpy imports pandas, 0.2 s of the task)
            out[C.score_column(s.name, name)] = from_numpy(np.asarray(scores[name], np.float64), mask)
        if s.has_class_distribution:
            dist = np.zeros((self.n, c), np.float64)
            if rows.size:
                weights = probs * np.asarray(self.obj_area)[:, None] if tt == "semantic-segmentation" else probs
                np.add.at(dist, rows, np.nan_to_num(weights))
            if tt == "semantic-segmentation":
                totals = dist.sum(axis=1, keepdims=True)
                np.divide(dist, totals, out=dist, where=totals > 0)
            offsets = np.arange(0, (self.n + 1) * c, c, dtype=np.int32) if self.n else np.zeros(1, np.int32)
            out[C.class_distribution_column(s.name)] = list_array(offsets, from_numpy(dist.astype(np.float32).ravel()),
                                                                  mask)
        if c:
            counts = np.zeros((self.n, c), np.int64)
            if self.cat_row:
                np.add.at(counts, (np.asarray(self.cat_row), np.asarray(self.cat_index)), 1)
            for j, name in enumerate(s.category_names):
                out[C.category_count_column(s.name, name)] = from_numpy(counts[:, j], mask)
        return out


def load_predictions_shard(
    manifest_uri: str,
    output_uri: str | None = None,
    *,
    lightly_uri: str | None = None,
    credentials: StorageCredentials | None = None,
    lightly_credentials: StorageCredentials | None = None,
    max_error_fraction: float | None = None,
) -> dict[str, Any]:
    """Read every listed task's predictions for the shard's files, score them and write staging Parquet.

    Output (``sibling_uri(manifest_uri, "predictions")`` by default): ``key``, ``scores.<task>.<score>``,
    ``predictions.<task>.class_distribution`` (list<float32> ordered by category id; detection: sum of the
    boxes' probability vectors; semantic segmentation: share of labelled pixels), and
    ``predictions.<task>.category_count.<category>``; schema metadata ``lightly.categories`` =
    ``{task: [names ordered by id]}`` (plus ``lightly.category_ids`` and ``lightly.task_types``).
    ``object_frequency`` holds raw totals: :func:`finalize_prediction_scores` rescales them across the run.
    A file without predictions, or with bad ones, keeps nulls for that task; problems go to
    ``errors/predictions-shard-NNNNN.parquet``. A prediction file for the frame after a video's last one
    (``clip-48-mp4.json`` of a 48-frame video: no such frame) is a problem too, found by the shard that holds the
    video's last frame (:func:`_report_past_end`).

    :param manifest_uri: the manifest shard.
    :param output_uri: where to write (default: the shard's ``predictions/`` sibling).
    :param lightly_uri: the folder holding ``.lightly/`` (default: the manifest's ``lightly.lightly_uri``).
    :param credentials: credentials of the staging store.
    :param lightly_credentials: credentials of the ``.lightly/`` store (default: ``credentials``).
    :param max_error_fraction: fail (after writing the outputs) when more than this share of files has bad
        predictions (missing prediction files do not count); ``None`` never fails.
    :returns: counts ``files``, ``with_predictions``, ``bad``, ``missing``, ``misnamed``, ``past_end`` (prediction
        files for a frame past a video's end, one a video and task at most), ``derived_probabilities``
        (``{task: predictions without probabilities}``, whose probabilities come from ``score``; logged),
        ``tasks``, ``errors``, plus ``output_uri`` and ``errors_uri``.
    :raises TooManyErrorsError: when ``max_error_fraction`` is exceeded.
    """
    max_error_fraction = validate_fraction(max_error_fraction)
    output_uri = output_uri or sibling_uri(manifest_uri, PREDICTIONS)
    manifest = read_manifest(manifest_uri, credentials)
    lightly_uri = lightly_uri or manifest.lightly_uri
    if not lightly_uri:
        raise ValueError(
            f"No lightly_uri for {manifest_uri}: pass the folder that holds '.lightly/predictions/' "
            "(--lightly-uri), or record it in the manifest."
        )
    folder = LightlyDir(lightly_uri, lightly_credentials or credentials)
    problems = ProblemLog(STAGE)
    tasks = load_tasks(folder, problems)
    keys = manifest.keys
    n = len(keys)
    # a video without a decodable frame (a corrupt row keyed by the video, reported by the embed task): not a
    # sample, so it has no prediction file to read, and none is missing
    not_samples = manifest.unreadable_videos
    if not_samples and tasks:
        logger.info("predictions %s: %d videos without a decodable frame (corrupt, reported by the embed task) have "
                    "no frames to read predictions for, e.g. %r", manifest_uri, len(not_samples), min(not_samples))
    bad_keys: set[str] = set()
    missing = misnamed = past_end = 0
    derived: dict[str, int] = {}
    ends = video_ends(manifest.table, manifest_uri, "prediction files") if tasks else []
    with_predictions = np.zeros(n, bool)
    columns: dict[str, pa.Array] = {C.KEY: from_pylist(keys, pa.string())}
    started = time.monotonic()
    for schema in tasks:
        rows = _TaskRows(schema, n)
        rels = [json_relpath(f"{PREDICTIONS_DIR}/{schema.name}", k) for k in keys]
        got = folder.read_many([r for k, r in zip(keys, rels) if k not in not_samples])
        absent: list[str] = []
        for i, (key, rel) in enumerate(zip(keys, rels)):
            if key in not_samples:
                continue
            data = got.get(rel)
            where = f".lightly/{rel}"
            if data is None:
                absent.append(key)
                continue
            preds, file_problems = _parse_file(data, rel, schema, key)
            for f, reason in file_problems:
                problems.add(key, f, reason, where)
            if preds is None:
                bad_keys.add(key)
                rows.reject(where, file_problems)
                continue
            rows.add(i, preds, where)
            with_predictions[i] = True
        columns.update(rows.columns())
        if rows.bad:
            _log_bad(manifest_uri, rows)
        if rows.ignored:
            logger.info("predictions %s: task %r: keys that Lightly's prediction format does not have are not read: %s "
                        "(e.g. %s)", manifest_uri, schema.name, ", ".join(f"{k!r} in {n} predictions" for k, n in
                                                                     rows.ignored.most_common(10)), rows.ignored_example)
        if rows.derived:
            derived[schema.name] = rows.derived
            _log_derived(manifest_uri, rows)
        missing += len(absent)
        misnamed += _report_missing(folder, schema.name, absent, problems)
        past_end += _report_past_end(folder, schema.name, ends, problems)
        logger.info(
            "predictions %s: task %r (%s) read for %d files in %.1fs",
            manifest_uri, schema.name, schema.task_type, n, time.monotonic() - started,
        )
    meta = {
        C.CATEGORIES_METADATA_KEY.encode(): json.dumps({t.name: list(t.category_names) for t in tasks}).encode(),
        CATEGORY_IDS_METADATA_KEY.encode(): json.dumps({t.name: list(t.category_ids) for t in tasks}).encode(),
        TASK_TYPES_METADATA_KEY.encode(): json.dumps({t.name: t.task_type for t in tasks}).encode(),
        C.LIGHTLY_URI_METADATA_KEY.encode(): json.dumps(lightly_uri).encode(),
    }
    # The stage's counts, {task: predictions without probabilities}: the select task sums them over the shards into
    # the run summary's ``derived_probabilities``, which the report's notes show.
    table = with_counts(pa.table(columns).replace_schema_metadata(meta), PREDICTIONS, derived)
    write_parquet(table, output_uri, credentials)
    report_uri = problems.write(manifest_uri, credentials)
    result = {
        "files": n,
        "with_predictions": int(with_predictions.sum()),
        "bad": len(bad_keys),
        "missing": missing,
        "misnamed": misnamed,
        "past_end": past_end,
        "derived_probabilities": derived,
        "tasks": [t.name for t in tasks],
        "errors": len(problems),
        "output_uri": output_uri,
        "errors_uri": report_uri,
    }
    logger.info(
        "predictions %s: %d files, %d tasks, %d with bad predictions, %d prediction files missing (%d of them under "
        "another name), %d for a frame past a video's end; %d problems in %s",
        manifest_uri, n, len(tasks), len(bad_keys), missing, misnamed, past_end, len(problems), report_uri,
    )
    check_error_fraction(len(bad_keys), n, max_error_fraction, "predictions", report_uri)
    return result


def _parse_file(data: bytes | Exception, rel: str, schema: TaskSchema,
                key: str) -> tuple[FilePredictions | None, list[tuple[str, str]]]:
    """One prediction file's bytes (or the error reading them) parsed for ``schema``: its predictions, or ``None``
    and its problems (``(field, reason)``; ``file`` for the file as a whole)."""
    if isinstance(data, Exception):
        return None, [("file", f"cannot read: {type(data).__name__}: {data}"[:300] + ". Fix: make the file readable "
                               "with the run's credentials; a retry of the task reads it again")]
    try:
        obj = parse_json_bytes(data, rel)
    except LightlyFileError as exc:
        return None, [("file", exc.reason)]
    return parse_prediction_file(obj, schema, key)


def _log_bad(manifest_uri: str, rows: _TaskRows) -> None:
    """Say where the run is watched how many of a task's prediction files are not read, with the first one's
    problem and fix: the shard's summary line gave only a count over all tasks, so a task whose every file had
    the same mistake (a misspelt key, percentages for probabilities) showed nothing to act on in the task log."""
    logger.warning("predictions %s: task %r: %d prediction files have problems and are not read (their samples get "
                   "no %s scores), e.g. %s; every problem is in the problems file", manifest_uri, rows.schema.name,
                   rows.bad, rows.schema.name, rows.bad_example)


def _log_derived(manifest_uri: str, rows: _TaskRows) -> None:
    """Say that predictions without ``probabilities`` (optional in Lightly's format: its classification example
    has only ``category_id``) had theirs derived from ``score``, and what that does to the uncertainty scores: a
    classification without ``score`` becomes one-hot, so each of its uncertainty scores is 0 and a WEIGHTS
    strategy on them cannot tell its samples apart. A warning for classification, whose scores come from the
    probabilities alone; information for the other types (detectors often give a score only)."""
    level = logging.WARNING if rows.schema.task_type == "classification" else logging.INFO
    logger.log(level, "predictions %s: task %r: %d predictions (e.g. %s) %s", manifest_uri, rows.schema.name,
               rows.derived, rows.derived_example, DERIVED_PROBABILITIES)


#: What became of predictions without ``probabilities``, and the fix: the predictions task's log and the run
#: report's notes (``report.data.stage_notes``) say it in these words.
DERIVED_PROBABILITIES = (
    "have no 'probabilities': each is taken as its 'score' on its category_id and the rest spread evenly over the "
    "other categories (one-hot without a score), so their uncertainty_* scores show only that score (0 for "
    "one-hot). Fix: write 'probabilities' (one per category, ordered by id) for uncertainty scores that show the "
    "model's doubt")


def _report_missing(folder: LightlyDir, task: str, keys: list[str], problems: ProblemLog) -> int:
    """Report each key without a prediction file of ``task``; where a file exists under a name a tool may have
    given it instead of Lightly's (:func:`~lightly_airflow.lightly_dir.near_miss_stems`: another frame-number
    padding, the extension kept, another case, the subfolders missing), the reason names it and the fix.
    Such a file is not read: the names are Lightly's contract, and a guess could pair the wrong file.

    Every other name is probed for at most :data:`PROBE_FIRST` video frames and as many images
    (:meth:`~lightly_airflow.lightly_dir.LightlyDir.find_misnamed`).

    :returns: the number of keys whose prediction file was found under another name.
    """
    task_dir = f"{PREDICTIONS_DIR}/{task}"
    found = folder.find_misnamed(task_dir, keys, PROBE_FIRST)
    one_based = _numbered_from_one(folder, task_dir, [k for k in keys if k not in found])
    for key in keys:
        rel = json_relpath(task_dir, key)
        reason = f"no prediction file for task {task!r}"
        if key in found:
            other, why = found[key]
            reason += (f", but .lightly/{other} exists: {why}. Rename it to .lightly/{rel} (it is not read under "
                       "its other name)")
        elif key in one_based:
            reason += (f", but frame 1 has one (.lightly/{one_based[key]}): Lightly numbers a video's frames from 0, "
                       "as PyAV decodes them. If your tool numbered them from 1 (ffmpeg's image sequences start at 1), "
                       "each prediction file of this video is read for the frame after the one it describes: rename "
                       "every file to its frame number minus one")
        problems.add(key, "file", reason, f".lightly/{rel}")
    if one_based:
        key, other = next(iter(one_based.items()))
        logger.warning(
            "task %r: %d videos have no prediction file for frame 0 but one for frame 1, e.g. .lightly/%s without "
            ".lightly/%s: if their frames were numbered from 1, every prediction is paired with the wrong frame "
            "(Lightly numbers from 0); see the problems", task, len(one_based), other, json_relpath(task_dir, key),
        )
    if found:
        key, (other, why) = next(iter(found.items()))
        logger.warning(
            "task %r: %d of %d missing prediction files exist under another name, e.g. .lightly/%s instead of "
            ".lightly/%s (%s); rename them, they are not read", task, len(found), len(keys), other,
            json_relpath(task_dir, key), why,
        )
    return len(found)


def _report_past_end(folder: LightlyDir, task: str, ends: list[tuple[str, int]], problems: ProblemLog) -> int:
    """Report each video of ``ends`` (``(video key, frame count)``) that has a prediction file of ``task`` for
    frame ``count``, the first past its end (:mod:`lightly_airflow.video.past_end`). No
    sample has that name, so the file was never read: its predictions were made on frames the video does not
    have as PyAV decodes it (another decoder counted more frames, frames numbered from 1, or another version of
    the video), and its other files may be paired with the wrong frames. One read a video and task; files for
    frames further on are not looked for.

    :returns: how many videos have one.
    """
    found = files_past_end(folder, f"{PREDICTIONS_DIR}/{task}", ends)
    for rel, video, count in found:  # keyed by the file, as tasks.json's: the video's own key may be a corrupt row's
        problems.add(f".lightly/{rel}", "file", (
            f"prediction file .lightly/{rel} of task {task!r} is for frame {count}, but video {video!r} has {count} "
            f"frames (0 to {count - 1}, as PyAV decodes them): no sample has that frame and the file is not read. "
            "Its predictions were made on other frames than Lightly's: if your tool numbered frames from 1, rename "
            "every file of this video to its frame number minus one; if it decoded more frames (another decoder, "
            "a damaged video read further), make the predictions from Lightly's frames (frame_index 0 to "
            f"{count - 1}) and remove the files past the end"), f".lightly/{rel}")
    if found:
        rel, video, count = found[0]
        logger.warning(
            "task %r: %d videos have a prediction file for a frame past their end, e.g. .lightly/%s for frame %d of "
            "%r, which has %d frames: those files are not read and the video's other predictions may be paired "
            "with the wrong frames; see the problems", task, len(found), rel, count, video, count,
        )
    return len(found)


def _numbered_from_one(folder: LightlyDir, task_dir: str, missing: list[str]) -> dict[str, str]:
    """Of the video frames 0 in ``missing`` (keys without a file in ``task_dir``), those whose frame 1 has a file:
    key -> that file's relpath. The sign of prediction files numbered from 1 where Lightly numbers from 0 (every
    box lands on the neighbouring frame; nothing else shows it: the files all parse)."""
    second: dict[str, str] = {}
    for key in missing:
        frame = parse_frame_name(key)
        if frame is None or frame[1] != 0:
            continue
        head, _, name = key.rpartition("/")
        stem, sep, rest = name.rpartition("-")  # <video stem>-<index>-<ext>.png
        stem, _, index = stem.rpartition("-")
        if not sep or not index.isdigit():
            continue
        one = f"{stem}-{1:0{len(index)}d}-{rest}"
        second[key] = json_relpath(task_dir, f"{head}/{one}" if head else one)
    if not second:
        return {}
    got = folder.read_many(sorted(set(second.values())))
    return {key: rel for key, rel in second.items() if isinstance(got.get(rel), bytes)}


def finalize_prediction_scores(table: pa.Table) -> pa.Table:
    """Rescale every ``scores.<task>.object_frequency`` column to [0.9, 1.0] across all rows of the run.

    The select task calls this once on the concatenated prediction shards (a shard alone cannot know the
    run's minimum and maximum). Nulls stay null.
    """
    out = table
    suffix = "." + S.OBJECT_FREQUENCY
    for i, name in enumerate(table.column_names):
        if not (name.startswith(C.SCORES_PREFIX) and name.endswith(suffix)):
            continue
        values, valid = _numbers(table.column(i))
        values[~valid] = np.nan
        rescaled = S.rescale_object_frequency(values)
        # (from buffers: to_numpy and pa.array of numpy import pandas, 0.1-0.6 s of the select task)
        out = out.set_column(i, pa.field(name, pa.float64()), from_numpy(rescaled.astype(np.float64), ~valid))
    return out


def _numbers(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as a float64 numpy copy and its validity (True = a value), from its buffers
    (:func:`~lightly_airflow.arrow.numpy_of`: pyarrow 26's ``to_numpy`` imports pandas)."""
    arr = one_array(col)
    t = arr.type
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan), np.zeros(len(arr), dtype=bool)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)) or pa.types.is_float16(t):
        raise TypeError(f"{S.OBJECT_FREQUENCY} must be numeric, not {t}")
    return numpy_of(arr).astype(np.float64), valid_of(arr)
