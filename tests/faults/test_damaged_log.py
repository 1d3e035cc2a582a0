"""Damaged Delta logs give a clear error naming the file and the recovery; ``datapool check`` finds a
deleted last entry, gaps and damaged entries, and tells a deleted entry (damage) from an attempt killed before
its commit (harmless) by the commit receipts (issue 14.8)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest
from datapool.conftest import commit_run, run_rows

from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool, DatapoolError
from lightly_airflow.datapool.check import check_pool
from lightly_airflow.staging import run_slug

# A worker that dies after its data files were uploaded and before its log entry was written (a large
# run's files are uploaded as they fill up; the log entry is one small PUT at the end). delta-rs writes both in
# one native call, so the child blocks the entry's name with a folder: the real write uploads every data file,
# its log PUT fails, and the worker is SIGKILLed there. On disk that is exactly a kill between the two.
KILLED_AFTER_DATA_FILES = textwrap.dedent(
    """
    import os, signal, sys
    import pyarrow.parquet as pq
    from lightly_airflow.datapool import Datapool, pool as pool_module

    uri, rows_path, run_id, read_version = sys.argv[1:5]
    real_write = pool_module._write_deltalake

    def write_then_die(table, data, **kwargs):
        os.mkdir(os.path.join(uri, "_delta_log", f"{int(read_version) + 1:020d}.json"))
        try:
            real_write(table, data, **kwargs)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    pool_module._write_deltalake = write_then_die
    Datapool(uri).commit(pq.read_table(rows_path), run_id=run_id, dag_id="curate", tag=None, config={}, counts={},
                         embedding_model="digits-pixels", embedding_dim=64, read_version=int(read_version))
    """
)



def _entry(pool_dir, v: int):
    return pool_dir / "_delta_log" / f"{v:020d}.json"


@pytest.fixture
def pool_dir(tmp_path, digits):
    pool = Datapool(tmp_path / "pool")
    for i, tag in enumerate(["week-1", "week-2", "week-3"]):
        commit_run(pool, run_rows(digits, range(i * 20, i * 20 + 20), picks=[1, 2]), f"r{i}", tag=tag)
    return tmp_path / "pool"


def _check(capsys, pool_dir) -> tuple[int, dict]:
    code = main(["datapool", "check", str(pool_dir), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_sound_pool_checks_ok(pool_dir, capsys) -> None:
    code, report = _check(capsys, pool_dir)
    assert code == 0 and report["ok"] and report["findings"] == []


def test_a_damaged_entry_is_named_with_the_recovery(pool_dir, capsys) -> None:
    damaged = _entry(pool_dir, 2)
    damaged.write_bytes(damaged.read_bytes()[:-40])  # a torn write
    with pytest.raises(DatapoolError) as err:
        Datapool(pool_dir).version()
    message = str(err.value)
    assert damaged.name in message and "not valid JSON" in message and "Restore" in message
    assert "Kernel error" not in message and "backtrace" not in message.lower()
    code, report = _check(capsys, pool_dir)
    assert code == 1 and any(damaged.name in f["path"] for f in report["findings"])


def test_a_deleted_last_entry_is_detected(pool_dir, capsys, tmp_path) -> None:
    receipt = pool_dir / "_commits" / f"{run_slug('r2')}.json"
    assert json.loads(receipt.read_text())["version"] == 3  # the commit recorded its version
    shutil.move(_entry(pool_dir, 3), tmp_path / "moved.json")
    pool = Datapool(pool_dir)
    assert pool.version() == 2 and "week-3" not in {t["name"] for t in pool.tags()}  # silently rolled back
    code, report = _check(capsys, pool_dir)
    errors = [f for f in report["findings"] if f["level"] == "error"]
    assert code == 1 and len(errors) == 1 and errors[0]["path"].endswith(_entry(pool_dir, 3).name)
    message = errors[0]["message"]
    assert "'r2'" in message and "'week-3'" in message and "log entry 3 was deleted" in message
    assert "restore" in message and receipt.name in message
    # Restoring the entry makes the pool whole again.
    shutil.move(tmp_path / "moved.json", _entry(pool_dir, 3))
    assert _check(capsys, pool_dir)[0] == 0 and Datapool(pool_dir).version() == 3


def test_a_deleted_entry_committed_over_by_another_run_is_detected(pool_dir, capsys, digits) -> None:
    _entry(pool_dir, 3).unlink()
    commit_run(Datapool(pool_dir), run_rows(digits, range(100, 110), picks=[1]), "r9", tag="week-9")
    code, report = _check(capsys, pool_dir)
    errors = [f["message"] for f in report["findings"] if f["level"] == "error"]
    assert code == 1 and len(errors) == 1 and "'r2'" in errors[0] and "another commit" in errors[0]


def test_an_attempt_killed_before_its_commit_is_harmless_not_damage(pool_dir, capsys, tmp_path, digits) -> None:
    rows_path = tmp_path / "r3.parquet"
    pq.write_table(run_rows(digits, range(60, 100), picks=[1, 2]), rows_path)
    child = subprocess.run([sys.executable, "-c", KILLED_AFTER_DATA_FILES, str(pool_dir), str(rows_path), "r3", "3"],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    (pool_dir / "_delta_log" / f"{4:020d}.json").rmdir()
    assert Datapool(pool_dir).version() == 3 and not (pool_dir / "_commits" / f"{run_slug('r3')}.json").exists()
    code, report = _check(capsys, pool_dir)
    assert code == 0 and report["ok"], report  # no error: nothing was committed, nothing was lost
    (warning,) = [f["message"] for f in report["findings"]]
    assert "'r3'" in warning and "killed before its commit" in warning and "harmless" in warning
    # The same orphans with a receipt would be a deleted entry: the receipt is what tells them apart.
    Datapool(pool_dir).record_commit("r3", 4, "r3")
    code, report = _check(capsys, pool_dir)
    assert code == 1 and "log entry 4 was deleted" in report["findings"][0]["message"]


def test_pools_without_receipts_fall_back_to_the_run_report(pool_dir, capsys, tmp_path) -> None:
    shutil.rmtree(pool_dir / "_commits")  # a pool committed before receipts existed
    shutil.move(_entry(pool_dir, 3), tmp_path / "moved.json")
    code, report = _check(capsys, pool_dir)
    assert code == 0 and "killed before its commit" in report["findings"][0]["message"]  # no evidence of a commit
    (pool_dir / "_reports" / run_slug("r2")).mkdir(parents=True)
    (pool_dir / "_reports" / run_slug("r2") / "index.html").write_text("<html></html>")
    code, report = _check(capsys, pool_dir)
    assert code == 1 and "has a report" in report["findings"][0]["message"]


def test_a_gap_in_the_log_is_an_error(pool_dir, capsys) -> None:
    _entry(pool_dir, 2).unlink()
    code, report = _check(capsys, pool_dir)
    assert code == 1 and any("not continuous" in f["message"] for f in report["findings"])
    with pytest.raises(DatapoolError, match="cannot be read"):
        Datapool(pool_dir).read()


def test_a_missing_data_file_is_named(pool_dir) -> None:
    victim = next((pool_dir / "selected=true").glob("*.parquet"))
    victim.unlink()
    findings = check_pool(str(pool_dir))
    assert any(f.level == "error" and victim.name in f.path and "missing" in f.message for f in findings)


# A select task killed during its compaction, after the merged files were copied in and before the commit.
KILLED_DURING_COMPACTION = textwrap.dedent(
    """
    import os, signal, sys
    from deltalake import DeltaTable
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.compaction import CompactionOptions, compact

    DeltaTable.create_write_transaction = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    compact(Datapool(sys.argv[1]), CompactionOptions(min_small_files=2))
    """
)


def test_a_compaction_killed_before_its_commit_is_named_as_such(pool_dir, capsys, digits) -> None:
    before = Datapool(pool_dir).snapshot().read().sort_by("sample_id")
    child = subprocess.run([sys.executable, "-c", KILLED_DURING_COMPACTION, str(pool_dir)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert Datapool(pool_dir).version() == 3 and Datapool(pool_dir).snapshot().read().sort_by("sample_id") == before
    code, report = _check(capsys, pool_dir)
    assert code == 0 and report["ok"], report
    (warning,) = [f["message"] for f in report["findings"]]
    assert "rows of several runs" in warning and "compaction killed before its commit" in warning, warning
