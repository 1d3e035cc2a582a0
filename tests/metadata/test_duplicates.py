"""mark_duplicates across shards and against the datapool."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lightly_airflow import columns as C
from lightly_airflow.metadata import mark_duplicates


def run_table(rows):
    return pa.table(
        {
            C.KEY: [r[0] for r in rows],
            C.CONTENT_HASH: [r[1] for r in rows],
            C.STATUS: [r[2] for r in rows],
            "metadata.lightly.width": list(range(len(rows))),
        }
    )


def by_key(table):
    return {r[C.KEY]: (r[C.STATUS], r[C.DUPLICATE_OF]) for r in table.to_pylist()}


def test_within_run_smallest_key_wins_and_other_statuses_are_kept():
    table = run_table(
        [
            ("c.png", "h1", "ok"),
            ("a.png", "h1", "ok"),
            ("b.png", "h1", "duplicate"),  # earlier shard-local marking is recomputed
            ("d.png", "h2", "ok"),
            ("e.png", "h1", "corrupt"),
            ("f.png", None, "missing"),
        ]
    )
    out = by_key(mark_duplicates(table, None))
    assert out == {
        "a.png": ("ok", None),
        "b.png": ("duplicate", "a.png"),
        "c.png": ("duplicate", "a.png"),
        "d.png": ("ok", None),
        "e.png": ("corrupt", None),
        "f.png": ("missing", None),
    }


def test_pool_copy_wins_but_a_file_is_not_its_own_duplicate():
    table = run_table([("a.png", "h1", "ok"), ("z.png", "h1", "ok"), ("b.png", "h2", "ok"), ("c.png", "h3", "ok"), ("d.png", "h3", "ok")])
    known = pa.table({C.KEY: ["old/x.png", "old/w.png", "c.png"], C.CONTENT_HASH: ["h1", "h1", "h3"]})
    out = mark_duplicates(table, known)
    assert by_key(out) == {
        "a.png": ("duplicate", "old/w.png"),
        "z.png": ("duplicate", "old/w.png"),
        "b.png": ("ok", None),
        "c.png": ("ok", None),  # re-processed file whose content the pool holds under its own key
        "d.png": ("duplicate", "c.png"),
    }
    assert "datapool" in out.column(C.STATUS_REASON)[0].as_py()
    assert out.column("metadata.lightly.width").to_pylist() == [0, 1, 2, 3, 4]
    assert mark_duplicates(out, known).equals(out)  # idempotent


def test_missing_columns_are_a_clear_error():
    with pytest.raises(ValueError, match="content_hash"):
        mark_duplicates(pa.table({C.KEY: ["a"], C.STATUS: ["ok"]}), None)
