"""The figures a run sends to the deployment's metrics backend, for dashboards and alerts (pure: no Airflow).

Airflow sends them wherever its ``[metrics]`` section says (StatsD, OpenTelemetry, Datadog), under its prefix
(``airflow.`` by default), as gauges tagged with the DAG and the datapool; the operators call
:func:`list_metrics` and :func:`run_metrics` and hand the values to Airflow's ``Stats``. A gauge holds the
latest run's value: the datapool's growth, a run's share of corrupt files, a run that committed nothing or
missed a goal show as a line per DAG.

Every name is in :data:`METRICS` with what it counts (the docs' table is checked against it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "lightly"

#: name (without Airflow's prefix) -> what the gauge holds
METRICS: dict[str, str] = {
    f"{PREFIX}.list.seen": "image and video files the list task listed in the datasource",
    f"{PREFIX}.list.new_files": "new files (a video counts once), 0 when the run had nothing new",
    f"{PREFIX}.list.new_samples": "new samples (a video adds each frame)",
    f"{PREFIX}.list.skipped": "entries the listing could not list (unreadable, vanished, symlinks leaving it, …)",
    f"{PREFIX}.list.unsupported": "files of an extension not listed",
    f"{PREFIX}.list.gone": "files the datapool holds that the datasource no longer has",
    f"{PREFIX}.run.candidates": "samples the selection chose from",
    f"{PREFIX}.run.processed": "samples the run processed",
    f"{PREFIX}.run.selected": "samples the run selected",
    f"{PREFIX}.run.corrupt": "samples found corrupt",
    f"{PREFIX}.run.duplicate": "samples that duplicate another's content",
    f"{PREFIX}.run.missing": "samples a stage gave no output for",
    f"{PREFIX}.run.problems": "rows of the run's problems file",
    f"{PREFIX}.run.goals_missed": "goals of the selection config the run missed (the report flags each)",
    f"{PREFIX}.run.committed": "1 when the run committed a datapool version, 0 when not (dry run, proposal "
                               "awaiting review, discarded)",
    f"{PREFIX}.selection.seconds": "seconds the selection took",
    f"{PREFIX}.datapool.version": "the datapool's version after the run's commit",
    f"{PREFIX}.datapool.selected": "samples selected in the datapool after the run (every run's selection)",
}


def _check(values: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(values) - set(METRICS))
    if unknown:  # (a name is documented once, in METRICS)
        raise KeyError(f"metrics {unknown} are not in run_metrics.METRICS")
    return values


def list_metrics(counts: Mapping[str, Any]) -> dict[str, float]:
    """The list task's gauges from its counts (:class:`~lightly_airflow.pipeline.ListResult` as a dict)."""
    return _check({f"{PREFIX}.list.{name}": float(counts.get(key, 0) or 0) for name, key in (
        ("seen", "seen"), ("new_files", "new_files"), ("new_samples", "new"), ("skipped", "skipped"),
        ("unsupported", "unsupported"), ("gone", "gone"))})


def run_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The select task's gauges from its run summary (:meth:`RunSummary.to_dict
    <lightly_airflow.pipeline.RunSummary.to_dict>`). A run that committed nothing has no datapool gauges, a
    selection that did not run (a retry of a committed run) no seconds."""
    committed = bool(summary.get("committed"))
    out = {f"{PREFIX}.run.{name}": float(summary.get(name, 0) or 0)
           for name in ("candidates", "processed", "selected", "corrupt", "duplicate", "missing", "problems")}
    out[f"{PREFIX}.run.goals_missed"] = float(len(summary.get("warnings") or []))
    out[f"{PREFIX}.run.committed"] = 1.0 if committed else 0.0
    seconds = (summary.get("metrics") or {}).get("seconds")
    if isinstance(seconds, (int, float)):
        out[f"{PREFIX}.selection.seconds"] = float(seconds)
    if committed:
        out[f"{PREFIX}.datapool.version"] = float(summary["version"])
        out[f"{PREFIX}.datapool.selected"] = float((summary.get("pool_selected_before") or 0)
                                                   + (summary.get("selected") or 0))
    return _check(out)
