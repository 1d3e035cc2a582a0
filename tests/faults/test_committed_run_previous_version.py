"""A run killed after its commit, as version 2, its staging files and no report left: its retry (``pipeline.
finish_committed_run``) writes the crops against the known files of the version before and the report against
its selected set. It opened that version's snapshot (its Delta log) once for each; now once for both. (The
selected frames' step, ``video.supersede.superseded_by_committed_run``, opens it on its own, not counted here.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lightly_airflow.demo import Batch, add_batch

from .runs import prepare as _prepare

SELECTION = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _select(pool: Path, run_id: str, manifests: list[str]):
    from lightly_airflow.pipeline import select_and_commit

    return select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="t", manifests=manifests,
                             selection_config=SELECTION)


def test_the_retry_of_a_committed_run_opens_the_version_before_it_once(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from lightly_airflow import pipeline, staging
    from lightly_airflow.datapool import Datapool

    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("first", (0, 20), ()))
    assert _select(pool, "r1", _prepare(source, pool, "r1", SELECTION)).version == 1
    add_batch(source, Batch("second", (20, 40), ()))
    manifests = _prepare(source, pool, "r2", SELECTION)
    with monkeypatch.context() as m:  # the worker dies right after the commit: no report, the staging files stay
        m.setattr(pipeline, "_report", lambda *a, **k: None)
        m.setattr(pipeline, "remove_staging", lambda *a, **k: None)
        assert _select(pool, "r2", manifests).version == 2
    report = pool / "_reports" / staging.run_slug("r2") / "index.html"
    assert not report.exists() and (pool / "_staging" / staging.run_slug("r2")).exists()

    opened: list[tuple[str, int | None]] = []  # (the calling module, the version)
    real = Datapool.snapshot

    def recording(self, version=None, **kwargs):
        opened.append((sys._getframe(1).f_globals["__name__"], version))
        return real(self, version, **kwargs)

    monkeypatch.setattr(Datapool, "snapshot", recording)
    retry = _select(pool, "r2", manifests)
    # Both steps ran (the staging files were there, the report was not) and read version 1 as before.
    assert retry.already_committed and retry.version == 2 and report.is_file()
    assert retry.pool_selected_before == 5
    assert not (pool / "_staging" / staging.run_slug("r2")).exists()
    assert opened.count(("lightly_airflow.pipeline", 1)) == 1, opened
