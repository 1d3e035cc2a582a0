"""HEIC/HEIF photos, the iPhone camera's format: read through pi-heif's Pillow plugin, and written for tests and the
demo.

:func:`register` (called when :mod:`lightly_airflow.pixels` loads, which every pass that decodes images imports)
lets Pillow open HEIF files; pi-heif (libheif with libde265, ~24 ms to import) loads on the first one a process
opens. Its plugin applies the file's rotation and mirror properties (``irot``/``imir``) as it decodes and resets
the EXIF orientation to 1, so the upright rule of ``pixels`` never turns a photo twice; an embedded ICC profile
(iPhones: Display P3) comes in ``img.info["icc_profile"]`` and is converted to sRGB like a JPEG's. Depth maps,
auxiliary images and embedded thumbnails are not decoded.

pi-heif decodes only (pillow-heif's wheels carry the GPL x265 encoder); :func:`encode_heic` writes the small HEIC
files the tests and the demo need: one HEVC picture, or a grid of tiles as iPhones store them, coded by FFmpeg's
libx265 through PyAV.
"""

from __future__ import annotations

import io
import struct
from typing import IO, Any

#: ISO media brands (bytes 8..12, after ``ftyp``) of HEIF images and sequences: iPhone photos are ``heic``.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
#: File extensions of HEIF images (lower case, no dot).
HEIF_EXTENSIONS: tuple[str, ...] = ("heic", "heif", "hif")
#: Pillow's format name of HEIF images (``img.format``).
FORMAT = "HEIF"
#: pi-heif's options: only the primary image is decoded.
PLUGIN_OPTIONS: dict[str, Any] = {"thumbnails": False, "depth_images": False, "aux_images": False}


def accepts(prefix: bytes) -> bool:
    """Whether the first bytes of a file are a HEIF image's (a ``ftyp`` box of a HEIF brand; AVIF is Pillow's own)."""
    return prefix[4:8] == b"ftyp" and prefix[8:12] in HEIF_BRANDS


def _open(fp: IO[bytes], filename: str | bytes | None = None) -> Any:
    """Pillow's factory for HEIF until pi-heif is loaded: loads it (its own factory replaces this one) and opens."""
    try:
        from pi_heif import as_plugin, register_heif_opener
    except ImportError as exc:  # (a broken install: Pillow then says it cannot identify the file, pixels says why)
        raise SyntaxError(f"no HEIF decoder: {exc}") from None
    register_heif_opener(**PLUGIN_OPTIONS)
    return as_plugin.HeifImageFile(fp, filename)


def register() -> None:
    """Let Pillow open HEIF files in this process (once; pi-heif itself loads on the first HEIF file)."""
    from PIL import Image

    if FORMAT not in Image.OPEN:
        Image.register_open(FORMAT, _open, accepts)
        Image.register_extensions(FORMAT, [f".{e}" for e in HEIF_EXTENSIONS])


def unreadable(data: bytes) -> str:
    """Why HEIF bytes (a HEIF brand after ``ftyp``) that Pillow cannot identify are no image, in words a user can
    act on: libheif's own words for what it could not read, or that the decoder is not installed."""
    brand = data[8:12].decode("latin-1")
    try:
        import pi_heif
    except ImportError as exc:
        return (f"not an image that can be read here: the file is HEIC/HEIF (the iPhone's photo format, brand "
                f"{brand!r}) and pi-heif, its decoder, is not installed ({exc}): reinstall lightly-airflow with its "
                "dependencies, or convert the file to JPEG")
    try:
        pi_heif.open_heif(io.BytesIO(data))
        problem = "Pillow cannot open it"
    except Exception as exc:  # noqa: BLE001 - libheif's errors come as ValueError, RuntimeError, ...
        problem = str(exc) or type(exc).__name__
    return (f"not a HEIC/HEIF image that can be read: the file starts as one (brand {brand!r}) but {problem}: a "
            "truncated or damaged file (copy it again from the phone or camera), or a HEIF variant without a HEVC "
            "picture")


