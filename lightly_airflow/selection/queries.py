"""Query sets of SIMILARITY: the embeddings an ``EMBEDDINGS`` input names with ``dataset_id`` + ``tag_name``.

In Lightly, ``dataset_id`` names a dataset on the platform; here it names a datapool (its URI or a local
path) or a Parquet file with an ``embedding`` column (rows whose ``tags`` list holds ``tag_name``, or every
row when there is no ``tags`` column). Both the ``select`` CLI and the DAG's select task resolve them here.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.selection.engine import embedding_matrix
from lightly_airflow.storage import StorageCredentials, protocol_of, read_parquet


def resolve_query_sets(
    config: object,
    *,
    credentials: StorageCredentials | None = None,
    base: str | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """Load every query set the config names.

    :param config: a parsed selection config.
    :param credentials: credentials of the stores holding the query datapools/files.
    :param base: folder that relative local ``dataset_id`` paths are relative to (the config file's folder).
    :returns: ``{(dataset_id, tag_name): L2-normalised (N, D) float32 matrix}``.
    :raises ValueError: naming the input's JSON path when a query set cannot be read or is empty.
    """
    out: dict[tuple[str, str], np.ndarray] = {}
    for i, entry in enumerate(config.strategies):  # type: ignore[attr-defined]
        inp = entry.input
        if inp.type != "EMBEDDINGS" or inp.dataset_id is None or (inp.dataset_id, inp.tag_name) in out:
            continue
        path = f"strategies[{i}].input"
        uri = _locate(inp.dataset_id, base)
        try:
            table = _read(uri, inp.tag_name, credentials)
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(
                f"{path}: the query set dataset_id={inp.dataset_id!r}, tag_name={inp.tag_name!r} cannot be read "
                f"({exc}). Fix: name a datapool URI (or a Parquet file with an 'embedding' column) and a tag in it."
            ) from None
        if table.num_rows == 0:
            raise ValueError(f"{path}: the query set tag {inp.tag_name!r} in {inp.dataset_id!r} holds no samples.")
        out[(inp.dataset_id, inp.tag_name)] = embedding_matrix(table, path=f"{path}.dataset_id", what="query samples")
    return out


def _locate(dataset_id: str, base: str | None) -> str:
    try:
        local = protocol_of(dataset_id) == "file"
    except ValueError:
        local = True
    if local and base and not dataset_id.startswith("file://") and not os.path.isabs(dataset_id):
        return os.path.join(base, dataset_id)
    return dataset_id


def _read(uri: str, tag: str, credentials: StorageCredentials | None) -> pa.Table:
    if uri.lower().endswith(".parquet"):
        table = read_parquet(uri, credentials)
        if C.TAGS in table.column_names:
            import pyarrow.compute as pc  # (lazily: 20-30 ms of every select process' imports otherwise)

            tags = table.column(C.TAGS)
            rows = pc.filter(pc.list_parent_indices(tags), pc.equal(pc.list_flatten(tags), tag))
            table = table.take(pc.unique(rows))
        return table
    from lightly_airflow.datapool import Datapool

    pool = Datapool(uri, credentials)
    if not pool.exists():
        raise FileNotFoundError(f"no datapool at {uri}")
    return pool.read(tag=tag, columns=[C.KEY, C.EMBEDDING])
