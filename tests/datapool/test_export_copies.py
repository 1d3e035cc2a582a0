"""``datapool export --viewable-copies URI``: iPhone photos (HEIC) and TIFF scans, which a labelling tool in the
browser shows blank, are exported as copies a browser shows (HEIC as JPEG, TIFF as PNG, the pixels the UI shows:
upright, sRGB), written once per content; one image that cannot be copied keeps its own URI and is named."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.datapool.export import export_records, root_uri, write_viewable_copies
from lightly_airflow.heif import encode_heic

from .conftest import DIM, MODEL, run_rows


def commit(pool: Datapool, digits: Any, keys: list[str], source: Path, run_id: str, version: str = "") -> None:
    rows = run_rows(digits, range(len(keys)), picks=list(range(len(keys))), etag_suffix=version)
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(keys, pa.string()))
    pool.commit(rows, run_id=run_id, dag_id="curate", tag=run_id, config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=pool.version(), datasource_uri=str(source))


def halves(left: tuple[int, int, int], right: tuple[int, int, int], w: int = 64, h: int = 32) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2], rgb[:, w // 2 :] = left, right
    return rgb


def phone_heic(upright: np.ndarray) -> bytes:
    """``upright`` stored turned clockwise with an ``irot`` of 90 that turns it back, as an iPhone does."""
    return encode_heic(np.ascontiguousarray(np.rot90(upright, -1)), rotation=90, qp=4)


def test_export_writes_viewable_copies_of_heic_and_tiff_once_per_content(tmp_path: Path, digits: Any,
                                                                         caplog: Any) -> None:
    src, copies = tmp_path / "phone", tmp_path / "copies"
    (src / "roll").mkdir(parents=True)
    (src / "roll" / "IMG_0001.HEIC").write_bytes(phone_heic(halves((200, 30, 30), (30, 30, 200))))
    scan = halves((10, 120, 10), (250, 250, 250), 40, 20)
    Image.fromarray(scan).save(src / "scan.tif")
    Image.fromarray(scan).save(src / "photo.jpg")
    (src / "broken.heic").write_bytes((src / "roll" / "IMG_0001.HEIC").read_bytes()[:200])
    keys = ["roll/IMG_0001.HEIC", "scan.tif", "photo.jpg", "broken.heic"]
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, digits, keys, src, "r1")

    with caplog.at_level(logging.WARNING):
        records = export_records(pool, "r1", viewable_copies=str(copies))
    base = root_uri(str(copies))
    assert [r.uri for r in records] == [base + "roll/IMG_0001.HEIC.jpg", base + "scan.tif.png",
                                        root_uri(str(src)) + "photo.jpg", root_uri(str(src)) + "broken.heic"]
    assert [r.key for r in records] == keys  # the keys stay the datasource's
    # The photo upright (64 x 32, red left, blue right), as the UI shows it; the scan's pixels exactly.
    with Image.open(copies / "roll" / "IMG_0001.HEIC.jpg") as img:
        assert img.format == "JPEG" and img.size == (64, 32)
        px = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert np.abs(px[:, :28].mean(axis=(0, 1)) - (200, 30, 30)).max() < 8
    assert np.abs(px[:, 36:].mean(axis=(0, 1)) - (30, 30, 200)).max() < 8
    with Image.open(copies / "scan.tif.png") as img:
        assert img.format == "PNG" and np.array_equal(np.asarray(img.convert("RGB")), scan)
    # The damaged one keeps its own URI, named with the reason, in the warning; nothing written for it.
    assert "1 images of tag 'r1' could not be copied" in caplog.text and "broken.heic" in caplog.text
    assert not (copies / "broken.heic.jpg").exists()
    assert "1 of the 4 exported samples of tag 'r1' are HEIC images" in caplog.text  # only the one left

    # Again: the copies of unchanged files are kept (not decoded again).
    stamp = (copies / "scan.tif.png").stat().st_mtime_ns
    again = write_viewable_copies(pool, "r1", export_records(pool, "r1"), str(copies))
    assert (again.written, again.kept, len(again.failed)) == (0, 2, 1)
    assert (copies / "scan.tif.png").stat().st_mtime_ns == stamp

    # The photo replaced under the same key (a new etag in the pool): its copy is made again, from the new content.
    (src / "roll" / "IMG_0001.HEIC").write_bytes(phone_heic(halves((30, 200, 30), (30, 200, 30))))
    commit(pool, digits, ["roll/IMG_0001.HEIC"], src, "r2", version="v2")
    done = write_viewable_copies(pool, "r2", export_records(pool, "r2"), str(copies))
    assert (done.written, done.kept) == (1, 0)
    with Image.open(copies / "roll" / "IMG_0001.HEIC.jpg") as img:
        assert np.asarray(img.convert("RGB"), dtype=np.int16)[:, :, 1].mean() > 150  # green now


def test_the_cli_exports_label_studio_tasks_with_the_copies(tmp_path: Path, digits: Any) -> None:
    from lightly_airflow.cli import main

    src, copies, out = tmp_path / "phone", tmp_path / "copies", tmp_path / "tasks.json"
    src.mkdir()
    (src / "IMG 2.HEIC").write_bytes(phone_heic(halves((200, 30, 30), (30, 30, 200))))
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, digits, ["IMG 2.HEIC"], src, "r1")
    assert main(["datapool", "export", pool.uri, "--tag", "r1", "--format", "label-studio",
                 "--viewable-copies", str(copies), "--out", str(out)]) == 0
    task = json.loads(out.read_text())[0]
    assert task["data"]["image"] == root_uri(str(copies)) + "IMG%202.HEIC.jpg" and task["meta"]["key"] == "IMG 2.HEIC"
    data = (copies / "IMG 2.HEIC.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (64, 32)


def test_copies_of_images_on_s3_are_written_to_s3(tmp_path: Path, digits: Any, s3_bucket: Any) -> None:
    """The datasource and the copies on an object store (moto): read and written with the store's credentials,
    each copy one PUT; a second export reads the copies' heads only."""
    from lightly_airflow.storage import filesystem, join_uri, write_bytes

    source = join_uri(s3_bucket.uri, "phone")
    write_bytes(phone_heic(halves((200, 30, 30), (30, 30, 200))), join_uri(source, "IMG_0001.HEIC"),
                s3_bucket.credentials)
    pool = Datapool(str(tmp_path / "pool"))
    rows = run_rows(digits, range(1), picks=[0])
    rows = rows.set_column(rows.schema.get_field_index(C.KEY), C.KEY, pa.array(["IMG_0001.HEIC"], pa.string()))
    pool.commit(rows, run_id="r1", dag_id="curate", tag="r1", config={}, counts={}, embedding_model=MODEL,
                embedding_dim=DIM, read_version=pool.version(), datasource_uri=source)
    copies = join_uri(s3_bucket.uri, "labelling")
    records = export_records(pool, "r1", viewable_copies=copies, datasource_credentials=s3_bucket.credentials,
                             copies_credentials=s3_bucket.credentials)
    assert [r.uri for r in records] == [root_uri(copies) + "IMG_0001.HEIC.jpg"]
    fs, path = filesystem(join_uri(copies, "IMG_0001.HEIC.jpg"), s3_bucket.credentials)
    with Image.open(io.BytesIO(fs.cat_file(path))) as img:
        assert img.format == "JPEG" and img.size == (64, 32)
    again = write_viewable_copies(pool, "r1", export_records(pool, "r1", datasource_credentials=s3_bucket.credentials),
                                  copies, source_credentials=s3_bucket.credentials, credentials=s3_bucket.credentials)
    assert (again.written, again.kept, again.failed) == (0, 1, [])


