"""Object-level runs at scale: each stage of one run of the example DAG's stages, in process, on N images with
20-50 detections each (docs/objects.md, "Scale").

Usage::

    python benchmarks/objects_scale.py [--images 1000,4000] [--picks-per 10] [--shapes 20,50] [--workdir DIR]

Data: scikit-image photographs (160 x 120 crops, ``lightly_airflow.objects.demo_data``) with ``--shapes`` shapes
pasted on each and ``.lightly/predictions/<task>/`` files whose boxes are exactly those shapes. Built once per N
under ``--workdir`` (kept for later runs). The run: the list task (with the run's object spec, shards of 256),
then for every shard the metadata, predictions, image-embedding and object passes (crops, crop metrics and
thumbnails, the crops' embeddings), then select-and-commit with object DIVERSITY (``n_samples`` = N /
``--picks-per``) into a new datapool, and the COCO export of its tag. The model is the test suites' stand-in
(16 x 16 grey pixels, 256 dimensions: ``tests/object_pool.PixelEncoder``; torchvision models do not run here),
for the images and their crops alike, so the figures are the pipeline's own work, not a model's.

Printed per N: each stage's wall time (all shards; the object pass per shard too), the objects, the picks'
share of select-and-commit (its ``objects`` report: the selection's seconds), and the peak RSS of
select-and-commit above the RSS at its start (sampled every 5 ms). One run per N: these take minutes; run it
on a quiet machine and say what else it was doing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # (tests.object_pool: the stand-in encoder)

RUN_ID = "scheduled__2026-06-01T00:00:00+00:00"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The largest RSS of this process while the ``with`` block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def make_images(source: Path, n: int, shapes: tuple[int, int]) -> int:
    from lightly_airflow.objects.demo_data import add_images

    if (source / "done.json").exists():
        return int(json.loads((source / "done.json").read_text())["boxes"])
    shutil.rmtree(source, ignore_errors=True)
    boxes = 0
    for start in range(0, n, 500):
        preds = add_images(source, start, min(500, n - start), seed=11, shapes=shapes)
        boxes += sum(len(p) for p in preds.values())
    (source / "done.json").write_text(json.dumps({"images": n, "boxes": boxes}))
    return boxes


def run(n: int, work: Path, picks_per: int, shapes: tuple[int, int]) -> None:
    import torch

    from lightly_airflow.datapool import Datapool
    from lightly_airflow.datapool.export import export_tag
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.objects import ObjectsSpec
    from lightly_airflow.objects.demo_data import TASK
    from lightly_airflow.objects.shard import embed_objects_shard
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard
    from tests.object_pool import DAG_ID, PixelEncoder, pixel_embeddings

    source = work / f"images-{n}"
    t = time.perf_counter()
    boxes = make_images(source, n, shapes)
    print(f"\nN = {n:,} images, {boxes:,} boxes (data ready in {time.perf_counter() - t:.1f} s)", flush=True)
    pool = work / f"pool-{n}"
    shutil.rmtree(pool, ignore_errors=True)
    spec = ObjectsSpec(tasks=(TASK,), padding=0.1, upload=False, selection_tasks=(TASK,))
    query = NewFilesQuery.build(datasource_uri=str(source), datapool_uri=str(pool))
    times: dict[str, float] = {}

    def timed(name: str, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        s = time.perf_counter()
        out = f(*args, **kwargs)
        times[name] = times.get(name, 0.0) + time.perf_counter() - s
        return out

    listed = timed("list", list_new, query, run_id=RUN_ID, objects=spec)
    manifests = listed.manifests
    for m in manifests:
        timed("metadata", compute_metadata_shard, m)
        timed("predictions", load_predictions_shard, m, lightly_uri=str(source))
        timed("image embeddings (stand-in)", pixel_embeddings, m, source)
    per_shard = []
    objects = 0
    encoder = PixelEncoder()
    for m in manifests:
        s = time.perf_counter()
        out = embed_objects_shard(m, encoder=encoder, device=torch.device("cpu"), batch_size=64, num_workers=2)
        per_shard.append(time.perf_counter() - s)
        objects += int((out or {}).get("objects", 0))
    times["object pass"] = sum(per_shard)
    n_samples = max(1, n // picks_per)
    selection = {"n_samples": n_samples,
                 "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
    with PeakRss() as mem:
        summary = timed("select and commit", select_and_commit, datapool_uri=str(pool), run_id=RUN_ID, dag_id=DAG_ID,
                        manifests=manifests, selection_config=selection)
    tag = summary.tag
    coco = timed("COCO export of the tag", export_tag, Datapool(str(pool)), tag, fmt="coco", datasource_uri=str(source))
    picks_s = (summary.metrics or {}).get("seconds")
    print(f"  shards: {len(manifests)}; objects: {objects:,}; picked {summary.selected:,} images "
          f"(n_samples {n_samples:,}); COCO: {len(coco['images']):,} images, {len(coco.get('annotations', [])):,} "
          "annotations")
    for name, v in times.items():
        extra = ""
        if name == "object pass":
            extra = f"  (per shard: median {sorted(per_shard)[len(per_shard) // 2]:.2f} s, max {max(per_shard):.2f} s)"
        if name == "select and commit":
            extra = (f"  (the picks: {picks_s} s; peak RSS {mem.peak / 2**30:.2f} GiB, "
                     f"+{(mem.peak - mem.start) / 2**30:.2f} GiB above its start)")
        print(f"  {name:28s} {v:8.2f} s{extra}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="1000,4000", help="numbers of images, one run each")
    ap.add_argument("--picks-per", type=int, default=10, help="n_samples = images / this")
    ap.add_argument("--shapes", default="20,50", help="fewest,most detections an image gets")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "lightly_bench_objects_scale"))
    a = ap.parse_args()
    lo, hi = (int(v) for v in a.shapes.split(","))
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f} (SHARED: say what else runs)")
    for n in (int(v) for v in a.images.split(",")):
        run(n, work, a.picks_per, (lo, hi))


if __name__ == "__main__":
    main()
