"""``process_all`` over a pool that holds a long video: the list task writes one reuse file (the pool's embeddings,
hashes and metrics of every unchanged frame) and every embed task reads it. Each task decoded the whole file and
matched all of it to keep its own rows: over one hour at 30 fps (108,041 frames, 191 MB, 422 shards) that was
5-7 s and 2.1-2.4 GB per task for 256 rows. A task now keeps only its shard's rows, from the file or from a table
it is given, and copies the same values."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow.video.synthetic import make_scene_video

from .runs import run_once


def test_each_embed_task_keeps_only_its_shard_s_rows_of_the_reuse_file(tmp_path, monkeypatch) -> None:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard, runner
    from lightly_airflow.pipeline import list_new
    from lightly_airflow.storage import read_parquet

    src, pool = tmp_path / "src", tmp_path / "pool"
    make_scene_video(str(src / "long.mp4"), "coffee", 90, seed=3)
    run_once(f"file://{src}", f"file://{pool}", "r1")

    listed = list_new(NewFilesQuery(datasource_uri=f"file://{src}", datapool_uri=f"file://{pool}", process_all=True),
                      run_id="r2", min_shard_size=20)
    assert listed.reuse_uri and len(listed.manifests) >= 3
    whole = read_parquet(listed.reuse_uri)
    assert whole.num_rows == 90

    seen: list[int] = []
    match_reuse = runner.match_reuse

    def spy(manifest, reuse, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(reuse.num_rows)
        return match_reuse(manifest, reuse, **kwargs)

    monkeypatch.setattr(runner, "match_reuse", spy)
    for given in (None, whole):  # the DAG's tasks read the file; run_once hands the table to each shard
        seen.clear()
        for m in listed.manifests:
            rows = pq.read_metadata(m.removeprefix("file://")).num_rows
            counts = embed_shard(m, device="cpu", num_workers=1, reuse_uri=listed.reuse_uri, reuse=given)
            assert counts["reused"] == counts["total"] == rows
            assert seen[-1] == rows  # (the whole file, 90 rows, for every shard before)
            out = read_parquet(counts["output_uri"])
            mine = whole.filter(pc.is_in(whole.column(C.KEY), value_set=out.column(C.KEY))).sort_by(C.KEY)
            out = out.sort_by(C.KEY)
            assert np.array_equal(np.stack(out.column(C.EMBEDDING).to_numpy(zero_copy_only=False)),
                                  np.stack(mine.column(C.EMBEDDING).to_numpy(zero_copy_only=False)))
            assert out.column(C.CONTENT_HASH).equals(mine.column(C.CONTENT_HASH))
        assert sum(seen) == 90