# ------------------------------------------------------------------------------------------------- writing
def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24) + payload)


def _mp4_box(data: bytes, kind: bytes) -> bytes:
    """The payload of the first ``kind`` box in an MP4 file PyAV wrote (one video track: no earlier box nests a
    name of this kind)."""
    at = data.index(kind)
    (size,) = struct.unpack(">I", data[at - 4:at])
    return data[at + 4:at - 4 + size]


def _hevc_pictures(pictures: list[Any], qp: int) -> tuple[bytes, list[bytes]]:
    """Pictures of one size coded by libx265 each on its own (intra only, as HEIF tiles are): their decoder
    configuration (``hvcC``) and each one's length-prefixed NAL units, taken from an MP4 (its muxer writes them in
    the form HEIF stores). Full-range BT.601 YUV 4:2:0."""
    import av

    height, width = pictures[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx265", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"x265-params": f"log-level=error:qp={qp}:range=full:colormatrix=smpte170m:keyint=1:"
                                         "min-keyint=1:bframes=0:open-gop=0"}
        packets = []
        for pts, rgb in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU601", dst_color_range="JPEG")
            frame.pts = pts
            packets += stream.encode(frame)
        for packet in [*packets, *stream.encode(None)]:
            if packet.size:
                out.mux(packet)
    mp4 = buf.getvalue()
    stsz = _mp4_box(mp4, b"stsz")
    fixed, count = struct.unpack(">II", stsz[4:12])
    sizes = [fixed] * count if fixed else list(struct.unpack(f">{count}I", stsz[12:12 + 4 * count]))
    data, at, coded = _mp4_box(mp4, b"mdat"), 0, []
    for size in sizes:
        coded.append(data[at:at + size])
        at += size
    return _mp4_box(mp4, b"hvcC"), coded


