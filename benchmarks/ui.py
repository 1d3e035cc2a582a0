"""UI server time on a generated 1,000,000-sample datapool: grid page, sample page, tag page, filter + count,
embedding map payload, thumbnails.

    python benchmarks/ui.py                  # 1,000,000 samples (built once under --dir, ~2-4 min)
    python benchmarks/ui.py --n 100000       # quick check

The pool is made like a run makes it: one commit of ``n`` rows with 64-d embeddings, 12 lightly metrics, a score,
a categorical field, 10,000 selected samples with pick ranks, the stored 2-D map layout, and WebP thumbnails for
the samples the timed pages show. Requests go through the plugin's FastAPI app in process (Airflow's auth
checks overridden), so the figures are server time without the network. Each figure is the median of
``--rounds`` interleaved rounds after one cold round (reported separately: the first request of a process
pays DataFusion's start-up and the per-version caches).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa


def build(path: Path, n: int, seed: int = 0, dim: int = 64, datasource_uri: str = "file:///nonexistent") -> str:
    """Commit ``n`` synthetic samples as one run (skipped when the pool exists); their keys are
    ``images/<i // 1000:04d>/<i:08d>.jpg`` in ``datasource_uri``."""
    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.report.layout import add_layout

    uri = f"file://{path}"
    pool = Datapool(uri)
    if pool.exists():
        return uri
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)).astype(np.float32)
    cluster = rng.integers(0, 20, n)
    emb = centres[cluster] + 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = np.arange(n)
    selected = (ids % (n // 10_000 or 1) == 0) & (ids % 500 != 7)  # (corrupt rows are never selected)
    rank = np.full(n, -1, dtype=np.int64)
    rank[selected] = rng.permutation(int(selected.sum()))
    keys = [f"images/{i // 1000:04d}/{i:08d}.jpg" for i in ids]
    cols: dict[str, pa.Array] = {
        C.KEY: pa.array(keys),
        C.SIZE: pa.array(50_000 + ids % 1000, pa.int64()),
        C.ETAG: pa.array([f"{i:032x}" for i in ids]),
        C.CONTENT_HASH: pa.array([f"{i:064x}" for i in ids]),
        C.STATUS: pa.array(np.where(ids % 500 == 7, "corrupt", "ok")),
        C.STATUS_REASON: pa.array([None if i % 500 != 7 else "truncated image" for i in ids], pa.string()),
        C.EMBEDDING: pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim),
        C.metadata_column("weather"): pa.array(np.array(["sunny", "rain", "fog", "snow"])[cluster % 4]),
        C.score_column("det", "uncertainty_margin"): pa.array(rng.random(n)),
        C.SELECTED: pa.array(selected),
        C.PICK_RANK: pa.array(np.where(rank >= 0, rank, 0), pa.int64(), mask=rank < 0),
    }
    for m in ("sharpness", "snr", "luminance", "contrast", "meanRed", "meanGreen", "meanBlue", "stdRed",
              "stdGreen", "stdBlue", "width", "height"):
        cols[C.lightly_metadata_column(m)] = pa.array(rng.gamma(2.0, 10.0, n))
    rows = add_layout(pa.table(cols), uri)
    t = time.perf_counter()
    pool.commit(rows, run_id="scheduled__2026-01-01T00:00:00+00:00", dag_id="bench", tag=None,
                config={"n_samples": 10_000}, counts={"processed": n}, embedding_model=f"synthetic-{dim}",
                embedding_dim=dim, read_version=None, datasource_uri=datasource_uri)
    print(f"built a {n:,}-sample pool in {time.perf_counter() - t:.1f} s (commit) at {path}", flush=True)
    return uri


def app_for(uri: str) -> Any:
    """The plugin's app mounted at ``/lightly`` as Airflow mounts it, serving the pool at ``uri`` as ``bench``,
    with Airflow's auth checks overridden (server time only)."""
    from fastapi import FastAPI

    os.environ["LIGHTLY_DATAPOOLS"] = json.dumps({"bench": {"uri": uri}})
    os.environ.pop("AIRFLOW__LIGHTLY__DATAPOOLS", None)
    from lightly_airflow.plugins import app as plugin_app

    sub = plugin_app.create_app()
    for dep in (plugin_app.AUTHENTICATED, plugin_app.CAN_TAG, plugin_app.CURRENT_USER, plugin_app.CAN_READ_RUNS):
        sub.dependency_overrides[dep] = lambda: None
    root = FastAPI()
    root.mount("/lightly", sub)
    return root


def thumbnails_for(uri: str, sample_ids: list[str]) -> None:
    from PIL import Image

    from lightly_airflow.thumbnails import ThumbnailWriter, thumbnails_uri

    writer = ThumbnailWriter(thumbnails_uri(uri))
    rng = np.random.default_rng(1)
    for sid in sample_ids:
        writer.add(sid, Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)))
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "lightly-ui-bench"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64, help="embedding width (the default model writes 1280)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    path = Path(args.dir) / (f"pool-{args.n}" if args.dim == 64 else f"pool-{args.n}-d{args.dim}")
    uri = build(path, args.n, dim=args.dim)
    from fastapi.testclient import TestClient

    client = TestClient(app_for(uri))

    grid_url = "/lightly/pools/bench/samples?limit=100&sort=metadata.lightly.sharpness&order=desc"
    first = client.get("/lightly/api/pools/bench/samples?limit=100&sort=metadata.lightly.sharpness&order=desc").json()
    sids = [i["sample_id"] for i in first["items"]]
    thumbnails_for(uri, sids)
    sid = sids[3]
    cases = {
        "grid page, 100 thumbnails, sorted by a metric (HTML)": grid_url,
        "  its 100 thumbnails (all 100 requests)": [f"/lightly/pools/bench/thumbnails/{s}" for s in sids],
        "tag page: initial-tag in pick order, 100 (HTML)": "/lightly/pools/bench/samples?tag=initial-tag&limit=100",
        "sample page (HTML)": f"/lightly/pools/bench/samples/{sid}",
        "filter + count: 2 ranges + category + status": (
            "/lightly/api/pools/bench/samples?lo.metadata.lightly.sharpness=10&hi.metadata.lightly.sharpness=40"
            "&lo.scores.det.uncertainty_margin=0.2&in.metadata.weather=rain&in.metadata.weather=fog&in.status=ok"
            "&limit=1"
        ),
        "map payload: 1M points -> density + 20k sampled, coloured by a metric": (
            "/lightly/api/pools/bench/map?color=metadata.lightly.sharpness"
        ),
        "map payload of a tag (10k points)": "/lightly/api/pools/bench/map?tag=initial-tag&color=selected",
        "grid sorted by similarity to a sample, 100 (HTML)": f"/lightly/pools/bench/samples?sort=similar:{sid}&limit=100",
        "  its next page (the ordering kept)": f"/lightly/pools/bench/samples?sort=similar:{sid}&limit=100&offset=100",
        "  a sample page stepping through it": f"/lightly/pools/bench/samples/{sid}?sort=similar:{sid}&at=0",
        "similar samples within a tag (10k), 100 (HTML)": (
            f"/lightly/pools/bench/samples?tag=initial-tag&sort=similar:{sid}&limit=100"),
    }

    from lightly_airflow.plugins import query

    def timed(target: str | list[str]) -> float:
        urls = target if isinstance(target, list) else [target]
        if any("sort=similar:" in u and "offset=" not in u and "at=" not in u for u in urls):
            query._similar_cache.clear()  # a new similarity ordering: every embedding read (its pages then reuse it)
        query._grid_cache.clear()  # (the grid's rows are kept per version: each round reads its page again)
        t = time.perf_counter()
        for u in urls:
            r = client.get(u)
            if r.status_code != 200:
                raise SystemExit(f"{u} answered {r.status_code}: {r.text[:300]}")
        return time.perf_counter() - t

    cold = {name: timed(url) for name, url in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, url in cases.items():  # interleaved rounds
            times[name].append(timed(url))
    total = client.get(cases["filter + count: 2 ranges + category + status"]).json()["total"]
    payload = client.get(cases["map payload: 1M points -> density + 20k sampled, coloured by a metric"])
    print(f"\nUI server time on a {args.n:,}-sample datapool (in-process ASGI, no network; the machine was shared "
          f"with other work; median of {args.rounds} interleaved rounds, first request separately):")
    print(f"{'':72s} {'median':>8s} {'first':>8s}")
    for name in cases:
        print(f"{name:72s} {statistics.median(times[name]):7.3f}s {cold[name]:7.3f}s")
    body = payload.json()
    print(f"\nfilter matched {total:,} samples; map payload {len(payload.content) / 1e6:.2f} MB with "
          f"{body['shown']:,} of {body['total']:,} points and a {body['bins']}x{body['bins']} density grid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