def test_a_photos_copy_keeps_its_exif_upright(tmp_path: Path, digits: Any) -> None:
    """The JPEG copy of an iPhone photo carries its camera, capture time and GPS position (labelling and training
    tools sort and filter by them), with orientation 1: the copy's pixels are upright already, and a viewer that
    turned them again by the source's orientation (6) would show the photo on its side."""
    src, copies = tmp_path / "phone", tmp_path / "copies"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0110] = 6, "Apple", "iPhone 15 Pro"
    exif.get_ifd(0x8769)[0x9003] = "2026:11:30 08:15:00"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.5), "E", (13.0, 24.0, 1.0)
    upright = halves((200, 30, 30), (30, 30, 200))
    (src / "IMG_0002.HEIC").write_bytes(encode_heic(np.ascontiguousarray(np.rot90(upright, -1)), rotation=90,
                                                    exif=exif.tobytes(), qp=4))
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, digits, ["IMG_0002.HEIC"], src, "r1")
    export_records(pool, "r1", viewable_copies=str(copies))
    with Image.open(copies / "IMG_0002.HEIC.jpg") as img:
        assert img.size == (64, 32)  # upright
        assert np.asarray(img.convert("RGB"), dtype=np.int16)[:, :28, 0].mean() > 150  # red on the left
        got = img.getexif()
        assert (got.get(0x0112), got.get(0x010F), got.get(0x0110)) == (1, "Apple", "iPhone 15 Pro")
        assert got.get_ifd(0x8769).get(0x9003) == "2026:11:30 08:15:00"
        position = got.get_ifd(0x8825)
        assert position.get(1) == "N" and tuple(float(v) for v in position.get(2)) == (52.0, 31.0, 12.5)
        assert position.get(3) == "E"


