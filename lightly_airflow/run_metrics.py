"""The figures a run sends to the deployment's metrics backend, for dashboards and alerts (pure: no Airflow).

Airflow sends them wherever its ``[metrics]`` section says (StatsD, OpenTelemetry, Datadog), under its prefix
(``airflow.`` by default), as gauges tagged with the DAG and the datapool; the operators call
:func:`list_metrics`, :func:`run_metrics` and :func:`embed_metrics` and hand the values to Airflow's ``Stats``.
A gauge holds the latest run's value: the datapool's growth, a run's share of corrupt files, a run that
committed nothing or missed a goal show as a line per DAG.

A backend without tags (plain StatsD) would put every DAG's and datapool's value in one series. As Airflow does
for its own metrics (``ti.finish`` tagged, ``ti.finish.<dag_id>.<task_id>.<state>`` its "legacy name", sent too
while ``[metrics] legacy_names_on`` is true), each gauge is also sent under :func:`legacy_name`: the name with the
DAG id and the datapool in it.

Every name is in :data:`METRICS` with what it counts (the docs' table is checked against it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightly_airflow.datasource.query import ListingSkips

PREFIX = "lightly"

#: name (without Airflow's prefix) -> what the gauge holds
METRICS: dict[str, str] = {
    f"{PREFIX}.list.seen": "image and video files the list task listed in the datasource",
    f"{PREFIX}.list.new_files": "new files (a video counts once), 0 when the run had nothing new",
    f"{PREFIX}.list.new_samples": "new samples (a video adds each frame)",
    f"{PREFIX}.list.skipped": "files on disk the listing could not or would not list (unreadable, vanished, "
                              "symlinks leaving it, …; not the archived and expiring files: listed, not processed)",
    f"{PREFIX}.list.unsupported": "files of an extension not listed",
    f"{PREFIX}.list.gone": "files the datapool holds that the datasource no longer has",
    f"{PREFIX}.run.candidates": "samples the selection chose from",
    f"{PREFIX}.run.processed": "samples the run processed",
    f"{PREFIX}.run.selected": "samples the run selected",
    f"{PREFIX}.run.corrupt": "samples found corrupt",
    f"{PREFIX}.run.duplicate": "samples that duplicate another's content",
    f"{PREFIX}.run.missing": "samples a stage gave no output for",
    f"{PREFIX}.run.problems": "rows of the run's problems file",
    f"{PREFIX}.run.goals_missed": "entries of the run report's \"Missed goals\" (goals of the selection config the "
                                  "run missed, and the select step's warnings); none when the run wrote no report",
    f"{PREFIX}.run.committed": "1 when the run committed a datapool version, 0 when not (dry run, proposal "
                               "awaiting review, discarded, a reviewer's Commit refused)",
    f"{PREFIX}.run.review_refused": "1 when a reviewer's Commit was refused at the commit (the datapool changed so "
                                    "that the picks differ, or the answer cannot be committed as given: nothing "
                                    "committed, the task failed), 0 for another decided review; none without review",
    f"{PREFIX}.run.files_replaced": "listed files with new content under a key the datapool holds (processed: their "
                                    "former samples are replaced); none when the summary does not count the listed files",
    f"{PREFIX}.run.files_changed_under_key": "listed files that changed under a key the datapool holds but the new-file "
                                             "policy 'key' left unprocessed (the pool keeps their former content); none "
                                             "when the summary does not count the listed files",
    f"{PREFIX}.run.files_archived": "listed files the run could not process: archived (S3 Glacier / Deep Archive), not "
                                    "restored; none when the summary does not count the listed files",
    f"{PREFIX}.run.files_expiring": "listed files the run left because the bucket's lifecycle deletes them soon "
                                    "(input_expiration SKIP); none when the summary does not count the listed files",
    f"{PREFIX}.run.files_moved": "new files that took over a moved or renamed file's sample (its selection and tags), 0 "
                                 "when the run committed nothing",
    f"{PREFIX}.run.frames_failed": "selected video frames whose PNG could not be written (a labelling tool gets no "
                                   "image for them); none when the run wrote no frames",
    f"{PREFIX}.selection.seconds": "seconds the selection took",
    f"{PREFIX}.datapool.version": "the datapool's version after the run's commit",
    f"{PREFIX}.datapool.selected": "samples selected in the datapool after the run (every run's selection)",
    f"{PREFIX}.embed.shards": "manifest shards the run embedded (the embed tasks that returned their counts)",
    f"{PREFIX}.embed.samples": "samples in the embedded shards",
    f"{PREFIX}.embed.embedded": "samples given a new embedding (by the model, or from a custom embeddings CSV)",
    f"{PREFIX}.embed.reused": "samples whose embedding was reused (same file, same model, from the datapool)",
    f"{PREFIX}.embed.corrupt": "samples the embedding could not decode",
    f"{PREFIX}.embed.missing": "samples whose file was gone when the embedding read it",
    f"{PREFIX}.embed.seconds": "seconds the shards took, added up (each from reading its manifest to writing its "
                               "embeddings; shards that ran side by side each count)",
    f"{PREFIX}.embed.samples_per_second": "samples the model embedded per second of its shards' work: one worker's "
                                          "(pod's) throughput; none when the model embedded nothing",
}

#: Airflow's rule for a part of a stat name (``normalize_name_for_stats``): other characters become ``_``
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_.-]")
#: the longest legacy name (without Airflow's prefix): Airflow's StatsD logger rejects names over 250 characters
#: and its OpenTelemetry logger prefix and name over 255, so this leaves 54 for the prefix
LEGACY_NAME_MAX = 200


def _name_part(value: str) -> str:
    """``value`` as one part of a stat name, as Airflow writes a name variable into a legacy name: characters
    outside ``[a-zA-Z0-9_.-]`` become ``_`` (``normalize_name_for_stats``) and ``.`` becomes ``__`` (the metrics
    registry's formatting, which keeps the name's levels: ``task_id`` ``group.task`` is ``group__task``)."""
    return _NOT_IN_NAME.sub("_", value).replace(".", "__")


def _shortened(part: str, value: str, room: int) -> str:
    """``part`` cut to ``room`` characters: its end (a datapool's name is at the end of its URI), after an
    8-character hash of the whole ``value`` that keeps two long values that end alike apart."""
    if len(part) <= room:
        return part
    digest = hashlib.sha1(value.encode()).hexdigest()[:8]
    return f"{digest}_{part[-(room - 9):]}" if room > 9 else digest[:max(room, 1)]


def legacy_name(name: str, dag_id: str, datapool: str) -> str:
    """``name`` with the DAG id and the datapool in it, for a metrics backend without tags (plain StatsD):
    ``lightly.run.selected.<dag_id>.<datapool>`` (Airflow's ``ti.finish.<dag_id>.<task_id>.<state>`` for its
    tagged ``ti.finish``). Each part is written as Airflow writes a name variable (:func:`_name_part`:
    ``s3://bucket/pools/cars`` is ``s3___bucket_pools_cars``), and the name is at most
    :data:`LEGACY_NAME_MAX` characters (a longer datapool, then DAG id, keeps its end after a hash of it)."""
    dag, pool = _name_part(str(dag_id)), _name_part(str(datapool))
    room = LEGACY_NAME_MAX - len(name) - 2
    pool = _shortened(pool, str(datapool), max(room - len(dag), min(len(pool), 40)))
    dag = _shortened(dag, str(dag_id), room - len(pool))
    return f"{name}.{dag}.{pool}"


def _check(values: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(values) - set(METRICS))
    if unknown:  # (a name is documented once, in METRICS)
        raise KeyError(f"metrics {unknown} are not in run_metrics.METRICS")
    return values


def list_metrics(counts: Mapping[str, Any]) -> dict[str, float]:
    """The list task's gauges from its counts (:class:`~lightly_airflow.pipeline.ListResult` as a dict); ``skipped``
    is :func:`skipped_files` of its counts (``files``: the archived and expiring files; ``relevant_filenames``, where
    the counts carry it: the names that match no file)."""
    from lightly_airflow.datasource.query import ListingSkips, RelevantApplied

    files = counts.get("files") or {}
    skips = ListingSkips(skipped_count=int(counts.get("skipped") or 0), archived=int(files.get("archived") or 0),
                         expiring=int(files.get("expiring") or 0),
                         relevant=RelevantApplied.from_dict(counts.get("relevant_filenames")))
    out = {f"{PREFIX}.list.{name}": float(counts.get(key, 0) or 0) for name, key in (
        ("seen", "seen"), ("new_files", "new_files"), ("new_samples", "new"), ("unsupported", "unsupported"),
        ("gone", "gone"))}
    return _check({**out, f"{PREFIX}.list.skipped": float(skipped_files(skips))})


def unmatched_names(skips: ListingSkips) -> int:
    """Names of the relevant-filenames file that match no listed file: the listing puts them among its skipped
    entries (each in the problems file, with its reason), but they are no file on disk."""
    return max(0, skips.relevant.names - skips.relevant.names_matched) if skips.relevant else 0


def skipped_files(skips: ListingSkips) -> int:
    """Files on disk the listing could not or would not list (unreadable, vanished, links leaving the datasource,
    …): the report's "files on disk skipped in listing" card, the skipped part of its "Not listed from the
    datasource" section and the ``list.skipped`` gauge. The listing's skipped entries also hold the archived and expiring files (listed, not
    processed: the counts table's) and the names of the relevant-filenames file that match no file (no file on
    disk: counted apart); the card and the gauge counted them too, so one file read in two numbers."""
    return max(0, skips.skipped_count - skips.archived - skips.expiring - unmatched_names(skips))


def run_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The select task's gauges from its run summary (:meth:`RunSummary.to_dict
    <lightly_airflow.pipeline.RunSummary.to_dict>`). A run that committed nothing has no datapool gauges, a
    selection that did not run (a retry of a committed run) no seconds, a run that wrote no report now (a retry
    of a committed run whose report exists) no ``goals_missed``: it counts the entries of the report's "Missed
    goals" (``goals_missed``, counted as the report is written), never the summary's ``warnings`` alone."""
    committed = bool(summary.get("committed"))
    out = {f"{PREFIX}.run.{name}": float(summary.get(name, 0) or 0)
           for name in ("candidates", "processed", "selected", "corrupt", "duplicate", "missing", "problems")}
    out.update(_file_gauges(summary))
    missed = summary.get("goals_missed")  # (what the report lists: report.goals.count_listed_goals)
    if missed is not None:
        out[f"{PREFIX}.run.goals_missed"] = float(missed)
    out[f"{PREFIX}.run.committed"] = 1.0 if committed else 0.0
    review = summary.get("review")
    if isinstance(review, Mapping) and review.get("state") not in (None, "awaiting review"):  # (a decided review)
        out[f"{PREFIX}.run.review_refused"] = 1.0 if review.get("refused") is not None else 0.0
    seconds = (summary.get("metrics") or {}).get("seconds")
    if isinstance(seconds, (int, float)):
        out[f"{PREFIX}.selection.seconds"] = float(seconds)
    if committed:
        out[f"{PREFIX}.datapool.version"] = float(summary["version"])
        out[f"{PREFIX}.datapool.selected"] = float((summary.get("pool_selected_before") or 0)
                                                   + (summary.get("selected") or 0))
    return _check(out)


#: ``run.files_<name>`` gauges from the summary's ``listing`` counts
#: (:meth:`ListingSkips.file_counts <lightly_airflow.datasource.ListingSkips.file_counts>`): files a run left or
#: replaced that a user would alert on (the unchanged, the new keys and the Live Photo clips are a run's routine)
_LISTED_FILE_GAUGES = ("replaced", "changed_under_key", "archived", "expiring")


def _file_gauges(summary: Mapping[str, Any]) -> dict[str, float]:
    """The run's file gauges: the listed files' counts (only from a summary whose counts add up,
    :meth:`ListingSkips.adds_up <lightly_airflow.datasource.ListingSkips.adds_up>`: one written before the parts
    were counted would read 0 for files it never counted), the files moved, the frames the run could not write
    (only when it wrote frames)."""
    from lightly_airflow.datasource.query import ListingSkips

    listing = ListingSkips.from_summary(summary.get("listing"))
    counts = listing.file_counts() if listing.listed and listing.adds_up() else {}
    out = {f"{PREFIX}.run.files_{name}": float(counts[name]) for name in _LISTED_FILE_GAUGES if counts}
    out[f"{PREFIX}.run.files_moved"] = float(summary.get("moved") or 0)
    frames = summary.get("frames") or {}
    if "failed" in frames:
        out[f"{PREFIX}.run.frames_failed"] = float(frames.get("failed") or 0)
    return out


def embed_metrics(shards: Iterable[Mapping[str, Any] | None]) -> dict[str, float]:
    """The run's embedding gauges from its shards' counts (what each embed task returned: :func:`embed_shard
    <lightly_airflow.embedding.embed_shard>`'s dict, in the worker or from the pod's ``return.json``), added up:
    mapped shards make one run's figures, not one series per shard. ``None`` (a skipped or unfinished task's
    XCom) is left out; no counts, no gauges. ``samples_per_second`` is over the shards that ran the model
    (not a custom embeddings CSV's) and embedded any."""
    counts = [s for s in shards if isinstance(s, Mapping)]
    if not counts:
        return {}

    def total(key: str, of: Iterable[Mapping[str, Any]] = counts) -> float:
        return float(sum(float(s.get(key) or 0) for s in of))

    out = {f"{PREFIX}.embed.shards": float(len(counts)), f"{PREFIX}.embed.samples": total("total")}
    out.update({f"{PREFIX}.embed.{key}": total(key) for key in ("embedded", "reused", "corrupt", "missing", "seconds")})
    model = [s for s in counts if s.get("device") != "none" and (s.get("embedded") or 0) > 0]
    seconds = total("seconds", model)
    if seconds > 0:
        out[f"{PREFIX}.embed.samples_per_second"] = total("embedded", model) / seconds
    return _check(out)
