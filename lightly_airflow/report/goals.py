"""Which goals of the selection config a run missed, with the cause and the count — never a silent miss.

Checked from the run's rows, its config and summary (the engine's own per-objective report in
``summary["metrics"]`` is shown beside these when it has one):

- **Stopped early**: fewer samples selected than ``n_samples`` (or ``proportion_samples`` of the candidates; with
  ``n_samples_meaning: total`` the run's new picks, ``n_samples`` less those selected before: the summary's
  ``n_wanted``).
- **BALANCE off target**: a class's achieved share differs from its target by more than :data:`TOLERANCE`.
- **BALANCE target class unknown**: a ``target`` class that matches no candidate (misspelt, or absent from this
  run's files; the engine's ``targets_not_among_candidates``): it cannot be selected, its share goes to the
  other classes.
- **Missing inputs**: ok samples without a value of a strategy's input (a ``SCORES``/``METADATA``/``PREDICTIONS``
  column); the engine cannot rank them by that strategy. The BALANCE miss names the input its short classes lack.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.config.selection import proportion_count

log = logging.getLogger(__name__)

#: Absolute difference of shares (0.05 = 5 percentage points) beyond which a BALANCE target counts as missed.
TOLERANCE = 0.05


@dataclass
class Goal:
    """One missed goal: what was asked, what happened, why, and how many samples it concerns."""

    goal: str
    outcome: str
    cause: str
    count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"goal": self.goal, "outcome": self.outcome, "cause": self.cause, "count": self.count}


def input_column(inp: Mapping[str, Any]) -> str | None:
    """The datapool column a strategy input reads (``None`` for embeddings and unknown inputs)."""
    kind = inp.get("type")
    if kind == "SCORES" and inp.get("task") and inp.get("score"):
        return C.score_column(str(inp["task"]), str(inp["score"]))
    if kind == "METADATA" and inp.get("key"):
        return C.metadata_column(str(inp["key"]))
    if kind == "PREDICTIONS" and inp.get("task"):
        return C.class_distribution_column(str(inp["task"]))
    return None


def _left_out_in_review(summary: Mapping[str, Any]) -> int:
    """How many of the run's picks a reviewer left out of its commit (``review.dropped``, :mod:`lightly_airflow.review`);
    0 for a Commit the run refused (``review.refused``): nothing was committed, nothing left out of a commit."""
    review = summary.get("review")
    if not isinstance(review, Mapping) or review.get("refused") is not None:
        return 0
    return len(review.get("dropped") or ())


def _ok(rows: pa.Table) -> np.ndarray:
    if C.STATUS not in rows.column_names:
        return np.ones(rows.num_rows, dtype=bool)
    ok: np.ndarray = pc.fill_null(pc.equal(rows.column(C.STATUS), C.STATUS_OK), False).to_numpy(zero_copy_only=False)
    return ok


def _missing(rows: pa.Table, column: str) -> np.ndarray:
    """True where the row has no usable value of the column (absent column: every row)."""
    if column not in rows.column_names:
        return np.ones(rows.num_rows, dtype=bool)
    col = rows.column(column)
    miss: np.ndarray = np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(col.type):
        miss = miss | ~np.isfinite(pc.fill_null(col, 0.0).to_numpy(zero_copy_only=False))
    return np.asarray(miss, dtype=bool)


def missed_goals(
    rows: pa.Table, config: Mapping[str, Any], summary: Mapping[str, Any], balances: Sequence[Any],
) -> list[Goal]:
    """Every goal of ``config`` the run missed (empty: all met). ``balances``: :func:`report.data.balances`."""
    out: list[Goal] = []
    ok = _ok(rows)
    n_ok = int(ok.sum())
    selected = int(summary.get("selected") or 0)
    if C.SELECTED in rows.column_names:
        selected = int(pc.sum(pc.fill_null(rows.column(C.SELECTED), False)).as_py() or 0)
    candidates = int(summary.get("candidates") or n_ok)
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), Mapping) else {}
    stop = summary.get("stop_reason") or (metrics or {}).get("stop_reason")
    seq = _sequence_mode(metrics or {})
    wanted, goal = run_target(config, summary, candidates)
    if wanted is not None and selected < wanted:
        cause = f"the engine stopped: {stop}" if stop else "the engine reported no stop reason"
        outcome = f"selected {selected}"
        if seq is not None:  # the engine selects sequences of `length` frames; the counts here are frames
            length, available = seq
            goal += f" (frames: {wanted // length} sequences of {length} frames)"
            outcome = f"selected {selected} frames ({selected // length} sequences of {length})"
            if available * length < wanted:
                cause = (f"only {candidates} candidate frames and images (ok, new, not selected before), which make "
                         f"{available} complete sequences of {length} consecutive frames ({available * length} "
                         f"frames){_left_out_words(metrics or {}, length)}") + (f"; {cause}" if stop else "")
        elif candidates < wanted:
            cause = f"only {candidates} candidates (ok, new, not selected before)" + (f"; {cause}" if stop else "")
        left_out = _left_out_in_review(summary)
        if left_out:  # (the engine picked them; a reviewer took them out: not the engine's stop reason)
            cause = (f"the reviewer left out {left_out} of the run's picks (committed as not selected)"
                     + ("" if selected + left_out >= wanted else f"; {cause}"))
        out.append(Goal(goal, outcome, cause, wanted - selected))

    out.extend(_unmatched_targets(metrics or {}))

    strategies = [s for s in (config.get("strategies") or []) if isinstance(s, Mapping)]
    engine_missing = (metrics or {}).get("missing_inputs") or {}
    if not isinstance(engine_missing, Mapping):
        engine_missing = {}
    missing_by_column: dict[str, np.ndarray] = {}
    for entry in strategies:
        inp, strat = entry.get("input") or {}, entry.get("strategy") or {}
        column = input_column(inp) if isinstance(inp, Mapping) else None
        if column is None or column in missing_by_column:
            continue
        miss = _missing(rows, column) & ok
        missing_by_column[column] = miss
        n = int(miss.sum())
        reported = engine_missing.get(column)
        where = "the column is absent from this run" if column not in rows.column_names else "null or not finite"
        if seq is not None:  # the engine's count is of sequences; the rows' of frames: each said in its unit
            goal_ = _sequence_missing(rows, ok, miss, column, str(strat.get("type")), where, seq, reported)
            if goal_ is not None:
                out.append(goal_)
            continue
        if isinstance(reported, (int, float)) and not isinstance(reported, bool):
            n = int(reported)  # the engine's own count of the candidates it could not use
        if n:
            effect = {
                "THRESHOLD": "they fail the filter and are not selected",
                "BALANCE": "they belong to no class and do not count towards the balance",
            }.get(str(strat.get("type")), "that objective takes its least preferred value: they are picked only "
                  "after the samples that have one")
            out.append(Goal(
                f"{strat.get('type')} on {column}", f"{n} of {n_ok} ok samples have no value ({where})",
                f"missing input: {effect}", n,
            ))

    for b in balances:
        diffs = np.nan_to_num(np.abs(np.asarray(b.achieved, dtype=float) - np.asarray(b.target, dtype=float)), nan=0.0)
        if not len(diffs) or float(diffs.max()) <= TOLERANCE or b.n_selected == 0:
            continue
        worst = [j for j in np.argsort(-diffs) if diffs[j] > TOLERANCE]
        parts = [f"{b.classes[j]}: target {b.target[j]:.0%}, achieved {b.achieved[j]:.0%}, available "
                 f"{b.available[j]:.0%}" for j in worst[:4]]
        causes = []
        for j in worst:
            if b.achieved[j] >= b.target[j]:
                continue
            if b.available[j] < b.target[j]:
                causes.append(f"too few {b.classes[j]} among the candidates ({b.available[j]:.0%})")
            lacking = _lacking_input(rows, ok, b.column, b.classes[j], missing_by_column)
            if lacking:
                causes.append(lacking)
        out.append(Goal(
            f"BALANCE on {b.column} (tolerance ±{TOLERANCE:.0%})", "; ".join(parts),
            "; ".join(dict.fromkeys(causes)) or "the other strategies outweighed it (see the selection metrics)",
            None,
        ))
    return out


def _sequence_mode(metrics: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(sequence length, complete sequences available)`` of a run that selected sequences of frames
    (``worker_config.selected_sequence_length`` > 1), else ``None``."""
    length = metrics.get("selected_sequence_length")
    if not isinstance(length, int) or isinstance(length, bool) or length <= 1:
        return None
    available = metrics.get("sequences_available")
    return length, int(available) if isinstance(available, (int, float)) else 0