def encode_heic(rgb: Any, *, rotation: int = 0, icc_profile: bytes | None = None, exif: bytes | None = None,
                tile: int | None = None, qp: int = 10, xmp: bytes | None = None) -> bytes:
    """A HEIC file of one picture, as an iPhone stores it in outline: the picture as the sensor saw it (in a grid
    of ``tile`` x ``tile`` HEVC tiles, as iPhones store 512 x 512 ones, or whole), the turn that shows it upright as
    an ``irot`` property, optionally an ICC profile and EXIF metadata.

    :param rgb: (H, W, 3) uint8, H and W even (4:2:0) and at least 16 (libx265 refuses 8 x 8).
    :param rotation: degrees counter-clockwise (0, 90, 180, 270) a viewer turns the stored picture.
    :param icc_profile: ICC profile bytes (a ``colr`` box of type ``prof``); colours are otherwise sRGB (``nclx``).
    :param exif: EXIF bytes (as Pillow's ``Image.Exif().tobytes()``, ``Exif\\0\\0`` header included or not).
    :param tile: the side of the grid's tiles (even, >= 16); the last row and column are padded, the grid's output
        size crops them.
    :param qp: libx265's quantiser (0: near lossless; 10: ~1 level of error on smooth pictures).
    :param xmp: an XMP packet (a ``mime`` item of type ``application/rdf+xml``, as Apple and Adobe store it).
    """
    import numpy as np

    if rotation % 90 or not 0 <= rotation < 360:
        raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees, not {rotation}")
    height, width = rgb.shape[:2]
    if tile is None:
        rows = columns = 1
        pictures = [rgb]
    else:
        rows, columns = -(-height // tile), -(-width // tile)
        padded = np.pad(rgb, ((0, rows * tile - height), (0, columns * tile - width), (0, 0)), mode="edge")
        pictures = [np.ascontiguousarray(padded[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile])
                    for r in range(rows) for c in range(columns)]
    hvcc, coded = _hevc_pictures(pictures, qp)
    # Items: (id, type, data, hidden); the primary is 1: the picture, or the grid of the tiles 2..n+1.
    items: list[tuple[int, bytes, bytes, bool]] = []
    if tile is None:
        items.append((1, b"hvc1", coded[0], False))
    else:
        items.append((1, b"grid", struct.pack(">BBBBHH", 0, 0, rows - 1, columns - 1, width, height), False))
        items += [(2 + i, b"hvc1", data, True) for i, data in enumerate(coded)]
    exif_id = len(items) + 1
    if exif is not None:  # (the Exif item's data starts with the offset of the TIFF header within it)
        items.append((exif_id, b"Exif", struct.pack(">I", 6 if exif.startswith(b"Exif\0\0") else 0) + exif, False))
    described = [exif_id] if exif is not None else []  # (metadata items: each describes the primary image)
    if xmp is not None:
        items.append((len(items) + 1, b"mime", xmp, False))
        described.append(len(items))
    tile_height, tile_width = pictures[0].shape[:2]
    # properties (1-based): the decoder configuration, the tiles' size, then the image's size, colours and turn
    properties = [_box(b"hvcC", hvcc), _full_box(b"ispe", 0, struct.pack(">II", tile_width, tile_height)),
                  _full_box(b"ispe", 0, struct.pack(">II", width, height)),
                  _box(b"colr", b"nclx" + struct.pack(">HHHB", 1, 13, 6, 0x80))]  # BT.709/sRGB, BT.601, full
    if icc_profile is not None:
        properties.append(_box(b"colr", b"prof" + icc_profile))
    if rotation:
        properties.append(_box(b"irot", bytes([rotation // 90])))
    shown = list(range(3, len(properties) + 1))  # the primary image's own properties
    if tile is None:
        associations = [(1, [0x80 | 1, *shown])]  # (high bit: essential)
    else:
        associations = [(1, shown)] + [(2 + i, [0x80 | 1, 2]) for i in range(len(coded))]
    ipma = _full_box(b"ipma", 0, struct.pack(">I", len(associations)) + b"".join(
        struct.pack(">HB", item_id, len(props)) + bytes(props) for item_id, props in associations))
    references = b""
    if tile is not None:
        references += _box(b"dimg", struct.pack(">HH", 1, len(coded)) + b"".join(
            struct.pack(">H", 2 + i) for i in range(len(coded))))
    for item_id in described:
        references += _box(b"cdsc", struct.pack(">HHH", item_id, 1, 1))
    iref = _full_box(b"iref", 0, references) if references else b""
    ftyp = _box(b"ftyp", b"heic" + struct.pack(">I", 0) + b"mif1heic")

    def meta(data_start: int) -> bytes:
        locations, offset = [], data_start
        for item_id, _, data, _ in items:
            locations.append(struct.pack(">HHHII", item_id, 0, 1, offset, len(data)))
            offset += len(data)
        iloc = _full_box(b"iloc", 0, bytes([0x44, 0x00]) + struct.pack(">H", len(items)) + b"".join(locations))
        iinf = _full_box(b"iinf", 0, struct.pack(">H", len(items)) + b"".join(
            _box(b"infe", struct.pack(">I", (2 << 24) | hidden) + struct.pack(">HH", item_id, 0) + kind + b"\0"
                 + (b"application/rdf+xml\0" if kind == b"mime" else b""))
            for item_id, kind, _, hidden in items))
        return _full_box(b"meta", 0, _full_box(b"hdlr", 0, struct.pack(">I", 0) + b"pict" + bytes(13))
                         + _full_box(b"pitm", 0, struct.pack(">H", 1)) + iloc + iinf + iref
                         + _box(b"iprp", _box(b"ipco", b"".join(properties)) + ipma))

    head = len(ftyp) + len(meta(0)) + 8  # (the boxes' sizes do not depend on the offsets)
    return ftyp + meta(head) + _box(b"mdat", b"".join(data for _, _, data, _ in items))
