"""A data file whose embeddings are all null (a run whose unselected rows were all corrupt, or tombstones only) reads
back: pyarrow 26.0.1 crashed the process casting it to the fixed-size embedding type (``snapshot.fixed_size``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import commit_run, run_rows


def test_a_file_of_null_embeddings_reads_by_key(tmp_path: Path, digits: Any) -> None:
    pool = Datapool(str(tmp_path / "pool"))
    commit_run(pool, run_rows(digits, [0, 1], picks=[0, 1]), "r1")
    commit_run(pool, run_rows(digits, [2], corrupt=[0]), "r2")  # its one row, corrupt: no embedding, alone in a file
    rows = pool.snapshot().select([C.KEY, C.EMBEDDING], "", values_in=(C.KEY, ["digits/0/00000.png", "digits/2/00002.png"]))
    got = dict(zip(rows.column(C.KEY).to_pylist(), rows.column(C.EMBEDDING).to_pylist()))
    assert got["digits/2/00002.png"] is None and len(got["digits/0/00000.png"]) == 64
    assert rows.schema.field(C.EMBEDDING).type == pa.list_(pa.float32(), 64)
