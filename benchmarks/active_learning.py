"""Pool-based active learning on scikit-learn digits with our selection engine.

Logistic regression; 10 random initial labels; batches of 10 up to 300; several seeds. Prints the labels
needed to reach 0.90 and 0.93 test accuracy and the area under the accuracy curve; writes a PNG plot.
Usage: python benchmarks/active_learning.py [--seeds 10] [--png active_learning.png]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from lightly_airflow.selection import select

E = {"type": "EMBEDDINGS"}


def scores(p: np.ndarray) -> dict[str, np.ndarray]:
    c = p.shape[1]
    s = np.sort(p, axis=1)
    ent = -(p * np.log2(np.clip(p, 1e-12, 1))).sum(axis=1) / np.log2(c)
    return {"uncertainty_margin": 1 - (s[:, -1] - s[:, -2]),
            "uncertainty_least_confidence": (1 - s[:, -1]) / (1 - 1 / c), "uncertainty_entropy": ent}


def w(score: str, strength: float = 1.0) -> dict:
    return {"input": {"type": "SCORES", "task": "cls", "score": score},
            "strategy": {"type": "WEIGHTS", "strength": strength}}


STRATEGIES = {
    "random": [{"input": {"type": "RANDOM"}, "strategy": {"type": "WEIGHTS"}}],
    "diversity": [{"input": E, "strategy": {"type": "DIVERSITY"}}],
    "weights_margin": [w("uncertainty_margin")],
    "weights_least_confidence": [w("uncertainty_least_confidence")],
    "weights_entropy": [w("uncertainty_entropy")],
    "coral": [{"input": E, "strategy": {"type": "DIVERSITY"}}, w("uncertainty_margin")],
    "diversity + margin^4": [{"input": E, "strategy": {"type": "DIVERSITY"}}, w("uncertainty_margin", 4.0)],
    # The recipe docs/selection.md recommends: margin sampling with DIVERSITY as a tie-breaker.
    "recommended: diversity + margin^10": [{"input": E, "strategy": {"type": "DIVERSITY"}},
                                           w("uncertainty_margin", 10.0)],
    "diversity^0.25 + margin": [{"input": E, "strategy": {"type": "DIVERSITY", "strength": 0.25}},
                                w("uncertainty_margin")],
}


def run(name: str, cfg_strats: list, seed: int, xtr, ytr, xte, yte) -> list[float]:
    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(len(xtr), 10, replace=False))
    emb = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    accs = []
    while True:
        # Pixels scaled to [0, 1]: lbfgs converges in a few dozen iterations instead of hitting max_iter.
        clf = LogisticRegression(max_iter=300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(xtr[labelled] / 16.0, ytr[labelled])
        accs.append(float((clf.predict(xte / 16.0) == yte).mean()))
        if len(labelled) >= 300:
            return accs
        pool = np.setdiff1d(np.arange(len(xtr)), labelled)
        p = np.zeros((len(pool), 10))
        p[:, clf.classes_] = clf.predict_proba(xtr[pool] / 16.0)
        cols = {"key": pool.astype(str), "embedding": pa.array(list(emb[pool].astype(np.float32)))}
        cols.update({f"scores.cls.{k}": v for k, v in scores(p).items()})
        pre = pa.table({"embedding": pa.array(list(emb[labelled].astype(np.float32)))})
        r = select(pa.table(cols), {"n_samples": 10, "strategies": cfg_strats}, preselected=pre,
                   seed=seed * 1000 + len(labelled))
        labelled += pool[r.indices].tolist()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--png", default="benchmarks/results/active_learning.png")
    ap.add_argument("--only", nargs="*", help="run only these strategy names")
    a = ap.parse_args()
    # One select() per batch: the engine's per-call INFO line would flood the output.
    logging.getLogger("lightly_airflow").setLevel(logging.WARNING)
    t_start = time.monotonic()
    d = load_digits()
    sizes = np.arange(10, 301, 10)
    curves = {}
    print(f"digits, logistic regression, {a.seeds} seeds; labels to reach accuracy (mean over seeds)")
    print(f"{'strategy':38s} {'@0.90':>6s} {'@0.93':>6s} {'AUC':>6s}")
    for name, strats in STRATEGIES.items():
        if a.only and name not in a.only:
            continue
        runs = []
        for seed in range(a.seeds):
            xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.3, random_state=seed)
            runs.append(run(name, strats, seed, xtr, ytr, xte, yte))
        mean = np.mean(runs, axis=0)
        curves[name] = mean

        def need(th: float, mean: np.ndarray = mean) -> str:
            hit = np.flatnonzero(mean >= th)
            return str(sizes[hit[0]]) if len(hit) else ">300"

        auc = float(np.trapezoid(mean, sizes) / (sizes[-1] - sizes[0]))
        print(f"{name:38s} {need(0.90):>6s} {need(0.93):>6s} {auc:6.3f}   "
              f"({time.monotonic() - t_start:.0f} s)", flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, mean in curves.items():
        ax.plot(sizes, mean, label=name)
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.5, 1.0)
    ax.legend(fontsize=8)
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=100, bbox_inches="tight")
    print(f"plot: {a.png}")


if __name__ == "__main__":
    main()
