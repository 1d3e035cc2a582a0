"""What started a run: read from the task context's ``dag_run`` (Airflow's own run model), kept in the run summary,
the commit's metadata (``datapool history``) and the report's header, also when a retry finds the run committed
(and rebuilds the report from the pool: the stop reason is recorded in the commit for it as well).

The watcher's case is real end to end but for the scheduler: ``NewFilesEventTrigger`` runs on real files, its
event's payload is stored the way Airflow's triggerer stores it (``{"from_trigger": True, "payload": …}``), and
the run's stages and its commit run through the plain functions the DAG's tasks call.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.api.datamodels._generated import (
    AssetEventDagRunReference,
    AssetReferenceAssetEventDagRun,
    DagRun,
    DagRunState,
    DagRunType,
)

from lightly_airflow.operators.base import run_origin
from lightly_airflow.run_origin import AssetEventOrigin, RunOrigin

SELECTION = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
T0 = datetime(2026, 12, 5, 12, 3, 7, tzinfo=UTC)


def _dag_run(run_type: DagRunType, events: list[AssetEventDagRunReference] = (), user: str | None = None,  # type: ignore[assignment]
             interval: tuple[datetime, datetime] | None = None) -> DagRun:
    return DagRun(dag_id="lightly_datapool", run_id="r1", logical_date=None,
                  data_interval_start=interval[0] if interval else None,
                  data_interval_end=interval[1] if interval else None, run_after=T0, start_date=T0, end_date=None,
                  run_type=run_type, state=DagRunState.RUNNING, triggering_user_name=user,
                  consumed_asset_events=list(events), partition_key=None)


def _event(extra: dict[str, Any], at: datetime = T0, name: str = "lightly-datasource",
           source: tuple[str, str, str] | None = None) -> AssetEventDagRunReference:
    return AssetEventDagRunReference(
        asset=AssetReferenceAssetEventDagRun(name=name, uri=f"file:///data/{name}", extra={}), extra=extra,
        source_task_id=source[2] if source else None, source_dag_id=source[0] if source else None,
        source_run_id=source[1] if source else None, source_map_index=-1 if source else None, source_aliases=[],
        timestamp=at)


def _watcher_payload(tmp_path: Path, n: int) -> dict[str, Any]:
    """The payload of the first event the new-file watcher yields for ``n`` real images."""
    from datasource.conftest import png_bytes

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers import NewFilesEventTrigger

    root = tmp_path / "images"
    root.mkdir(exist_ok=True)
    for i in range(n):
        (root / f"img{i}.png").write_bytes(png_bytes(i))
    trigger = NewFilesEventTrigger(query=NewFilesQuery(datasource_uri=f"file://{root}",
                                                       datapool_uri=f"file://{tmp_path / 'pool'}"),
                                   poke_interval=0.05, isolate=False)

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(first(), 30))


def test_the_runs_of_each_kind_say_what_started_them() -> None:
    assert run_origin({}) is None
    day = (datetime(2026, 12, 4, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC))
    scheduled = run_origin({"dag_run": _dag_run(DagRunType.SCHEDULED, interval=day)})
    assert scheduled is not None and scheduled.run_type == "scheduled" and not scheduled.events
    assert scheduled.text() == "the schedule (data interval 2026-12-04 00:00 UTC – 2026-12-05 00:00 UTC)"
    assert scheduled.short() == "schedule"
    manual = run_origin({"dag_run": _dag_run(DagRunType.MANUAL, user="alice")})
    assert manual is not None and (manual.text(), manual.short()) == ("a manual trigger by alice", "manual by alice")
    backfill = run_origin({"dag_run": _dag_run(DagRunType.BACKFILL, user="bob", interval=day)})
    assert backfill is not None and backfill.text().startswith("a backfill by bob (data interval 2026-12-04")
    # An asset event another DAG's task emitted (a dataset the user's own pipeline updates)
    other = run_origin({"dag_run": _dag_run(DagRunType.ASSET_TRIGGERED, [
        _event({"rows": 3}, name="raw-frames", source=("ingest", "manual__1", "upload"))])})
    assert other is not None and other.text() == ("an event on asset raw-frames by ingest/manual__1.upload at "
                                                  "2026-12-05 12:03 UTC")
    assert other.short() == "asset event"
    for origin in (scheduled, manual, backfill, other):  # (what the commit records reads back the same)
        assert RunOrigin.from_dict(origin.to_dict()) == origin
        assert origin.to_dict()["text"] == origin.text()


def test_the_watchers_announcements_are_told_from_other_asset_events(tmp_path: Path) -> None:
    payload = _watcher_payload(tmp_path, 4)
    assert payload["new"] == 4 and payload["unannounced"] == 4
    stored = {"from_trigger": True, "payload": payload}  # (what Airflow's triggerer records as the event's extra)
    one = run_origin({"dag_run": _dag_run(DagRunType.ASSET_TRIGGERED, [_event(stored)])})
    assert one is not None and one.watcher_events == [AssetEventOrigin(
        asset="lightly-datasource", at=T0.isoformat(), watcher=True, new_files=4, announced=4,
        listed=payload["listed"])]
    assert one.text() == "the new-file watcher announced 4 new files at 2026-12-05 12:03 UTC (asset lightly-datasource)"
    assert one.short() == "watcher: 4 new"
    # Two announcements before the run started (max_active_runs=1 held it): both, the latest's count
    later = {"from_trigger": True, "payload": {**payload, "new": 6, "unannounced": 2}}
    two = run_origin({"dag_run": _dag_run(DagRunType.ASSET_TRIGGERED, [
        _event(later, at=T0.replace(minute=8)), _event(stored)])})
    assert two is not None and [e.new_files for e in two.events] == [4, 6]  # (oldest first)
    assert two.text() == ("2 announcements of the new-file watcher (2026-12-05 12:03 UTC – 2026-12-05 12:08 UTC; "
                          "the latest: 6 new files; asset lightly-datasource)")
    assert two.short() == "watcher: 6 new (2 events)"
    assert "2 not announced before" in two.events[1].text()
    # A trigger event of another trigger is an asset event, not the watcher's
    foreign = run_origin({"dag_run": _dag_run(DagRunType.ASSET_TRIGGERED, [
        _event({"from_trigger": True, "payload": {"status": "message", "body": "x"}})])})
    assert foreign is not None and not foreign.watcher_events and foreign.short() == "asset event"


@pytest.mark.slow
def test_the_commit_the_report_and_the_history_say_the_watcher_started_the_run(tmp_path: Path, capsys) -> None:
    from faults.runs import prepare

    from lightly_airflow import staging
    from lightly_airflow.cli import main
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.pipeline import select_and_commit

    payload = _watcher_payload(tmp_path, 6)
    origin = run_origin({"dag_run": _dag_run(DagRunType.ASSET_TRIGGERED, [
        _event({"from_trigger": True, "payload": payload})])})
    source, pool_dir, run_id = tmp_path / "images", tmp_path / "pool", "asset_triggered__2026-12-05T12:03:07"
    manifests = prepare(source, pool_dir, run_id, SELECTION)
    summary = select_and_commit(datapool_uri=f"file://{pool_dir}", run_id=run_id, dag_id="lightly_datapool",
                                manifests=manifests, selection_config=SELECTION, started_by=origin)
    assert summary.version == 1 and summary.selected == 3
    assert summary.started_by["run_type"] == "asset_triggered"
    assert summary.started_by["events"][0]["new_files"] == 6
    entry = Datapool(f"file://{pool_dir}").history()[-1]
    assert RunOrigin.from_dict(entry["started_by"]) == origin  # (the commit's metadata)
    report = (pool_dir / "_reports" / staging.run_slug(run_id) / "index.html").read_text()
    assert ("<b>Started by:</b> the new-file watcher announced 6 new files at 2026-12-05 12:03 UTC (asset "
            "lightly-datasource)") in report

    # A retry that finds the run committed (no origin passed: a rebuilt report reads it from the commit)
    (pool_dir / "_reports" / staging.run_slug(run_id) / "index.html").unlink()
    again = select_and_commit(datapool_uri=f"file://{pool_dir}", run_id=run_id, dag_id="lightly_datapool",
                              manifests=manifests, selection_config=SELECTION)
    assert again.already_committed and again.started_by == summary.started_by
    rebuilt = (pool_dir / "_reports" / staging.run_slug(run_id) / "index.html").read_text()
    assert "<b>Started by:</b> the new-file watcher announced 6 new files" in rebuilt
    assert "<b>Stop reason:</b> n_reached" in report and "<b>Stop reason:</b> n_reached" in rebuilt  # (recorded too)

    capsys.readouterr()
    assert main(["datapool", "history", f"file://{pool_dir}"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "started_by" in table[0].split()
    assert "watcher: 6 new" in table[-1]