def test_a_copy_made_without_the_exif_is_made_again_once(tmp_path: Path, digits: Any) -> None:
    """A copy an earlier release wrote (its comment without ``copy=2``: no EXIF) is made again, then kept."""
    from lightly_airflow.pixels import browser_copy, open_image

    src, copies = tmp_path / "phone", tmp_path / "copies"
    src.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    data = encode_heic(halves((200, 30, 30), (30, 30, 200)), exif=exif.tobytes(), qp=4)
    (src / "IMG_3.HEIC").write_bytes(data)
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, digits, ["IMG_3.HEIC"], src, "r1")
    etag = pool.read(columns=[C.ETAG]).column(C.ETAG)[0].as_py()
    old, _ = browser_copy(open_image(data, fit=True), "JPEG", f"lightly-source-etag={etag};")
    copies.mkdir()
    (copies / "IMG_3.HEIC.jpg").write_bytes(old)
    first = write_viewable_copies(pool, "r1", export_records(pool, "r1"), str(copies))
    assert (first.written, first.kept) == (1, 0)
    with Image.open(copies / "IMG_3.HEIC.jpg") as img:
        assert img.getexif().get(0x010F) == "Apple"
    again = write_viewable_copies(pool, "r1", export_records(pool, "r1"), str(copies))
    assert (again.written, again.kept) == (0, 1)


#: An XMP packet as an editor writes it: the orientation of a phone held upright (6: turn 90 degrees clockwise).
XMP_TURNED = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
              '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
              'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
              '<?xpacket end="w"?>')


def _with_xmp(jpeg: bytes, xmp: str) -> bytes:
    payload = b"http://ns.adobe.com/xap/1.0/\0" + xmp.encode()
    return jpeg[:2] + b"\xff\xe1" + len(payload + b"..").to_bytes(2, "big") + payload + jpeg[2:]


def test_images_turned_only_by_their_xmp_packet_are_exported_as_turned_copies(tmp_path: Path, digits: Any,
                                                                              caplog: Any) -> None:
    """A JPEG or PNG whose orientation only its XMP packet gives (no EXIF Orientation tag) is upright in every pass,
    in its recorded width and height and in the UI (which sends a turned copy): a browser, and so a labelling tool,
    reads EXIF's tag only and showed the exported file on its side (boxes drawn on the upright picture fell beside
    it). With --viewable-copies it is exported as an upright copy, counted and said; the same picture turned by
    EXIF, or not at all, is exported as it is (the browser turns it itself)."""
    from PIL import PngImagePlugin

    from lightly_airflow.pixels import display_rgb, open_image

    src, copies = tmp_path / "edits", tmp_path / "copies"
    src.mkdir()
    stored = halves((200, 30, 30), (30, 30, 200), 96, 64)  # stored 96 x 64: red left, blue right
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=95)
    (src / "plain.jpg").write_bytes(buf.getvalue())
    (src / "xmp.jpg").write_bytes(_with_xmp(buf.getvalue(), XMP_TURNED))
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(src / "exif.jpg", quality=95, exif=exif.tobytes())
    (src / "both.jpg").write_bytes(_with_xmp((src / "exif.jpg").read_bytes(), XMP_TURNED))  # (as Lightroom writes)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP_TURNED)
    Image.fromarray(stored).save(src / "xmp.png", pnginfo=info)
    keys = ["plain.jpg", "xmp.jpg", "exif.jpg", "both.jpg", "xmp.png"]
    pool = Datapool(str(tmp_path / "pool"))
    commit(pool, digits, keys, src, "r1")

    with caplog.at_level(logging.INFO):
        records = export_records(pool, "r1", viewable_copies=str(copies))
    base, here = root_uri(str(copies)), root_uri(str(src))
    assert [r.uri for r in records] == [here + "plain.jpg", base + "xmp.jpg.jpg", here + "exif.jpg",
                                        here + "both.jpg", base + "xmp.png.png"]
    for name, fmt in (("xmp.jpg.jpg", "JPEG"), ("xmp.png.png", "PNG")):
        with Image.open(copies / name) as img:
            # upright as every pass sees it (turned clockwise: 64 wide, 96 tall, red on top), and nothing in the copy
            # turns it again: a viewer that follows EXIF or XMP shows these pixels as they are
            assert img.format == fmt and img.size == (64, 96)
            assert img.getexif().get(0x0112, 1) == 1
            px = np.asarray(img.convert("RGB"), dtype=np.int16)
            assert px[:40, :, 0].mean() > 150 and px[56:, :, 2].mean() > 150
            shown = np.asarray(display_rgb(open_image((src / name[:-4]).read_bytes())), dtype=np.int16)
            assert np.abs(px - shown).mean() < 3  # the pixels every pass reads
    assert sorted(p.name for p in copies.iterdir()) == ["xmp.jpg.jpg", "xmp.png.png"]
    assert "2 of them of images turned by an orientation only their XMP packet gives" in caplog.text

    again = write_viewable_copies(pool, "r1", export_records(pool, "r1"), str(copies))
    assert (again.written, again.kept, again.turned, again.failed) == (0, 2, 2, [])
