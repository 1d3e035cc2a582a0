"""Lightly's sequence selection (``worker_config.selected_sequence_length``): pick runs of consecutive frames.

With a sequence length ``L > 1`` the unit of selection is a sequence of ``L`` consecutive frames of one video
(frame indices ``k·L … k·L + L − 1``, every frame decodable and ``ok``): its embedding is the mean of its
frames' embeddings, its numeric values (metadata, scores) the mean of its frames', anything else its first
frame's. :func:`lightly_airflow.selection.select` runs unchanged on the sequences with ``n_samples / L``
samples (``n_samples`` must be a multiple of ``L``; ``proportion_samples`` applies to the frames), and every
picked sequence contributes all its frames, in order. Frames of incomplete windows and images cannot form a
sequence: they are counted in the metrics (``sequence_frames_left_out``: video frames in no complete window;
``sequence_images_left_out``: candidates that are no video frame), never silently dropped. The engine's own counts
(``missing_inputs``, its warnings) are of sequences: the sequence table says so in its schema metadata
(:data:`SEQUENCE_LENGTH_METADATA_KEY`).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.selection.engine import StopReason
from lightly_airflow.selection.inputs import config_columns


@dataclass
class SequenceResult:
    """The frames picked (``keys``, pick order: sequence by sequence) and the sequences themselves; ``stop_reason``
    the engine's (:class:`~lightly_airflow.selection.engine.StopReason`), ``no_complete_sequences`` when the
    candidates form no sequence."""

    indices: np.ndarray
    keys: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    stop_reason: StopReason = StopReason.N_REACHED
    sequences: list[dict[str, Any]] = field(default_factory=list)


#: Schema metadata of the table the engine selects sequences from: the sequence length (its rows are sequences of
#: that many frames, not samples), so the engine's messages name their unit.
SEQUENCE_LENGTH_METADATA_KEY = "lightly.sequence_length"
#: ... and per input column the candidates' frames without a value (:func:`frames_missing`), for those messages.
SEQUENCE_MISSING_FRAMES_METADATA_KEY = "lightly.sequence_missing_frames"


def check_sequence_config(config: Any, length: int) -> str | None:
    """Why ``config`` cannot be used with ``selected_sequence_length=length`` (``None`` when it can)."""
    n = getattr(config, "n_samples", None)
    if length > 1 and n is not None and n % length:
        return (f"n_samples={n} is not a multiple of selected_sequence_length={length}: use e.g. "
                f"n_samples={max(length, n // length * length)}.")
    return None


def sequence_windows(candidates: pa.Table, length: int) -> tuple[list[list[int]], int]:
    """Complete windows of ``length`` consecutive frames (row indices, in frame order) and the number of
    video frames among the candidates that belong to none (candidates that are no video frame, images, are not
    counted: :func:`non_frames`)."""
    videos = candidates.column(C.VIDEO).to_pylist() if C.VIDEO in candidates.column_names else [None] * candidates.num_rows
    indices = candidates.column(C.FRAME_INDEX).to_pylist() if C.FRAME_INDEX in candidates.column_names else videos
    slots: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
    for row, (video, index) in enumerate(zip(videos, indices)):
        if video is not None and index is not None:
            slots[(video, index // length)][index % length] = row
    windows = [
        [slots[w][i] for i in range(length)]
        for w in sorted(slots)
        if len(slots[w]) == length
    ]
    frames = sum(len(v) for v in slots.values())
    return windows, frames - length * len(windows)


def non_frames(candidates: pa.Table) -> int:
    """Candidates that are no video frame (images, or rows without a frame index): they cannot form a sequence."""
    if C.VIDEO not in candidates.column_names:
        return int(candidates.num_rows)
    videos = candidates.column(C.VIDEO).to_pylist()
    indices = candidates.column(C.FRAME_INDEX).to_pylist() if C.FRAME_INDEX in candidates.column_names else videos
    return int(sum(1 for v, i in zip(videos, indices) if v is None or i is None))


def _sequence_table(candidates: pa.Table, windows: list[list[int]]) -> pa.Table:
    """One row per window: mean embedding, mean numeric values, first frame's other values."""
    first = candidates.take(pa.array([w[0] for w in windows], pa.int64()))
    columns: dict[str, Any] = {}
    for name in candidates.column_names:
        col = candidates.column(name)
        typ = col.type
        if name == C.EMBEDDING:
            emb = _embedding_matrix(col)
            at = np.asarray(windows, dtype=np.int64).reshape(len(windows), -1)
            step = max(1, 2**22 // max(at.shape[1] * emb.shape[1], 1))  # (windows' rows gathered ~16 MB at a time)
            means = np.concatenate([emb[at[a : a + step]].mean(axis=1) for a in range(0, len(at), step)])
            norms = np.linalg.norm(means, axis=1, keepdims=True)
            means = means / np.where(norms > 0, norms, 1.0)
            columns[name] = pa.array(list(means), pa.list_(pa.float32()))
        elif (pa.types.is_floating(typ) or pa.types.is_integer(typ)) and name not in (C.FRAME_INDEX, C.FRAME_PTS, C.PICK_RANK):
            values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
            columns[name] = pa.array([float(np.nanmean(values[w])) if not np.all(np.isnan(values[w])) else None
                                      for w in windows], pa.float64())
        elif pa.types.is_list(typ) and name.startswith(C.PREDICTIONS_PREFIX):
            rows = col.to_pylist()
            out = []
            for w in windows:
                vecs = [r for r in (rows[i] for i in w) if r is not None]
                out.append(list(np.mean(np.asarray(vecs, dtype=np.float64), axis=0)) if vecs else None)
            columns[name] = pa.array(out, pa.list_(pa.float64()))
        else:
            columns[name] = first.column(name)
    table = pa.table(columns)
    length = len(windows[0]) if windows else 0
    return table.replace_schema_metadata({
        **(candidates.schema.metadata or {}), SEQUENCE_LENGTH_METADATA_KEY.encode(): str(length).encode(),
        SEQUENCE_MISSING_FRAMES_METADATA_KEY.encode(): json.dumps(frames_missing(candidates)).encode()})


def _embedding_matrix(col: pa.ChunkedArray) -> np.ndarray:
    """The embeddings as a float32 (N, D) matrix, straight from Arrow's buffers when every row has one of one
    width (a list of Python floats per frame took ~56 kB a frame: 2.6 GB for 40,000 frames of 1,280, 5.1 s;
    this way 0.09 s); else row by row, as before."""
    from lightly_airflow.arrow import one_array
    from lightly_airflow.selection.arrays import _list_lengths, to_numpy

    arr = one_array(col)
    if arr.null_count == 0 and len(arr) and (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
                                             or pa.types.is_fixed_size_list(arr.type)):
        lengths = _list_lengths(arr)
        if np.all(lengths == lengths[0]):
            return np.ascontiguousarray(to_numpy(arr.flatten()).reshape(len(arr), int(lengths[0])), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in col.to_pylist()])


