"""Pool-based active learning with our selection engine, over datasets of several kinds.

Protocol per dataset and seed: a random pool/test split (70/30), logistic regression, 10 random initial
labels, batches of 10 up to the dataset's budget (300, less for the small tabular sets). Each batch is chosen
by ``lightly_airflow.selection.select`` (the real engine) with the labelled set passed as ``preselected``,
as ``lightly-airflow select --preselected`` does; the uncertainty scores come from the product's scorer
(``predictions.scorers.score_classification``). Every strategy starts from the same split and initial labels
per seed (paired comparison). The strategy ``recipe`` is exactly what ``lightly-airflow recipe
active-learning`` prints (:func:`lightly_airflow.selection.recipes.active_learning_config`).

Prints, per dataset: labels to reach 90% and 97% of the accuracy of a model trained on the whole labelled
pool, the normalised area under the accuracy curve (AUC), and the worst budget of each strategy against
random (min over budgets of the mean accuracy difference, with the paired standard error there); then a
summary over datasets. Datasets: ``benchmarks/al_datasets.py``.

Usage: python benchmarks/active_learning.py [--quick] [--seeds 10] [--datasets ...] [--only ...]
       [--json results.json] [--png plot.png]
"""

from __future__ import annotations

import os

# One thread per BLAS call: on a small shared machine multithreaded BLAS makes logistic regression on a few
# hundred samples 10-100x slower (thread contention), and it would not make the comparison fairer.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from al_datasets import DATASETS, Dataset  # noqa: E402

from lightly_airflow.predictions.scorers import score_classification  # noqa: E402
from lightly_airflow.selection import select  # noqa: E402
from lightly_airflow.selection.recipes import active_learning_config  # noqa: E402

TASK = "cls"
BATCH = 10
INITIAL = 10
E = {"type": "EMBEDDINGS"}


def w(score: str, strength: float = 1.0) -> dict:
    return {"input": {"type": "SCORES", "task": TASK, "score": score},
            "strategy": {"type": "WEIGHTS", "strength": strength}}


def _cfg(*strategies: dict) -> dict:
    return {"n_samples": BATCH, "strategies": list(strategies)}


def _div(strength: float = 1.0) -> dict:
    return {"input": E, "strategy": {"type": "DIVERSITY", "strength": strength}}


def _rand(strength: float = 1.0) -> dict:
    return {"input": {"type": "RANDOM"}, "strategy": {"type": "WEIGHTS", "strength": strength}}


def _top_margin(k_of: Callable[[int], int]) -> Callable[[dict], tuple[dict, dict]]:
    """Diversity among the ``k`` most uncertain (margin) candidates (emulated with a rank column + THRESHOLD)."""

    def make(ctx: dict) -> tuple[dict, dict]:
        m = ctx["scores"]["uncertainty_margin"]
        k = min(len(m), k_of(len(m)))
        rank = np.empty(len(m))
        rank[np.argsort(-m, kind="stable")] = np.arange(len(m))
        col = {f"scores.{TASK}.margin_rank": rank}
        thr = {"input": {"type": "SCORES", "task": TASK, "score": "margin_rank"},
               "strategy": {"type": "THRESHOLD", "threshold": float(k), "operation": "SMALLER"}}
        return _cfg(thr, _div()), col

    return make


def _switch(ctx: dict) -> tuple[dict, dict]:
    """Budget-dependent switch: TypiClust-like (typical and diverse) below 3 labels per class, then margin."""
    if ctx["n_labelled"] < 3 * ctx["n_classes"]:
        return _cfg(_div(), {"input": E, "strategy": {"type": "TYPICALITY"}}), {}
    return _cfg(w("uncertainty_margin")), {}


def _without_diversity(cfg: dict) -> dict:
    """``cfg`` without its DIVERSITY entries (the recipe's cold start as TypiClust alone)."""
    cfg["strategies"] = [e for e in cfg["strategies"] if e["strategy"]["type"] != "DIVERSITY"]
    return cfg


def _static(cfg: dict) -> Callable[[dict], tuple[dict, dict]]:
    return lambda ctx: (cfg, {})


