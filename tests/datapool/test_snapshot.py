"""One snapshot per select attempt: reads see one version, the commit writes exactly on top of it, and a
lost race starts a new attempt on a new snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import ConcurrentCommitError, Datapool, TagExistsError, with_snapshots

from .conftest import DIM, MODEL, commit_run, run_rows
from .counting_proxy import counting_proxy


def _commit(pool: Datapool, rows, run_id: str, snap, tag: str | None = None):
    return pool.commit(rows, run_id=run_id, dag_id="curate", tag=tag, config={}, counts={},
                       embedding_model=MODEL, embedding_dim=DIM, snapshot=snap)


# ---------------------------------------------------------------- the retry wrapper, with a fake pool
@dataclass
class FakePool:
    """Hands out numbered snapshots; ``lose`` attempts lose their commit race."""

    lose: int
    snapshots: list[int] = field(default_factory=list)

    def snapshot(self) -> int:
        self.snapshots.append(len(self.snapshots))
        return self.snapshots[-1]


def test_each_attempt_plans_on_exactly_one_new_snapshot() -> None:
    pool = FakePool(lose=2)
    seen: list[list[int]] = []

    def attempt(snap: int) -> str:
        seen.append([snap])  # everything this attempt reads comes from ``snap``
        if len(seen) <= pool.lose:
            raise ConcurrentCommitError("lost", read_version=snap, current_version=snap + 1)
        return f"committed on {snap}"

    assert with_snapshots(pool, attempt, max_attempts=3) == "committed on 2"
    assert seen == [[0], [1], [2]] and pool.snapshots == [0, 1, 2]


def test_the_first_attempt_reuses_the_callers_snapshot_and_the_last_conflict_is_raised() -> None:
    pool = FakePool(lose=5)
    seen: list[int] = []

    def attempt(snap: int) -> None:
        seen.append(snap)
        raise ConcurrentCommitError("lost", read_version=snap, current_version=None)

    with pytest.raises(ConcurrentCommitError):
        with_snapshots(pool, attempt, max_attempts=3, first=-1)
    assert seen == [-1, 0, 1]
    with pytest.raises(ValueError, match="max_attempts"):
        with_snapshots(pool, attempt, max_attempts=0)


def test_other_errors_are_not_retried() -> None:
    pool = FakePool(lose=0)

    def attempt(snap: int) -> None:
        raise TagExistsError("taken")

    with pytest.raises(TagExistsError):
        with_snapshots(pool, attempt, max_attempts=3)
    assert pool.snapshots == [0]


# ---------------------------------------------------------------- real pools
def test_a_snapshot_keeps_its_version_while_another_run_commits(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    commit_run(pool, run_rows(digits, range(0, 20), picks=[1, 2]), "r1")
    snap = pool.snapshot()
    assert snap.version == 1
    # Another run commits while this attempt plans.
    commit_run(pool, run_rows(digits, range(20, 40), picks=[3]), "r2")
    assert pool.version() == 2
    assert snap.version == 1 and snap.known_files().num_rows == 20 and snap.selected().num_rows == 2
    assert snap.committed_version("r2") is None and [e["run_id"] for e in snap.history()][1:] == ["r1"]
    # Its commit does not land on top of r2: the attempt must plan again.
    with pytest.raises(ConcurrentCommitError):
        _commit(pool, run_rows(digits, range(40, 60), picks=[0]), "r3", snap)
    assert pool.version() == 2 and pool.committed_version("r3") is None
    # The retry wrapper re-plans on version 2 and commits once.
    versions: list[int | None] = []

    def attempt(s):
        versions.append(s.version)
        return _commit(pool, run_rows(digits, range(40, 60), picks=[0]), "r3", s)

    result = with_snapshots(pool, attempt, first=snap)
    assert versions == [1, 2] and result.version == 3 and not result.already_committed
    assert pool.selected([C.KEY]).num_rows == 4


def test_a_pinned_snapshot_still_finds_the_runs_own_commit_and_the_tags(tmp_path, digits) -> None:
    pool = Datapool(tmp_path / "pool")
    rows = run_rows(digits, range(0, 20), picks=[1])
    snap = pool.snapshot()
    assert snap.version is None and snap.known_files().num_rows == 0
    first = _commit(pool, rows, "r1", snap, tag="week-1")
    # A second attempt of the same run that planned on the stale snapshot finds the commit, writes nothing.
    again = _commit(pool, rows, "r1", snap, tag="week-1")
    assert again.already_committed and again.version == first.version == 1
    with pytest.raises(TagExistsError):
        _commit(pool, run_rows(digits, range(20, 30), picks=[1]), "r2", pool.snapshot(), tag="week-1")
    assert pool.snapshot(0).version == 0 and pool.snapshot(0).committed_version("r1") is None


def test_a_commit_on_a_snapshot_does_not_read_the_log_again(s3_bucket, digits) -> None:
    """Counted on the wire (S3 emulator behind a counting proxy): the reads of a planned attempt make no log
    request at all, and its commit reads the log less than a commit that opens the pool itself."""
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        pool = Datapool(s3_bucket.uri + "/pool", creds)
        for i in range(4):
            commit_run(pool, run_rows(digits, range(i * 20, i * 20 + 20), picks=[1]), f"r{i}")
        requests.reset()

        snap = pool.snapshot()
        loading = requests.reset()
        assert loading["LIST log"] == 1
        snap.known_files(), snap.selected(), snap.embedding_info(), snap.embeddings_for(snap.known_files())
        reads = requests.reset()
        assert reads["LIST log"] == reads["GET log"] == 0 and reads["LIST"] == 0, reads
        assert snap.committed_version("r-snap") is None
        first_lookup = requests.reset()
        assert snap.committed_version("r-snap") is None
        assert requests.reset()["GET log"] == 0 < first_lookup["GET log"]  # the commit's own check is cached
        _commit(pool, run_rows(digits, range(100, 120), picks=[2]), "r-snap", snap)
        on_snapshot = requests.reset()

        commit_run(pool, run_rows(digits, range(120, 140), picks=[2]), "r-open")
        opening = requests.reset()
    # Opening the pool in the commit re-reads every log entry; on a snapshot only the history is read once.
    assert on_snapshot["GET log"] < opening["GET log"], (on_snapshot, opening)
    assert on_snapshot["LIST log"] < opening["LIST log"], (on_snapshot, opening)
    assert on_snapshot["PUT log"] == opening["PUT log"] == 1