def frames_missing(candidates: pa.Table) -> dict[str, int]:
    """Per input column (embedding, ``metadata.*``, ``scores.*``, ``predictions.*``): the candidates' video frames
    without a value (null, or a float that is not finite), where any lacks one. The engine counts sequences (a
    sequence lacks a value only when all its frames do); its messages give these frame counts beside."""
    import pyarrow.compute as pc

    if C.VIDEO not in candidates.column_names:
        return {}
    is_frame = pc.is_valid(candidates.column(C.VIDEO))
    out: dict[str, int] = {}
    for name in candidates.column_names:
        if not (name == C.EMBEDDING or name.startswith((C.METADATA_PREFIX, C.SCORES_PREFIX, C.PREDICTIONS_PREFIX))):
            continue
        col = candidates.column(name)
        miss = pc.is_null(col)
        if pa.types.is_floating(col.type):
            miss = pc.or_(miss, pc.invert(pc.is_finite(pc.fill_null(col, 0.0))))
        n = int(pc.sum(pc.and_(miss, is_frame)).as_py() or 0)
        if n:
            out[name] = n
    return out


def _sequence_objects(objects: pa.Table, candidates: pa.Table, windows: list[list[int]]) -> pa.Table:
    """The object rows with each frame's ``parent_key`` replaced by its sequence's (the key of the window's
    first frame, the sequence row's key); objects of frames in no window are left out."""
    keys = candidates.column(C.KEY).to_pylist()
    sequence_of = {keys[r]: keys[w[0]] for w in windows for r in w}
    parents = [sequence_of.get(p) for p in objects.column(C.PARENT_KEY).to_pylist()]
    at = objects.column_names.index(C.PARENT_KEY)
    mapped = objects.set_column(at, objects.schema.field(at), pa.array(parents, objects.schema.field(at).type))
    return mapped.filter(pa.array([p is not None for p in parents], pa.bool_()))


