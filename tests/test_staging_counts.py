"""The one owner of the counts a shard stage writes into its staging file and the run sums
(``staging.with_counts`` / ``summed_counts`` / ``merged_metadata``): the objects and the predictions stage."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lightly_airflow import columns as C
from lightly_airflow import staging
from lightly_airflow.storage import read_parquet, write_parquet


def _write_shard(pool: Path, index: int, stage: str, counts: dict[str, int] | None) -> str:
    """One shard's staging file of ``stage`` (``counts`` None: a shard written before its stage counted)."""
    table = pa.table({C.KEY: [f"{index}/a.png#0", f"{index}/b.png#0"], C.PARENT_KEY: [f"{index}/a.png", f"{index}/b.png"]}
                     ).replace_schema_metadata({b"lightly.other": b"1"})
    uri = staging.shard_uri(str(pool), "run-1", stage, index)
    return write_parquet(table if counts is None else staging.with_counts(table, stage, counts), uri)


def test_counts_are_summed_over_the_shards_and_an_older_shard_without_them_is_not_known(tmp_path: Path) -> None:
    uris = [_write_shard(tmp_path, 0, staging.OBJECTS, {"boxes_outside_image": 7, "images_failed": 0}),
            _write_shard(tmp_path, 1, staging.OBJECTS, None),
            _write_shard(tmp_path, 2, staging.OBJECTS, {"boxes_outside_image": 2, "video_frames_failed": 3})]
    tables = [read_parquet(u) for u in uris]
    summed = staging.summed_counts(tables, staging.OBJECTS)
    counts = {"boxes_outside_image": 9, "images_failed": 0, "video_frames_failed": 3}
    # (the shard without counts: not known, never a silent 0; a value of its own, which equality compares: as a
    # dict with an attribute, StageCounts compared equal to one whose counts were all known)
    assert summed == staging.StageCounts(counts, not_known=1) != staging.StageCounts(counts, not_known=0)
    assert staging.summed_counts([tables[1], None], staging.OBJECTS) == staging.StageCounts({}, 1)  # (None: none)
    assert staging.summed_counts([tables[0], None], staging.OBJECTS).not_known == 0
    assert staging.summed_counts(tables, staging.PREDICTIONS) == staging.StageCounts()  # (each stage its own counts)
    # The select task's decoded metadata (pipeline.assemble_run): counts add up, any other value: a later shard's wins.
    meta: dict[str, str] = {}
    for uri in uris:
        shard_meta = {k.decode(): v.decode() for k, v in (pq.read_schema(uri).metadata or {}).items()}
        meta = staging.merged_metadata(meta, {**shard_meta, "lightly.other": uri})
    # (a shard's decoded metadata does not say it is an objects file: the objects stage's not-known shards are
    # counted from the stacked tables, objects.run.load_run_objects)
    assert staging.summed_counts([meta], staging.OBJECTS) == staging.StageCounts(counts)
    assert meta["lightly.other"] == uris[-1]


def test_a_retried_shard_writes_its_counts_once(tmp_path: Path) -> None:
    """A retried task writes its shard's file again (same path), possibly from a table that already holds counts
    (a stacked run's, its own first attempt's): the shard's counts are replaced, never added to."""
    first = _write_shard(tmp_path, 0, staging.PREDICTIONS, {"weather": 2})
    again = staging.with_counts(read_parquet(first), staging.PREDICTIONS, {"weather": 2})
    assert write_parquet(again, first) == first
    other = _write_shard(tmp_path, 1, staging.PREDICTIONS, {"weather": 1, "det": 4})
    tables = [read_parquet(first), read_parquet(other)]
    assert staging.summed_counts(tables, staging.PREDICTIONS) == staging.StageCounts({"weather": 3, "det": 4})
    # The run's stacked table (objects.run.load_run_objects: concat keeps the first shard's metadata) holds the sum.
    stacked = pa.concat_tables(tables)
    run = staging.with_counts(stacked, staging.PREDICTIONS, staging.summed_counts(tables, staging.PREDICTIONS).counts)
    assert staging.summed_counts([run], staging.PREDICTIONS) == staging.StageCounts({"weather": 3, "det": 4})
