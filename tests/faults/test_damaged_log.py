"""Damaged Delta logs give a clear error naming the file and the recovery; ``datapool check`` finds a
deleted last entry, gaps and damaged entries (issue 14.8)."""

from __future__ import annotations

import json
import shutil

import pytest
from datapool.conftest import commit_run, run_rows

from lightly_airflow.cli import main
from lightly_airflow.datapool import Datapool, DatapoolError
from lightly_airflow.datapool.check import check_pool


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
    shutil.move(_entry(pool_dir, 3), tmp_path / "moved.json")
    pool = Datapool(pool_dir)
    assert pool.version() == 2 and "week-3" not in {t["name"] for t in pool.tags()}  # silently rolled back
    code, report = _check(capsys, pool_dir)
    errors = [f for f in report["findings"] if f["level"] == "error"]
    assert code == 1 and len(errors) == 1
    assert "'r2'" in errors[0]["message"] and "log entry 3 was probably deleted" in errors[0]["message"]
    # Restoring the entry makes the pool whole again.
    shutil.move(tmp_path / "moved.json", _entry(pool_dir, 3))
    assert _check(capsys, pool_dir)[0] == 0 and Datapool(pool_dir).version() == 3


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
