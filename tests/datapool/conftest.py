"""Rows of real runs for the datapool tests: scikit-learn's digits as samples, their pixels as embeddings."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

DIM = 64
MODEL = "digits-pixels"


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    x = data.data.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, data.target


def run_rows(
    digits: tuple[np.ndarray, np.ndarray], indices: Sequence[int], *, picks: Sequence[int] = (),
    corrupt: Sequence[int] = (), extra_metadata: str | None = None, etag_suffix: str = "",
) -> pa.Table:
    """One run's rows: sample i is ``digits/<label>/<i>.png``; ``picks`` are indices into ``indices`` in pick order."""
    x, y = digits
    idx = list(indices)
    keys = [f"digits/{y[i]}/{i:05d}.png" for i in idx]
    etags = [hashlib.md5(x[i].tobytes() + etag_suffix.encode()).hexdigest() for i in idx]
    emb = [None if j in corrupt else x[i].tolist() for j, i in enumerate(idx)]
    rank = {p: r for r, p in enumerate(picks)}
    table = {
        C.KEY: keys,
        C.SIZE: pa.array([int(64 + i) for i in idx], pa.int64()),
        C.ETAG: etags,
        C.MTIME: pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * len(idx), pa.timestamp("ns", tz="UTC")),
        C.CONTENT_HASH: [hashlib.sha256(x[i].tobytes()).hexdigest() for i in idx],
        C.STATUS: [C.STATUS_CORRUPT if j in corrupt else C.STATUS_OK for j in range(len(idx))],
        C.STATUS_REASON: ["cannot decode" if j in corrupt else None for j in range(len(idx))],
        C.DUPLICATE_OF: pa.nulls(len(idx), pa.string()),
        C.EMBEDDING: pa.array(emb, pa.list_(pa.float32(), DIM)),
        C.lightly_metadata_column("brightness"): pa.array([float(x[i].mean()) for i in idx]),
        C.score_column("cls", "uncertainty_margin"): pa.array([float(y[i]) / 10 for i in idx]),
        C.SELECTED: [j in rank for j in range(len(idx))],
        C.PICK_RANK: pa.array([rank.get(j) for j in range(len(idx))], pa.int64()),
    }
    if extra_metadata:
        table[C.metadata_column(extra_metadata)] = pa.array([f"v{i % 3}" for i in idx])
    return pa.table(table)


def commit_run(pool: Datapool, rows: pa.Table, run_id: str, *, tag: str | None = None, read_version=...):
    """Commit like the select task: read the version first unless one is given."""
    version = pool.version() if read_version is ... else read_version
    return pool.commit(
        rows, run_id=run_id, dag_id="curate", tag=tag, config={"strategies": [{"input": {"type": "EMBEDDINGS"}}]},
        counts={"new": rows.num_rows, "selected": int(sum(rows.column(C.SELECTED).to_pylist()))},
        embedding_model=MODEL, embedding_dim=DIM, read_version=version,
    )


class VersionOptions(HTMLParser):
    """A UI page's ``<option>`` elements as ``(value, disabled, text)`` and its links (the time-travel list)."""

    def __init__(self) -> None:
        super().__init__()
        self.options: list[tuple[str | None, bool, str]] = []
        self.hrefs: list[str] = []
        self._in: dict | None = None

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        a = dict(attrs)
        if tag == "option":
            self._in = a
        if tag == "a":
            self.hrefs.append(a["href"])

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._in is not None:
            self.options.append((self._in.get("value"), "disabled" in self._in, data))
            self._in = None

    @classmethod
    def of(cls, html: str) -> VersionOptions:
        parsed = cls()
        parsed.feed(html)
        return parsed

    def versions(self) -> list[tuple[str | None, bool, str]]:
        """The time-travel list's options (a version number, or a disabled range)."""
        return [o for o in self.options if o[0] is None or o[0].isdigit()]

    def browsed(self) -> list[int]:
        """The versions the page links to for browsing, ascending."""
        return sorted(int(h.rsplit("=", 1)[1]) for h in self.hrefs if "samples?version=" in h)
