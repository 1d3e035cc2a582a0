"""A display matrix that mirrors the picture (a front camera, an editor's flip) is applied as ``ffmpeg`` applies it.

PyAV reads only the matrix's angle (``VideoFrame.rotation``): a horizontally mirrored video reads -180° and was
turned upside down; a vertically mirrored or transposed one was left as stored or only turned. The frames are made
lossless (FFV1, RGB) so every pixel of the upright frame is compared with the stored picture mirrored as the
matrix says: what ``(x', y') = (a·x + c·y, b·x + d·y)`` maps each stored pixel to.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ONE = 1 << 16  # 16.16 fixed point
#: matrix (a, b, c, d) -> the stored picture as players show it
MIRRORS: dict[str, tuple[tuple[int, int, int, int], Any]] = {
    "hflip": ((-1, 0, 0, 1), lambda a: a[:, ::-1]),
    "vflip": ((1, 0, 0, -1), lambda a: a[::-1]),
    "transpose": ((0, 1, 1, 0), lambda a: a.transpose(1, 0, 2)),
    "antitranspose": ((0, -1, -1, 0), lambda a: a[::-1, ::-1].transpose(1, 0, 2)),
    "clockwise": ((0, 1, -1, 0), lambda a: np.rot90(a, -1)),  # a phone's portrait video (unchanged behaviour)
}


def _picture() -> np.ndarray:
    """48×32 (w×h) with four quadrants of distinct colours: any turn or mirror moves them."""
    a = np.zeros((32, 48, 3), np.uint8)
    a[:16, :24] = (255, 0, 0)
    a[:16, 24:] = (0, 255, 0)
    a[16:, :24] = (0, 0, 255)
    a[16:, 24:] = (255, 255, 255)
    a[2, 3] = (9, 99, 199)  # one pixel that tells a transpose from a quarter turn
    return a


def _video(path: Path, matrix: tuple[int, int, int, int]) -> None:
    import av

    a, b, c, d = matrix
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "bgr0"
        stream.set_display_matrix([a * ONE, b * ONE, 0, c * ONE, d * ONE, 0, 0, 0, 1 << 30])
        for packet in stream.encode(av.VideoFrame.from_ndarray(_picture(), format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("name", list(MIRRORS))
def test_a_mirroring_display_matrix_is_applied_to_every_output(tmp_path: Path, name: str) -> None:
    from PIL import Image

    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.export import _png
    from lightly_airflow.video.frames import analyse_frame, upright_rgb

    matrix, shown = MIRRORS[name]
    path = tmp_path / f"{name}.mkv"
    _video(path, matrix)
    (got,) = list(decode_frames(str(path), [(0, None)], seekable=False))
    expected = np.ascontiguousarray(shown(_picture()))

    assert np.array_equal(upright_rgb(got.frame), expected)
    png = np.asarray(Image.open(io.BytesIO(_png(got.frame, "etag"))).convert("RGB"))
    assert np.array_equal(png, expected)  # the exported frame PNG
    small, metrics, digest, _ = analyse_frame(got.frame, 16)
    assert (metrics["width"], metrics["height"]) == (expected.shape[1], expected.shape[0])
    assert digest == hashlib.sha256(expected.tobytes() + f"{expected.shape}".encode()).hexdigest()
    assert small is not None and np.abs(small[2, 2].astype(int) - expected[4, 4]).max() < 40  # the model input's corner
    assert np.abs(small[-3, -3].astype(int) - expected[-5, -5]).max() < 40
