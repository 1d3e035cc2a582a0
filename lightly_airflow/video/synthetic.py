"""Short videos of moving scenes made from scikit-image's bundled photographs (for the demo, the tests and
the benchmark): a camera window pans and zooms across a photo, so neighbouring frames are similar and
distant ones differ, like real footage."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

#: scikit-image photos used as scenes (bundled with the package, no download).
SCENES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "coffee")

#: (container format for PyAV, codec, options) per extension.
CODECS: dict[str, tuple[str | None, str, dict[str, str]]] = {
    "mp4": ("mp4", "libx264", {"g": "24", "bf": "2", "preset": "veryfast"}),
    "m4v": ("mp4", "libx264", {"g": "24", "preset": "veryfast"}),
    "mov": ("mov", "libx264", {"g": "24", "preset": "veryfast"}),
    "avi": ("avi", "mpeg4", {"g": "24", "qscale": "3"}),
    "webm": ("webm", "libvpx", {"g": "24"}),
    "mkv": ("matroska", "libx264", {"g": "24", "bf": "2", "preset": "veryfast"}),
    "mts": ("mpegts", "libx264", {"g": "24", "preset": "veryfast"}),
    "m2ts": ("mpegts", "libx264", {"g": "24", "bf": "2", "preset": "veryfast"}),
    "ts": ("mpegts", "libx264", {"g": "24", "bf": "2", "preset": "veryfast"}),
    "mpg": ("mpeg", "mpeg2video", {"g": "12"}),
    "mpeg": ("mpeg", "mpeg2video", {"g": "12"}),
}


#: Muxer options per extension: an AVCHD camcorder's transport stream has 192-byte packets (BDAV).
CONTAINER_OPTIONS: dict[str, dict[str, str]] = {"mts": {"mpegts_m2ts_mode": "1"}, "m2ts": {"mpegts_m2ts_mode": "1"}}


def scene(name: str) -> np.ndarray:
    """A scikit-image photo as ``(H, W, 3)`` uint8 RGB."""
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def scene_frames(photo: np.ndarray, n: int, size: tuple[int, int], *, seed: int = 0, pan: float = 0.03) -> Any:
    """``n`` frames ``(h, w, 3)`` of a camera slowly panning across ``photo`` (``pan`` of the free space over
    the whole video) while a dark object walks through the scene, like a surveillance clip."""
    from PIL import Image, ImageDraw

    h, w = size[1], size[0]
    ph, pw = photo.shape[:2]
    rng = np.random.default_rng(seed)
    zoom = rng.uniform(0.5, 0.7)
    cw, ch = pw * zoom, ph * zoom
    x0, y0 = rng.uniform(0.0, 1.0 - pan, 2)
    img = Image.fromarray(photo)
    walker_y = rng.uniform(0.3, 0.7) * h
    for i in range(n):
        t = i / max(n - 1, 1)
        cx = (x0 + pan * t) * (pw - cw)
        cy = (y0 + pan * t * 0.3) * (ph - ch)
        crop = img.resize((w, h), Image.Resampling.BILINEAR, box=(cx, cy, cx + cw, cy + ch))
        draw = ImageDraw.Draw(crop)
        wx = (0.3 + 0.2 * t) * w
        draw.ellipse((wx - 0.05 * w, walker_y - 0.12 * h, wx + 0.05 * w, walker_y + 0.12 * h), fill=(40, 30, 30))
        yield np.asarray(crop)


def write_video(
    path: str, frames: Any, *, ext: str | None = None, rate: int = 24, size: tuple[int, int] = (160, 120),
    rotation: int = 0,
) -> int:
    """Encode ``frames`` (iterable of ``(h, w, 3)`` uint8) to ``path`` with PyAV; returns the frame count.

    ``rotation``: the display matrix's counter-clockwise rotation in degrees (a phone's portrait video is
    stored landscape with ``-90``: players turn it 90° clockwise), as ``VideoFrame.rotation`` reads it back.
    """
    import av

    ext = (ext or path.rsplit(".", 1)[-1]).lower()
    fmt, codec, options = CODECS[ext]
    pictures = (av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24") for rgb in frames)
    return _encode(path, fmt, codec, dict(options), "yuv420p", pictures, rate=rate, size=size, rotation=rotation,
                   container_options=CONTAINER_OPTIONS.get(ext))


def _encode(path: str, fmt: str | None, codec: str, options: dict[str, str], pix_fmt: str, pictures: Any, *,
            rate: int, size: tuple[int, int], rotation: int = 0, container_options: dict[str, str] | None = None
            ) -> int:
    """Encode the ``av.VideoFrame`` s ``pictures`` into a new stream of ``path``; returns the frame count."""
    import av

    count = 0
    with av.open(path, "w", format=fmt, options=container_options or {}) as container:
        stream: Any = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in pictures:
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count


def make_scene_video(
    path: str, scene_name: str, n_frames: int, *, size: tuple[int, int] = (160, 120), seed: int = 0, rate: int = 24
) -> int:
    """Write a video of ``n_frames`` frames panning across the scikit-image photo ``scene_name``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return write_video(path, scene_frames(scene(scene_name), n_frames, size, seed=seed), rate=rate, size=size)


def make_scene_videos(folder: str, specs: Sequence[tuple[str, str, int]], **kwargs: Any) -> list[str]:
    """Write videos ``(relative path, scene, frames)`` under ``folder``; returns their paths."""
    out = []
    for i, (rel, name, n) in enumerate(specs):
        path = os.path.join(folder, rel)
        make_scene_video(path, name, n, seed=i, **kwargs)
        out.append(path)
    return out


