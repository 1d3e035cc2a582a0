"""The frame corruptness score that ``corruptness_check.corruption_threshold`` applies to.

A damaged video still decodes: FFmpeg conceals what it could not decode, and broken encoders or capture
devices emit frames of one colour. The score of a frame is in ``[0, 1]``, the largest of

- **decoder**: 1 when the decoder itself flags the frame as damaged (``AVFrame.decode_error_flags`` or
  ``AV_FRAME_FLAG_CORRUPT``, PyAV's ``frame.is_corrupt``: invalid bitstream, missing reference, concealment);
- **concealed**: the share of the frame's 16×16 macroblocks (the codecs' coding grid, from the top-left
  corner) whose luma is *exactly* constant and mid-grey (within ±8 of 128) and, where the frame's RGB is
  given, whose pixels are all grey too (R, G and B within :data:`NEUTRAL_SPREAD` of each other): what a
  decoder fills in where it has no data and no reference picture (luma and chroma at 128). A flat orange or
  teal area of mid-grey luma is no concealment. Whole macroblocks, exactly constant: a clean picture's flat grey wall
  is not (its 16×16 blocks keep a little texture or noise, and codecs such as MPEG-4 Part 2 make flat 8×8 DCT
  blocks of it, which the score of earlier versions, 8×8 blocks within ±1 grey level, counted: 14-19 % of
  the demo's clean "coffee" frames; now under 1 %);
- **uniform**: ``1 − std / 2`` clipped to ``[0, 1]``, ``std`` the luma's standard deviation or, where the
  frame's RGB is given, the largest of it and the R, G and B channels' ones: 1 for a frame of one colour
  (black, grey, any single colour), 0 once the luma or a colour channel varies by a standard deviation of 2
  levels or more. Luma alone called a grey frame with a saturated object of the same luma (a red car on a
  grey road of equal brightness) uniform; the channels are read only when the luma is that flat.

A frame whose score is above the threshold (default 0.1: a tenth of the frame concealed, an almost uniform
frame, or any frame the decoder flags) is ``corrupt`` with the score in its reason; a frame that does not
decode at all is corrupt regardless. The score is stored per frame as ``metadata.lightly.corruptness``; set
the threshold to 1 to keep every decodable frame. Limitation: where FFmpeg conceals by copying the previous
picture (inter frames of H.264 and VP8/9) a frame looks plausible; the decoder's errors on its packets are
logged and the frames it could not produce at all are reported, but such a frame is only caught when the
decoder flags it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lightly_airflow.jit import njit
from lightly_airflow.metadata.kernels import pixel_sums

#: The macroblock size of H.264 / MPEG-2 / MPEG-4 / VP8: concealment fills whole macroblocks.
BLOCK = 16
GREY = 128
GREY_TOLERANCE = 8
UNIFORM_STD = 2.0
#: A concealed macroblock's pixels are grey: ``max(R, G, B) − min(R, G, B)`` at most this (a decoder's fill has
#: U = V = 128, i.e. R = G = B; the margin covers the YUV→RGB conversion's rounding), a saturated colour is far above.
NEUTRAL_SPREAD = 16
_NO_RGB = np.zeros((0, 0, 3), np.uint8)


@njit(cache=True, nogil=True)
def _block_stats(gray: np.ndarray, rgb: np.ndarray) -> tuple[int, int, np.int64, np.int64]:
    """One pass: (exactly constant mid-grey macroblocks, macroblocks, sum of luma, sum of squared luma).

    ``rgb``: the same picture's ``(H, W, 3)`` RGB, whose pixels a constant block's must all be grey to count
    (read for those blocks only), or an empty array (luma alone).
    """
    h, w = gray.shape
    colour = rgb.shape[0] == h and rgb.shape[1] == w
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
            first = gray[bi * BLOCK, bj * BLOCK]
            if abs(np.int32(first) - GREY) > GREY_TOLERANCE:
                continue
            constant = True
            for i in range(bi * BLOCK, bi * BLOCK + BLOCK):
                for j in range(bj * BLOCK, bj * BLOCK + BLOCK):
                    if gray[i, j] != first:
                        constant = False
                        break
                    if colour:
                        r, g, b = np.int32(rgb[i, j, 0]), np.int32(rgb[i, j, 1]), np.int32(rgb[i, j, 2])
                        if max(r, g, b) - min(r, g, b) > NEUTRAL_SPREAD:
                            constant = False
                            break
                if not constant:
                    break
            if constant:
                concealed += 1
    return concealed, bh * bw, total, total_sq


def frame_corruptness(gray: np.ndarray, decoder_flagged: bool = False, rgb: np.ndarray | None = None) -> float:
    """The corruptness score of one frame from its 8-bit luma ``(H, W)`` and whether the decoder flagged it.

    :param rgb: the same picture as ``(H, W, 3)`` uint8 RGB, same orientation: a frame whose luma is flat but
        whose colours vary (a saturated object on a grey of the same luma) is then not uniform, and a flat
        coloured area of mid-grey luma not concealed. Without it the score reads the luma alone.
    """
    if gray.size == 0 or decoder_flagged:
        return 1.0
    colour = None
    if rgb is not None and rgb.ndim == 3 and rgb.shape[:2] == gray.shape and rgb.shape[2] >= 3:
        colour = rgb[:, :, :3]
    concealed, blocks, total, total_sq = _block_stats(np.ascontiguousarray(gray, dtype=np.uint8),
                                                      _NO_RGB if colour is None else np.asarray(colour, np.uint8))
    n = gray.size
    std = _std(float(total), float(total_sq), n)
    if colour is not None and std < UNIFORM_STD:  # flat luma: is the colour flat too? (one more pass, rare)
        sums, squares, _ = pixel_sums(np.ascontiguousarray(colour, dtype=np.uint8))
        std = max(std, *(_std(float(s), float(q), n) for s, q in zip(sums, squares)))
    uniform = min(1.0, max(0.0, 1.0 - std / UNIFORM_STD))
    return max(uniform, concealed / blocks if blocks else 0.0)


def _std(total: float, total_sq: float, n: int) -> float:
    mean = total / n
    return float(np.sqrt(max(total_sq / n - mean * mean, 0.0)))


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
        f"frame corruptness {s:.3f} > corruption_threshold {threshold} (decoder-flagged, grey-concealed or uniform frame)" if b else r
        for b, s, r in zip(bad.to_pylist(), score.to_pylist(), rows.column(C.STATUS_REASON).to_pylist())
    ]
    status = pc.if_else(bad, C.STATUS_CORRUPT, rows.column(C.STATUS))
    rows = rows.set_column(rows.column_names.index(C.STATUS), C.STATUS, status)
    return rows.set_column(rows.column_names.index(C.STATUS_REASON), C.STATUS_REASON, pa.array(reasons, pa.string()))
