"""Embedding throughput: the runner end to end vs the model's forward pass alone, in one run.

    python benchmarks/embedding.py [--n 2000] [--format mixed|jpeg|png] [--batch-size 32] [--input-size 64]
                                   [--num-workers N] [--loader auto|processes|threads] [--device auto|cpu|cuda]
                                   [--repeats 3]

Writes a folder of real photos (scikit-image's bundled images, randomly cropped, flipped and rescaled to
typical camera-roll sizes of 320-800 px) as JPEG and/or PNG plus a manifest shard, then prints:

- decode-only images/s (read + decode + resize, one thread);
- forward-only images/s: the encoder (normalisation + backbone + pooling + L2) on the same images pre-decoded
  into uint8 batches already on the device, i.e. the ceiling (measured before and after the runner);
- end-to-end images/s of ``embed_shard`` (read, decode, resize, batch, transfer, forward; as its loop
  measures it) and the wall time including model load and the Parquet write;
- the ratio end-to-end / forward-only (target: at least 0.8), per interleaved round and its median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from skimage import data

from lightly_airflow.columns import DATASOURCE_URI_METADATA_KEY
from lightly_airflow.embedding import decode_image, embed_shard, get_encoder
from lightly_airflow.embedding.runner import resolve_device

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left", "hubble_deep_field", "immunohistochemistry",
          "retina", "cat", "colorwheel")


def photo_sources(names: tuple[str, ...]) -> list[np.ndarray]:
    """scikit-image's bundled photos ``names`` as RGB uint8 arrays (grey ones stacked, float ones scaled;
    names this scikit-image lacks are left out)."""
    sources = []
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        array = np.asarray(loader())
        if array.dtype != np.uint8:
            array = (array.astype(np.float64) / max(float(array.max()), 1.0) * 255).astype(np.uint8)
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        sources.append(np.ascontiguousarray(array[..., :3]))
    return sources


def random_crop(src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop of 60-100 % of each side of ``src``, mirrored half of the time (contiguous)."""
    h, w = src.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = src[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def make_images(root: Path, n: int, fmt: str, seed: int = 0) -> list[str]:
    """``n`` varied photos under ``root``; ``fmt`` is ``jpeg``, ``png`` or ``mixed`` (4 JPEG : 1 PNG)."""
    rng = np.random.default_rng(seed)
    sources = photo_sources(PHOTOS)
    keys = []
    for i in range(n):
        crop = random_crop(sources[i % len(sources)], rng)
        ch, cw = crop.shape[:2]
        img = Image.fromarray(crop)
        side = int(rng.integers(320, 801))
        img = img.resize((side, max(1, int(side * ch / cw))), Image.Resampling.BILINEAR)
        as_png = fmt == "png" or (fmt == "mixed" and i % 5 == 4)
        key = f"img/{i // 1000:03d}/{i:06d}.{'png' if as_png else 'jpg'}"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / key, "PNG" if as_png else "JPEG", quality=90)
        keys.append(key)
    return keys


