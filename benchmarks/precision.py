"""``EmbedOptions.precision="bfloat16"`` against the float32 default on the CPU: speed, embedding agreement and
the selection it leads to, in one run.

    python benchmarks/precision.py [--n 2000] [--input-size 64] [--batch-size 32] [--rounds 3] [--k 50 200]

Makes ``n`` real photos at the model's input size (random crops, flips and scales of scikit-image's bundled
photos, as ``benchmarks/embedding.py``), embeds them with the runner's encoder (:meth:`Encoder.freeze`: the
float32 graph and the bf16 graph traced under CPU autocast) on the runner's model threads, and prints

- the forward pass's images/s for both, interleaved rounds and medians;
- the agreement of the embeddings: cosine of each image's bf16 vector to its float32 vector (min, 1st
  percentile, median);
- for DIVERSITY selections of ``k`` images (the product's engine, ``selection.select``): the overlap of the
  bf16 picks with the float32 picks, and the quality of both in the float32 space (the smallest distance
  between two picks: DIVERSITY maximises it), so a different but equally spread selection shows as such.

The machine (cores, load average) is printed: on a shared machine the speeds move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedding import photo_sources, random_crop  # noqa: E402  (benchmarks/embedding.py: the same photos)

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat",
          "colorwheel", "camera", "coins", "moon", "horse", "brick", "grass", "gravel", "clock", "page")


def photos(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` random crops (60-100 % of each side, mirrored half the time) of the bundled photos at ``size`` px."""
    rng = np.random.default_rng(seed)
    sources = photo_sources(PHOTOS)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        crop = random_crop(sources[i % len(sources)], rng)
        out[i] = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, nargs="+", default=[50, 200])
    args = parser.parse_args(argv)

    from lightly_airflow.embedding.runner import _autocast, _cached_encoder, _model_threads
    from lightly_airflow.selection import select

    device = torch.device("cpu")
    images = photos(args.n, args.input_size)
    encoder = _cached_encoder("efficientnet-lite0", None, None, args.input_size, device, None, "float32")
    encoder.freeze(args.batch_size, "bfloat16")
    print(json.dumps({"machine": {"cores": os.cpu_count(), "load_average": os.getloadavg()}, "n": args.n,
                      "input_size": args.input_size, "batch_size": args.batch_size}))

    def embed(precision: str) -> tuple[np.ndarray, float]:
        out = np.zeros((args.n, encoder.dim), np.float32)
        with _model_threads(device), torch.inference_mode(), _autocast(device, precision):
            t = time.perf_counter()
            for start in range(0, args.n, args.batch_size):
                batch = images[start : start + args.batch_size]
                if len(batch) < args.batch_size:  # the runner pads every batch to the same shape
                    batch = torch.cat([batch, batch.new_zeros((args.batch_size - len(batch), *batch.shape[1:]))])
                out[start : start + args.batch_size] = encoder(batch)[: min(args.batch_size, args.n - start)].float().numpy()
            return out, args.n / (time.perf_counter() - t)

    embed("float32"), embed("bfloat16")  # warm-up
    rates: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for precision in rates:
            vectors[precision], rate = embed(precision)
            rates[precision].append(rate)
        print(json.dumps({"round": r, **{f"{p}_images_per_s": round(v[-1], 1) for p, v in rates.items()}}))
    full, half = vectors["float32"], vectors["bfloat16"]
    cosine = (full * half).sum(axis=1) / (np.linalg.norm(full, axis=1) * np.linalg.norm(half, axis=1))
    keys = [f"img-{i:06d}" for i in range(args.n)]

    def picks(vecs: np.ndarray, k: int) -> np.ndarray:
        table = pa.table({"key": keys, "embedding": pa.array(list(vecs), pa.list_(pa.float32()))})
        config = {"n_samples": k, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
        return np.asarray(select(table, config).indices)

    def spread(rows: np.ndarray) -> float:  # smallest float32-space distance between two picks
        sub = full[rows]
        d = np.sqrt(np.maximum(2.0 - 2.0 * (sub @ sub.T), 0.0))
        np.fill_diagonal(d, np.inf)
        return float(d.min())

    selections = []
    for k in args.k:
        a, b = picks(full, k), picks(half, k)
        selections.append({"k": k, "overlap": round(len(set(a.tolist()) & set(b.tolist())) / k, 3),
                           "min_distance_float32_picks": round(spread(a), 4),
                           "min_distance_bfloat16_picks": round(spread(b), 4)})
    print(json.dumps({
        "median_images_per_s": {p: round(statistics.median(v), 1) for p, v in rates.items()},
        "speedup": round(statistics.median(rates["bfloat16"]) / statistics.median(rates["float32"]), 2),
        "cosine": {"min": round(float(cosine.min()), 5), "p1": round(float(np.percentile(cosine, 1)), 5),
                   "median": round(float(np.median(cosine)), 5)},
        "diversity_selection": selections, "load_average_after": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
