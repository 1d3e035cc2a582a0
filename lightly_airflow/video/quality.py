"""The frame corruptness score that ``corruptness_check.corruption_threshold`` applies to.

A damaged video still decodes: FFmpeg conceals missing or broken data by filling blocks with flat mid-grey
(no reference frame) and broken encoders or capture devices emit frames of one colour. The score of a frame
is in ``[0, 1]``, the larger of

- **concealed**: the share of the frame's 8×8 luma blocks that are flat (max − min ≤ 2) and mid-grey (mean
  within ±8 of 128), i.e. the area a decoder filled in; and
- **uniform**: ``1 − std(luma) / 2`` clipped to ``[0, 1]``: 1 for a frame of one colour, 0 once the luma
  varies by a standard deviation of 2 grey levels or more.

A frame whose score is above the threshold (default 0.1: a tenth of the frame concealed, or an almost
uniform frame) is ``corrupt`` with the score in its reason; a frame that does not decode at all is corrupt
regardless. The score is stored per frame as ``metadata.lightly.corruptness``; set the threshold to 1 to
keep every decodable frame. A genuinely flat mid-grey surface covering more than the threshold also scores
high: raise the threshold for such footage.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lightly_airflow.jit import numba

BLOCK = 8
FLAT_RANGE = 2
GREY = 128
GREY_TOLERANCE = 8
UNIFORM_STD = 2.0


@numba.njit(cache=True, nogil=True)
def _block_stats(gray: np.ndarray) -> tuple[int, int, np.int64, np.int64]:
    """One pass: (concealed blocks, blocks, sum of luma, sum of squared luma)."""
    h, w = gray.shape
    total = np.int64(0)
    total_sq = np.int64(0)
    for i in range(h):
        for j in range(w):
            v = np.int64(gray[i, j])
            total += v
            total_sq += v * v
    bh, bw = h // BLOCK, w // BLOCK
    concealed = 0
    for bi in range(bh):
        for bj in range(bw):
            lo = 255
            hi = 0
            for i in range(bi * BLOCK, bi * BLOCK + BLOCK):
                for j in range(bj * BLOCK, bj * BLOCK + BLOCK):
                    v = gray[i, j]
                    lo = min(lo, v)
                    hi = max(hi, v)
            if hi - lo <= FLAT_RANGE and abs((np.int32(hi) + np.int32(lo)) // 2 - GREY) <= GREY_TOLERANCE:
                concealed += 1
    return concealed, bh * bw, total, total_sq


def frame_corruptness(gray: np.ndarray) -> float:
    """The corruptness score of one frame from its 8-bit luma ``(H, W)``."""
    if gray.size == 0:
        return 1.0
    concealed, blocks, total, total_sq = _block_stats(np.ascontiguousarray(gray, dtype=np.uint8))
    n = gray.size
    mean = total / n
    std = float(np.sqrt(max(total_sq / n - mean * mean, 0.0)))
    uniform = min(1.0, max(0.0, 1.0 - std / UNIFORM_STD))
    return max(uniform, concealed / blocks if blocks else 0.0)


def apply_corruption_threshold(rows: pa.Table, threshold: float) -> pa.Table:
    """Mark ``ok`` frames whose ``metadata.lightly.corruptness`` exceeds ``threshold`` as ``corrupt`` (with
    the score and the threshold in the reason); other rows are returned unchanged."""

    import pyarrow.compute as pc

    from lightly_airflow import columns as C

    col = C.lightly_metadata_column("corruptness")
    if col not in rows.column_names or C.STATUS not in rows.column_names:
        return rows
    score = rows.column(col)
    bad = pc.fill_null(pc.and_(pc.equal(rows.column(C.STATUS), C.STATUS_OK), pc.greater(score, threshold)), False)
    if not pc.any(bad).as_py():
        return rows
    reasons = [
        f"frame corruptness {s:.3f} > corruption_threshold {threshold} (grey-concealed or uniform frame)" if b else r
        for b, s, r in zip(bad.to_pylist(), score.to_pylist(), rows.column(C.STATUS_REASON).to_pylist())
    ]
    status = pc.if_else(bad, C.STATUS_CORRUPT, rows.column(C.STATUS))
    rows = rows.set_column(rows.column_names.index(C.STATUS), C.STATUS, status)
    return rows.set_column(rows.column_names.index(C.STATUS_REASON), C.STATUS_REASON, pa.array(reasons, pa.string()))
