"""COCO export and preselected-object reading read only the object columns and rows they need (projection and
filter pushed into the Delta scan), with the same result as reading every object row of the pool."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from object_pool import ObjectPool, build_object_pool

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.objects.run import pool_objects


@pytest.fixture(scope="module")
def object_pool(tmp_path_factory: pytest.TempPathFactory) -> ObjectPool:
    return build_object_pool(tmp_path_factory.mktemp("objects-reading"))


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[pa.Table]:
    """Every table a datapool snapshot's SQL scan returned during the test."""
    import lightly_airflow.datapool.snapshot as snapshot

    seen: list[pa.Table] = []
    real = snapshot.query

    def recording(table: Any, sql: str, keep: Any = None) -> pa.Table:
        out = real(table, sql, keep=keep)
        seen.append(out)
        return out

    monkeypatch.setattr(snapshot, "query", recording)
    return seen


def _reference_objects(pool: Datapool, images: list[tuple[str, str]], columns: list[str]) -> list[dict[str, Any]]:
    """Every row of the pool, filtered in Python: the objects the runs committed with those images."""
    rows = pool.read()
    wanted = set(images)
    return [{c: r[c] for c in columns} for r in rows.to_pylist()
            if r[C.PARENT_KEY] is not None and (r[C.PARENT_KEY], r[C.RUN_ID]) in wanted]


def test_preselected_objects_read_only_their_rows_and_columns(object_pool, scans):
    pool = Datapool(object_pool.uri)
    preselected = pool.selected([C.KEY, C.RUN_ID])
    images = list(zip(preselected.column(C.KEY).to_pylist(), preselected.column(C.RUN_ID).to_pylist(), strict=True))
    want = _reference_objects(pool, images, [C.KEY, C.PARENT_KEY, C.OBJECT_TASK, C.EMBEDDING, C.RUN_ID])
    scans.clear()
    got = pool_objects(pool.snapshot(), preselected)
    assert got is not None
    rows = got.to_pylist()
    for r in rows:
        r[C.EMBEDDING] = list(r[C.EMBEDDING])
    assert sorted(rows, key=lambda r: r[C.KEY]) == sorted(want, key=lambda r: r[C.KEY])
    # The scan returned only those objects (not the pool's other objects or its images), five columns.
    (scan,) = scans
    assert scan.num_rows == len(want) < pc.sum(pc.is_valid(pool.read(columns=[C.PARENT_KEY]).column(C.PARENT_KEY))).as_py()
    assert sorted(scan.column_names) == sorted([C.KEY, C.PARENT_KEY, C.OBJECT_TASK, C.EMBEDDING, C.RUN_ID])


def test_coco_boxes_read_only_the_tags_objects(object_pool, scans):
    from lightly_airflow.datapool.export import coco_images, export_records

    pool = Datapool(object_pool.uri)
    tag = [e["tag"] for e in pool.history() if e.get("run_id")][1]
    records = export_records(pool, tag)
    images = [(r.key, r.run_id) for r in records]
    scans.clear()
    doc = coco_images(records, tag, pool)
    columns = [C.KEY, C.PARENT_KEY, C.RUN_ID, C.OBJECT_TASK, C.OBJECT_INDEX, C.OBJECT_BBOX, C.OBJECT_CATEGORY,
               C.OBJECT_SCORE]
    want = _reference_objects(pool, images, columns)
    assert len(doc["annotations"]) == len(want) > 0
    by_id = {a["object_id"]: a for a in doc["annotations"]}
    ids = {(k, r): i for i, (k, r) in enumerate(images, start=1)}
    for w in want:
        a = by_id[w[C.KEY]]
        assert a["bbox"] == w[C.OBJECT_BBOX] and a["score"] == w[C.OBJECT_SCORE]
        assert a["image_id"] == ids[(w[C.PARENT_KEY], w[C.RUN_ID])]
    assert [s for s in scans if C.OBJECT_BBOX in s.column_names][0].num_rows == len(want)

