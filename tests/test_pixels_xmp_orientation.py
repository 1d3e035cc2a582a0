"""An orientation given only in XMP (``tiff:Orientation`` in the packet an editor writes: no EXIF Orientation tag).

Pillow reads it (``Image.getexif`` falls back to the XMP packet), so every pass turns the picture as desktop viewers
do (Windows' photo metadata, Adobe's and digiKam's readers): its embedding, metrics, size and crops are those of the
same pixels with EXIF orientation 6. Browsers read EXIF's tag only: :func:`pixels.orientation_only_in_xmp` tells the
UI to send a turned copy. The packets here are written by hand, as an editor writes them."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from lightly_airflow import pixels
from lightly_airflow.columns import EMBEDDING, KEY
from lightly_airflow.metadata.metrics import inspect_image

#: An XMP packet as an editor writes it, with the orientation of a phone held upright (6: turn 90 degrees clockwise).
XMP = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
       '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 6.0.0">\n'
       ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
       '  <rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"\n'
       '    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="an editor" tiff:Orientation="6"/>\n'
       ' </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>')


def _stored() -> np.ndarray:
    """The picture as stored (the sensor's): 96 wide, 64 tall, a red left half with a blue square in its corner."""
    rng = np.random.default_rng(3)
    arr = rng.integers(60, 200, (64, 96, 3), dtype=np.uint8)
    arr[:, :48] = (220, 30, 30)
    arr[:16, :16] = (20, 20, 230)
    return arr


def _app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[pixels.ORIENTATION_TAG] = value
    return exif.tobytes()  # (Exif\0\0 first, as a JPEG's APP1 holds it)


def files() -> dict[str, bytes]:
    """The same coded picture: as stored, turned by an XMP packet alone, and turned by EXIF (JPEG and PNG)."""
    buf = io.BytesIO()
    Image.fromarray(_stored()).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    xmp_app1 = _app1(b"http://ns.adobe.com/xap/1.0/\0" + XMP.encode())
    out = {"plain.jpg": jpeg, "xmp.jpg": jpeg[:2] + xmp_app1 + jpeg[2:],
           "exif.jpg": jpeg[:2] + _app1(_exif_orientation(6)) + jpeg[2:]}
    for name, kwargs in (("plain", {}), ("xmp", {"pnginfo": PngImagePlugin.PngInfo()}),
                         ("exif", {"exif": _exif_orientation(6)})):
        if name == "xmp":
            kwargs["pnginfo"].add_itxt("XML:com.adobe.xmp", XMP)  # (the chunk Photoshop writes)
        buf = io.BytesIO()
        Image.fromarray(_stored()).save(buf, "PNG", **kwargs)
        out[f"{name}.png"] = buf.getvalue()
    return out


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_an_xmp_orientation_turns_the_picture_as_exif_does_in_every_pass(ext: str) -> None:
    made = files()
    xmp, exif, plain = made[f"xmp.{ext}"], made[f"exif.{ext}"], made[f"plain.{ext}"]
    assert b"tiff:Orientation" in xmp and b"tiff:Orientation" not in exif
    # as shown: 64 wide, 96 tall, the blue corner top right (turned clockwise), in the size, the pixels, the metrics
    assert pixels.upright_size(pixels.open_image(xmp)) == (64, 96)
    shown = np.asarray(pixels.display_rgb(pixels.open_image(xmp)))
    assert shown.shape == (96, 64, 3)
    assert shown[4, 60, 2] > 180 and shown[4, 60, 0] < 80, "the blue corner is not top right"
    np.testing.assert_array_equal(shown, np.asarray(pixels.display_rgb(pixels.open_image(exif))))
    result = inspect_image(xmp, f"a.{ext}")
    assert result.metrics is not None and (result.metrics["width"], result.metrics["height"]) == (64, 96)
    turned = inspect_image(exif, f"a.{ext}", size_in_bytes=len(xmp)).metrics
    assert result.metrics == turned
    # browsers turn only the EXIF one: the UI sends a turned copy of the XMP one
    assert pixels.orientation_only_in_xmp(pixels.open_image(xmp))
    assert not pixels.orientation_only_in_xmp(pixels.open_image(exif))
    assert not pixels.orientation_only_in_xmp(pixels.open_image(plain))


def test_a_tiff_turned_by_its_own_orientation_tag_is_not_taken_for_xmp() -> None:
    buf = io.BytesIO()  # (Pillow keeps a TIFF's tags, not EXIF bytes, and reads its XMP tag 700 as "xmp")
    Image.fromarray(_stored()).save(buf, "TIFF", tiffinfo={pixels.ORIENTATION_TAG: 6, 700: XMP.replace("6", "1").encode()})
    img = pixels.open_image(buf.getvalue())
    assert "xmp" in img.info and pixels.orientation(img) == 6
    assert not pixels.orientation_only_in_xmp(img)


def test_an_xmp_orientation_is_embedded_as_the_same_picture_with_exif_orientation(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from lightly_airflow.embedding import embed_shard
    from tests.embedding.conftest import write_manifest

    root = tmp_path / "images"
    root.mkdir()
    made = files()
    for name, data in made.items():
        (root / name).write_bytes(data)
    manifest = write_manifest(tmp_path / "pool/_staging/run/manifest/shard-00000.parquet", root.as_uri(),
                              sorted(made), root)
    counts = embed_shard(manifest, batch_size=8, num_workers=1, device="cpu")
    table = pq.read_table(counts["output_uri"])
    vectors = {k: np.asarray(v, np.float32) for k, v in zip(table[KEY].to_pylist(), table[EMBEDDING].to_pylist())}
    for ext in ("jpg", "png"):
        np.testing.assert_array_equal(vectors[f"xmp.{ext}"], vectors[f"exif.{ext}"])
        assert float(vectors[f"xmp.{ext}"] @ vectors[f"plain.{ext}"]) < 0.999, "embedded as stored, not turned"
