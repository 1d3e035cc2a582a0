"""Object-level DIVERSITY picks: ``ObjectDiversity.pick`` (``bound``: the triangle-inequality bound
``may_get_nearer`` rules objects out without a product, then ``lower_to_nearest``'s float32 filter: a float32 product
of the remaining objects with the picked image's objects, the float64 distance formula only for the objects it
cannot rule out and to the picked objects it leaves in question) against the path before the bound (``filter``: the float32 filter for every object) and the
straightforward baseline (``float64``: the float64 formula for every object at every pick, ``nearest_distances``).
Prints figures; asserts the exact methods give the same pick order.

Usage::

    python benchmarks/object_selection.py [--cases 256,1280,uniform] [--picks 200] [--rounds 3]
        [--methods filter,bound]  (of float64, float64-1, loop, filter, bound)
        [--images-npy PATH]  (the ``wide`` case's image embeddings)

Cases (an image's objects are consecutive rows):

* ``256``: 4,000 images x 35 objects = 140,000 objects of 256 dimensions (docs/objects.md "Scale"), synthetic crop
  embeddings: unit float32 vectors around 200 cluster centres, each cluster spanning 6 random directions
  (``benchmarks/selection.py``'s generator);
* ``1280``: 1,000 images x 35 objects = 35,000 objects of 1,280 dimensions (the default encoder's width), the same;
* ``uniform``: 140,000 objects of 256 dimensions uniform on the sphere (no clusters: the bound rules out almost
  nothing and must not cost time);
* ``wide``: 7,000 images x 5 objects = 35,000 objects of 1,280 dimensions for many picks (``--picks 2000``: the
  bound's product then covers up to tens of thousands of picked objects), each a real image embedding of
  ``--images-npy`` (an ``(N, 1,280)`` array, e.g. 8,000 photographs' embeddings) chosen at random, plus Gaussian
  noise of norm 0.2, made unit length.

The float32 loop (not exact) is the straightforward loop a user would write: a float32 product and in-place
minimum per pick; its picks may part from the exact ones (how many lead equal is printed). The real peer
(``mundig``): Lightly's own engine lightly-mundig (benchmark-only dependency, ``uv pip install lightly-mundig``),
``Selection().add_subpart_diversifying_strategy(objects, each image's object rows, 1.0)`` then
``run_selection``: the same objective (an image ranks by the mean over its objects of the squared distance to the
nearest selected object, ours by the root of it; picking it selects all its objects), in float32. It runs the whole selection at once, so every method is also timed whole ("whole": building the state and
every pick with its argmax), against which lightly-mundig's set-up and ``run_selection`` are set.

Each round runs the greedy (argmax of the objective, then ``pick``) once per method, in alternating order;
the figures are medians over rounds of each round's median and total ``pick`` time, wall and CPU (all threads),
and the CPU time of the first 50 picks (before the bound pays, the float32 product covers every object).
The float64 baseline runs with BLAS' own threads (as ``pick`` did) and, to tell the two effects apart, with BLAS
held to one thread (the float32 filter holds BLAS to one thread for its small products and splits the blocks over
the selection's threads).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from selection import clustered  # noqa: E402  (the same generator)

from lightly_airflow.objects.selection import ObjectDiversity, ObjectSet, nearest_distances  # noqa: E402
from lightly_airflow.selection.kernels import blas_one_thread  # noqa: E402

CASES = {"256": (4_000, 35, 256), "1280": (1_000, 35, 1280), "uniform": (4_000, 35, 256), "wide": (7_000, 5, 1280)}
FIRST = 50  # (the first picks' CPU time: before the bound pays, every object in the float32 product)


def embeddings(case: str, images_npy: str | None = None) -> np.ndarray:
    images, per_image, dim = CASES[case]
    if case == "wide":
        if not images_npy:
            raise SystemExit("--images-npy: the wide case needs an (N, 1280) .npy of image embeddings")
        real = np.load(images_npy).astype(np.float32)
        real /= np.linalg.norm(real, axis=1, keepdims=True)
        rng = np.random.default_rng(0)
        x = real[rng.integers(0, len(real), images * per_image)]
        x += rng.normal(scale=0.2 / np.sqrt(dim), size=x.shape).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    if case != "uniform":
        return clustered(images * per_image, dim, clusters=200, seed=0)
    x = np.random.default_rng(0).normal(size=(images * per_image, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


class Float32Filter(ObjectDiversity):
    """``pick`` before the bound: the float32 filter of every object at every pick (this code with the bound and the
    projected screen off: it still keeps each object's nearest selected id, the bound's only cost outside the picks
    that use it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.projection = None

    def _may_get_nearer(self, a: int, b: int, ids: int, against: np.ndarray | None) -> None:
        return None


class Float64Baseline(ObjectDiversity):
    """``pick`` as it was: the float64 formula for every object (:func:`nearest_distances`), BLAS' own threads."""

    def pick(self, i: int) -> None:
        a, b = self.starts[i], self.starts[i + 1]
        if b > a:
            np.minimum(self.d, nearest_distances(self.objects.x, self.objects.x[a:b], self.xn), out=self.d)
        self.picked += 1


class Float64OneThread(Float64Baseline):
    """The same with BLAS held to one thread (how much of the difference is BLAS' threads on a busy machine)."""

    def pick(self, i: int) -> None:
        with blas_one_thread():
            super().pick(i)


class Float32Loop(ObjectDiversity):
    """The loop a user would write: one float32 product of every object by the picked image's objects, the nearest
    distances updated in place, BLAS' own threads; not exact (float32 rounding), so its picks may part from ours."""

    def pick(self, i: int) -> None:
        a, b = self.starts[i], self.starts[i + 1]
        if b > a:
            x, s = self.objects.x, self.objects.x[a:b]
            d2 = x @ s.T
            d2 *= -2.0
            d2 += (s * s).sum(axis=1)[None, :]
            d2 += self.xn.astype(np.float32)[:, None]
            nearest = d2.min(axis=1)
            np.maximum(nearest, 0.0, out=nearest)
            np.minimum(self.d, np.sqrt(nearest), out=self.d)
        self.picked += 1


def greedy(state: ObjectDiversity, picks: int) -> tuple[list[int], list[float], list[float]]:
    """The pick order, each ``pick``'s wall time and its CPU time (all the process' threads: on a shared machine
    less sensitive to the other processes' load than the wall time)."""
    order, seconds, cpu = [], [], []
    for _ in range(picks):
        bonus = state.log_bonus()
        bonus[order] = -np.inf
        i = int(np.argmax(bonus))
        start, start_cpu = time.perf_counter(), time.process_time()
        state.pick(i)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        order.append(i)
    return order, seconds, cpu


def mundig_order(x: np.ndarray, images: int, per_image: int, picks: int) -> list[int]:
    """lightly-mundig's object-level DIVERSITY (``add_subpart_diversifying_strategy``): its pick order."""
    import lightly_mundig

    sel = lightly_mundig.Selection()
    sel.add_subpart_diversifying_strategy(x, [list(range(i * per_image, (i + 1) * per_image)) for i in range(images)],
                                          1.0, None)
    return [int(i) for i in sel.run_selection([], images, picks)]


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="256,1280,uniform")
    parser.add_argument("--picks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default="filter,bound")
    parser.add_argument("--images-npy", help="the wide case's (N, 1280) image embeddings (.npy)")
    args = parser.parse_args()
    known = {"float64": ("float64 baseline", Float64Baseline), "float64-1": ("float64, BLAS 1 thread", Float64OneThread),
             "loop": ("float32 loop (not exact)", Float32Loop), "filter": ("float32 filter (before)", Float32Filter),
             "bound": ("bound + screen + float32 filter (now)", ObjectDiversity), "mundig": ("lightly-mundig (not exact)", None)}
    for case in args.cases.split(","):
        images, per_image, dim = CASES[case]
        x = embeddings(case, args.images_npy)
        objects = ObjectSet(x, np.repeat(np.arange(images), per_image), images, np.zeros((0, dim), np.float32), "det")
        print(f"case {case}: {len(x):,} objects of {dim} dimensions, {images:,} images, {args.picks} picks; {load()}")
        methods = [known[m] for m in args.methods.split(",")]
        runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _ in methods}
        whole: dict[str, list[float]] = {name: [] for name, _ in methods}
        orders: dict[str, list[int]] = {}
        for r in range(args.rounds):
            for name, cls in methods if r % 2 == 0 else methods[::-1]:
                start = time.perf_counter()
                if cls is None:  # (lightly-mundig: the whole selection at once)
                    orders[name] = mundig_order(x, images, per_image, args.picks)
                    whole[name].append(time.perf_counter() - start)
                    print(f"  round {r + 1} {name}: whole {whole[name][-1]:.2f} s", flush=True)
                    continue
                state = cls(objects)
                order, seconds, cpu = greedy(state, args.picks)
                whole[name].append(time.perf_counter() - start)
                assert orders.setdefault(name, order) == order, f"{name}: the pick order changed between rounds"
                runs[name].append((statistics.median(seconds), sum(seconds), statistics.median(cpu), sum(cpu),
                                   sum(cpu[:FIRST])))
                extra = f", whole {whole[name][-1]:.2f} s"
                if not isinstance(state, Float64Baseline | Float32Loop):
                    rep = state.report()
                    extra += (f", float64 rows {rep['exact_rows']:,} of {rep['measured_rows']:,}, ruled out by the bound "
                             f"{rep['bound_rows']:,} ({rep['bound_picks']} picks with it, {rep['unbounded_picks']} "
                             f"without; its products {rep['bound_centres']:,} selected objects)")
                print(f"  round {r + 1} {name}: median {statistics.median(seconds) * 1e3:.1f} ms per pick, "
                      f"total {sum(seconds):.2f} s (CPU {statistics.median(cpu) * 1e3:.1f} ms, {sum(cpu):.2f} s; the first "
                      f"{FIRST} picks {sum(cpu[:FIRST]):.2f} s){extra}", flush=True)
        exact = [order for name, order in orders.items() if not name.endswith("(not exact)")]
        assert all(order == exact[0] for order in exact), "the pick orders differ"
        for name, got in runs.items():
            if not got:
                continue
            print(f"  {name}: median {statistics.median(g[0] for g in got) * 1e3:.1f} ms per pick, total "
                  f"{statistics.median(g[1] for g in got):.2f} s; CPU {statistics.median(g[2] for g in got) * 1e3:.1f} ms "
                  f"per pick, {statistics.median(g[3] for g in got):.2f} s, the first {FIRST} picks "
                  f"{statistics.median(g[4] for g in got):.2f} s (medians of {len(got)} rounds)")
        ours = statistics.median(whole[known["bound"][0]]) if whole.get(known["bound"][0]) else None
        for name, got in whole.items():
            ratio = f" (ours {statistics.median(got) / ours:.2f}x faster)" if ours and got else ""
            print(f"  {name}: whole selection {statistics.median(got):.2f} s{ratio}")
        for name in ("float32 loop (not exact)", "lightly-mundig (not exact)"):
            other = orders.get(name)
            if other and exact:
                same = next((j for j, (p, q) in enumerate(zip(other, exact[0], strict=True)) if p != q), len(other))
                print(f"  {name}: its first {same} of {len(other)} picks equal the exact ones, "
                      f"{len(set(other) & set(exact[0]))} the same images")
        print(f"  same pick order (exact methods): yes; {load()}")


if __name__ == "__main__":
    main()
