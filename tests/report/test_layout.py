"""The map layout: one PCA basis per datapool, fitted by the first run, reused by every later run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from sklearn.datasets import load_digits

from lightly_airflow import columns as C
from lightly_airflow.report.layout import add_layout, basis_uri, with_layout


def _rows(x: np.ndarray, missing: int | None = None) -> pa.Table:
    emb = [None if i == missing else v.tolist() for i, v in enumerate(x)]
    return pa.table({C.KEY: [f"k{i}" for i in range(len(x))], C.EMBEDDING: pa.array(emb, pa.list_(pa.float32()))})


def test_basis_is_fitted_once_and_shared(tmp_path: Path) -> None:
    digits = load_digits()
    x = (digits.data / np.linalg.norm(digits.data, axis=1, keepdims=True)).astype(np.float32)
    pool = str(tmp_path / "pool")
    first = add_layout(_rows(x[:600], missing=3), pool)
    assert Path(basis_uri(pool)).exists()
    xs = first.column(C.LAYOUT_X).to_numpy(zero_copy_only=False)
    assert first.column(C.LAYOUT_X).null_count == 1 and np.isnan(xs[3])
    # The first two principal components separate the digit classes: 0s and 6s sit apart from 4s.
    y0 = np.c_[xs, first.column(C.LAYOUT_Y).to_numpy(zero_copy_only=False)]
    labels = digits.target[:600]
    centres = {d: np.nanmean(y0[labels == d], axis=0) for d in (0, 4)}
    spread = np.nanstd(y0, axis=0).mean()
    assert np.linalg.norm(centres[0] - centres[4]) > spread
    # A later run's batch reuses the basis: a sample in both gets the same position.
    second = add_layout(_rows(x[590:700]), pool)
    # (float32 products of batches of other sizes may round differently in the last bit: positions ~0.3 apart,
    # one at -0.0013 differed by 1.5e-8 on a CI run, 1.1e-5 relative)
    np.testing.assert_allclose(second.column(C.LAYOUT_X).to_numpy()[:10], xs[590:600], rtol=1e-5, atol=1e-6)


def test_failure_never_fails_the_run(tmp_path: Path) -> None:
    bad = tmp_path / "file"
    bad.write_text("not a folder")
    rows = _rows(np.eye(3, dtype=np.float32))
    assert with_layout(rows, str(bad)).column_names == rows.column_names  # logged, rows unchanged
