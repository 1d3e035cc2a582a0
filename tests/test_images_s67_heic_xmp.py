"""A HEIC whose XMP packet (and EXIF) also states an orientation (session 67, helper 3).

A HEIF picture is shown by its ``irot``/``imir`` properties alone: the orientation its EXIF or XMP metadata states is
information, never applied (ISO/IEC 23008-12, MIAF; libheif, libvips, imgproxy and jpegview follow it:
strukturag/libheif#227, #680, libvips/libvips#2551). pi-heif applies ``irot``/``imir`` as it decodes and resets the
EXIF orientation to 1 and removes ``tiff:Orientation`` from the XMP packet it hands Pillow, so Pillow's ``getexif``
(which falls back to the XMP packet) finds none and no pass turns the picture a second time. Checked on real HEIC
files (libx265 through PyAV, an XMP ``mime`` item as Apple and Adobe store it): pixels, metrics, the thumbnail, the
model input and the viewable copy all show the picture as ``irot`` turns it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lightly_airflow import pixels
from lightly_airflow.embedding.images import decode_image
from lightly_airflow.heif import encode_heic
from lightly_airflow.metadata.metrics import inspect_image
from lightly_airflow.thumbnails import make_thumbnail


def _xmp(orientation: int, element: bool) -> bytes:
    value = (
        f"><tiff:Orientation>{orientation}</tiff:Orientation></rdf:Description>"
        if element
        else f' tiff:Orientation="{orientation}"/>'
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        f'xmlns:tiff="http://ns.adobe.com/tiff/1.0/"{value}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def _upright() -> np.ndarray:
    """What a viewer shows: 64 wide, 32 tall, red left half, blue right half, a green square top left."""
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[:, :32], rgb[:, 32:] = (200, 30, 30), (30, 30, 200)
    rgb[:8, :8] = (30, 200, 30)
    return rgb


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[pixels.ORIENTATION_TAG] = orientation
    return exif.tobytes()


def _assert_shown(rgb: np.ndarray, what: str) -> None:
    """``rgb`` (any size of the 2:1 upright picture) is the upright picture, not turned again."""
    h, w = rgb.shape[:2]
    assert (w, h) == (2 * h, h) or (w, h) == (h, h), f"{what}: {w}x{h}"
    px = rgb.astype(np.int16)
    if w == 2 * h:
        assert px[:, : w // 2 - 2, 0].mean() > 150 and px[:, w // 2 + 2 :, 2].mean() > 150, what
    else:  # (the model's square input: the same halves, squeezed)
        assert px[:, : w // 2 - 2, 0].mean() > 120 and px[:, w // 2 + 2 :, 2].mean() > 120, what
    corner = px[: max(1, h // 8), : max(1, w // 16)].reshape(-1, 3).mean(axis=0)
    assert corner[1] > 120 and corner[0] < 120, f"{what}: the green corner is not top left ({corner})"


# (irot degrees counter-clockwise, the EXIF orientation beside it, the XMP orientation, the XMP form)
CASES = [
    (90, None, 6, False),
    (90, None, 6, True),
    (90, 6, 6, False),
    (0, None, 6, False),
    (0, None, 8, True),
    (270, None, 3, False),
]


@pytest.mark.parametrize(("rotation", "exif", "xmp", "element"), CASES)
def test_only_irot_turns_a_heic_whatever_its_xmp_and_exif_say(
    rotation: int, exif: int | None, xmp: int, element: bool
) -> None:
    stored = np.ascontiguousarray(np.rot90(_upright(), -rotation // 90))  # (irot turns it back counter-clockwise)
    data = encode_heic(
        stored, rotation=rotation, xmp=_xmp(xmp, element), exif=None if exif is None else _exif(exif), qp=4
    )
    img = pixels.open_image(data)
    assert img.format == "HEIF" and "xmp" in img.info  # (the packet is there, its orientation gone)
    assert pixels.orientation(img) == 1 and not pixels.orientation_only_in_xmp(img)
    assert pixels.upright_size(img) == (64, 32)
    _assert_shown(np.asarray(pixels.display_rgb(img)), "pixels")
    thumbs: list[bytes] = []  # (the metadata pass' thumbnail, from the picture it decoded)
    result = inspect_image(data, "IMG_0001.HEIC", on_image=lambda shown: thumbs.append(make_thumbnail(shown)))
    assert result.metrics is not None and (result.metrics["width"], result.metrics["height"]) == (64, 32)
    assert not [kind for kind, _ in result.notes if kind == "orientation_from_xmp"]
    with Image.open(io.BytesIO(thumbs[-1])) as thumb:
        _assert_shown(np.asarray(thumb.convert("RGB")), "thumbnail")
    _assert_shown(decode_image(data, 32, key="IMG_0001.HEIC"), "model input")
    copy, _ = pixels.browser_copy(pixels.open_image(data, fit=True), "JPEG", keep_exif=True)
    with Image.open(io.BytesIO(copy)) as shown:
        assert shown.getexif().get(pixels.ORIENTATION_TAG, 1) == 1
        _assert_shown(np.asarray(shown.convert("RGB")), "viewable copy")