def write_manifest(path: Path, root: Path, keys: list[str]) -> str:
    table = pa.table({
        "key": keys,
        "size": [(root / k).stat().st_size for k in keys],
        "etag": [f"bench-{i}" for i in range(len(keys))],
        "mtime": pa.array([0] * len(keys), pa.timestamp("us", tz="UTC")),
    }).replace_schema_metadata({DATASOURCE_URI_METADATA_KEY: json.dumps(root.as_uri())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return str(path)


def decode_all(root: Path, keys: list[str], input_size: int) -> tuple[torch.Tensor, float]:
    """Pre-decode every image (one thread); returns the uint8 batch tensor and decode-only images/s."""
    start = time.perf_counter()
    arrays = [decode_image((root / k).read_bytes(), input_size) for k in keys]
    rate = len(keys) / (time.perf_counter() - start)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), rate


def forward_only(images: torch.Tensor, batch_size: int, input_size: int, device: torch.device, *,
                 warmup_passes: int = 0) -> float:
    """Images/s of the encoder alone on pre-decoded uint8 batches already on ``device`` (same padding as the
    runner: every batch has ``batch_size`` rows). ``warmup_passes`` untimed passes come first: in a fresh
    VM, memory touched for the first time is several times slower for tens of seconds, which would
    otherwise flatter whichever measurement runs second."""
    encoder = get_encoder(input_size=input_size).to(device).freeze()  # as the runner's (CPU: one traced graph)
    batches = list(images.to(device).split(batch_size))
    if batches[-1].shape[0] < batch_size:
        pad = batches[-1].new_zeros((batch_size - batches[-1].shape[0], *batches[-1].shape[1:]))
        batches[-1] = torch.cat([batches[-1], pad])
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
                if device.type == "cuda" else torch.autocast("cpu", enabled=False))
    from lightly_airflow.embedding.runner import _model_threads

    # The runner's torch threads (on a CPU: the cores its decoding workers leave free), so forward-only is the
    # ceiling of the same forward pass: torch's default of every core measured 32 images/s on this shared
    # 2-core machine at load 9 against ~200 end to end, a ratio of 680 % that said nothing.
    with _model_threads(device), torch.inference_mode(), autocast:
        encoder(batches[0])
        for _ in range(warmup_passes):
            for batch in batches:
                encoder(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for batch in batches:
            encoder(batch).float().cpu()
        elapsed = time.perf_counter() - start
    return images.shape[0] / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--format", choices=("mixed", "jpeg", "png"), default="mixed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--loader", choices=("auto", "processes", "threads"), default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved forward-only/runner rounds")
    parser.add_argument("--workdir", default=None, help="reuse a folder of generated images")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="lightly-embed-bench-"))
    root = work / f"images-{args.format}-{args.n}"
    if (root / "keys.json").exists():
        keys = json.loads((root / "keys.json").read_text())
    else:
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        keys = make_images(root, args.n, args.format)
        (root / "keys.json").write_text(json.dumps(keys))
        print(f"wrote {len(keys)} images in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    total_bytes = sum((root / k).stat().st_size for k in keys)
    manifest = write_manifest(work / "pool/_staging/bench/manifest/shard-00000.parquet", root, keys)

    load_before = os.getloadavg()[0]
    images, decode_rate = decode_all(root, keys, args.input_size)
    # Interleaved rounds (forward-only, runner, ...): the machine is shared, so its load drifts; each round's
    # ratio compares neighbours in time and the median ratio is the figure.
    fwd_runs: list[float] = []
    e2e_runs: list[float] = []
    wall_runs: list[float] = []
    counts: dict = {}
    for round_ in range(args.repeats):
        fwd_runs.append(forward_only(images, args.batch_size, args.input_size, device, warmup_passes=int(round_ == 0)))
        start = time.perf_counter()
        counts = embed_shard(manifest, device=args.device, batch_size=args.batch_size, input_size=args.input_size,
                             num_workers=args.num_workers, loader=args.loader)
        wall_runs.append(time.perf_counter() - start)
        e2e_runs.append(counts["images_per_s"])
    fwd_runs.append(forward_only(images, args.batch_size, args.input_size, device))
    ratios = [e / ((fwd_runs[i] + fwd_runs[i + 1]) / 2) for i, e in enumerate(e2e_runs)]
    fwd, e2e, ratio = statistics.median(fwd_runs), statistics.median(e2e_runs), statistics.median(ratios)
    wall = statistics.median(wall_runs)
    load_after = os.getloadavg()[0]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    from lightly_airflow.embedding.runner import _model_threads

    with _model_threads(device) as model_threads:
        pass
    print(f"device:                 {device_name}, torch {torch.__version__}, threads {torch.get_num_threads()} "
          f"(model: {model_threads})")
    print(f"images:                 {len(keys)} {args.format} ({total_bytes / len(keys) / 1024:.0f} KiB avg), "
          f"input {args.input_size}px, batch {args.batch_size}, model {counts['model']}")
    print(f"load average (1 min):   {load_before:.1f} before, {load_after:.1f} after")
    print(f"decode-only (1 thread): {decode_rate:8.1f} images/s")
    print(f"forward-only:           {fwd:8.1f} images/s   median of {', '.join(f'{r:.0f}' for r in fwd_runs)}")
    print(f"end-to-end (runner):    {e2e:8.1f} images/s   median of {', '.join(f'{r:.0f}' for r in e2e_runs)}")
    print(f"ratio per round:        {', '.join(f'{r:.0%}' for r in ratios)}  -> median {ratio:.0%} of forward-only")
    print(f"end-to-end (wall):      {len(keys) / wall:8.1f} images/s   incl. model load + write, {wall:.1f} s")
    print(json.dumps({"device": device_name, "n": len(keys), "format": args.format, "batch_size": args.batch_size,
                      "input_size": args.input_size, "forward_only_images_per_s": round(fwd, 1),
                      "decode_only_images_per_s": round(decode_rate, 1), "input_wait_s": counts["input_wait_s"],
                      "end_to_end_images_per_s": e2e, "ratio": round(ratio, 3),
                      "wall_images_per_s": round(len(keys) / wall, 1), "load": [load_before, load_after]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
