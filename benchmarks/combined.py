"""DIVERSITY x WEIGHTS (the CORAL-style config of Lightly's docs: diverse and uncertain) as whole processes,
against the float32 loop a user would write for the same score and Lightly's engine.

Usage::

    python benchmarks/combined.py [--shapes images,images-40000,images-pool] [--k 2000] [--rounds 3]

Shapes: real-image embeddings (``benchmarks/selection.py``'s crops of scikit-image's photos through the
project's encoder, 1,280-D, unit norm) with a weight per sample (uniform random, seed 0: an uncertainty score):

* ``images``: 8,000 candidates; ``images-40000``: 40,000 candidates;
* ``images-pool``: 8,000 candidates after 20,000 preselected (a datapool run).

Methods:

* ``ours``: ``lightly-airflow select`` (Parquet in: key, embedding, ``metadata.w``) with DIVERSITY (strength 1)
  and WEIGHTS on ``w`` (strength 1): the score ``0.5 log(min(max(d2 / 4, 1e-6), 1)) + log(max(w / max w, 1e-6))``;
* ``loop32``: the same score in float32/float64 numpy, in place: ``np.dot`` of the candidates by the last pick
  into one buffer, the running minimum of squared distances, the score, ``argmax`` (after a pool: the pool
  multiplied in blocks of 1,024 first);
* ``mundig``: ``lightly_mundig`` with ``add_diversifying_strategy`` and ``add_weighting_strategy(w, 1.0)``
  (its own combination of the two: picks differ); after a pool, the pool and the candidates in one matrix with
  the pool's indices preselected (their weights 0: they are never picked), as ``preselected.py`` runs it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from preselected import arguments, pool_similarity, print_table, report, timed_rounds  # noqa: E402  (whole processes, interleaved)
from selection import image_embeddings  # noqa: E402  (the same embeddings)

SHAPES = {"images": (8_000, 0), "images-40000": (40_000, 0), "images-pool": (8_000, 20_000)}


def prepare(work: Path, shape: str, k: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, p = SHAPES[shape]
    d = work / f"combined-{shape}"
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "candidates.parquet").exists():
        m = 40_000 if n + p <= 40_000 else 120_000
        x = image_embeddings(work / f"image-embeddings-{m}.npy", m)[: n + p]
        x = (x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
        w = np.random.default_rng(0).random(n)
        np.save(d / "candidates.npy", x[p:])
        np.save(d / "weights.npy", w)
        np.save(d / "pool.npy", x[:p])
        for name, rows, prefix, extra in (("pool", x[:p], "p", {}), ("candidates", x[p:], "s", {"metadata.w": w})):
            if not len(rows):
                continue
            pq.write_table(pa.table({
                "key": pa.array([f"{prefix}{i:07d}" for i in range(len(rows))]),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), x.shape[1]),
                **extra}), d / f"{name}.parquet")
    (d / f"config-{k}.json").write_text(json.dumps({"n_samples": k, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}}]}))
    return d


def worker(method: str, d: Path, k: int, out: str) -> None:
    x, w, pool = np.load(d / "candidates.npy"), np.load(d / "weights.npy"), np.load(d / "pool.npy")
    n = len(x)
    if method == "loop32":
        fixed = np.log(np.maximum(w / w.max(), 1e-6))
        sim = pool_similarity(x, pool)  # largest cosine similarity to the selected (unit vectors)
        one = np.empty(n, dtype=np.float32)
        score = np.empty(n)
        taken = np.zeros(n, dtype=bool)
        picks = []
        for _ in range(k):
            # d2 = 2 - 2 sim; score = 0.5 log(clip(d2 / 4)) + fixed
            np.subtract(1.0, sim, out=score)  # (d2 / 4 = (1 - sim) / 2)
            score *= 0.5
            np.clip(score, 1e-6, 1.0, out=score)
            np.log(score, out=score)
            score *= 0.5
            score += fixed
            score[taken] = -np.inf
            i = int(np.argmax(score))
            picks.append(i)
            taken[i] = True
            np.dot(x, x[i], out=one)
            np.maximum(sim, one, out=sim)
    elif method == "mundig":
        import lightly_mundig

        p = len(pool)
        sel = lightly_mundig.Selection()
        sel.add_diversifying_strategy(np.concatenate([pool, x]) if p else x, 1.0, None)
        sel.add_weighting_strategy(np.concatenate([np.zeros(p), w]).astype(np.float32), 1.0)
        picks = [i - p for i in sel.run_selection(list(range(p)), p + n, p + k) if i >= p]
    else:
        raise SystemExit(f"unknown method {method!r}")
    np.save(out, np.asarray(picks, dtype=np.int64))


def main() -> None:
    a = arguments(__doc__ or "", "images,images-40000,images-pool", 2000)
    if a.worker:
        worker(a.worker, Path(a.dir), a.k, a.out)
        return
    rows = []
    methods = a.methods.split(",")
    for shape in a.shapes.split(","):
        d = prepare(Path(a.workdir), shape, a.k)
        n, p = SHAPES[shape]
        times, cpu, picks = timed_rounds(shape, d, a.k, methods, a.rounds, a.peer_rounds, __file__, pool=p > 0)
        print(f"\n{shape}: N = {n:,} candidates after P = {p:,} preselected, k = {a.k:,}")
        rows.append(report(f"{shape}: {n:,} after {p:,}, k = {a.k:,}", methods, times, cpu, picks))
    print_table(methods, rows)


if __name__ == "__main__":
    main()
