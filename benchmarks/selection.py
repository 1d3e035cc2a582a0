"""Selection speed: our exact DIVERSITY (``lightly-airflow select``) vs the strongest straightforward loop and
Lightly's own engine, each timed as a whole process on the same data, interleaved rounds, medians
(``--strategy typicality``: TYPICALITY instead, see below).

Usage::

    python benchmarks/selection.py [--shapes clustered,hard,images] [--ks 3000,10000] [--scale 1.0] [--rounds 3]
    python benchmarks/selection.py --strategy typicality --shapes images --ks 2000  # O(N^2): small N only
    # lightly-mundig (Lightly's Rust selection engine) is a benchmark-only peer:
    .venv/bin/uv pip install --python .venv/bin/python lightly-mundig

Shapes (unit vectors, float32), each run at every k of ``--ks``:

* ``clustered``: N = 1,000,000 × 64, 100 clusters of intrinsic dimension 6, spread 0.3;
* ``hard``: N = 1,000,000 × 64, 200 clusters of intrinsic dimension 6, spread 0.35 (issue 13: pruning pays
  late);
* ``images``: embeddings of real photos (random crops of scikit-image's bundled images, 64 px) made with the
  project's default encoder (efficientnet-lite0, 1280-D), N = ``--images``, k = min(k, N / 4).

``--scale`` multiplies N (not k) of the synthetic shapes for a quick run on a shared machine. Methods, each one
fresh process that loads the same ``.npy``/Parquet file and writes its picks:

* ``ours``: ``lightly-airflow select`` (CLI: Parquet in, picks + metrics out) with a DIVERSITY config;
* ``loop32``: the straightforward loop a user would write: float32 matrix, in place, BLAS
  (``np.dot(X, x, out=buf); np.maximum(sim, buf, out=sim); argmin``: max cosine similarity = min distance);
  ``loop32-1t``: the same with BLAS on one thread (``OPENBLAS_NUM_THREADS=1``: much faster than BLAS' own
  threads on a busy machine, much slower on a quiet one: 3.90 s vs 2.11 s on the images, 41.7 s vs 28.6 s on
  the hard shape at 22:48 on 2026-12-01); both run by default, and the headline speed-up is the one against
  the faster of the two in the same run;
* ``ours-1c``, ``loop32-1c``, ``mundig-1c`` (not run by default): the method pinned to one core (CPU affinity,
  one selection thread, one BLAS thread). With both variants of a method the run prints how much faster the
  machine's other cores make it (wall on one core / wall on all): how well the cores are used, for work, not
  for CPU time alone (threads that spin or wait for the GIL count as CPU time too);
* ``mundig``: ``lightly_mundig.Selection().add_diversifying_strategy(X, 1.0, None).run_selection``.

``--strategy typicality`` times TYPICALITY (``num_nearest_neighbors`` 20: ``1 / (1 + mean distance to the 20
nearest others)``, the k most typical picked) instead: ``ours`` with a TYPICALITY config; ``loop32`` the
straightforward blocked version (float32 products into one buffer, float32 squared distances in place,
``np.partition``, the top k by ``argsort``); ``mundig`` Lightly's typicality, which lightly-mundig offers per
object only: ``add_subpart_typicality_strategy`` with one "object" per sample (its own embedding), the same
definition (checked: the same top-50 but one of 500 clustered 16-D vectors). Its cost is O(N² D): run it with
``--shapes images`` or a small ``--scale``.

Every method runs once untimed before the first timed shape (Python bytecode caches, numba's on-disk cache:
what any later run of an installed tool sees; every data file is in the page cache as it was just written or
read), then ``--rounds`` interleaved timed rounds (``--peer-rounds`` for mundig, by far
the slowest). Child processes run without ``PYTHONDONTWRITEBYTECODE`` so imports use compiled bytecode as in a
normal install. Printed per shape and k: median wall time of each whole process, CPU time / wall time (cores
used), speed-ups, peak RSS over the embedding matrix, how many leading picks agree with ours (ours is exact;
the float32 loop and mundig round differently), and a Markdown table of everything at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lightly_airflow.selection.kernels import (  # noqa: E402
    NUMPY_MAX_ROWS,
    NUMPY_MAX_ROWS_WIDE,
    NUMPY_MAX_WORK,
    NUMPY_WIDE_DIM,
    uses_numpy_state,
)

IMAGE_SOURCES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left", "motorcycle_right",
                 "hubble_deep_field", "immunohistochemistry", "retina", "cat", "colorwheel", "brick", "camera",
                 "coins", "grass", "gravel", "moon", "page", "text", "horse", "clock", "shepp_logan_phantom",
                 "logo", "microaneurysms", "cell", "human_mitosis", "kidney", "lily", "skin", "eagle")


# ------------------------------------------------------------------------------------------------- data
def clustered(n: int, d: int, clusters: int = 100, intrinsic: int = 6, spread: float = 0.3, seed: int = 0
              ) -> np.ndarray:
    """Unit vectors around ``clusters`` centres, each cluster spanning ``intrinsic`` random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    basis = rng.normal(size=(clusters, intrinsic, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        lab = rng.integers(0, clusters, m)
        b = centres[lab]
        coef = (rng.normal(size=(m, intrinsic)) * spread).astype(np.float32)
        for j in range(intrinsic):
            b += coef[:, j : j + 1] * basis[lab, j]
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        x[s : s + m] = b
    return x


def image_embeddings(path: Path, n: int, seed: int = 0, batch: int = 128) -> np.ndarray:
    """Embeddings of ``n`` random crops (5-60% of the side, flips) of scikit-image's bundled photos, made with
    the project's default encoder (efficientnet-lite0, 64 px input, 1280-D); cached in ``path``."""
    if path.exists():
        return np.load(path)
    import torch
    from PIL import Image
    from skimage import data

    from lightly_airflow.embedding import get_encoder

    torch.set_num_threads(1)  # the machine is shared
    sources = []
    for name in IMAGE_SOURCES:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            a = np.asarray(loader())
        except Exception:  # noqa: BLE001 - some images need an optional download
            continue
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        if a.ndim != 3 or min(a.shape[:2]) < 128:
            continue
        if a.dtype == np.bool_:
            a = a.astype(np.uint8) * 255
        if a.dtype != np.uint8:
            a = (255 * (a - a.min()) / max(float(a.max() - a.min()), 1e-9)).astype(np.uint8)
        sources.append(np.ascontiguousarray(a))
    rng = np.random.default_rng(seed)
    enc = get_encoder()
    out = np.empty((n, enc.dim), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, n, batch):
            imgs = []
            for _ in range(min(batch, n - s)):
                src = sources[int(rng.integers(len(sources)))]
                h, w = src.shape[:2]
                f = rng.uniform(0.05, 0.6)
                ch, cw = max(16, int(h * f)), min(w, max(16, int(w * f * rng.uniform(0.7, 1.4))))
                y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
                crop = src[y : y + ch, x : x + cw]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                img = Image.fromarray(np.ascontiguousarray(crop)).resize((64, 64), Image.Resampling.BILINEAR)
                imgs.append(np.asarray(img).transpose(2, 0, 1))
            out[s : s + len(imgs)] = enc(torch.from_numpy(np.stack(imgs))).numpy()
            if (s // batch) % 20 == 0:
                print(f"  embedded {s + len(imgs)}/{n} crops", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def prepare(work: Path, shape: str, scale: float, n_images: int, k: int, strategy: str = "diversity"
            ) -> tuple[Path, Path, Path, int]:
    """Write ``x.npy``, ``samples.parquet`` and the config (``config-<k>.json``; ``config-<strategy>-<k>.json``
    for another strategy) for one shape; returns them and k."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if shape == "clustered":
        n = int(1_000_000 * scale)
        make = lambda: clustered(n, 64, clusters=100, spread=0.3)  # noqa: E731
    elif shape == "hard":
        n = int(1_000_000 * scale)
        make = lambda: clustered(n, 64, clusters=200, spread=0.35, seed=1)  # noqa: E731
    elif shape == "images":
        n, k = n_images, min(k, n_images // 4)
        make = lambda: image_embeddings(work / f"image-embeddings-{n_images}.npy", n_images)  # noqa: E731
    else:
        raise SystemExit(f"unknown shape {shape!r}")
    d = work / f"{shape}-{n}"
    d.mkdir(parents=True, exist_ok=True)
    npy, parquet, config = d / "x.npy", d / "samples.parquet", d / f"config{_suffix(strategy)}-{k}.json"
    if not npy.exists() or not parquet.exists():
        x = make()
        x = (x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
        np.save(npy, x)
        table = pa.table({"key": pa.array([f"s{i:07d}" for i in range(len(x))]),
                          "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])})
        pq.write_table(table, parquet)
    objective = {"type": "DIVERSITY"} if strategy == "diversity" else {
        "type": "TYPICALITY", "num_nearest_neighbors": TYPICALITY_NEIGHBOURS}
    config.write_text(json.dumps({"n_samples": k, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": objective}]}))
    return npy, parquet, config, k


TYPICALITY_NEIGHBOURS = 20  # (our and Lightly's default num_nearest_neighbors)
STRATEGIES = ("diversity", "typicality")


def _suffix(strategy: str) -> str:
    """The strategy's part of file names: none for DIVERSITY (the files of earlier runs keep their names)."""
    return "" if strategy == "diversity" else f"-{strategy}"


def loop32_typicality(x: np.ndarray, neighbours: int, block: int = 1024) -> np.ndarray:
    """The straightforward blocked TYPICALITY a user would write: float32 throughout, one product buffer,
    squared distances in place, ``np.partition`` for the nearest."""
    n = len(x)
    k = min(neighbours, n - 1)
    sq = np.einsum("ij,ij->i", x, x)
    d = np.empty((min(block, n), n), dtype=np.float32)
    out = np.empty(n, dtype=np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        b = d[:m]
        np.matmul(x[s : s + m], x.T, out=b)
        b *= -2.0
        b += sq[None, :]
        b += sq[s : s + m, None]
        b[np.arange(m), s + np.arange(m)] = np.inf
        b.partition(k - 1, axis=1)
        near = b[:, :k]
        np.maximum(near, 0.0, out=near)
        np.sqrt(near, out=near)
        out[s : s + m] = 1.0 / (1.0 + near.mean(axis=1))
    return out


# ---------------------------------------------------------------------------------------------- workers
def worker(method: str, npy: str, k: int, out: str, strategy: str = "diversity") -> None:
    """One whole-process baseline run: load the matrix, select k, save the picks."""
    x = np.load(npy)
    if strategy == "typicality":
        if method == "loop32":
            picks = list(np.argsort(-loop32_typicality(x, TYPICALITY_NEIGHBOURS), kind="stable")[:k])
        elif method == "mundig":
            import lightly_mundig

            sel = lightly_mundig.Selection()
            sel.add_subpart_typicality_strategy(x, [[i] for i in range(len(x))], 1.0, TYPICALITY_NEIGHBOURS, None)
            picks = list(sel.run_selection([], len(x), k))
        else:
            raise SystemExit(f"unknown method {method!r}")
    elif method == "loop32":
        n = len(x)
        sim = np.full(n, -np.inf, dtype=np.float32)
        buf = np.empty(n, dtype=np.float32)
        i = 0
        picks = [0]
        for _ in range(k - 1):
            np.dot(x, x[i], out=buf)
            np.maximum(sim, buf, out=sim)
            i = int(np.argmin(sim))
            picks.append(i)
    elif method == "mundig":
        import lightly_mundig

        sel = lightly_mundig.Selection()
        sel.add_diversifying_strategy(x, 1.0, None)
        picks = list(sel.run_selection([], len(x), k))
    else:
        raise SystemExit(f"unknown method {method!r}")
    np.save(out, np.asarray(picks, dtype=np.int64))


def run_process(cmd: list[str], env: dict[str, str] | None = None, one_core: bool = False
                ) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in bytes) of one child process (``one_core``: pinned to the first
    CPU this process may use).

    Peak RSS comes from ``/usr/bin/time`` (a small parent): a child forked from this benchmark process would
    start its high-water mark at this process' size (``ru_maxrss`` survives ``exec``)."""
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cpu = min(os.sched_getaffinity(0))
    t = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**child_env, **(env or {})},
                            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if one_core else None)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()  # (drained while it runs: a full pipe would block the child)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    peak = [line for line in err.splitlines() if line.startswith("MAXRSS_KB ")]
    return wall, usage.ru_utime + usage.ru_stime, float(peak[-1].split()[1]) * 1024.0


# The imports alone of a select process: where uses_numpy_state (up to NUMPY_MAX_ROWS candidates, more when wide)
# it never loads numba (numpy-only state), elsewhere it loads numba, LLVM and the compiled kernels. Each shape is
# set against its own.
BASELINE = {
    "numpy": "import numpy as np; import lightly_airflow.selection.cli; import lightly_airflow.selection.engine",
    "numba": ("import numpy as np; import lightly_airflow.selection.cli; import lightly_airflow.selection.engine; "
              "from lightly_airflow.selection.kernels import canonical_sqnorms; "
              "canonical_sqnorms(np.zeros((2, 2), dtype=np.float32))"),
}


ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def picks_of(method: str, out: Path) -> np.ndarray:
    if method.startswith("ours"):
        import pyarrow.parquet as pq

        t = pq.read_table(out, columns=["key"])
        return np.array([int(k[1:]) for k in t.column("key").to_pylist()])
    return np.load(out)


def agree(a: np.ndarray, b: np.ndarray) -> int:
    m = min(len(a), len(b))
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="clustered,hard,images")
    ap.add_argument("--strategy", default="diversity", choices=STRATEGIES)
    ap.add_argument("--ks", default="3000,10000", help="numbers of picks (each shape runs at every k)")
    ap.add_argument("--methods", default="ours,loop32,loop32-1t,mundig")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply N of the synthetic shapes")
    ap.add_argument("--images", type=int, default=8_000, help="number of real-image embeddings")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer-rounds", type=int, default=1, help="timed rounds of mundig (minutes per run)")
    ap.add_argument("--peer-max-k", type=int, default=10**9, help="run mundig only up to this k")
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "lightly_bench_selection"))
    ap.add_argument("--no-warmup", action="store_true", help="caches already warm (a run just before)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--npy", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.npy, a.k, a.out, a.strategy)
        return
    work = Path(a.workdir)
    methods = a.methods.split(",")
    cli = str(Path(sys.executable).with_name("lightly-airflow"))
    print(f"machine: {os.cpu_count()} CPU cores, SHARED with other jobs (load {os.getloadavg()[0]:.1f}); one untimed "
          f"warm-up run per method, then {a.rounds} interleaved rounds ({a.peer_rounds} for mundig), median wall "
          "time of each whole process", flush=True)
    base_rss = {path: run_process([sys.executable, "-c", code])[2] for path, code in BASELINE.items()}
    print(f"ours: RSS of the imports alone: {base_rss['numpy'] / 2**20:.0f} MiB with the numpy state (up to "
          f"{NUMPY_MAX_ROWS:,} candidates, {NUMPY_MAX_ROWS_WIDE:,} of {NUMPY_WIDE_DIM}+ dimensions, or candidates x "
          f"picks up to {NUMPY_MAX_WORK:,}; numpy, pyarrow, pydantic), {base_rss['numba'] / 2**20:.0f} MiB with the "
          "compiled one (+ numba, LLVM, a kernel loaded)", flush=True)
    rows: list[str] = []
    warmed = False
    for shape in a.shapes.split(","):
        for k_wanted in [int(v) for v in a.ks.split(",")]:
            npy, parquet, config, k = prepare(work, shape, a.scale, a.images, k_wanted, a.strategy)
            if shape == "images" and k != k_wanted and any(r.startswith(f"| {shape} ") and f"k = {k:,}" in r
                                                           for r in rows):
                continue  # the same k again (few images)
            n, d = np.load(npy, mmap_mode="r").shape
            matrix = n * d * 4
            path = "numpy" if a.strategy != "diversity" or uses_numpy_state(n, d, picks=k) else "numba"
            times: dict[str, list[float]] = {m: [] for m in methods}
            cpu: dict[str, list[float]] = {m: [] for m in methods}
            rss: dict[str, float] = {}
            picks: dict[str, np.ndarray] = {}
            rounds = max(a.rounds, a.peer_rounds)
            first = not rows and not warmed and not a.no_warmup
            warmed = True
            for r in range(-1 if first else 0, rounds):  # round -1 (first shape only): warm-up, not timed
                order = methods[r % len(methods):] + methods[: r % len(methods)]
                for m in order:
                    base = m.removesuffix("-1t").removesuffix("-1c")
                    if r >= (a.peer_rounds if base == "mundig" else a.rounds) or (base == "mundig" and k > a.peer_max_k):
                        continue
                    stem = f"picks-{m}{_suffix(a.strategy)}-{k}"
                    out = npy.parent / (f"{stem}.parquet" if base == "ours" else f"{stem}.npy")
                    if base == "ours":
                        cmd = [cli, "select", "--samples", str(parquet), "--config", str(config), "--out", str(out)]
                    else:
                        cmd = [sys.executable, __file__, "--worker", base, "--npy", str(npy), "--k", str(k),
                               "--out", str(out), "--strategy", a.strategy]
                    one_core = m.endswith("-1c")
                    env = {**ONE_THREAD, "LIGHTLY_SELECTION_THREADS": "1"} if one_core else (
                        ONE_THREAD if m.endswith("-1t") else None)
                    wall, used, peak = run_process(cmd, env, one_core=one_core)
                    if r < 0:
                        print(f"  warm-up {shape} k={k} {m}: {wall:.1f} s", flush=True)
                        continue
                    times[m].append(wall)
                    cpu[m].append(used / wall)
                    rss[m] = max(rss.get(m, 0.0), peak)
                    picks[m] = picks_of(m, out)
            med = {m: statistics.median(v) for m, v in times.items() if v}
            print(f"\n{shape}: N={n:,} D={d} k={k:,} {a.strategy.upper()} (embedding matrix {matrix / 2**20:.0f} MiB)")
            for m in med:
                line = (f"  {m:10s} {med[m]:8.2f} s  (rounds: {', '.join(f'{t:.2f}' for t in times[m])}; "
                        f"{statistics.median(cpu[m]):.2f} cores)  peak RSS {rss[m] / 2**20:6.0f} MiB = "
                        f"{rss[m] / matrix:.2f}x matrix")
                if m + "-1c" in med:
                    line += (f"; {med[m + '-1c'] / med[m]:.2f}x faster than on one core (rounds: "
                             f"{', '.join(f'{a / b:.2f}' for a, b in zip(times[m + '-1c'], times[m]))})")
                if m != "ours" and "ours" in picks:
                    line += (f"; ours {med[m] / med['ours']:.2f}x faster; first {agree(picks['ours'], picks[m])} "
                             f"picks identical, {len(np.intersect1d(picks['ours'], picks[m])):,} of {k:,} the same")
                print(line, flush=True)
            cells = [f"{med[m]:.1f} s" if m in med else "not run" for m in methods]
            ratios = [f"{med[m] / med['ours']:.2f}×" if m in med else "—" for m in methods if m != "ours"]
            same = [f"{agree(picks['ours'], picks[m]):,}" if m in picks else "—" for m in methods if m != "ours"]
            rows.append(f"| {shape} {n:,} × {d}, k = {k:,} | " + " | ".join(cells + ratios) +
                        f" | {statistics.median(cpu['ours']):.2f} | {rss['ours'] / 2**20:.0f} MiB "
                        f"({rss['ours'] / matrix:.2f}×; {(rss['ours'] - base_rss[path]) / matrix:.2f}× above the imports) | "
                        + " / ".join(same) + " |")
    others = [m for m in methods if m != "ours"]
    print("\n| shape (N × D, k) | " + " | ".join(methods) + " | " + " | ".join(f"ours vs {m}" for m in others) +
          " | ours: cores used | ours: peak RSS (× matrix) | leading picks equal to ours (" + " / ".join(others) +
          ") |")
    print("|---" * (len(methods) + len(others) + 4) + "|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