def _left_out_words(metrics: Mapping[str, Any], length: int) -> str:
    """``"; 2 frames are in no complete sequence, 1 image cannot be in one"`` (the sequence metrics), or ``""``."""
    parts = []
    frames, images = metrics.get("sequence_frames_left_out"), metrics.get("sequence_images_left_out")
    if isinstance(frames, int) and frames:
        parts.append(f"{frames} frame{'s are' if frames != 1 else ' is'} in no complete sequence (a sequence is a "
                     f"video's frames {length}k … {length}k+{length - 1}, all ok and new)")
    if isinstance(images, int) and images:
        parts.append(f"{images} image{'s' if images != 1 else ''} (no video frame) cannot be in one")
    return "; " + ", ".join(parts) if parts else ""


def _sequence_missing(rows: pa.Table, ok: np.ndarray, miss: np.ndarray, column: str, kind: str, where: str,
                      seq: tuple[int, int], reported: Any) -> Goal | None:
    """The missing-input goal of a sequence selection: the ok frames without a value, and the sequences the engine
    found without one (a sequence's value is its frames' mean: it lacks one only when all its frames do)."""
    length, available = seq
    frames = ok & _frame_rows(rows)
    n_frames, n_missing = int(frames.sum()), int((miss & frames).sum())
    n_seq = int(reported) if isinstance(reported, (int, float)) and not isinstance(reported, bool) else None
    if not n_missing and not n_seq:
        return None
    outcome = f"{n_missing} of {n_frames} ok frames have no value ({where})"
    if n_seq is not None:
        outcome += (f"; {n_seq} of {available} candidate sequences of {length} frames have none in any frame (the "
                    "others take their frames' mean)")
    effect = {
        "THRESHOLD": "sequences without a value fail the filter and are not selected",
        "BALANCE": "sequences without a value belong to no class and do not count towards the balance",
    }.get(kind, "that objective takes its least preferred value for sequences without one: they are picked only "
          "after the sequences that have one")
    return Goal(f"{kind} on {column}", outcome, f"missing input: {effect}", n_missing)


