"""The embedding map's 2-D layout: computed once per run, stored in the datapool rows, one basis per datapool.

The first run of a datapool fits a PCA basis (top two components, on at most 5,000 of its embeddings, seeded)
and stores it at ``<datapool>/_layout/basis.npz``; every run (the first included) projects its own rows with
that basis and commits them with the columns ``layout.x`` and ``layout.y``. So the map of any version or tag is
a plain read of two float columns: nothing is recomputed per request, and the coordinates of a sample never
change. A basis of another embedding model or dimension is refitted (the pool refuses such runs anyway).
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.report.data import embedding_matrix, pca_basis, project_2d
from lightly_airflow.storage import StorageCredentials, filesystem

log = logging.getLogger(__name__)

LAYOUT_DIR = "_layout"
BASIS_FILE = "basis.npz"


def basis_uri(datapool_uri: str) -> str:
    return f"{datapool_uri.rstrip('/')}/{LAYOUT_DIR}/{BASIS_FILE}"


def _load_basis(uri: str, credentials: StorageCredentials | None, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    fs, path = filesystem(uri, credentials)
    try:
        with fs.open(path, "rb") as f:
            data = np.load(io.BytesIO(f.read()))
            mean, comps = data["mean"], data["components"]
    except FileNotFoundError:
        return None
    if mean.shape != (dim,) or comps.ndim != 2 or comps.shape[1] != dim:
        log.warning("The map basis %s is for dimension %s, not %d: refitting it.", uri, mean.shape, dim)
        return None
    return mean, comps


def _save_basis(uri: str, credentials: StorageCredentials | None, mean: np.ndarray, comps: np.ndarray) -> None:
    fs, path = filesystem(uri, credentials)
    buf = io.BytesIO()
    np.savez(buf, mean=mean, components=comps)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, buf.getvalue())


def add_layout(rows: pa.Table, datapool_uri: str, credentials: StorageCredentials | None = None) -> pa.Table:
    """``rows`` with ``layout.x``/``layout.y`` (float32; null for rows without an embedding).

    :param rows: the run's rows with ``embedding``.
    :param datapool_uri: the datapool; its ``_layout/basis.npz`` is read, or written by the first run.
    :param credentials: the datapool store's credentials.
    """
    n = rows.num_rows
    xs = np.full(n, np.nan, dtype=np.float32)
    ys = np.full(n, np.nan, dtype=np.float32)
    idx, mat = embedding_matrix(rows)
    if len(idx):
        uri = basis_uri(datapool_uri)
        basis = _load_basis(uri, credentials, mat.shape[1])
        if basis is None:
            basis = pca_basis(mat)
            _save_basis(uri, credentials, *basis)
            log.info("Fitted the embedding map's basis on %d embeddings: %s", min(len(mat), 5000), uri)
        xy = project_2d(mat, *basis).astype(np.float32)
        xs[idx], ys[idx] = xy[:, 0], xy[:, 1]
    valid = ~np.isnan(xs)
    out = rows
    for name, values in ((C.LAYOUT_X, xs), (C.LAYOUT_Y, ys)):
        arr = pa.array(values, pa.float32(), mask=~valid)
        if name in out.column_names:
            out = out.set_column(out.schema.get_field_index(name), name, arr)
        else:
            out = out.append_column(name, arr)
    return out


def with_layout(rows: pa.Table, datapool_uri: str, credentials: StorageCredentials | None = None) -> pa.Table:
    """:func:`add_layout`, but a failure is logged and the rows go on without a map (never fails a run)."""
    try:
        return add_layout(rows, datapool_uri, credentials)
    except Exception:  # noqa: BLE001 - the map is a view; the selection must still commit
        log.exception("Could not compute the embedding map's layout; this run's samples have no map position.")
        return rows
