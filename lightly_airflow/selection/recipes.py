"""Recommended selection configs ("recipes"), measured in ``benchmarks/active_learning.py``.

``lightly-airflow recipe active-learning --task NAME [--n-samples N] [--cold-start L]`` prints
:func:`active_learning_config` as JSON; docs/selection.md "Active learning" has the measurements behind it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lightly_airflow.predictions.scorers import MARGIN

RECIPES = ("active-learning",)
#: Labelled samples (preselected in the datapool) below which the model's uncertainty is not trusted yet:
#: about three labels per class for ten classes.
COLD_START = 30


def active_learning_config(task: str, n_samples: int = 10, cold_start: int = COLD_START) -> dict[str, Any]:
    """The recommended active-learning selection config for the classification prediction task ``task``.

    A budget-dependent switch (as in Hacohen et al., "Active learning on a budget", ICML 2022): while the
    datapool holds fewer than ``cold_start`` samples (the labelled set: ``preselected``), pick typical and
    diverse samples (TYPICALITY + DIVERSITY on the embeddings, TypiClust-like: a model trained on a handful of
    labels is not yet worth asking); from then on, margin sampling (WEIGHTS on the task's
    ``uncertainty_margin``). The switch is the entries' ``when`` (a lightly_airflow extension of Lightly's
    format). Reads the task's margin score and the embeddings, nothing else.

    :param task: name of the prediction task (``.lightly/predictions/<task>/``).
    :param n_samples: batch size (how many samples to send to labelling).
    :param cold_start: labelled samples from which margin sampling takes over (0: margin sampling always).
    :raises ValueError: empty task name, ``n_samples`` < 1 or ``cold_start`` < 0.
    """
    if not isinstance(task, str) or not task.strip():
        raise ValueError("recipe active-learning: --task must name the prediction task (e.g. 'classification')")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"recipe active-learning: --n-samples must be an integer >= 1, got {n_samples!r}")
    if isinstance(cold_start, bool) or not isinstance(cold_start, int) or cold_start < 0:
        raise ValueError(f"recipe active-learning: --cold-start must be an integer >= 0, got {cold_start!r}")
    margin: dict[str, Any] = {"input": {"type": "SCORES", "task": task, "score": MARGIN},
                              "strategy": {"type": "WEIGHTS"}}
    if cold_start == 0:
        return {"n_samples": n_samples, "strategies": [margin]}
    early = {"max_preselected": cold_start - 1}
    margin["when"] = {"min_preselected": cold_start}
    return {"n_samples": n_samples, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "TYPICALITY"}, "when": early},
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}, "when": early},
        margin]}


def run(args: argparse.Namespace) -> int:
    """Print the recipe's selection config as JSON on stdout."""
    config = active_learning_config(args.task, args.n_samples, args.cold_start)
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
                        f"and diverse samples (default {COLD_START}; 0: margin sampling always)")
    p.set_defaults(func=run)