STRATEGIES: dict[str, Callable[[dict], tuple[dict, dict]]] = {
    "random": _static(_cfg(_rand())),
    "recipe": lambda ctx: (active_learning_config(TASK, BATCH), {}),
    "recipe --power top (top margins)": lambda ctx: (active_learning_config(TASK, BATCH, power=None), {}),
    "power: margin^4 / random (no cold start)": lambda ctx: (active_learning_config(TASK, BATCH, cold_start=0), {}),
    "TYPICALITY^4 start, then power (margin^4 / u)": lambda ctx: (
        active_learning_config(TASK, BATCH, typicality=4.0, cold="typical-diverse"), {}),
    "TYPICALITY^4 start, then top margins": lambda ctx: (
        active_learning_config(TASK, BATCH, power=None, typicality=4.0, cold="typical-diverse"), {}),
    "previous recipe: TYPICALITY + DIVERSITY start, then power": lambda ctx: (
        active_learning_config(TASK, BATCH, cold="typical-diverse"), {}),
    "TypiClust start (no DIVERSITY), then power": lambda ctx: (_without_diversity(
        active_learning_config(TASK, BATCH)), {}),
    "power: margin^2 / random, after cold start": lambda ctx: (active_learning_config(TASK, BATCH, power=2.0), {}),
    "power: margin^8 / random, after cold start": lambda ctx: (active_learning_config(TASK, BATCH, power=8.0), {}),
    "margin": _static(_cfg(w("uncertainty_margin"))),
    "entropy": _static(_cfg(w("uncertainty_entropy"))),
    "diversity (k-center)": _static(_cfg(_div())),
    "old: diversity + margin^10": _static(_cfg(_div(), w("uncertainty_margin", 10.0))),
    "diversity^0.3 + margin": _static(_cfg(_div(0.3), w("uncertainty_margin"))),
    "top-3*batch margin -> diversity": _top_margin(lambda n: 3 * BATCH),
    "top-10% margin -> diversity": _top_margin(lambda n: max(BATCH, n // 10)),
    "power: margin * random": _static(_cfg(w("uncertainty_margin"), _rand())),
    "switch: typical+diverse, then margin": _switch,
    "power: margin * random^2": _static(_cfg(w("uncertainty_margin"), _rand(2.0))),
    "power: margin^2 * random": _static(_cfg(w("uncertainty_margin", 2.0), _rand())),
    "power: margin^4 * random": _static(_cfg(w("uncertainty_margin", 4.0), _rand())),
    "typicality + margin": _static(_cfg({"input": E, "strategy": {"type": "TYPICALITY"}},
                                        w("uncertainty_margin"))),
}
QUICK_STRATEGIES = ("random", "recipe", "margin", "recipe --power top (top margins)")
DEFAULT_STRATEGIES = ("random", "recipe", "margin", "entropy", "power: margin^4 / random (no cold start)",
                      "previous recipe: TYPICALITY + DIVERSITY start, then power",
                      "TypiClust start (no DIVERSITY), then power",
                      "TYPICALITY^4 start, then power (margin^4 / u)", "TYPICALITY^4 start, then top margins")


def split(ds: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pool and test indices of one seed (stratified; class-balanced test for the imbalanced variant)."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for c in np.unique(ds.y_clean):
        idx = rng.permutation(np.flatnonzero(ds.y_clean == c))
        n_test = int(round(len(idx) * ds.test_size))
        test.append(idx[:n_test])
        pool.append(idx[n_test:])
    if ds.balanced_test:
        m = min(len(t) for t in test)
        pool += [t[m:] for t in test]
        test = [t[:m] for t in test]
    return np.sort(np.concatenate(pool)), np.sort(np.concatenate(test))


def fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    clf = LogisticRegression(max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x, y)
    return clf


# Runs of strategies that never read the embeddings, by (model_key, strategy, seed): datasets that differ only
# in the embedding give them the same curve, so they run once.
_MEMO: dict[tuple[str, str, int, int], list[float]] = {}


def run(ds: Dataset, name: str, seed: int, draw: int = 0) -> list[float]:
    """Accuracy after each batch (INITIAL, INITIAL + BATCH, ..., budget labels) of strategy ``name``.

    ``draw`` changes only the seed of the engine's RANDOM inputs (same split and initial labels).
    """
    key = (ds.model_key, name, seed, draw)
    if key in _MEMO:
        return _MEMO[key]
    accs, used_embeddings = _run(ds, STRATEGIES[name], seed, draw)
    if not used_embeddings:
        _MEMO[key] = accs
    return accs


def run_random(ds: Dataset, seed: int, draws: int) -> list[float]:
    """Random sampling's expected curve for one seed: the mean of ``draws`` random draws (same split and
    initial labels). One draw is as noisy as the strategies it is compared with; the mean of several makes
    "below random" mean below random sampling, not below one lucky draw."""
    return np.mean([run(ds, "random", seed, d) for d in range(draws)], axis=0).tolist()


def _run(ds: Dataset, strategy: Callable[[dict], tuple[dict, dict]], seed: int,
         draw: int = 0) -> tuple[list[float], bool]:
    pool, test = split(ds, seed)
    n_classes = int(ds.y.max()) + 1
    rng = np.random.default_rng(seed)
    labelled = list(pool[rng.choice(len(pool), INITIAL, replace=False)])
    emb = ds.embedding.astype(np.float32)
    accs: list[float] = []
    used_embeddings = False
    while True:
        if len(np.unique(ds.y[labelled])) > 1:
            clf = fit(ds.x[labelled], ds.y[labelled])
            accs.append(float((clf.predict(ds.x[test]) == ds.y_clean[test]).mean()))
        else:  # a single class seen: predict it
            clf = None
            accs.append(float((ds.y_clean[test] == ds.y[labelled[0]]).mean()))
        if len(labelled) >= ds.budget:
            return accs, used_embeddings
        rest = np.setdiff1d(pool, labelled)
        p = np.zeros((len(rest), n_classes))
        if clf is not None:
            p[:, clf.classes_] = clf.predict_proba(ds.x[rest])
        else:
            p[:] = 1.0 / n_classes
        sc = score_classification(p)
        cfg, extra = strategy({"scores": sc, "n_labelled": len(labelled), "n_classes": n_classes})
        used_embeddings |= '"EMBEDDINGS"' in json.dumps(cfg)
        cols: dict = {"key": rest.astype(str), "embedding": _emb_column(emb[rest])}
        cols.update({f"scores.{TASK}.{k}": v for k, v in sc.items()})
        cols.update(extra)
        pre = pa.table({"key": np.asarray(labelled).astype(str), "embedding": _emb_column(emb[labelled])})
        r = select(pa.table(cols), cfg, preselected=pre, seed=seed * 1000 + len(labelled) + 1_000_003 * draw)
        labelled += rest[r.indices].tolist()


def _emb_column(x: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x, np.float32).ravel()), x.shape[1])


def full_pool_accuracy(ds: Dataset, seeds: int) -> float:
    accs = []
    for seed in range(seeds):
        pool, test = split(ds, seed)
        accs.append(float((fit(ds.x[pool], ds.y[pool]).predict(ds.x[test]) == ds.y_clean[test]).mean()))
    return float(np.mean(accs))


def summarise(sizes: np.ndarray, runs: np.ndarray, random_runs: np.ndarray, full: float) -> dict:
    mean = runs.mean(axis=0)
    diff = runs - random_runs  # paired by seed
    d_mean = diff.mean(axis=0)
    d_se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.zeros_like(d_mean)
    worst = int(np.argmin(d_mean))

    def need(frac: float) -> int | None:
        hit = np.flatnonzero(mean >= frac * full)
        return int(sizes[hit[0]]) if len(hit) else None

    return {"auc": float(np.trapezoid(mean, sizes) / (sizes[-1] - sizes[0])), "need90": need(0.90),
            "need97": need(0.97), "min_vs_random": float(d_mean[worst]), "min_at": int(sizes[worst]),
            "min_se": float(d_se[worst]), "curve": mean.round(4).tolist(),
            "diff_mean": d_mean.round(4).tolist(), "diff_se": d_se.round(4).tolist()}


def _fmt(v: int | None, budget: int) -> str:
    return str(v) if v is not None else f">{budget}"


def print_header(dname: str, res: dict) -> None:
    print(f"\n## {dname} ({res['kind']}; {res['n']} samples, {res['classes']} classes, budget {res['budget']}; "
          f"whole-pool accuracy {res['full_pool_accuracy']:.3f})")
    print(f"{'strategy':38s} {'@90%':>5s} {'@97%':>5s} {'AUC':>6s}  {'min-random (at, se)':>22s}")


def print_row(name: str, r: dict, budget: int, suffix: str = "") -> None:
    print(f"{name:38s} {_fmt(r['need90'], budget):>5s} {_fmt(r['need97'], budget):>5s} {r['auc']:6.3f}  "
          f"{r['min_vs_random']:+.3f} ({r['min_at']:3d}, {r['min_se']:.3f}){suffix}", flush=True)


def print_summary(results: dict) -> None:
    names: list[str] = []
    for res in results.values():
        names += [n for n in res["strategies"] if n not in names]
    print("\n## summary over datasets (AUC; worst = min over datasets and budgets of mean accuracy − random;"
          " significant = below random by more than 2 paired standard errors)")
    print(f"{'strategy':38s} {'mean AUC':>8s} {'vs margin':>9s} {'>=random':>9s} {'worst':>7s} {'signif.':>7s}")
    for n in names:
        rs = [results[d]["strategies"][n] for d in results if n in results[d]["strategies"]]
        vs_m = [results[d]["strategies"][n]["auc"] - results[d]["strategies"]["margin"]["auc"] for d in results
                if n in results[d]["strategies"] and "margin" in results[d]["strategies"]]
        worst = min(r["min_vs_random"] for r in rs)
        ok = sum(r["min_vs_random"] >= 0 for r in rs)
        signif = sum(any(m < -2 * e for m, e in zip(r["diff_mean"], r["diff_se"], strict=True)) for r in rs)
        print(f"{n:38s} {np.mean([r['auc'] for r in rs]):8.3f} {np.mean(vs_m) if vs_m else float('nan'):+9.3f} "
              f"{ok:>5d}/{len(rs):<3d} {worst:+7.3f} {signif:>7d}")


def print_markdown(results: dict) -> None:
    """Markdown tables: AUC per dataset and strategy, the worst budget against random, labels to thresholds.

    A strategy not measured on a dataset shows "–"; its mean is over the datasets measured (marked †).
    """
    names: list[str] = []
    for res in results.values():
        names += [n for n in res["strategies"] if n not in names]
    short = {d: d.replace("breast_cancer", "bc") for d in results}
    print("| strategy | " + " | ".join(short[d] for d in results) + " | mean | vs margin |")
    print("|---" * (len(results) + 3) + "|")
    for n in names:
        have = [d for d in results if n in results[d]["strategies"]]
        aucs = [results[d]["strategies"][n]["auc"] for d in have]
        vs = np.mean([results[d]["strategies"][n]["auc"] - results[d]["strategies"]["margin"]["auc"] for d in have
                      if "margin" in results[d]["strategies"]])
        cells = []
        for d in results:
            if d not in have:
                cells.append("–")
                continue
            auc = results[d]["strategies"][n]["auc"]
            best = max(r["auc"] for r in results[d]["strategies"].values())
            cells.append(f"**{auc:.3f}**" if auc >= best - 1e-9 else f"{auc:.3f}")
        mark = "" if len(have) == len(results) else "†"
        print(f"| {n} | " + " | ".join(cells) + f" | {np.mean(aucs):.3f}{mark} | {vs:+.3f}{mark} |")
    print()
    print("| strategy | " + " | ".join(short[d] for d in results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for n in names:
        cells = []
        for d in results:
            r = results[d]["strategies"].get(n)
            if r is None:
                cells.append("–")
                continue
            sig = any(m < -2 * e for m, e in zip(r["diff_mean"], r["diff_se"], strict=True))
            cells.append(f"{r['min_vs_random']:+.3f}@{r['min_at']}{'*' if sig else ''}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print()
    print("| dataset | recipe AUC | random | margin | entropy | recipe − random, worst budget (± paired se) | "
          "below random? |")
    print("|---" * 7 + "|")
    for d, res in results.items():
        st = res["strategies"]
        if "recipe" not in st:
            continue
        r = st["recipe"]
        m, e, at = r["min_vs_random"], r["min_se"], r["min_at"]
        below = "no" if m >= -5e-4 else ("**yes, significant**" if any(
            a < -2 * b for a, b in zip(r["diff_mean"], r["diff_se"], strict=True)) else "within noise")
        aucs = [f"{st[n]['auc']:.3f}" if n in st else "–" for n in ("random", "margin", "entropy")]
        print(f"| {d} | {r['auc']:.3f} | " + " | ".join(aucs) + f" | {m:+.3f} ± {e:.3f} @ {at} | {below} |")
    print()
    print("| dataset | whole pool | " + " | ".join(f"{n} @90% / @97%" for n in ("random", "margin", "recipe"))
          + " |")
    print("|---" * 5 + "|")
    for d, res in results.items():
        cells = [f"{_fmt(res['strategies'][n]['need90'], res['budget'])} / "
                 f"{_fmt(res['strategies'][n]['need97'], res['budget'])}" if n in res["strategies"] else "–"
                 for n in ("random", "margin", "recipe")]
        print(f"| {d} ({res['kind']}) | {res['full_pool_accuracy']:.3f} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 seeds, the recipe against random/margin/old recipe")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per dataset (default 10, --quick 5)")
    ap.add_argument("--datasets", nargs="*", choices=list(DATASETS), help="only these datasets")
    ap.add_argument("--only", nargs="*", help="only these strategy names (random always runs)")
    ap.add_argument("--random-draws", type=int, default=3,
                    help="random sampling's curve per seed = the mean of this many random draws (default 3)")
    ap.add_argument("--json", help="write every curve and figure to this JSON file")
    ap.add_argument("--merge", nargs="*", help="print the tables of earlier --json files (runs nothing)")
    ap.add_argument("--markdown", action="store_true", help="with --merge: print the tables as Markdown")
    ap.add_argument("--png", help="plot the mean curves of each dataset into this PNG")
    a = ap.parse_args()
    if a.merge:
        results = {}
        for f in a.merge:  # later files add strategies (and datasets) to earlier ones
            for d, res in json.loads(Path(f).read_text())["results"].items():
                if d in results:
                    results[d]["strategies"].update(res["strategies"])
                else:
                    results[d] = res
        for res in results.values():  # random and the recipe first, then the rest in the order measured
            st = res["strategies"]
            res["strategies"] = {n: st[n] for n in ("random", "recipe", "margin") if n in st} | st
        if a.markdown:
            print_markdown(results)
            return
        for dname, res in results.items():
            print_header(dname, res)
            for n, r in res["strategies"].items():
                print_row(n, r, res["budget"])
        print_summary(results)
        if a.png:
            plot(results, a.png)
        return
    seeds = a.seeds or (5 if a.quick else 10)
    names = list(a.only) if a.only else list(QUICK_STRATEGIES if a.quick else DEFAULT_STRATEGIES)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        ap.error(f"unknown strategies {unknown}; known: {list(STRATEGIES)}")
    names = ["random"] + [n for n in names if n != "random"]
    # One select() per batch: the engine's per-call INFO line would flood the output.
    logging.getLogger("lightly_airflow").setLevel(logging.WARNING)
    t0 = time.monotonic()
    print(f"active learning: logistic regression, {INITIAL} initial labels, batches of {BATCH}, {seeds} seeds "
          "(paired); shared 2-core machine, other jobs running")
    results: dict = {}
    for dname in a.datasets or list(DATASETS):
        ds = DATASETS[dname]()
        sizes = np.arange(INITIAL, ds.budget + 1, BATCH)
        res = {"kind": ds.kind, "n": len(ds.y), "classes": int(ds.y.max()) + 1, "budget": ds.budget,
               "full_pool_accuracy": full_pool_accuracy(ds, seeds), "seeds": seeds,
               "random_draws": a.random_draws, "strategies": {}}
        print_header(dname, res)
        runs: dict[str, np.ndarray] = {}
        for n in names:
            runs[n] = np.array([run_random(ds, s, a.random_draws) if n == "random" else run(ds, n, s)
                                for s in range(seeds)])
            r = summarise(sizes, runs[n], runs["random"], res["full_pool_accuracy"])
            res["strategies"][n] = r
            print_row(n, r, ds.budget, f"   [{time.monotonic() - t0:.0f} s]")
        results[dname] = res
        if a.json:  # after every dataset: a long run that is stopped keeps what it measured
            Path(a.json).write_text(json.dumps({"seeds": seeds, "results": results}, indent=1))
    print_summary(results)
    print(f"total {time.monotonic() - t0:.0f} s")
    if a.png:
        plot(results, a.png)


def plot(results: dict, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (dname, res) in zip(axes.flat, results.items(), strict=False):
        sizes = np.arange(INITIAL, res["budget"] + 1, BATCH)
        for sname, r in res["strategies"].items():
            if len(r["curve"]) != len(sizes):  # a figure entered without its curve
                continue
            ax.plot(sizes, r["curve"], label=sname, lw=2.2 if sname == "recipe" else 1.0)
        ax.set_title(dname, fontsize=9)
        ax.set_xlabel("labels", fontsize=8)
    axes.flat[0].legend(fontsize=6)
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
