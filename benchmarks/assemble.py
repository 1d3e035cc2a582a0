"""Speed of the select task's assembly of a run's shards (``pipeline.assemble_run``) on moto's S3 server, with the
shards read one after another (``storage.IO_THREADS = 1``) and on threads, printed as figures (no assertions).

    python benchmarks/assemble.py                     # 40 shards of 64 files, 3 interleaved rounds
    python benchmarks/assemble.py --shards 100 --files 256

A run is listed from a local folder of small files (random bytes: the metadata stage marks them corrupt), its
metadata stage computed and an embeddings staging file of 1280-D vectors written per shard; the run's staging
folder is then uploaded to moto's S3 server (started by ``scripts/emulators.py`` on 127.0.0.1, its own process)
and assembled from there. Both ways must give the same rows, metadata and error tables.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # (staged_run: the run the tests assemble too)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--files", type=int, default=64, help="files per shard")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16, help="storage.IO_THREADS of the threaded variant")
    args = parser.parse_args()

    import boto3
    import emulators
    from staged_run import make_staged_run

    from lightly_airflow import pipeline, storage
    from lightly_airflow.storage import StorageCredentials, filesystem

    root = Path(tempfile.mkdtemp(prefix="lightly-assemble-"))
    emu = None
    try:
        pool, manifests = make_staged_run(root, args.shards, args.files, 1280, run_id="bench")
        emu = emulators.start_s3()
        boto3.client("s3", endpoint_url=emu.endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                     region_name="us-east-1").create_bucket(Bucket="assemble")
        creds = StorageCredentials(endpoint_url=emu.endpoint, access_key_id="x", secret_access_key="x",
                                   region="us-east-1")
        fs, _ = filesystem("s3://assemble/pool", creds)
        fs.put(str(pool / "_staging"), "assemble/pool/_staging", recursive=True)
        uris = ["s3://assemble/pool/" + str(Path(m).relative_to(pool)) for m in manifests]
        print(f"{len(uris)} shards of {args.files} files on moto S3 (own process, 127.0.0.1); "
              f"{args.rounds} interleaved rounds")
        times: dict[int, list[float]] = {1: [], args.threads: []}
        first = None
        for _ in range(args.rounds):
            for threads in times:
                storage.IO_THREADS = threads
                start = time.perf_counter()
                rows, meta, errors = pipeline.assemble_run(uris, creds)
                times[threads].append(time.perf_counter() - start)
                first = first or (rows, meta, len(errors))
                if not (rows.equals(first[0]) and meta == first[1] and len(errors) == first[2]):
                    raise SystemExit("the threaded assembly differs from the sequential one")
        for threads, values in times.items():
            rounds = ", ".join(f"{v:.2f}" for v in values)
            print(f"IO_THREADS = {threads:2d}: median {statistics.median(values):.2f} s ({rounds}); "
                  f"{rows.num_rows:,} rows")
    finally:
        if emu is not None:
            emulators.stop_pid(emu.pid)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
