"""Crops of a replaced image are removed by every run that knows it was replaced (session 65 audit): a run with
``crops.enable_upload`` off, or without object-level work (an image-level run), kept them, so an image replaced
under its key kept crops of pixels that no longer exist (the pool's newer row ended its selection: no crop is its).
And a select task killed part-way through removing crops counts, on its retry, the files the killed attempt
removed (it counted only those left; 0 when killed after the last removal): a real SIGKILL of the process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.objects.crops import write_selected_crops
from lightly_airflow.objects.run import REMOVALS_FILE, record_crops, write_crops
from lightly_airflow.objects.spec import ObjectsSpec
from lightly_airflow.storage import join_uri, write_bytes

from .test_stale_crops import _crops, _objects, _photo

CARS = ObjectsSpec(tasks=("cars",), selection_tasks=("cars",))


def _meta(uri: str) -> dict[str, Any]:
    return {C.DATASOURCE_URI_METADATA_KEY: json.dumps(uri), C.LIGHTLY_URI_METADATA_KEY: json.dumps(uri)}


def _rows(etags: dict[str, str], selected: tuple[str, ...] = ()) -> pa.Table:
    return pa.table({C.KEY: list(etags), C.ETAG: list(etags.values()), C.STATUS: [C.STATUS_OK] * len(etags),
                     C.SELECTED: [k in selected for k in etags]})


def _cropped(uri: str) -> set[str]:
    """a.png cropped for cars (2) and people (1), b.png for cars (1), by an earlier object-level run."""
    for key, seed in (("a.png", 1), ("b.png", 2)):
        write_bytes(_photo(seed), join_uri(uri, key))
    first = write_selected_crops(_objects({("a.png", "cars"): 2, ("a.png", "people"): 1, ("b.png", "cars"): 1}),
                                 ObjectsSpec(tasks=("cars", "people")), datasource_uri=uri, lightly_uri=uri)
    assert first["written"] == 4
    return _crops(uri, None)


@pytest.mark.parametrize("spec", [None, ObjectsSpec(tasks=("cars",), upload=False, selection_tasks=("cars",))],
                         ids=["image-level run", "uploads off"])
def test_a_run_that_writes_no_crop_removes_the_crops_of_replaced_images(tmp_path: Path, spec: Any) -> None:
    uri = f"file://{tmp_path}"
    before = _cropped(uri)
    known = pa.table({C.KEY: ["a.png", "b.png"], C.ETAG: ["e1", "e1"]})
    rows = _rows({"a.png": "e2", "b.png": "e1"}, selected=("a.png",))  # a.png replaced (and selected again)
    objects = None if spec is None else _objects({("a.png", "cars"): 1})
    counts = write_crops(objects, spec, _meta(uri), rows=rows, known=known)
    assert _crops(uri, None) == {"cars/b-0-png.png"}, "crops of a.png's former picture were kept"
    assert (counts["replaced_removed"], counts["replaced_failed"], counts["written"] if spec else 0) == (3, 0, 0)
    assert len(before) == 4
    # Nothing replaced: an image-level run has nothing to say of crops (no 'crops' in its summary); nothing removed.
    assert write_crops(None, None, _meta(uri), rows=_rows({"b.png": "e1"}), known=known) == {}
    assert _crops(uri, None) == {"cars/b-0-png.png"}


#: The child: one attempt of the select task's crop step (write_crops, then record_crops) on a.png re-cropped with
#: one car; it is SIGKILLed right after its ``KILL_AFTER``-th file removal (no handler, no finally runs).
ATTEMPT = """
import json, os, signal, sys
from fsspec.implementations.local import LocalFileSystem
from lightly_airflow.objects.run import record_crops, write_crops
from tests.objects.test_replaced_crops_every_run import CARS, _meta, _rows
from tests.objects.test_stale_crops import _objects

uri, pool, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
real, done = LocalFileSystem.rm_file, []

def rm_file(self, path):
    real(self, path)
    done.append(path)
    if len(done) == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)

LocalFileSystem.rm_file = rm_file
counts = write_crops(_objects({("a.png", "cars"): 1}), CARS, _meta(uri), rows=_rows({"a.png": "e1"}, ("a.png",)),
                     known=None, datapool_uri=pool, run_id="r2")
print(json.dumps(record_crops(counts, pool, "r2")))
"""


@pytest.mark.parametrize("kill_after", [1, 2], ids=["killed after 1 of 2 removals", "killed after the last"])
def test_a_retry_after_a_kill_while_removing_crops_counts_every_removal(tmp_path: Path, kill_after: int) -> None:
    """a.png had 3 car crops and a person's; re-cropped with one car, 2 car crops are stale (the person's stays:
    the run does not crop that task). The attempt is killed after ``kill_after`` removals; the retry removes the rest
    and says 2 (it said 1, and 0 when killed after the last)."""
    uri, pool = f"file://{tmp_path / 'src'}", str(tmp_path / "pool")
    write_bytes(_photo(1), join_uri(uri, "a.png"))
    write_selected_crops(_objects({("a.png", "cars"): 3, ("a.png", "people"): 1}),
                         ObjectsSpec(tasks=("cars", "people")), datasource_uri=uri, lightly_uri=uri)
    assert len(_crops(uri, None)) == 4
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-c", ATTEMPT, uri, pool, str(kill_after)], env=env, cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(_crops(uri, None)) == 4 - kill_after  # (the kill came part-way: some files left)
    retry = subprocess.run([sys.executable, "-c", ATTEMPT, uri, pool, "0"], env=env, cwd=root, capture_output=True,
                           text=True, timeout=120)
    assert retry.returncode == 0, retry.stderr[-2000:]
    counts = json.loads(retry.stdout.strip().splitlines()[-1])
    assert _crops(uri, None) == {"cars/a-0-png.png", "people/a-0-png.png"}
    assert (counts["written"], counts["stale_removed"], counts["stale_failed"]) == (1, 2, 0)
    # Retried once more (killed before its staging files were removed): the same counts, not twice the removals.
    again = record_crops(write_crops(_objects({("a.png", "cars"): 1}), CARS, _meta(uri),
                                     rows=_rows({"a.png": "e1"}, ("a.png",)), datapool_uri=pool, run_id="r2"),
                         pool, "r2")
    assert again["stale_removed"] == 2
    recorded = json.loads((next((tmp_path / "pool").rglob(REMOVALS_FILE))).read_text())
    assert sorted(recorded["stale_removed"]) == ["crops/cars/a-1-png.png", "crops/cars/a-2-png.png"]
