"""Selection memory: peak RSS of whole ``lightly-airflow select`` processes over the embedding matrix.

Usage::

    python benchmarks/selection_memory.py [--sizes 250000,500000,1000000] [--images 8000] [--k 3000] [--rounds 3]
    python benchmarks/selection_memory.py --stages 1000000     # where the memory goes, stage by stage
    python benchmarks/selection_memory.py --stages images

Inputs (the select CLI's Parquet: ``key`` + ``embedding``), written once under ``--workdir`` (shared with
``benchmarks/selection.py``, whose data functions this reuses):

* ``clustered``: N × 64 unit vectors, 100 clusters of intrinsic dimension 6, spread 0.3, one N per ``--sizes``;
* ``wide``: N × 1280 of the same kind, one N per ``--wide`` (none by default);
* ``images``: ``--images`` embeddings of real photos (random crops of scikit-image's bundled images, the
  project's efficientnet-lite0 encoder, 1280-D; made once and cached, minutes);
* ``tiny``: the same process shape with almost no data, measured to give the **fixed cost** (interpreter +
  imported libraries + loaded kernels): the fewest rows × 8 that take the compiled state (``NUMPY_MAX_ROWS``
  and ``NUMPY_MAX_WORK``; numba and its cached kernels loaded, ~2 MiB of matrix at k = 3,000) and ``tiny-numpy`` (1,000 × 8: the numpy-only state up to
  ``NUMPY_MAX_ROWS`` candidates, no numba) for inputs of at most that many rows.

Every process runs DIVERSITY with ``n_samples = --k`` (``min(k, N / 4)``) and writes its picks; the inputs are
interleaved round by round and the median peak RSS (``/usr/bin/time``'s maximum resident set size of the
process) is printed with: the fixed cost of the same process shape, the matrix (N × D × 4 bytes), the
ratio (peak - fixed) / matrix, the whole-process ratio peak / matrix, and the marginal slope between
consecutive sizes of one dimension ((peak₂ - peak₁) / (matrix₂ - matrix₁): bytes per matrix byte, the
fixed cost cancels). One untimed warm-up process first (bytecode and numba's on-disk cache).

``--stages N`` (or ``images``) runs one clustered N × 64 (or the images') selection in this process with RSS snapshots between the stages
(imports, embedding read, table read, numba, state, picks, metrics, output), plus the Arrow memory pool's
allocated and peak bytes: tracemalloc does not see numpy's or Arrow's C buffers.
"""

from __future__ import annotations

import os

# --stages runs the select CLI's code in this process: Arrow on the system allocator as `lightly-airflow select`
# sets it (the variable is read when pyarrow loads, so before any import below).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from selection import clustered, image_embeddings, run_process  # noqa: E402

from lightly_airflow.selection.kernels import NUMPY_MAX_ROWS, NUMPY_MAX_WORK, uses_numpy_state  # noqa: E402

MiB = 2**20


