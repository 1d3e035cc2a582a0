"""Recommended selection configs ("recipes"), measured in ``benchmarks/active_learning.py``.

``lightly-airflow recipe active-learning --task NAME [--n-samples N]`` prints
:func:`active_learning_config` as JSON; docs/selection.md has the measurements behind it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lightly_airflow.predictions.scorers import MARGIN

RECIPES = ("active-learning",)


def active_learning_config(task: str, n_samples: int = 10) -> dict[str, Any]:
    """The recommended active-learning selection config for the classification prediction task ``task``.

    It uses only the task's ``uncertainty_margin`` score and a seeded random value (no embeddings needed).

    :param task: name of the prediction task (``.lightly/predictions/<task>/``).
    :param n_samples: batch size (how many samples to send to labelling).
    :raises ValueError: empty task name or ``n_samples`` < 1.
    """
    if not isinstance(task, str) or not task.strip():
        raise ValueError("recipe active-learning: --task must name the prediction task (e.g. 'classification')")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"recipe active-learning: --n-samples must be an integer >= 1, got {n_samples!r}")
    return {"n_samples": n_samples, "strategies": [
        {"input": {"type": "SCORES", "task": task, "score": MARGIN}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "RANDOM"}, "strategy": {"type": "WEIGHTS"}}]}


def run(args: argparse.Namespace) -> int:
    """Print the recipe's selection config as JSON on stdout."""
    config = active_learning_config(args.task, args.n_samples)
    print(json.dumps(config, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``recipe`` subcommand."""
    p = subparsers.add_parser("recipe", help="print a recommended selection config (JSON)")
    p.add_argument("name", choices=RECIPES, help="which recipe")
    p.add_argument("--task", required=True, help="prediction task with classification scores (uncertainty_*)")
    p.add_argument("--n-samples", type=int, default=10, help="samples to select per run (default 10)")
    p.set_defaults(func=run)