def _frame_rows(rows: pa.Table) -> np.ndarray:
    """Which rows are video frames (all rows when the table has no ``video`` column)."""
    if C.VIDEO not in rows.column_names:
        return np.ones(rows.num_rows, dtype=bool)
    return np.asarray(pc.is_valid(rows.column(C.VIDEO)).to_numpy(zero_copy_only=False), dtype=bool)


def run_target(config: Mapping[str, Any], summary: Mapping[str, Any], candidates: int) -> tuple[int | None, str]:
    """How many samples this run was asked to select, and the goal's words: the summary's ``n_wanted`` (the new
    picks of ``n_samples_meaning: total``: ``n_samples`` less the samples selected before), else the config's
    ``n_samples``, else ``proportion_samples`` of the ``candidates``; ``None``: no count to miss."""
    wanted = summary.get("n_wanted")
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        total, before = config.get("n_samples"), summary.get("pool_selected_before")
        how = f"n_samples {total} in total" if total is not None else "n_samples in total"
        how += f", {before} selected before" if before is not None else ""
        return int(wanted), f"select {int(wanted)} new samples ({how})"
    wanted = config.get("n_samples")
    if wanted is None and config.get("proportion_samples") is not None:
        wanted = proportion_count(float(config["proportion_samples"]), candidates)
    return (None, "") if wanted is None else (int(wanted), f"select {int(wanted)} samples")