def write_input(work: Path, name: str, x_of: object, k: int) -> tuple[Path, Path, int, int, int]:
    """``samples.parquet`` and ``config.json`` of one input (written once); returns them, N, D and k."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = work / name
    parquet, config = d / "samples.parquet", d / f"config-{k}.json"
    if not parquet.exists():
        assert callable(x_of)
        x = x_of()
        x = (x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
        d.mkdir(parents=True, exist_ok=True)
        table = pa.table({"key": pa.array([f"s{i:07d}" for i in range(len(x))]),
                          "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])})
        pq.write_table(table, parquet)
    meta = pq.ParquetFile(parquet)
    n = meta.metadata.num_rows
    dim = meta.schema_arrow.field("embedding").type.list_size
    k = max(1, min(k, n // 4))
    config.write_text(json.dumps({"n_samples": k, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    return parquet, config, n, dim, k


def inputs(work: Path, sizes: list[int], n_images: int, k: int, wide: list[int]
           ) -> dict[str, tuple[Path, Path, int, int, int]]:
    t = NUMPY_MAX_ROWS + 1  # (the fewest rows of 8-D that take the compiled state for min(k, N / 4) picks)
    while uses_numpy_state(t, 8, picks=min(k, t // 4)):
        t = max(t + 1, NUMPY_MAX_WORK // max(1, min(k, t // 4)) + 1)
    out = {
        "tiny": write_input(work, f"memory-tiny-{t}x8", lambda: clustered(t, 8), k),
        "tiny-numpy": write_input(work, "memory-tiny-1000x8", lambda: clustered(1000, 8), k),
    }
    for n in sizes:
        out[f"clustered {n:,}"] = write_input(work, f"clustered-{n}", lambda n=n: clustered(n, 64), k)
    for n in wide:
        out[f"wide {n:,}"] = write_input(work, f"wide-{n}x1280", lambda n=n: clustered(n, 1280), k)
    if n_images:
        out[f"images {n_images:,}"] = write_input(
            work, f"images-{n_images}", lambda: image_embeddings(work / f"image-embeddings-{n_images}.npy", n_images), k)
    return out


def measure(a: argparse.Namespace) -> None:
    work = Path(a.workdir)
    cli = str(Path(sys.executable).with_name("lightly-airflow"))
    ins = inputs(work, [int(v) for v in a.sizes.split(",") if v], a.images, a.k,
                 [int(v) for v in a.wide.split(",") if v])
    print(f"machine: {os.cpu_count()} CPU cores, SHARED with other jobs; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; {a.rounds} interleaved rounds, median peak RSS of "
          "each whole `lightly-airflow select` process (/usr/bin/time maximum resident set size)", flush=True)
    peaks: dict[str, list[float]] = {name: [] for name in ins}
    walls: dict[str, list[float]] = {name: [] for name in ins}
    names = list(ins)
    for r in range(-1, a.rounds):  # round -1: one untimed warm-up process (bytecode, numba's on-disk cache)
        order = names[r % len(names):] + names[: r % len(names)] if r >= 0 else ["tiny"]
        for name in order:
            parquet, config, _, _, _ = ins[name]
            out = parquet.parent / f"picks-memory-{name.split()[0]}.parquet"
            wall, _, peak = run_process([cli, "select", "--samples", str(parquet), "--config", str(config),
                                         "--out", str(out)])
            if r >= 0:
                peaks[name].append(peak)
                walls[name].append(wall)
                print(f"  round {r + 1} {name}: peak {peak / MiB:.0f} MiB, {wall:.1f} s", flush=True)
    med = {name: statistics.median(v) for name, v in peaks.items()}
    fixed, fixed_np = med["tiny"], med["tiny-numpy"]
    print(f"\nfixed cost (interpreter + libraries + loaded kernels), measured with tiny inputs: "
          f"{fixed / MiB:.0f} MiB (compiled state, {ins['tiny'][2]:,} x 8); {fixed_np / MiB:.0f} MiB "
          f"(numpy-only state, 1,000 x 8, no numba)")
    print(f"load average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| input (N × D, k) | matrix | peak RSS (rounds) | fixed | peak - fixed | (peak - fixed) / matrix | "
          "peak / matrix | slope vs previous N (bytes per matrix byte) | wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    prev: dict[tuple[int, bool], tuple[float, float]] = {}  # (D, compiled state): the last (matrix, peak)
    for name in names:
        if name.startswith("tiny"):
            continue
        _, _, n, dim, k = ins[name]
        matrix = n * dim * 4.0
        base = fixed_np if uses_numpy_state(n, dim, picks=k) else fixed
        slope = "—"
        shape = (dim, not uses_numpy_state(n, dim, picks=k))  # (the numpy-only state is another process shape)
        if shape in prev and matrix > prev[shape][0]:
            pm, pp = prev[shape]
            slope = f"{(med[name] - pp) / (matrix - pm):.2f}"
        prev[shape] = (matrix, med[name])
        print(f"| {name.split()[0]} {n:,} × {dim}, k = {k:,} | {matrix / MiB:.0f} MiB | {med[name] / MiB:.0f} MiB "
              f"({', '.join(f'{v / MiB:.0f}' for v in peaks[name])}) | {base / MiB:.0f} MiB | "
              f"{(med[name] - base) / MiB:.0f} MiB | **{(med[name] - base) / matrix:.2f}×** | "
              f"{med[name] / matrix:.2f}× | {slope} | {statistics.median(walls[name]):.1f} s |")


def stages(a: argparse.Namespace) -> None:
    """One selection in this process with RSS snapshots between stages."""

    def status() -> tuple[float, float]:
        got = {}
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    got[line[:5]] = float(line.split()[1]) * 1024
        return got["VmRSS"], got["VmHWM"]

    t0 = time.perf_counter()
    start = status()

    def snap(tag: str) -> None:
        import pyarrow as pa

        rss, hwm = status()
        pool = pa.default_memory_pool()
        print(f"  {time.perf_counter() - t0:7.2f} s  {tag:34s} RSS {rss / MiB:6.0f} MiB  peak {hwm / MiB:6.0f} MiB  "
              f"Arrow allocated {pa.total_allocated_bytes() / MiB:6.1f} MiB (pool peak {pool.max_memory() / MiB:.1f}, "
              f"{pool.backend_name})", flush=True)

    print(f"  interpreter alone: RSS {start[0] / MiB:.0f} MiB")
    import lightly_airflow.selection.cli as scli
    import lightly_airflow.selection.engine as engine
    import lightly_airflow.selection.kernels as kernels
    import lightly_airflow.selection.objectives as objectives

    snap("imports (no numba yet)")

    def wrap(mod: object, name: str) -> None:
        f = getattr(mod, name)

        def g(*args: object, **kw: object) -> object:
            snap(f"before {name}")
            res = f(*args, **kw)
            snap(f"after {name}")
            return res

        setattr(mod, name, g)

    for mod, name in ((scli, "read_embedding_rows"), (objectives, "farthest_point_state"), (engine, "greedy"),
                      (engine, "selection_metrics"), (engine, "pick_details_table")):
        wrap(mod, name)
    count = [0]
    for cls in (kernels.FarthestPointState, kernels.NumpyDenseState):
        def select(self: object, i: int, one: object = cls.select) -> None:
            count[0] += 1
            if count[0] in (1, 17, 100, 1000, a.k - 1):
                snap(f"pick {count[0]}")
            one(self, i)  # type: ignore[operator]

        cls.select = select  # type: ignore[method-assign,assignment]
    work = Path(a.workdir)
    if a.stages == "images":
        parquet, config, n, dim, k = write_input(work, f"images-{a.images}", lambda: image_embeddings(
            work / f"image-embeddings-{a.images}.npy", a.images), a.k)
    else:
        parquet, config, n, dim, k = write_input(work, f"clustered-{int(a.stages)}",
                                                 lambda: clustered(int(a.stages), 64), a.k)
    out = parquet.parent / "picks-memory-stages.parquet"
    scli.run(argparse.Namespace(samples=str(parquet), config=str(config), preselected=None, out=str(out), seed=None))
    snap("after the whole run")
    print(f"{a.stages}: {n:,} x {dim}, k = {k:,}: matrix {n * dim * 4 / MiB:.0f} MiB; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} (machine SHARED)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="250000,500000,1000000", help="N of the clustered N x 64 inputs")
    ap.add_argument("--wide", default="", help="N of clustered N x 1280 inputs (high-dimensional embeddings)")
    ap.add_argument("--images", type=int, default=8_000, help="number of real-image embeddings (0: none)")
    ap.add_argument("--k", type=int, default=3_000, help="n_samples (at most N / 4)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stages", help="profile one run stage by stage: N (clustered N x 64) or 'images'")
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "lightly_bench_selection"))
    a = ap.parse_args()
    if a.stages:
        stages(a)
    else:
        measure(a)


if __name__ == "__main__":
    main()
