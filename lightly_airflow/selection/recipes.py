"""Recommended selection configs ("recipes"), measured in ``benchmarks/active_learning.py``.

``lightly-airflow recipe active-learning --task NAME [--n-samples N] [--cold-start L] [--power B]`` prints
:func:`active_learning_config` as JSON; docs/selection.md "Active learning" has the measurements behind it.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from lightly_airflow.predictions.scorers import MARGIN

RECIPES = ("active-learning",)
#: Labelled samples (preselected in the datapool) below which the model's uncertainty is not trusted yet and
#: the batch is typical and diverse instead. 20 (one batch of 10 after 10 initial labels) was the most robust
#: switch measured: at 30 the second typical batch fell below random on 3-class wine.
COLD_START = 20
#: Strength of TYPICALITY against DIVERSITY in the ``typical-diverse`` cold start. Typicality
#: (``1 / (1 + mean k-NN distance)``) spans a narrower range than the distance to the labelled set, so at 1
#: the product leans to k-center; 4 fixed skimage's faces vs non-faces (k-center picks the spread-out
#: non-faces only) but fell below random on both silhouette datasets with pixel embeddings (typical = one
#: kind of shape). Measured in docs/selection.md.
TYPICALITY_STRENGTH = 1.0
#: Cold-start objectives: TYPICALITY with ``clusters`` (TypiClust: the most typical sample of each of the
#: largest k-means clusters without a labelled sample), or TYPICALITY + DIVERSITY (the earlier recipe).
#: TypiClust (+ DIVERSITY 0.5) is the default: TYPICALITY + DIVERSITY leans to k-center and picked the
#: spread-out non-faces only on skimage's faces (-0.056 below random at 20 labels, significant); TypiClust
#: -0.009 +- 0.014 there and no significant dip on any of the 14 datasets (docs/selection.md).
COLD_STARTS = ("typiclust", "typical-diverse")
COLD = "typiclust"
#: Strength of DIVERSITY added to the TypiClust cold start: without it TypiClust fell below random on wine
#: with its raw-scale embedding (-0.016 +- 0.007 at 20 labels); with 0.5 no dataset did (docs/selection.md).
TYPICLUST_DIVERSITY = 0.5
#: Exponent of the margin score in power sampling (picks drawn with probability ~ margin ** POWER).
POWER = 4.0


def active_learning_config(task: str, n_samples: int = 10, cold_start: int = COLD_START,
                           power: float | None = POWER, typicality: float = TYPICALITY_STRENGTH,
                           cold: str = COLD) -> dict[str, Any]:
    """The recommended active-learning selection config for the classification prediction task ``task``.

    Two phases, switched by the number of samples already in the datapool (the labelled set, passed as
    ``preselected``; the entries' ``when``, a lightly_airflow extension of Lightly's format):

    * fewer than ``cold_start``: TypiClust (Hacohen et al., "Active learning on a budget", ICML 2022: TYPICALITY
      with ``clusters``, the most typical sample of each of the largest k-means clusters that hold no labelled
      sample, plus DIVERSITY at strength 0.5; ``cold="typical-diverse"``: TYPICALITY + DIVERSITY instead):
      a model trained on a handful of labels is not yet worth asking;
    * from then on, power sampling on the margin (Kirsch et al., "Stochastic batch acquisition", TMLR 2023):
      WEIGHTS on the task's ``uncertainty_margin`` with strength ``power`` plus WEIGHTS on a RANDOM value with
      strength -1, i.e. the top of ``margin ** power / u`` (``u`` uniform): priority sampling, each sample
      drawn with a probability that grows with ``margin ** power``. Where few samples are uncertain this is
      margin sampling; where the model is uncertain about most of the pool (a poor model, whose margins say
      little) it approaches random sampling instead of piling a batch into one confusing region.
      ``power=None``: deterministic margin sampling (the top margins).

    Reads the task's margin score and the embeddings, nothing else. The random draw follows the engine's
    seed (``lightly-airflow select --seed``; a fresh draw without one; a DAG run's seed derives from its run id).

    :param task: name of the prediction task (``.lightly/predictions/<task>/``).
    :param n_samples: batch size (how many samples to send to labelling).
    :param cold_start: labelled samples from which margin sampling takes over (0: from the start).
    :param power: exponent of the margin in power sampling (> 0); ``None``: top margins, no randomness.
    :param typicality: strength of TYPICALITY (against DIVERSITY's 1) in the ``typical-diverse`` cold start.
    :param cold: the cold-start objective, one of :data:`COLD_STARTS`.
    :raises ValueError: empty task name, ``n_samples`` < 1, ``cold_start`` < 0, ``power`` <= 0,
        ``typicality`` outside (0, 100] or an unknown ``cold``.
    """
    if not isinstance(task, str) or not task.strip():
        raise ValueError("recipe active-learning: --task must name the prediction task (e.g. 'classification')")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"recipe active-learning: --n-samples must be an integer >= 1, got {n_samples!r}")
    if isinstance(cold_start, bool) or not isinstance(cold_start, int) or cold_start < 0:
        raise ValueError(f"recipe active-learning: --cold-start must be an integer >= 0, got {cold_start!r}")
    if power is not None and (isinstance(power, bool) or not isinstance(power, (int, float))
                              or not math.isfinite(power) or not 0 < power <= 100):
        raise ValueError(f"recipe active-learning: --power must be a number in (0, 100], got {power!r}")
    if isinstance(typicality, bool) or not isinstance(typicality, (int, float)) or not 0 < typicality <= 100:
        raise ValueError(f"recipe active-learning: typicality must be a number in (0, 100], got {typicality!r}")
    if cold not in COLD_STARTS:
        raise ValueError(f"recipe active-learning: cold start must be one of {COLD_STARTS}, got {cold!r}")
    late: list[dict[str, Any]] = [{"input": {"type": "SCORES", "task": task, "score": MARGIN},
                                   "strategy": {"type": "WEIGHTS"}}]
    if power is not None:
        late[0]["strategy"]["strength"] = float(power)
        late.append({"input": {"type": "RANDOM"}, "strategy": {"type": "WEIGHTS", "strength": -1.0}})
    if cold_start == 0:
        return {"n_samples": n_samples, "strategies": late}
    early = {"max_preselected": cold_start - 1}
    for entry in late:
        entry["when"] = {"min_preselected": cold_start}
    if cold == "typiclust":
        return {"n_samples": n_samples, "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY", "clusters": True},
             "when": early},
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strength": TYPICLUST_DIVERSITY},
             "when": early}, *late]}
    return {"n_samples": n_samples, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY", "strength": float(typicality)},
         "when": early},
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}, "when": early},
        *late]}


def _power(value: str) -> float | None:
    if value.lower() in ("none", "top", "inf"):
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--power: a number > 0 or 'top', got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    """Print the recipe's selection config as JSON on stdout."""
    config = active_learning_config(args.task, args.n_samples, args.cold_start, args.power, cold=args.cold)
    print(json.dumps(config, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``recipe`` subcommand."""
    p = subparsers.add_parser("recipe", help="print a recommended selection config (JSON)")
    p.add_argument("name", choices=RECIPES, help="which recipe")
    p.add_argument("--task", required=True, help="prediction task with classification scores (uncertainty_*)")
    p.add_argument("--n-samples", type=int, default=10, help="samples to select per run (default 10)")
    p.add_argument("--cold-start", type=int, default=COLD_START,
                   help=f"labelled samples (preselected) from which margin sampling takes over; below, typical "
                        f"samples (--cold) (default {COLD_START}; 0: margin sampling always)")
    p.add_argument("--cold", choices=COLD_STARTS, default=COLD,
                   help=f"cold-start objective below --cold-start labels (default {COLD}: the most typical sample "
                        "of each of the largest k-means clusters without a labelled sample, plus DIVERSITY 0.5; "
                        "typical-diverse: TYPICALITY + DIVERSITY)")
    p.add_argument("--power", type=_power, default=POWER,
                   help=f"margin sampling draws samples with probability ~ margin ** POWER (default {POWER:g}); "
                        "'top': the top margins, no randomness")
    p.set_defaults(func=run)
