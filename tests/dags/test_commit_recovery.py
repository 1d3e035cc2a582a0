"""A worker killed right after its commit: the retry finishes the committed run's work (issue 14.7)."""

from __future__ import annotations

from datetime import UTC, datetime

from test_lightly_datapool_run import SELECTION, _run

from lightly_airflow.demo import Batch, add_batch


def test_the_retry_of_a_run_killed_after_its_commit_writes_the_report_and_cleans_up(
    airflow_db, dagbag, tmp_path, monkeypatch
) -> None:
    from lightly_airflow import pipeline, staging
    from lightly_airflow.datapool import Datapool

    dag = dagbag.dags["lightly_datapool"]
    source, pool_dir = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("only", (300, 340), ()))
    (source / "broken.png").write_bytes(b"not a png")  # one problem for the problems file
    pool_uri = f"file://{pool_dir}"
    # The worker dies right after the commit: no report is written, the staging files stay.
    with monkeypatch.context() as m:
        m.setattr(pipeline, "_report", lambda *a, **k: None)
        m.setattr(pipeline, "remove_staging", lambda *a, **k: None)
        run, states = _run(dag, {"datasource_uri": f"file://{source}", "datapool_uri": pool_uri,
                                 "selection_config": SELECTION}, datetime(2026, 5, 1, tzinfo=UTC))
    assert str(run.state) == "success", states
    pool = Datapool(pool_uri)
    version, rows = pool.version(), pool.read().num_rows
    report = pool_dir / "_reports" / staging.run_slug(run.run_id) / "index.html"
    run_dir = pool_dir / staging.run_dir(pool_uri, run.run_id).removeprefix(pool_uri + "/")
    assert not report.exists() and run_dir.exists()

    manifests = run.get_task_instance("list_new_files").xcom_pull(task_ids="list_new_files")
    retry = pipeline.select_and_commit(
        datapool_uri=pool_uri, run_id=run.run_id, dag_id=dag.dag_id, manifests=manifests, selection_config=SELECTION,
    )
    # Nothing committed twice; the report exists and names the committed version; staging is gone.
    assert retry.already_committed and retry.version == version and pool.version() == version
    assert pool.read().num_rows == rows
    assert report.exists() and retry.report_uri and retry.report_uri.endswith("index.html")
    assert f"version {version}" in report.read_text() or str(version) in report.read_text()
    assert retry.selected == 12 and retry.processed == 41 and retry.problems >= 1
    assert not run_dir.exists()
    # A second retry changes nothing.
    stamp = report.stat().st_mtime_ns
    again = pipeline.select_and_commit(
        datapool_uri=pool_uri, run_id=run.run_id, dag_id=dag.dag_id, manifests=manifests, selection_config=SELECTION,
    )
    assert again.already_committed and again.report_uri == retry.report_uri and report.stat().st_mtime_ns == stamp
