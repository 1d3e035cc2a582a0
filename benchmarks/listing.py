"""Speed of new-file detection and of listing, printed as figures (no assertions).

    python benchmarks/listing.py                       # full size: 1,000,000 x 1,000,000 diff, 100,000 objects
    python benchmarks/listing.py --keys 100000 --objects 2000   # quick run while developing

(a) ``new_files``: a listing of ``--keys`` files anti-joined against a datapool of ``--keys`` known files
    (90% unchanged, 5% changed content, 5% new keys in the listing).
(c) listing ``--files`` small local files (a deep, a wide and a ``.lightly/`` folder) cold (every file hashed),
    warm (every hash cached in-process: a sensor's next poke) and in a new process with the hashes the one before
    kept (the deferrable sensor's child process: ``datasource.check.hashes_kept``).
(b) listing ``--objects`` objects from moto's S3 server (a child process on 127.0.0.1 whose bucket is filled
    through moto's backend, stopped by its PID) through ``lightly_airflow.datasource.list_files`` and through ``S3Hook.list_keys`` on the same bucket
    in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))


def bench_diff(n: int) -> None:
    import numpy as np

    from lightly_airflow.datasource import MANIFEST_SCHEMA, new_files

    idx = pa.array(np.arange(n, dtype=np.int64))
    keys = pc.binary_join_element_wise("images/batch-", pc.cast(pc.divide(idx, 1000), pa.string()), "/img-",
                                       pc.cast(idx, pa.string()), ".png", "")
    etags = pc.binary_join_element_wise("md5:", pc.cast(pc.multiply(idx, 7919), pa.string()), "")
    known = pa.table({"key": keys, "etag": etags, "content_hash": etags})
    # Listing: the same keys; every 20th has new content, every 20th (offset 10) is replaced by a new key.
    changed = pa.array(np.arange(n) % 20 == 0)
    renamed = pa.array(np.arange(n) % 20 == 10)
    list_keys = pc.if_else(renamed, pc.binary_join_element_wise(keys, ".new", ""), keys)
    list_etags = pc.if_else(changed, pc.binary_join_element_wise(etags, "-v2", ""), etags)
    listing = pa.Table.from_arrays(
        [list_keys, pa.array(np.full(n, 1000, dtype=np.int64)), list_etags, pa.nulls(n, pa.timestamp("us", tz="UTC"))],
        schema=MANIFEST_SCHEMA,
    )
    expected = int(pc.sum(pc.or_(changed, renamed).cast(pa.int64())).as_py())
    for policy in ("content", "key"):
        start = time.perf_counter()
        fresh = new_files(listing, known, policy=policy)
        took = time.perf_counter() - start
        want = expected if policy == "content" else int(pc.sum(renamed.cast(pa.int64())).as_py())
        assert fresh.num_rows == want, (fresh.num_rows, want)
        print(f"(a) new_files policy={policy}: {n:,} listed vs {n:,} known -> {fresh.num_rows:,} new "
              f"in {took:.2f} s")


def _walk_and_hash(root: Path) -> int:
    """The straightforward listing with content identity: every file under ``root`` but ``.lightly/``, hashed."""
    import hashlib

    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".lightly"]
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                hashlib.sha256(fh.read()).hexdigest()
            count += 1
    return count


def bench_local(n: int) -> None:
    import subprocess
    import tempfile

    from lightly_airflow.datasource import list_table

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        for i in range(n):
            folder = root / ("wide" if i % 2 else f"deep/ü{i % 7}/{i % 13}/{i % 50}")
            if i % 10 == 9:
                folder = root / ".lightly" / "predictions" / "task"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"img-{i:07d}.png").write_bytes(i.to_bytes(8, "little"))
        start = time.perf_counter()
        plain = _walk_and_hash(root)
        print(f"(c) baseline, os.walk + hashlib.sha256 of every file (what a user would write, .lightly/ skipped): "
              f"{plain:,} files in {time.perf_counter() - start:.2f} s")
        for attempt in ("cold", "warm"):
            start = time.perf_counter()
            count = list_table(str(root)).num_rows
            print(f"(c) {attempt} local listing: {count:,} files (of {n:,}: .lightly/ not listed) in "
                  f"{time.perf_counter() - start:.2f} s")
        child = ("import sys, time; sys.path.insert(0, sys.argv[1]); from lightly_airflow.datasource import list_table;"
                 " from lightly_airflow.datasource.check import hashes_kept; start = time.perf_counter()\n"
                 "with hashes_kept(sys.argv[2]): n = list_table(sys.argv[2]).num_rows\n"
                 "print(f'{n:,} files in {time.perf_counter() - start:.2f} s')")
        env = {**os.environ, "TMPDIR": tmp}
        for attempt in ("first", "second"):
            out = subprocess.run([sys.executable, "-c", child, str(ROOT), str(root)], env=env, check=True,
                                 capture_output=True, text=True).stdout.strip()
            print(f"(c) {attempt} listing in a new process with the hashes the one before kept: {out}")


def serve_moto(port: int, bucket: str, n: int) -> None:
    """Child process: a moto S3 server on 127.0.0.1 whose bucket is filled through moto's backend (seconds
    for 100,000 objects, instead of minutes of HTTP PUTs), then served until the parent stops it by PID."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    body = b"\x89PNG" + b"\x00" * 60
    start = time.perf_counter()
    for i in range(n):
        backend.put_object(bucket, f"images/{i % 97:02d}/img-{i:07d}.png", body)
    print(f"filled {time.perf_counter() - start:.1f}", flush=True)
    while True:
        time.sleep(60)


