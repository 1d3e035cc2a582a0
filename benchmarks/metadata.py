"""Metadata throughput: images/s of ``compute_metadata_shard``'s per-image work vs just decoding.

Images: scikit-image's bundled photos, re-encoded as JPEG (or, ``--format heic``, as an iPhone's HEIC: 512-px HEVC
tiles, ``lightly_airflow.heif.encode_heic``) at a chosen size (real photo content, so the decoder does real work).
Three figures, single thread, best of ``--repeat``:

- decode only: ``PIL.Image.open(...).load()`` (the photos are RGB: no conversion copy), under the same Pillow memory
  settings as the shard's threads (``pixels.image_memory``), so the overhead below compares like with like; the
  same decode with Pillow's defaults (what a script of one's own gets) is printed beside it;
- decode + metrics + sha256: :func:`lightly_airflow.metadata.inspect_image` (the per-image work of a shard);
- the whole shard end to end (local files, manifest, Parquet output, ``--workers`` threads).

Target: metrics cost at most 50% on top of decoding.

    python benchmarks/metadata.py --images 200 --size 640
    python benchmarks/metadata.py --images 16 --size 4032 --format heic
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from skimage import data as skdata

from lightly_airflow import columns as C
from lightly_airflow.metadata import compute_metadata_shard, inspect_image
from lightly_airflow.pixels import image_memory

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "immunohistochemistry", "motorcycle")


def photos(n: int, size: int, fmt: str = "jpeg") -> list[bytes]:
    base = []
    for name in PHOTOS:
        fn = getattr(skdata, name, None) or (lambda: skdata.stereo_motorcycle()[0])
        img = Image.fromarray(np.asarray(fn())).convert("RGB").resize((size, size * 3 // 4))
        base.append(img)
    out = []
    for i in range(n):
        img = base[i % len(base)].rotate(i % 7, expand=False)
        if fmt == "heic":
            from lightly_airflow.heif import encode_heic

            out.append(encode_heic(np.asarray(img)[: img.height // 2 * 2, : img.width // 2 * 2], tile=512, qp=24))
            continue
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=640, help="image width in pixels (height = 3/4 of it)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", choices=("jpeg", "heic"), default="jpeg")
    args = parser.parse_args()
    blobs = photos(args.images, args.size, args.format)
    ext = "heic" if args.format == "heic" else "jpg"

    def decode_plain() -> None:
        for b in blobs:
            Image.open(io.BytesIO(b)).load()

    def decode_only() -> None:
        with image_memory(1):
            decode_plain()

    def metadata() -> None:
        with image_memory(1):  # (as a shard's thread: Pillow's memory read in place, freed blocks kept)
            for i, b in enumerate(blobs):
                hashlib.sha256(b).hexdigest()
                assert inspect_image(b, f"{i}.{ext}").ok

    t_decode = timed(decode_only, args.repeat)
    t_plain = timed(decode_plain, args.repeat)
    t_meta = timed(metadata, args.repeat)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bucket"
        root.mkdir()
        keys = []
        for i, b in enumerate(blobs):
            keys.append(f"img_{i:05d}.{ext}")
            (root / keys[-1]).write_bytes(b)
        manifest = Path(tmp) / "pool" / "_staging" / "run" / "manifest" / "shard-00000.parquet"
        manifest.parent.mkdir(parents=True)
        table = pa.table({C.KEY: keys, C.SIZE: [len(b) for b in blobs], C.ETAG: keys, C.MTIME: [0] * len(keys)})
        table = table.replace_schema_metadata({C.DATASOURCE_URI_METADATA_KEY: json.dumps(str(root))})
        pq.write_table(table, manifest)
        t_shard = timed(lambda: compute_metadata_shard(str(manifest), num_workers=args.workers), args.repeat)

    n = args.images
    print(f"images: {n} {args.format.upper()} photos at {args.size}x{args.size * 3 // 4}, best of {args.repeat}")
    print(f"decode only (1 thread):                {n / t_decode:8.1f} images/s  "
          f"(Pillow's default memory settings: {n / t_plain:.1f})")
    print(f"decode + metrics + sha256 (1 thread):  {n / t_meta:8.1f} images/s")
    print(f"overhead of metrics over decoding:     {(t_meta / t_decode - 1) * 100:8.1f} %  (target <= 50 %)")
    print(f"whole shard ({args.workers} threads, local files):  {n / t_shard:8.1f} images/s")


if __name__ == "__main__":
    main()
