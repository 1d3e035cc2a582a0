"""Exact duplicates against the datapool when the run re-processes pool files (``process_all``, changed files)."""

from __future__ import annotations

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.metadata import mark_duplicates

from .test_duplicates import by_key, run_table


def test_a_new_copy_of_a_pool_sample_is_its_duplicate_whatever_the_keys_order():
    # process_all: the pool's b.png (maybe selected in an earlier run) is re-processed beside a new copy a.png,
    # which sorts first. The pool's copy must win: a.png selectable would select the same picture twice.
    table = run_table([("a.png", "h1", "ok"), ("b.png", "h1", "ok"), ("c.png", "h2", "ok")])
    known = pa.table({C.KEY: ["b.png", "c.png"], C.CONTENT_HASH: ["h1", "h2"]})
    out = by_key(mark_duplicates(table, known))
    assert out == {"a.png": ("duplicate", "b.png"), "b.png": ("ok", None), "c.png": ("ok", None)}


def test_a_pool_row_whose_file_changed_or_broke_in_this_run_counts_for_nothing():
    # b.png held h1 in the pool; this run reads it with new content h9, so a new a.png with h1 is no duplicate of
    # b.png any more (b.png's old picture is gone). d.png is corrupt now: its pool content h3 is gone too.
    table = run_table([("a.png", "h1", "ok"), ("b.png", "h9", "ok"), ("c.png", "h3", "ok"), ("d.png", "h3", "corrupt")])
    known = pa.table({C.KEY: ["b.png", "d.png"], C.CONTENT_HASH: ["h1", "h3"]})
    out = mark_duplicates(table, known)
    assert by_key(out) == {"a.png": ("ok", None), "b.png": ("ok", None), "c.png": ("ok", None),
                           "d.png": ("corrupt", None)}
    assert mark_duplicates(out, known).equals(out)  # idempotent


def test_process_all_never_selects_a_picture_the_pool_selected_under_another_key(tmp_path):
    """End to end (list, metadata, embeddings, select and commit on real PNGs): run 1 selects every image, b.png
    among them; a byte-identical a.png arrives (sorting before b.png) and run 2 reprocesses everything. The
    pipeline compared the run against the pool's rows of other keys only, so b.png's own row was left out, the new
    a.png won the run's group, b.png became its duplicate and a.png was selected: the same picture twice in
    initial-tag. Now a.png is b.png's duplicate and nothing is selected again."""
    import shutil

    import numpy as np
    from object_pool import DAG_ID, pixel_embeddings
    from PIL import Image

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit

    source, pool = tmp_path / "src", tmp_path / "pool"
    source.mkdir()
    rng = np.random.default_rng(5)
    for name in ("b", "c", "d"):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(source / f"{name}.png")
    config = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}

    def run(run_id: str, process_all: bool):
        query = NewFilesQuery.build(datasource_uri=str(source), datapool_uri=str(pool), process_all=process_all)
        listed = list_new(query, run_id=run_id)
        for manifest in listed.manifests:
            compute_metadata_shard(manifest)
            pixel_embeddings(manifest, source)
        return select_and_commit(datapool_uri=str(pool), run_id=run_id, dag_id=DAG_ID, manifests=listed.manifests,
                                 selection_config=config)

    assert run("scheduled__2026-05-01T00:00:00+00:00", False).selected == 3
    shutil.copyfile(source / "b.png", source / "a.png")
    second = run("scheduled__2026-05-02T00:00:00+00:00", True)
    assert second.selected == 0 and second.duplicate == 1
    snap = Datapool(f"file://{pool}").snapshot()
    assert sorted(snap.selected([C.KEY]).column(C.KEY).to_pylist()) == ["b.png", "c.png", "d.png"]
    rows = {r[C.KEY]: r for r in snap.read(columns=[C.KEY, C.STATUS, C.DUPLICATE_OF]).to_pylist()}
    assert (rows["a.png"][C.STATUS], rows["a.png"][C.DUPLICATE_OF]) == ("duplicate", "b.png")
    assert rows["b.png"][C.STATUS] == "ok"