def select_sequences(
    candidates: pa.Table,
    config: Any,
    length: int,
    *,
    preselected: pa.Table | None = None,
    query_embeddings: Mapping[tuple[str, str], np.ndarray] | None = None,
    seed: int | None = None,
    objects: pa.Table | None = None,
    preselected_objects: pa.Table | None = None,
) -> SequenceResult:
    """Select sequences of ``length`` consecutive frames with a Lightly selection config (a wrapper of
    :func:`lightly_airflow.selection.select`).

    :param objects: the run's object rows (object-level inputs): a sequence's objects are its frames' objects
        (those of frames in no complete window take no part); ``preselected_objects`` as for ``select``.
    """
    from lightly_airflow.config import parse_selection_config
    from lightly_airflow.selection import select

    cfg = parse_selection_config(config)
    problem = check_sequence_config(cfg, length)
    if problem:
        raise ValueError(problem)
    windows, left_out = sequence_windows(candidates, length)
    metrics: dict[str, Any] = {"selected_sequence_length": length, "sequences_available": len(windows),
                               "sequence_frames_left_out": left_out,
                               "sequence_images_left_out": non_frames(candidates)}
    if not windows:
        metrics["stop_reason"] = StopReason.NO_COMPLETE_SEQUENCES.value
        return SequenceResult(np.zeros(0, np.int64), [], metrics, StopReason.NO_COMPLETE_SEQUENCES)
    if cfg.n_samples is not None:
        cfg = cfg.model_copy(update={"n_samples": cfg.n_samples // length})
    else:
        wanted = int(math.floor(cfg.proportion_samples * candidates.num_rows)) // length
        cfg = cfg.model_copy(update={"n_samples": max(1, wanted), "proportion_samples": None})
    table = _sequence_table(candidates, windows)
    missing_frames = json.loads(table.schema.metadata[SEQUENCE_MISSING_FRAMES_METADATA_KEY.encode()])
    read = config_columns(cfg.strategies, table.column_names)  # (None: every column)
    missing_frames = {k: v for k, v in missing_frames.items() if read is None or k in read}
    if missing_frames:  # (the engine's missing_inputs count sequences; frames never have e.g. sizeInBytes: only
        metrics["sequence_frames_missing_inputs"] = missing_frames  # the columns the config reads are counted)
    if objects is not None and objects.num_rows:
        objects = _sequence_objects(objects, candidates, windows)
    result = select(table, cfg, preselected=preselected, query_embeddings=query_embeddings, seed=seed,
                    objects=objects, preselected_objects=preselected_objects)
    rows = [r for s in result.indices.tolist() for r in windows[int(s)]]
    keys = candidates.column(C.KEY).to_pylist()
    sequences = []
    picked = candidates.take(pa.array(rows, pa.int64())) if rows else candidates.slice(0, 0)
    for n in range(len(result.indices)):
        part = picked.slice(n * length, length)
        sequences.append({
            "video": part.column(C.VIDEO)[0].as_py(),
            "frames": part.column(C.KEY).to_pylist(),
            "frame_indices": part.column(C.FRAME_INDEX).to_pylist(),
            "seconds": part.column(C.FRAME_SECONDS).to_pylist() if C.FRAME_SECONDS in part.column_names else None,
        })
    metrics.update(result.metrics)
    metrics["sequences_selected"] = len(sequences)
    return SequenceResult(np.asarray(rows, np.int64), [keys[r] for r in rows], metrics, result.stop_reason, sequences)


def sequence_column(keys: pa.Array | pa.ChunkedArray, sequences: list[dict[str, Any]]) -> pa.Array:
    """Per row: the number of the selected sequence (pick order) its frame belongs to, else null."""
    where = {k: i for i, s in enumerate(sequences) for k in s["frames"]}
    return pa.array([where.get(k) for k in keys.to_pylist()], pa.int64())


__all__ = ["SEQUENCE_LENGTH_METADATA_KEY", "SequenceResult", "check_sequence_config", "non_frames", "select_sequences",
           "sequence_column", "sequence_windows"]
