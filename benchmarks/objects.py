"""Object-level embedding speed: objects/s for crop + embed against images/s of the same encoder.

Usage: python benchmarks/objects.py [--images 240] [--rounds 3] [--input-size 64] [--batch-size 32]
       [--device auto] [--workers 2] [--torch-threads N] [--decode-only]
Data: scikit-image photographs (160x120 crops) with 0-4 pasted shapes each and object-detection predictions
of exactly those shapes (``lightly_airflow.objects.demo_data``), one manifest shard. Per round, interleaved:

* **images**: ``embed_shard`` of the shard with no object-level work (fetch, decode at reduced size, resize,
  embed) -> images/s;
* **objects**: ``embed_objects_shard`` of the same shard (fetch, one full decode per image with objects,
  crop every object with 10% padding, crop metrics, resize, embed) with the same encoder -> objects/s.

Both use the same model, input size, batch size, device and torch threads (by default each pass picks the
threads the embed task uses: cores minus the decoding workers). Medians over the rounds are printed. The
figures depend on the machine (and on other jobs running on it: say so when you report them).

Then **decode costs** of an image with objects (docs/objects.md, "decoded twice"): scikit-image photographs
scaled to 1920x1280, as JPEG (quality 90) and PNG; per image, interleaved, medians: the image pass's decode
(``decode_image``: JPEG draft mode, then resize to the input size), the object pass's full decode, and the
resize of a full decode to the input size (what deriving the image's input from the one full decode costs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch intra-op threads for both passes (default: torch's); on a machine shared with other "
                    "jobs, 1 avoids OpenMP threads spinning against each other")
    ap.add_argument("--decode-only", action="store_true", help="only the decode costs")
    args = ap.parse_args()
    if args.decode_only:
        decode_costs(args.input_size, args.rounds)
        return
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    from lightly_airflow import staging
    from lightly_airflow.datasource import list_files, write_manifests
    from lightly_airflow.embedding.runner import _cached_encoder, embed_shard, resolve_device
    from lightly_airflow.objects.demo_data import TASK, add_images
    from lightly_airflow.objects.shard import embed_objects_shard
    from lightly_airflow.objects.spec import ObjectsSpec, write_spec

    with tempfile.TemporaryDirectory(prefix="objects-bench-") as tmp:
        source, pool = Path(tmp) / "src", Path(tmp) / "pool"
        preds = add_images(source, 0, args.images, seed=11)
        n_objects = sum(len(p) for p in preds.values())
        listing = pa.Table.from_batches(list(list_files(f"file://{source}")))
        (manifest,) = write_manifests(listing, f"file://{pool}", "bench", datasource_uri=f"file://{source}",
                                      lightly_uri=f"file://{source}", min_shard_size=10**9)
        run_dir = staging.run_dir(f"file://{pool}", "bench")
        device = resolve_device(args.device)
        encoder = _cached_encoder(args.model, None, None, args.input_size, device, None)
        print(f"{args.images} images ({sum(1 for p in preds.values() if p)} with objects), {n_objects} objects; "
              f"model {args.model}, input {args.input_size}, batch {args.batch_size}, device {device}, "
              f"{args.workers} decode workers")
        embed_shard(manifest, model=args.model, input_size=args.input_size, device=str(device),
                    batch_size=args.batch_size, num_workers=args.workers)  # warm-up (model, caches)
        image_rates, object_rates, object_secs = [], [], []
        for r in range(args.rounds):
            write_spec(None, run_dir)
            t = time.perf_counter()
            embed_shard(manifest, model=args.model, input_size=args.input_size, device=str(device),
                        batch_size=args.batch_size, num_workers=args.workers)
            image_rates.append(args.images / (time.perf_counter() - t))
            write_spec(ObjectsSpec(tasks=(TASK,), padding=0.1, upload=False), run_dir)
            t = time.perf_counter()
            counts = embed_objects_shard(manifest, encoder=encoder, device=device, batch_size=args.batch_size,
                                         num_workers=args.workers)
            seconds = time.perf_counter() - t
            assert counts is not None and counts["objects"] == n_objects
            object_rates.append(n_objects / seconds)
            object_secs.append(seconds)
            print(f"round {r + 1}: images {image_rates[-1]:.1f}/s, objects {object_rates[-1]:.1f}/s "
                  f"({seconds:.2f} s, embedding {counts['embed_s']:.2f} s of it)")
        img, obj = statistics.median(image_rates), statistics.median(object_rates)
        print(f"median: images {img:.1f}/s (embed_shard, whole image pass); objects {obj:.1f}/s "
              f"(crop + metrics + embed); objects/s / images/s = {obj / img:.2f}")
    decode_costs(args.input_size, args.rounds)


def decode_costs(input_size: int, rounds: int) -> None:
    """Per-image decode costs, JPEG and PNG: the two decodes an image with objects gets vs one full decode."""
    import io

    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    from lightly_airflow.embedding.images import decode_image, open_rgb
    from lightly_airflow.objects.demo_data import PHOTOS

    files: dict[str, list[bytes]] = {"JPEG": [], "PNG": []}
    for name in PHOTOS:
        arr = np.asarray(getattr(skdata, name)())
        arr = np.stack([arr] * 3, axis=-1) if arr.ndim == 2 else arr[..., :3]
        img = Image.fromarray(arr.astype(np.uint8)).resize((1920, 1280), Image.Resampling.BICUBIC)
        for fmt, opts in (("JPEG", {"quality": 90}), ("PNG", {})):
            buf = io.BytesIO()
            img.save(buf, format=fmt, **opts)
            files[fmt].append(buf.getvalue())

    def per_image(fn: object, blobs: list[bytes]) -> float:
        t = time.perf_counter()
        for b in blobs:
            fn(b)  # type: ignore[operator]
        return (time.perf_counter() - t) / len(blobs) * 1000

    def resize(img: Image.Image) -> Image.Image:
        return img.resize((input_size, input_size), Image.Resampling.BILINEAR, reducing_gap=3.0)

    print(f"decode costs per 1920x1280 image (ms, median of {max(rounds, 3)} interleaved rounds, {len(PHOTOS)} photos):")
    for fmt, blobs in files.items():
        fulls = [open_rgb(b) for b in blobs]
        got: dict[str, list[float]] = {"image pass (reduced decode + resize)": [], "full decode": [],
                                       "resize of a full decode": []}
        for _ in range(max(rounds, 3)):
            got["image pass (reduced decode + resize)"].append(per_image(lambda b: decode_image(b, input_size), blobs))
            got["full decode"].append(per_image(open_rgb, blobs))
            t = time.perf_counter()
            for im in fulls:
                resize(im)
            got["resize of a full decode"].append((time.perf_counter() - t) / len(fulls) * 1000)
        med = {k: statistics.median(v) for k, v in got.items()}
        twice = med["image pass (reduced decode + resize)"] + med["full decode"]
        once = med["full decode"] + med["resize of a full decode"]
        print(f"  {fmt}: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
              + f" -> twice (now) {twice:.1f} ms, once at full size {once:.1f} ms")


if __name__ == "__main__":
    main()
