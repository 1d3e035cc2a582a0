"""Compiled one-pass pixel statistics: channel sums, luma and the Laplacian, without temporary arrays.

The arithmetic is integer and exact, so the metrics equal the straightforward numpy/Pillow computation
(luma uses Pillow's own fixed-point rounding of ``0.299·R + 0.587·G + 0.114·B``). Measured on a 640×480
photo here: 0.07 ms for the sums and luma (Pillow's histogram + ``convert("L")``: 0.40 ms) and 0.10 ms for
the Laplacian (numpy with int16 temporaries: 0.32 ms).
"""

from __future__ import annotations

import numpy as np

from lightly_airflow.jit import njit


@njit(cache=True, nogil=True)
def pixel_sums(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel sums and sums of squares of a C-contiguous ``(H, W, 3)`` uint8 image, and its 8-bit luma; or of
    an ``(H, W, 4)`` one (Pillow's own RGBX memory, ``pixels.pixel_array``: the fourth byte is not read).

    :returns: ``(sums[3], squares[3], gray[H, W])`` as int64, int64, uint8.
    """
    # (the bytes a pixel a constant in each: read from the shape, the loop took 17 ms instead of 4 at 12 Mpx)
    out: tuple[np.ndarray, np.ndarray, np.ndarray] = _pixel_sums(rgb, 4) if rgb.shape[2] == 4 else _pixel_sums(rgb, 3)
    return out


@njit(cache=True, nogil=True, inline="always")
def _pixel_sums(rgb: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = rgb.shape[0], rgb.shape[1]
    sums = np.zeros(3, np.int64)
    squares = np.zeros(3, np.int64)
    gray = np.empty((h, w), np.uint8)
    flat = rgb.reshape(h, w * c)
    for i in range(h):
        row = flat[i]
        s0 = np.int64(0)
        s1 = np.int64(0)
        s2 = np.int64(0)
        q0 = np.int64(0)
        q1 = np.int64(0)
        q2 = np.int64(0)
        for j in range(w):
            r = np.int32(row[c * j])
            g = np.int32(row[c * j + 1])
            b = np.int32(row[c * j + 2])
            s0 += r
            s1 += g
            s2 += b
            q0 += r * r
            q1 += g * g
            q2 += b * b
            gray[i, j] = np.uint8(
                (np.uint32(r) * np.uint32(19595) + np.uint32(g) * np.uint32(38470) + np.uint32(b) * np.uint32(7471)
                 + np.uint32(0x8000)) >> np.uint32(16)
            )
        sums[0] += s0
        sums[1] += s1
        sums[2] += s2
        squares[0] += q0
        squares[1] += q1
        squares[2] += q2
    return sums, squares, gray


@njit(cache=True, nogil=True)
def laplacian_sums(gray: np.ndarray) -> tuple[int, np.int64, np.int64]:
    """Count, sum and sum of squares of the 3×3 Laplacian (centre 8, neighbours −1) over the valid region."""
    h, w = gray.shape
    total = np.int64(0)
    total_sq = np.int64(0)
    for i in range(1, h - 1):
        a = gray[i - 1]
        b = gray[i]
        c = gray[i + 1]
        for j in range(1, w - 1):
            box = (np.int32(a[j - 1]) + np.int32(a[j]) + np.int32(a[j + 1]) + np.int32(b[j - 1]) + np.int32(b[j + 1])
                   + np.int32(c[j - 1]) + np.int32(c[j]) + np.int32(c[j + 1]))
            v = np.int64(8 * np.int32(b[j]) - box)
            total += v
            total_sq += v * v
    return max(h - 2, 0) * max(w - 2, 0), total, total_sq


@njit(cache=True, nogil=True)
def uniform_rows(rgb: np.ndarray, tolerance: int) -> int:
    """Number of rows of a C-contiguous ``(H, W, 3)`` (or RGBX ``(H, W, 4)``) uint8 image whose every channel spans at
    most ``tolerance`` grey levels (max − min). A row stops being scanned at its first pixel out of range, so a
    natural photo costs a few pixels per row; only uniform rows are read in full."""
    count: int = _uniform_rows(rgb, tolerance, 4) if rgb.shape[2] == 4 else _uniform_rows(rgb, tolerance, 3)
    return count


@njit(cache=True, nogil=True, inline="always")
def _uniform_rows(rgb: np.ndarray, tolerance: int, c: int) -> int:
    h, w = rgb.shape[0], rgb.shape[1]
    if w == 0:
        return 0
    flat = rgb.reshape(h, w * c)
    count = 0
    for i in range(h):
        row = flat[i]
        lo0 = hi0 = np.int32(row[0])
        lo1 = hi1 = np.int32(row[1])
        lo2 = hi2 = np.int32(row[2])
        uniform = True
        for j in range(1, w):
            r = np.int32(row[c * j])
            g = np.int32(row[c * j + 1])
            b = np.int32(row[c * j + 2])
            lo0 = min(lo0, r)
            hi0 = max(hi0, r)
            lo1 = min(lo1, g)
            hi1 = max(hi1, g)
            lo2 = min(lo2, b)
            hi2 = max(hi2, b)
            if hi0 - lo0 > tolerance or hi1 - lo1 > tolerance or hi2 - lo2 > tolerance:
                uniform = False
                break
        if uniform:
            count += 1
    return count
