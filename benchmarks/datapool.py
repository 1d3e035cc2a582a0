"""Datapool speed: commit a run into a large pool, read every selected embedding, diff and reuse lookups.

    python benchmarks/datapool.py                       # 1,000,000-sample pool, 10,000-sample run, D=64
    python benchmarks/datapool.py --pool-size 50000     # quick check
    python benchmarks/datapool.py --small-runs 1000     # a pool grown by 1,000 small runs, before/after compaction
    python benchmarks/datapool.py --small-runs 1000 --s3-endpoint http://127.0.0.1:PORT   # the same on S3

Prints one line per figure. The pool is built once under --dir (a temporary folder by default) with one
commit per --build-runs chunk; only the last steps are timed. ``--small-runs`` builds a pool run by run (10
samples each, as an hourly DAG on a quiet source leaves it), times the reads every run makes, merges the small
files (``lightly_airflow.datapool.compaction``) and times them again; with ``--s3-endpoint`` (an emulator from
``scripts/emulators.py start s3``) the pool is copied into a bucket there first.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool


def make_rows(start: int, n: int, dim: int, select_every: int, rng: np.random.Generator,
              extra_columns: int = 0) -> pa.Table:
    """``n`` synthetic processed samples: L2-normalised random embeddings, every ``select_every``-th selected;
    ``extra_columns`` more metadata fields (a real run's rows have ~55 columns)."""
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = np.arange(start, start + n)
    selected = ids % select_every == 0
    rank = np.full(n, -1, dtype=np.int64)
    rank[selected] = np.arange(int(selected.sum()))
    keys = [f"images/{i // 1000:04d}/{i:08d}.jpg" for i in ids]
    return pa.table({
        C.KEY: keys,
        C.SIZE: pa.array(50_000 + ids % 1000, pa.int64()),
        C.ETAG: [hashlib.md5(k.encode()).hexdigest() for k in keys],
        C.CONTENT_HASH: pa.array(ids.astype(str)),
        C.STATUS: pa.array([C.STATUS_OK] * n),
        C.EMBEDDING: pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
        C.lightly_metadata_column("sharpness"): pa.array(rng.random(n)),
        C.SELECTED: pa.array(selected),
        C.PICK_RANK: pa.array(rank, mask=~selected),
        **{C.lightly_metadata_column(f"extra{j:02d}"): pa.array(rng.random(n)) for j in range(extra_columns)},
    })


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def timed(label: str, fn: Any) -> Any:
    t0 = time.perf_counter()
    out = fn()
    print(f"  {label}: {time.perf_counter() - t0:.2f} s", flush=True)
    return out


#: Extra metadata columns of the small runs' rows: as wide as a real run's (the pool's ``commit_version`` then
#: comes after Delta's first 32 columns, which alone have statistics in the log, as in a real pool).
WIDE = 44


def small_runs(args: argparse.Namespace, root: Path) -> None:
    """A pool grown by ``--small-runs`` commits of 10 samples: the reads of a run, before and after compaction."""
    from lightly_airflow.datapool.compaction import compact
    from lightly_airflow.storage import StorageCredentials

    rng = np.random.default_rng(0)
    local = root / f"small-runs-{args.small_runs}"
    pool = Datapool(str(local))
    common = dict(dag_id="bench", config={}, counts={}, embedding_model="bench", embedding_dim=args.dim)
    t0 = time.perf_counter()
    for i in range(pool.version() or 0, args.small_runs):
        pool.commit(make_rows(i * 10, 10, args.dim, 3, rng, WIDE), run_id=f"run-{i}", tag=None,
                    read_version=pool.version(), **common)
    print(f"build: {args.small_runs:,} runs of 10 samples in {time.perf_counter() - t0:.1f} s")
    creds = None
    copies = {"ours": "compacted", "delta-rs OPTIMIZE": "optimized"}  # each merge on its own copy of the pool
    if args.s3_endpoint:
        import boto3
        from botocore.config import Config

        creds = StorageCredentials(endpoint_url=args.s3_endpoint, access_key_id="test", secret_access_key="test",
                                   region="us-east-1")
        s3 = boto3.client("s3", endpoint_url=args.s3_endpoint, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1",
                          config=Config(max_pool_connections=16))
        bucket = f"bench-{os.getpid()}"
        s3.create_bucket(Bucket=bucket)
        from concurrent.futures import ThreadPoolExecutor

        files = [p for p in local.rglob("*") if p.is_file()]
        uris = {name: f"s3://{bucket}/{folder}" for name, folder in copies.items()}
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda job: s3.upload_file(str(job[0]), bucket, f"{job[1]}/{job[0].relative_to(local)}"),
                        [(p, folder) for p in files for folder in copies.values()]))
    else:
        uris = {}
        for name, folder in copies.items():
            shutil.rmtree(root / folder, ignore_errors=True)
            shutil.copytree(local, root / folder)
            uris[name] = str(root / folder)

    def reads(label: str, uri: str) -> None:
        from lightly_airflow.datapool import snapshot

        fresh = Datapool(uri, creds)  # as a new task process: nothing cached
        snapshot._history_cache.clear()
        print(f"{label} ({len(fresh.snapshot().table.file_uris()):,} data files, {uri}):")
        snap = timed("load the log", fresh.snapshot)
        timed("selected set", snap.selected)
        timed("known_files (the listing's diff base)", snap.known_files)
        timed("tags (history + count)", snap.tags)

    reads("before compaction", uris["ours"])
    result = timed("compaction (ours)", lambda: compact(Datapool(uris["ours"], creds), force=True))
    print(f"  merged {result.files_removed:,} files into {result.files_added} (version {result.version})")
    # The peer a user would write: Delta's own OPTIMIZE (not used by the product: two concurrent ones both land and
    # every row is then read twice, docs/datapool.md).
    options = creds.delta_options("s3") if creds else None
    table = DeltaTable(uris["delta-rs OPTIMIZE"], storage_options=options)
    metrics = timed("compaction (delta-rs OPTIMIZE, target 32 MiB)", lambda: table.optimize.compact(target_size=32 * 2**20))
    print(f"  merged {metrics['numFilesRemoved']:,} files into {metrics['numFilesAdded']}")
    for name in copies:
        reads(f"after compaction: {name}", uris[name])
    fresh = Datapool(uris["ours"], creds)
    n = fresh.version()
    late = make_rows(10**8 + (n or 0), 10, args.dim, 3, rng, WIDE)
    timed("commit a run after ours", partial(fresh.commit, late, run_id="late", tag=None, read_version=n, **common))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool-size", type=int, default=1_000_000)
    parser.add_argument("--run-size", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--select-every", type=int, default=50, help="1 in N samples selected (2%%)")
    parser.add_argument("--build-runs", type=int, default=4, help="commits used to build the pool")
    parser.add_argument("--dir", default=None, help="where to build the pool (default: a temporary folder)")
    parser.add_argument("--small-runs", type=int, default=0, help="grow a pool by this many small runs instead")
    parser.add_argument("--s3-endpoint", default=None, help="with --small-runs: also copy it to this S3 endpoint")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(0)
    root = Path(args.dir or tempfile.mkdtemp(prefix="datapool-bench-"))
    if args.small_runs:
        small_runs(args, root)
        return
    uri = str(root / f"pool-{args.pool_size}-{args.dim}")
    pool = Datapool(uri)
    common = dict(dag_id="bench", tag=None, config={}, counts={}, embedding_model="bench", embedding_dim=args.dim)

    if not pool.exists():
        t0 = time.perf_counter()
        chunk = -(-args.pool_size // args.build_runs)
        for i, start in enumerate(range(0, args.pool_size, chunk)):
            rows = make_rows(start, min(chunk, args.pool_size - start), args.dim, args.select_every, rng)
            pool.commit(rows, run_id=f"build-{i}", read_version=pool.version(), **common)
        print(f"build pool: {args.pool_size:,} samples in {time.perf_counter() - t0:.1f} s "
              f"({du(Path(uri)) / 2**20:.0f} MiB on disk)")
    pool_rows = pool.read(columns=[C.KEY]).num_rows
    run_id = f"run-{os.getpid()}-{time.time_ns()}"
    rows = make_rows(pool_rows, args.run_size, args.dim, args.select_every, rng)

    t0 = time.perf_counter()
    version = pool.version()
    result = pool.commit(rows, run_id=run_id, read_version=version, **common)
    t_commit = time.perf_counter() - t0
    print(f"commit {args.run_size:,} samples into {pool_rows:,}: {t_commit:.2f} s (version {result.version})")

    t0 = time.perf_counter()
    again = pool.commit(rows, run_id=run_id, read_version=version, **common)
    print(f"retried commit (no-op): {time.perf_counter() - t0:.2f} s (already_committed={again.already_committed})")

    t0 = time.perf_counter()
    selected = pool.selected([C.KEY, C.EMBEDDING])
    t_sel = time.perf_counter() - t0
    emb = np.asarray(selected.column(C.EMBEDDING).combine_chunks().values).reshape(-1, args.dim)
    print(f"read all selected embeddings: {selected.num_rows:,} x {args.dim} in {t_sel:.2f} s "
          f"({emb.nbytes / 2**20:.1f} MiB)")

    t0 = time.perf_counter()
    known = pool.known_files()
    print(f"known_files (diff base): {known.num_rows:,} rows in {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    reuse = pool.embeddings_for(rows.select([C.KEY, C.ETAG]))
    print(f"embeddings_for {args.run_size:,} keys: {reuse.num_rows:,} found in {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    full = pool.read(columns=[C.KEY, C.EMBEDDING])
    print(f"read all embeddings: {full.num_rows:,} in {time.perf_counter() - t0:.2f} s")
    print(f"pool at {uri}")


if __name__ == "__main__":
    main()
