"""A listed run with its metadata and embeddings stages done, in local files (for the select task's assembly:
``tests/dags/test_assemble_run.py`` and ``benchmarks/assemble.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_staged_run(root: Path, shards: int, files: int, dim: int, *, run_id: str = "r1") -> tuple[Path, list[str]]:
    """``shards`` shards of ``files`` files (random bytes: the metadata stage finds them corrupt, reported like
    any status) under ``root/src``, listed into the pool ``root/pool``, each shard's metadata computed and an
    embeddings staging file of ``dim``-D random vectors written (schema metadata ``shard``: its manifest).

    :returns: the pool folder and the manifest URIs, in order."""
    from lightly_airflow import columns as C
    from lightly_airflow import pipeline, staging
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard

    src, pool = root / "src", root / "pool"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(shards * files):
        (src / f"img{i:07d}.png").write_bytes(rng.bytes(64))
    listed = pipeline.list_new(NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool)), run_id=run_id,
                               min_shard_size=files)
    for m in listed.manifests:
        compute_metadata_shard(m)
        t = pq.read_table(m)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(rng.random(t.num_rows * dim, dtype=np.float32)), dim)
        out = pa.table({C.KEY: t.column(C.KEY), C.EMBEDDING: emb, C.STATUS: ["ok"] * t.num_rows})
        path = Path(staging.sibling_uri(m, staging.EMBEDDINGS))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(out.replace_schema_metadata({"shard": m}), path)
    return pool, list(listed.manifests)