def bench_s3(n: int) -> None:
    import subprocess

    import emulators

    from lightly_airflow.datasource import list_files
    from lightly_airflow.storage import StorageCredentials

    port = emulators.free_port()
    bucket = "bench-listing"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-moto", str(port), bucket, str(n)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        line = ""
        while child.poll() is None and not line.startswith("filled"):
            line = child.stdout.readline()
        if not line.startswith("filled"):
            raise RuntimeError(f"moto server did not start (exit code {child.poll()})")
        print(f"(b) moto S3 server (own process, PID {child.pid}) with {n:,} objects, filled in {line.split()[1]} s")
        endpoint = f"http://127.0.0.1:{port}"
        creds = StorageCredentials(endpoint_url=endpoint, access_key_id="x", secret_access_key="x",
                                   region="us-east-1")
        os.environ["AIRFLOW_CONN_BENCH_S3"] = json.dumps({
            "conn_type": "aws", "login": "xxxxx", "password": "xxxxx",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        })
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        for attempt in ("cold", "warm"):
            start = time.perf_counter()
            count = sum(b.num_rows for b in list_files(f"s3://{bucket}/images", credentials=creds))
            ours = time.perf_counter() - start
            assert count == n, (count, n)
            print(f"(b) {attempt} list_files (key, size, etag, mtime; streamed in 10k batches): {count:,} objects "
                  f"in {ours:.2f} s ({count / ours:,.0f}/s)")
            start = time.perf_counter()
            keys = S3Hook(aws_conn_id="bench_s3").list_keys(bucket_name=bucket, prefix="images/")
            theirs = time.perf_counter() - start
            assert len(keys) == n, (len(keys), n)
            print(f"(b) {attempt} S3Hook.list_keys (keys only, one list in memory): {len(keys):,} keys "
                  f"in {theirs:.2f} s ({len(keys) / theirs:,.0f}/s)")
    finally:
        emulators.stop_pid(child.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="listing and datapool size for (a)")
    parser.add_argument("--objects", type=int, default=100_000, help="objects to create in moto for (b)")
    parser.add_argument("--files", type=int, default=100_000, help="local files to create for (c)")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--serve-moto", nargs=3, metavar=("PORT", "BUCKET", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_moto:
        serve_moto(int(args.serve_moto[0]), args.serve_moto[1], int(args.serve_moto[2]))
        return 0
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    print(f"machine: {os.cpu_count()} CPU cores (shared), pyarrow {pa.__version__}")
    bench_diff(args.keys)
    if args.files:
        bench_local(args.files)
    if not args.skip_s3:
        bench_s3(args.objects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
