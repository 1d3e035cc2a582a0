"""Selection after a large datapool: DIVERSITY over new candidates when everything selected before counts as
selected (``lightly-airflow select --preselected``), against the loop a user would write and Lightly's engine.
Each method is one whole process on the same data, interleaved rounds, medians.

Usage::

    python benchmarks/preselected.py [--shapes clustered,hard] [--k 1000] [--rounds 3]

Shapes (64-D unit vectors from ``benchmarks/selection.py``'s generator; the first P rows are the pool):

* ``clustered``: 50,000 candidates after 200,000 preselected (100 clusters of intrinsic dimension 6, spread 0.3);
* ``hard``: 50,000 candidates after 100,000 preselected (200 clusters, spread 0.35);
* ``images``: 8,000 candidates after 20,000 preselected real-image embeddings (1,280-D, ``benchmarks/selection.py``'s
  crops of scikit-image's photos through the project's encoder: a pool of earlier runs and a new run alike);
* ``images-wide``: 25,000 candidates after 15,000 preselected of the same embeddings (above the 20,000 rows up to
  which any input takes the numpy state: wide ones keep it up to 50,000);
* ``images-large``: 60,000 candidates after 20,000 preselected of the same embeddings (above 50,000: wide inputs
  after a pool keep the numpy state at any size; the compiled state took 24.8 s in process here).

Methods:

* ``ours``: the CLI (Parquet in: candidates and preselected samples with their embeddings; picks out);
* ``loop32``: float32, BLAS: the largest cosine similarity of each candidate to the pool, blocks of 1,024
  preselected vectors at a time (``np.dot`` into one buffer, a row maximum), then the in-place greedy loop (blocks
  of 1,024 were its fastest: 50,000 after 200,000, 2 rounds: 256 19.8-20.8 s, 1,024 12.1-12.5 s, 4,096 13.5-13.9 s);
* ``mundig``: ``lightly_mundig`` with the pool and the candidates in one matrix and the pool's indices as
  preselected (``run_selection(range(P), P + N, P + k)``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from selection import agree, clustered, image_embeddings, picks_of, run_process  # noqa: E402  (the same generators, timing)

LOOP_BLOCK = 1024
SHAPES = {"clustered": (50_000, 200_000, dict(clusters=100, spread=0.3, seed=0)),
          "hard": (50_000, 100_000, dict(clusters=200, spread=0.35, seed=1)),
          "images": (8_000, 20_000, {}),
          "images-wide": (25_000, 15_000, {}),
          "images-large": (60_000, 20_000, {})}


def prepare(work: Path, shape: str, k: int) -> tuple[Path, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, p, opts = SHAPES[shape]
    d = work / f"preselected-{shape}-{n}-{p}"
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "candidates.parquet").exists():
        m = 40_000 if n + p <= 40_000 else 120_000  # (the same crops: the larger file starts with the smaller)
        x = (image_embeddings(work / f"image-embeddings-{m}.npy", m)[: n + p] if shape.startswith("images")
             else clustered(n + p, 64, **opts))
        x = (x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
        np.save(d / "pool.npy", x[:p])
        np.save(d / "candidates.npy", x[p:])
        for name, rows, prefix in (("pool", x[:p], "p"), ("candidates", x[p:], "s")):
            pq.write_table(pa.table({
                "key": pa.array([f"{prefix}{i:07d}" for i in range(len(rows))]),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), x.shape[1])}),
                d / f"{name}.parquet")
    (d / f"config-{k}.json").write_text(json.dumps({"n_samples": k, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    return d, p


def pool_similarity(x: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """The loop's start after a pool: each candidate's largest cosine similarity to it (-inf without one),
    the pool multiplied in blocks of :data:`LOOP_BLOCK` vectors into one buffer."""
    n = len(x)
    sim = np.full(n, -np.inf, dtype=np.float32)
    block = np.empty((n, LOOP_BLOCK), dtype=np.float32) if len(pool) else None
    for s in range(0, len(pool), LOOP_BLOCK):
        part = pool[s : s + LOOP_BLOCK]
        buf = block if len(part) == LOOP_BLOCK and block is not None else np.empty((n, len(part)), dtype=np.float32)
        np.dot(x, part.T, out=buf)
        np.maximum(sim, buf.max(axis=1), out=sim)
    return sim


def worker(method: str, d: str, k: int, out: str) -> None:
    pool, x = np.load(Path(d) / "pool.npy"), np.load(Path(d) / "candidates.npy")
    if method == "loop32":
        n = len(x)
        sim = pool_similarity(x, pool)
        one = np.empty(n, dtype=np.float32)
        picks = []
        for _ in range(k):
            i = int(np.argmin(sim))
            picks.append(i)
            np.dot(x, x[i], out=one)
            np.maximum(sim, one, out=sim)
    elif method == "mundig":
        import lightly_mundig

        p = len(pool)
        sel = lightly_mundig.Selection()
        sel.add_diversifying_strategy(np.concatenate([pool, x]), 1.0, None)
        picks = [i - p for i in sel.run_selection(list(range(p)), p + len(x), p + k) if i >= p]
    else:
        raise SystemExit(f"unknown method {method!r}")
    np.save(out, np.asarray(picks, dtype=np.int64))


def timed_rounds(shape: str, d: Path, k: int, methods: list[str], rounds: int, peer_rounds: int, script: str,
                 pool: bool) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, np.ndarray]]:
    """Whole processes of each method on the files in ``d`` (ours: ``lightly-airflow select`` on
    ``candidates.parquet``, with ``pool.parquet`` preselected when ``pool``, and ``config-{k}.json``; the others:
    ``script --worker``): one untimed warm-up each (mundig none: it has no caches to fill), then ``rounds``
    interleaved rounds (mundig ``peer_rounds``); wall times, cores used and the last picks of each method."""
    cli = str(Path(sys.executable).with_name("lightly-airflow"))
    times: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    picks: dict[str, np.ndarray] = {}
    for r in range(-1, max(rounds, peer_rounds)):
        for m in methods[r % len(methods):] + methods[: r % len(methods)]:
            if r >= (peer_rounds if m == "mundig" else rounds) or (r < 0 and m == "mundig"):
                continue
            out = d / (f"picks-{m}-{k}.parquet" if m == "ours" else f"picks-{m}-{k}.npy")
            if m == "ours":
                cmd = [cli, "select", "--samples", str(d / "candidates.parquet"), "--config", str(d / f"config-{k}.json"),
                       "--out", str(out)] + (["--preselected", str(d / "pool.parquet")] if pool else [])
            else:
                cmd = [sys.executable, script, "--worker", m, "--dir", str(d), "--k", str(k), "--out", str(out)]
            wall, used, _ = run_process(cmd)
            if r < 0:
                print(f"  warm-up {shape} {m}: {wall:.1f} s", flush=True)
                continue
            times[m].append(wall)
            cpu[m].append(used / wall)
            picks[m] = picks_of(m, out)
    return times, cpu, picks


def report(label: str, methods: list[str], times: dict[str, list[float]], cpu: dict[str, list[float]],
           picks: dict[str, np.ndarray]) -> str:
    """Print each method's median (rounds, cores, ratio and agreement with ours); the table row of ``label``
    (a column per method, "—" where one did not run)."""
    med = {m: statistics.median(v) for m, v in times.items() if v}
    for m in med:
        line = (f"  {m:8s} {med[m]:7.2f} s  (rounds: {', '.join(f'{t:.2f}' for t in times[m])}; "
                f"{statistics.median(cpu[m]):.2f} cores)")
        if m != "ours" and "ours" in med:
            line += f"; ours {med[m] / med['ours']:.2f}x faster; first {agree(picks['ours'], picks[m])} picks identical"
        print(line, flush=True)
    ratios = [f"{med[m] / med['ours']:.2f}×" if m in med else "—" for m in methods if m != "ours"]
    return "| " + " | ".join([label, *(f"{med[m]:.2f} s" if m in med else "—" for m in methods), *ratios]) + " |"


def print_table(methods: list[str], rows: list[str]) -> None:
    """The markdown table of :func:`report`'s rows."""
    others = [m for m in methods if m != "ours"]
    print("\n| shape | " + " | ".join([*methods, *(f"ours vs {m}" for m in others)]) + " |")
    print("|---" * (len(methods) + len(others) + 1) + "|")
    print("\n".join(rows))


