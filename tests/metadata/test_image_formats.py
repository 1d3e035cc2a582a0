"""Image formats beyond the classic ones, through listing, metadata, thumbnail, embedding and the UI: WebP (listed by
default, as in Lightly's libraries) and AVIF (decodes here: listed by default too; a list of Lightly's formats leaves
it out, and the listing says how to list it: tests/report/test_writer.py). HEIC/HEIF: tests/test_heif.py."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from lightly_airflow import columns as C


def _photo() -> Image.Image:
    array = np.zeros((48, 64, 3), np.uint8)
    array[:, :32] = (220, 40, 40)
    array[:, 32:] = (40, 40, 220)
    return Image.fromarray(array)


def _encode(fmt: str, **kwargs) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    _photo().save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_webp_and_avif_run_through_the_pipeline(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    """``.webp`` files were not listed by default ("unsupported"), though Lightly's libraries list them and Pillow
    decodes them; ``.avif`` files were counted as unsupported with no word on why or what to do (then listed only
    on request)."""
    from lightly_airflow import pipeline, staging
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding.runner import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.plugins.media import read_image
    from lightly_airflow.thumbnails import thumbnails_uri

    src, pool = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    (src / "photo.webp").write_bytes(_encode("WEBP", quality=90))
    (src / "lossless.WEBP").write_bytes(_encode("WEBP", lossless=True))
    (src / "ref.png").write_bytes(_encode("PNG"))
    (src / "modern.avif").write_bytes(_encode("AVIF"))
    caplog.set_level(logging.INFO, logger="lightly_airflow.datasource.listing")
    listed = pipeline.list_new(NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool)), run_id="r1")
    (manifest,) = listed.manifests
    keys = ["lossless.WEBP", "modern.avif", "photo.webp", "ref.png"]
    assert sorted(pq.read_table(manifest).column(C.KEY).to_pylist()) == keys
    assert listed.unsupported == 0
    assert not [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    counts = compute_metadata_shard(manifest)
    assert counts["ok"] == 4 and counts["corrupt"] == 0
    meta = {r[C.KEY]: r for r in pq.read_table(staging.sibling_uri(manifest, staging.METADATA)).to_pylist()}
    for key in ("photo.webp", "lossless.WEBP", "modern.avif"):
        assert (meta[key][C.metadata_column("lightly.width")], meta[key][C.metadata_column("lightly.height")]) == (64, 48)
    thumbs = sorted(Path(thumbnails_uri(str(pool))).glob("*.jpg"))
    assert len(thumbs) == 4 and counts["thumbnails"] == 4
    embedded = embed_shard(manifest, input_size=32, device="cpu", batch_size=4, num_workers=0)
    emb = pq.read_table(embedded["output_uri"]).to_pylist()
    assert sorted(r[C.STATUS] for r in emb) == ["ok"] * 4
    vec = {r[C.KEY]: np.asarray(r[C.EMBEDDING]) for r in emb}
    assert np.allclose(vec["lossless.WEBP"], vec["ref.png"], atol=1e-5)  # the same pixels, the same vector

    data, content_type, size = read_image(str(src), "photo.webp", None)
    assert content_type == "image/webp" and size == (64, 48) and data == (src / "photo.webp").read_bytes()


def test_avif_is_decoded_and_shown(tmp_path: Path) -> None:
    """AVIF decodes with the locked Pillow: it is an ordinary sample (the UI gets JPEG)."""
    from lightly_airflow import pipeline
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.plugins.media import read_image

    src, pool = tmp_path / "src", tmp_path / "pool"
    src.mkdir()
    (src / "modern.avif").write_bytes(_encode("AVIF"))
    query = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(pool))
    (manifest,) = pipeline.list_new(query, run_id="r1").manifests
    assert compute_metadata_shard(manifest)["ok"] == 1
    data, content_type, size = read_image(str(src), "modern.avif", None)
    assert content_type == "image/jpeg" and size == (64, 48)  # (lossy already: JPEG, not PNG)
    assert np.asarray(Image.open(io.BytesIO(data)))[10, 10, 0] > 180