def cut_without_reencoding(src: str, dst: str, seconds: float) -> None:
    """Copy the MP4 ``src`` to ``dst`` from ``seconds`` on without re-encoding, as ``ffmpeg -ss S -i src -c copy``
    does: the packets from the keyframe before ``seconds`` are kept, and an edit list makes players (and the
    decoder) start at ``seconds``; the packets before it are demuxed with the discard flag."""
    import av

    with av.open(src) as inp, av.open(dst, "w", format="mp4") as out:
        stream: Any = inp.streams.video[0]
        target: Any = out.add_stream_from_template(stream)
        shift = int(seconds / stream.time_base)
        packets: list[Any] = [p for p in inp.demux(stream) if p.size and p.pts is not None and p.dts is not None]
        start = max((p.dts for p in packets if p.is_keyframe and p.pts <= shift), default=0)
        for packet in packets:
            if packet.dts < start:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = target
            out.mux(packet)


def truncate(path: str, keep: float = 0.5) -> None:
    """Cut a file to ``keep`` of its bytes (a video that breaks half way)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(int(size * keep))


#: Lightly's datapool walk-through bucket, as short synthetic scenes: (key, scene, frames) per delivery.
WALKTHROUGH: tuple[tuple[tuple[str, str, int], ...], ...] = (
    (("campus4-c0.avi", "astronaut", 48), ("campus7-c0.avi", "coffee", 40), ("passageway1-c1.avi", "chelsea", 40)),
    (("terrace1-c0.avi", "rocket", 40), ("4p-c0.avi", "immunohistochemistry", 40)),
)


def add_walkthrough_videos(root: str, delivery: int, *, size: tuple[int, int] = (160, 120)) -> list[str]:
    """Write delivery ``delivery`` (0 or 1) of :data:`WALKTHROUGH` under ``root``; returns the video keys."""
    specs = WALKTHROUGH[delivery]
    for i, (key, name, n) in enumerate(specs):
        make_scene_video(os.path.join(root, key), name, n, seed=10 * delivery + i, size=size)
    return [key for key, _, _ in specs]


#: BT.709 linear RGB to BT.2020 linear RGB (ITU-R BT.2087).
_BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])


def hdr_signal(rgb: np.ndarray, transfer: str) -> np.ndarray:
    """``(..., 3)`` sRGB uint8 values as the non-linear BT.2020 RGB of an HDR video (0-1) that shows them with
    their diffuse white at the reference white of ITU-R BT.2408: HLG signal 0.75 (``transfer="hlg"``), 203 nits in
    PQ (``"pq"``)."""
    v = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4) @ _BT709_TO_BT2020.T
    linear = np.clip(linear, 0.0, 1.0)
    if transfer == "hlg":
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        e = linear * (np.exp((0.75 - c) / a) + b) / 12.0  # (scene light of the reference white: signal 0.75)
        hlg: np.ndarray = np.where(e <= 1 / 12, np.sqrt(3 * e), a * np.log(np.maximum(12 * e - b, 1e-12)) + c)
        return hlg
    if transfer == "pq":
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        y = (linear * 203.0 / 10000.0) ** m1
        pq: np.ndarray = ((c1 + c2 * y) / (1 + c3 * y)) ** m2
        return pq
    raise ValueError(f"unknown HDR transfer {transfer!r} (hlg or pq)")


def write_hdr_video(path: str, frames: Any, transfer: str, *, rate: int = 24, size: tuple[int, int] = (160, 120)) -> int:
    """Encode ``frames`` (iterable of ``(h, w, 3)`` sRGB uint8) as a 10-bit HEVC HDR video (BT.2020, limited range,
    ``transfer`` ``"hlg"``, an iPhone's HDR video, or ``"pq"``, HDR10), tagged as such: what a player shows is the
    frames' colours. Returns the frame count."""
    import av
    from av.video.reformatter import ColorPrimaries, ColorTrc

    trc = {"hlg": ColorTrc.ARIB_STD_B67, "pq": ColorTrc.SMPTE2084}[transfer]
    kr, kb = 0.2627, 0.0593  # BT.2020 non-constant luminance

    def pictures() -> Any:
        for rgb in frames:
            e = hdr_signal(rgb, transfer)
            y = kr * e[..., 0] + (1 - kr - kb) * e[..., 1] + kb * e[..., 2]
            cb = (e[..., 2] - y) / (2 * (1 - kb))
            cr = (e[..., 0] - y) / (2 * (1 - kr))
            frame = av.VideoFrame(size[0], size[1], "yuv420p10le")
            planes = (64 + 876 * y, 512 + 896 * _half(cb), 512 + 896 * _half(cr))
            for plane, values in zip(frame.planes, planes, strict=True):
                buf = np.zeros((values.shape[0], plane.line_size // 2), dtype=np.uint16)
                buf[:, : values.shape[1]] = np.clip(np.round(values), 0, 1023)
                plane.update(buf.tobytes())
            frame.colorspace, frame.color_range = 9, 1  # (BT.2020 NCL matrix, limited range)
            frame.color_trc, frame.color_primaries = trc, ColorPrimaries.BT2020
            yield frame

    params = ("log-level=error:lossless=1:keyint=24:colorprim=bt2020:colormatrix=bt2020nc:transfer="
              + ("arib-std-b67" if transfer == "hlg" else "smpte2084"))
    return _encode(path, "mp4", "libx265", {"x265-params": params, "preset": "ultrafast"}, "yuv420p10le", pictures(),
                   rate=rate, size=size)


def _half(plane: np.ndarray) -> np.ndarray:
    """A chroma plane subsampled 2 x 2 (4:2:0) by averaging."""
    h, w = plane.shape
    p = plane[: h - h % 2, : w - w % 2]
    mean: np.ndarray = (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) / 4.0
    return mean
