"""Exact duplicates by content hash, within a run and against the datapool.

Shards cannot see each other, so the select task calls :func:`mark_duplicates` once on the run's metadata
rows of all shards. Rules:

- only rows whose status is ``ok`` or ``duplicate`` take part (a previous marking is recomputed, so the
  function is idempotent); corrupt and missing files keep their status;
- against the pool: a row whose content is already in the pool (as an ``ok`` sample under another key) is a
  duplicate of the pool's copy (the smallest such key); the pool's copy under the row's own key does not
  count (a re-processed file is not a duplicate of itself), and a re-processed file keeps its place against
  a new copy (its pool row wins, whatever the keys' order); a pool row whose key the run holds with other
  content, or no longer ok, is superseded by the run's row and counts for nothing. So the caller passes the
  pool's ``ok`` rows of every key, the run's keys included;
- within the run: of the remaining rows sharing a content hash, the lexicographically smallest key stays
  ``ok`` and every other one is a duplicate of it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.arrow import from_pylist


def _check_columns(table: pa.Table, needed: tuple[str, ...], what: str) -> None:
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {table.column_names}.")


def mark_duplicates(table: pa.Table, known_hashes: pa.Table | None) -> pa.Table:
    """Mark exact duplicates with status ``duplicate`` and ``duplicate_of``.

    :param table: the run's metadata rows (at least ``key``, ``content_hash``, ``status``); other columns are
        kept as they are. ``status_reason`` and ``duplicate_of`` are added when absent.
    :param known_hashes: the datapool's ``key, content_hash`` of ``ok`` samples (of every key, the run's keys
        included: their rows here supersede them), or ``None``.
    :returns: the table with ``status``, ``status_reason`` and ``duplicate_of`` updated (same row order).
    """
    _check_columns(table, (C.KEY, C.CONTENT_HASH, C.STATUS), "The metadata table")
    n = table.num_rows
    keys = np.asarray(table.column(C.KEY).to_pylist(), dtype=object)
    hashes = np.asarray(table.column(C.CONTENT_HASH).to_pylist(), dtype=object)
    status = np.asarray(table.column(C.STATUS).to_pylist(), dtype=object)
    reason = (
        np.asarray(table.column(C.STATUS_REASON).to_pylist(), dtype=object)
        if C.STATUS_REASON in table.column_names
        else np.full(n, None, dtype=object)
    )
    dup_of = np.full(n, None, dtype=object)
    if C.DUPLICATE_OF in table.column_names:
        old = np.asarray(table.column(C.DUPLICATE_OF).to_pylist(), dtype=object)
        keep = ~np.isin(status, [C.STATUS_OK, C.STATUS_DUPLICATE])
        dup_of[keep] = old[keep]

    candidate = np.isin(status, [C.STATUS_OK, C.STATUS_DUPLICATE]) & np.array([h is not None for h in hashes], bool)
    status = status.copy()
    status[candidate] = C.STATUS_OK
    reason[candidate] = None

    # Against the pool: hash -> sorted pool keys.
    pool: dict[str, list[str]] = {}
    if known_hashes is not None and known_hashes.num_rows:
        _check_columns(known_hashes, (C.KEY, C.CONTENT_HASH), "known_hashes")
        import pyarrow.compute as pc  # (here: a metadata shard task, which has no pool's hashes, never loads it)

        kt = known_hashes.filter(pc.is_valid(known_hashes.column(C.CONTENT_HASH)))
        # The run's row of a key supersedes the pool's: a pool row counts only while the run holds its key with
        # the same content, still ok (a changed or now corrupt file's old content is no longer in the pool).
        now = {keys[i]: hashes[i] for i in np.flatnonzero(candidate)}
        in_run = set(keys.tolist())
        for k, h in zip(kt.column(C.KEY).to_pylist(), kt.column(C.CONTENT_HASH).to_pylist()):
            if k not in in_run or now.get(k) == h:
                pool.setdefault(h, []).append(k)
        for h in pool:
            pool[h].sort()

    idx = np.flatnonzero(candidate)
    # Sort candidates by (hash, key) so each hash group's first row has the smallest key.
    order = sorted(idx.tolist(), key=lambda i: (hashes[i], keys[i]))
    group_first: dict[str, str] = {}
    for i in order:
        h, k = hashes[i], keys[i]
        pool_keys = [pk for pk in pool.get(h, ()) if pk != k]
        if pool_keys:
            status[i] = C.STATUS_DUPLICATE
            dup_of[i] = pool_keys[0]
            reason[i] = f"same content as {pool_keys[0]!r} already in the datapool"
            continue
        if h in pool:  # the pool holds this very key with this content: it wins the run's group
            group_first.setdefault(h, k)
        first = group_first.setdefault(h, k)
        if first != k:
            status[i] = C.STATUS_DUPLICATE
            dup_of[i] = first
            reason[i] = f"same content as {first!r}"

    out = table
    for name, values in ((C.STATUS, status), (C.STATUS_REASON, reason), (C.DUPLICATE_OF, dup_of)):
        arr = from_pylist(values.tolist(), pa.string())  # (pa.array would import pandas in a shard task)
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, arr)
        else:
            out = out.append_column(name, arr)
    return out


find_duplicates = mark_duplicates  # the name docs/architecture.md uses