def arguments(doc: str, shapes: str, k: int) -> argparse.Namespace:
    """The options of a whole-process benchmark (and its hidden worker's), parsed; prints the machine line
    unless this is a worker."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--shapes", default=shapes)
    ap.add_argument("--k", type=int, default=k)
    ap.add_argument("--methods", default="ours,loop32,mundig")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer-rounds", type=int, default=1, help="timed rounds of mundig")
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "lightly_bench_selection"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.worker:
        print(f"machine: {os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f}); one untimed warm-up run per "
              f"method and shape, then {a.rounds} interleaved rounds ({a.peer_rounds} for mundig), median wall time "
              "of each whole process", flush=True)
    return a


def main() -> None:
    a = arguments(__doc__ or "", "clustered,hard", 1000)
    if a.worker:
        worker(a.worker, a.dir, a.k, a.out)
        return
    methods = a.methods.split(",")
    rows = []
    for shape in a.shapes.split(","):
        d, p = prepare(Path(a.workdir), shape, a.k)
        n, dim = np.load(d / "candidates.npy", mmap_mode="r").shape
        times, cpu, picks = timed_rounds(shape, d, a.k, methods, a.rounds, a.peer_rounds, __file__, pool=True)
        print(f"\n{shape}: N = {n:,} candidates after P = {p:,} preselected, D = {dim}, k = {a.k:,}")
        rows.append(report(f"{shape}: {n:,} after {p:,}, k = {a.k:,}", methods, times, cpu, picks))
    print_table(methods, rows)


if __name__ == "__main__":
    main()
