"""Time travel: an older version reads exactly the rows, tags and history the pool had then, and opening it reads
only the log entries up to it (not every newer one) on an object store."""

from __future__ import annotations

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool, snapshot

from .conftest import commit_run, run_rows
from .counting_proxy import counting_proxy


def _grow(pool: Datapool, digits, runs: int) -> list[dict]:
    """``runs`` runs, each processing 10 new samples and re-processing 3 of the previous run's under new etags
    (another file: the old row leaves ``initial-tag``) with other picks, the last ones with one more column; what
    the latest version read after each commit, by version."""
    seen: list[dict] = []
    for r in range(runs):
        new = list(range(r * 10, r * 10 + 10))
        again = list(range(max(r - 1, 0) * 10, max(r - 1, 0) * 10 + 3)) if r else []
        rows = pa.concat_tables([
            run_rows(digits, new, picks=[r % 10, (r + 3) % 10], extra_metadata="camera" if r >= runs - 2 else None),
            run_rows(digits, again, picks=[0], etag_suffix=f"v{r}",
                     extra_metadata="camera" if r >= runs - 2 else None),
        ], promote_options="permissive") if again else run_rows(digits, new, picks=[r % 10, (r + 3) % 10])
        version = commit_run(pool, rows, f"r{r}", tag=f"t{r}").version
        seen.append({"version": version, "all": pool.read(), "initial": pool.read(tag=C.INITIAL_TAG),
                     "tags": pool.tags(), "history": pool.history()})
    return seen


def test_an_older_version_reads_the_rows_tags_and_history_it_had(tmp_path, digits) -> None:
    pool = Datapool(f"file://{tmp_path}/pool")
    seen = _grow(pool, digits, 6)
    reads = [s["all"] for s in seen]
    assert all(not a.equals(b) for i, a in enumerate(reads) for b in reads[i + 1:])  # a wrong version shows
    assert len({s["initial"].num_rows for s in seen}) == len(seen)
    snapshot._history_cache.clear()  # as a new process: the history is read from the log
    for fresh in (Datapool(pool.uri), pool):  # (then from this process's history, read up to the latest)
        for s in seen:
            v = s["version"]
            assert fresh.read(version=v).equals(s["all"]), v
            assert fresh.read(version=v, tag=C.INITIAL_TAG).equals(s["initial"]), v
            assert fresh.read(run_id=f"r{v - 1}").equals(s["all"]), v
            pinned = fresh.snapshot(v)
            assert pinned.version == v and pinned.tags() == s["tags"] and pinned.history() == s["history"], v
        assert fresh.read(version=2, tag="t5").num_rows == 0  # a later run's tag: known, empty back then
        assert fresh.read(version=1, columns=[C.KEY]).column(C.KEY).to_pylist() == seen[0]["all"].column(C.KEY).to_pylist()


def _beyond_latest(uri: str, creds, requests) -> tuple[int, int]:
    """The log entries GETs that ``read(version=2)`` and ``snapshot(2).history()`` make beyond those of reading the
    latest version (the log loaded, in a process that read the pool's history before)."""
    requests.reset()
    Datapool(uri, creds).read(columns=[C.KEY])
    latest = requests.reset()["GET log entry"]
    assert Datapool(uri, creds).read(version=2, columns=[C.KEY]).num_rows == 20
    read = requests.reset()["GET log entry"]
    history = Datapool(uri, creds).snapshot(2).history()
    pinned = requests.reset()["GET log entry"]
    assert [e["run_id"] for e in history] == [None, "r0", "r1"]
    return read - latest, pinned - latest


def test_an_older_version_reads_no_newer_log_entry(s3_bucket, digits) -> None:
    """Counted on the wire: what time travel to version 2 costs beyond reading the latest version (the UI server,
    ``read(version=)``) does not grow with the versions after it. delta-rs reads a pinned table's newest history
    entries from the latest log, so the history taken after pinning cost a GET per newer version (and
    ``read(version=)`` loaded the latest log twice)."""
    with counting_proxy(s3_bucket.credentials) as (creds, requests):
        pool = Datapool(s3_bucket.uri + "/pool", creds)
        costs = []
        for first, last in ((0, 6), (6, 12)):
            for r in range(first, last):
                commit_run(pool, run_rows(digits, range(r * 10, r * 10 + 10), picks=[1]), f"r{r}")
            costs.append(_beyond_latest(pool.uri, creds, requests))
    assert costs[0] == costs[1], costs
