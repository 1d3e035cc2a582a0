"""Helpers of the datasource tests that run the whole pipeline on a local folder of small real images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: A selection that picks 3 samples by embedding diversity: enough for a run to select and commit.
SELECTION = {"strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}], "n_samples": 3}


def image_adder(src: Path, seed: int = 0) -> Callable[..., None]:
    """``add(*names)``: writes a 24x24 noise image (its format by the name's extension) for each name below ``src``,
    each different (one random stream per adder: a run's images are never duplicates of each other)."""
    rng = np.random.default_rng(seed)

    def add(*names: str) -> None:
        for name in names:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(src / name)

    return add


def run_pipeline(src: Path, pool: Path, run_id: str, manifests: Any = None,
                 selection: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """One run over ``src`` into the datapool folder ``pool``: ``(summary, manifests)``; ``manifests`` of an earlier
    call retries its select task."""
    from faults.runs import prepare

    from lightly_airflow.pipeline import select_and_commit

    selection = selection or SELECTION
    manifests = prepare(src, pool, run_id, selection) if manifests is None else manifests
    return select_and_commit(datapool_uri=f"file://{pool}", run_id=run_id, dag_id="d", manifests=manifests,
                             selection_config=selection), manifests