def _unmatched_targets(metrics: Mapping[str, Any]) -> list[Goal]:
    """A goal per BALANCE strategy with ``target`` classes that no candidate has (the engine's report)."""
    reports = metrics.get("objectives")
    out = []
    for path, report in sorted(reports.items() if isinstance(reports, Mapping) else []):
        unknown = report.get("targets_not_among_candidates") if isinstance(report, Mapping) else None
        if not unknown:
            continue
        known = report.get("classes_among_candidates") or []
        out.append(Goal(
            f"{path}: BALANCE target classes {list(unknown)} on {report.get('input')}",
            f"no candidate has them (the candidates' classes: {list(known)[:20]}); none could be selected",
            "the class is spelt differently from the values (a boolean field: true/false), or this run's files "
            "have none of it; its share went to the other classes",
            len(unknown),
        ))
    return out


def _lacking_input(rows: pa.Table, ok: np.ndarray, column: str, cls: str, missing: Mapping[str, np.ndarray]) -> str | None:
    """``"every photos sample lacks scores.x (54 of 54)"`` when the class's ok rows miss another strategy's input."""
    from lightly_airflow.report.data import class_values

    if column not in rows.column_names:
        return None
    typ = rows.schema.field(column).type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        in_class = pc.fill_null(pc.equal(rows.column(column), cls), False).to_numpy(zero_copy_only=False) & ok
    elif pa.types.is_boolean(typ) or pa.types.is_integer(typ):  # (classes spelt as the engine: True/False, 3)
        in_class = np.array([v == cls for v in class_values(rows, column)], dtype=bool) & ok
    else:
        return None
    n = int(in_class.sum())
    if not n:
        return None
    worst = max(((int((m & in_class).sum()), col) for col, m in missing.items() if col != column), default=(0, ""))
    if worst[0] == 0:
        return None
    every = "all " if worst[0] == n else ""
    return f"{every}{worst[0]} of {n} ok {cls!r} samples lack {worst[1]}, so that strategy leaves them out"


def listed_goals(
    rows: pa.Table, config: Mapping[str, Any], summary: Mapping[str, Any], balances: Sequence[Any],
) -> list[dict[str, Any]]:
    """Every entry of the report's "Missed goals" box, in its order: the goals :func:`missed_goals` finds (or one
    entry saying the check failed: never a claim that every goal was met), then each of the select step's own
    warnings (``RunSummary.warnings``). Its length is the ``lightly.run.goals_missed`` gauge
    (:func:`count_listed_goals`, ``RunSummary.goals_missed``)."""
    try:
        missed = [g.to_dict() for g in missed_goals(rows, config, summary, balances)]
    except Exception as exc:  # noqa: BLE001 - say so rather than claim every goal was met
        log.exception("Report: could not check the run's goals.")
        missed = [{"goal": "check the goals", "outcome": "failed", "cause": f"{type(exc).__name__}: {exc}",
                   "count": None}]
    for line in summary.get("warnings") or []:  # the select step's own warnings (RunSummary.warnings)
        missed.append({"goal": "selection warning", "outcome": str(line), "cause": "see the outcome", "count": None})
    return missed


def report_balances(rows: pa.Table, config: Mapping[str, Any], summary: Mapping[str, Any],
                    preselected: pa.Table | None) -> list[Any]:
    """The BALANCE distributions the report draws and checks: the engine's own (``metrics.objectives``), else
    computed from the rows and the config (:mod:`lightly_airflow.report.data`)."""
    from lightly_airflow.report import data as D

    engine = D.engine_balances(summary, int(D.selected_mask(rows).sum()))
    return engine if engine is not None else D.balances(rows, config, preselected)


def count_listed_goals(rows: pa.Table, config: Any, summary: Any, preselected: pa.Table | None) -> int:
    """How many entries the report of a run lists under "Missed goals" (:func:`listed_goals`, with the report's
    balances): what the select step records as ``RunSummary.goals_missed`` before it writes the report, from the
    same rows, config, summary and preselected samples, for the ``lightly.run.goals_missed`` gauge."""
    from lightly_airflow.report import data as D

    summary_d, config_d = D.as_dict(summary), D.as_dict(config)
    try:
        balances = report_balances(rows, config_d, summary_d, preselected)
    except Exception:  # noqa: BLE001 - as the report: no balances, the other goals are still checked
        log.exception("Report: could not compute the BALANCE distributions.")
        balances = []
    return len(listed_goals(rows, config_d, summary_d, balances))
