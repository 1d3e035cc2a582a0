"""TILING's ``num_rows`` / ``num_cols`` had no upper bound (session 64 audit): 1000 x 1000 was accepted and made a
million objects of about 2 x 1 pixels per 1920 x 1080 image, each cropped, embedded and committed. Lightly
documents no bound (docs.lightly.ai "Auto Tasks": ``num_rows``, ``num_cols``: int); the first task now refuses a
grid finer than 64 a side or 1024 tiles an image, naming the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lightly_airflow.config import ConfigError, parse_selection_config
from lightly_airflow.config.selection import MAX_TILES, MAX_TILES_PER_SIDE


def _config(rows: Any, cols: Any, camel: bool = False) -> dict[str, Any]:
    tiling = ({"type": "TILING", "name": "grid", "numRows": rows, "numCols": cols} if camel
              else {"type": "TILING", "name": "grid", "num_rows": rows, "num_cols": cols})
    return {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS", "task": "grid"},
                                             "strategy": {"type": "DIVERSITY"}}], "auto_tasks": [tiling]}


@pytest.mark.parametrize("rows, cols", [(MAX_TILES_PER_SIDE, MAX_TILES // MAX_TILES_PER_SIDE), (32, 32), (1, 64),
                                        (3, 2)])
def test_a_grid_up_to_the_bounds_is_accepted(rows: int, cols: int) -> None:
    [task] = parse_selection_config(_config(rows, cols)).auto_tasks or []
    assert (task.num_rows, task.num_cols) == (rows, cols)


def test_a_grid_past_the_bounds_fails_the_first_task_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    from lightly_airflow.pipeline import ParamError, validate_params

    with pytest.raises(ConfigError) as side:
        parse_selection_config(_config(1000, 1000))
    assert "auto_tasks[0].num_rows: 1000 tiles a side is more than 64" in str(side.value)
    assert "auto_tasks[0].num_cols: 1000 tiles a side" in str(side.value) and "Fix: give at most 64" in str(side.value)
    with pytest.raises(ConfigError, match=r"auto_tasks\[0\]\.num_cols: 65 tiles a side"):
        parse_selection_config(_config(1, 65, camel=True))
    with pytest.raises(ConfigError, match=r"auto_tasks\[0\]\.num_rows: 33 x 32 = 1056 tiles an image is more than "
                                          r"1024 .*Fix: a coarser grid"):
        parse_selection_config(_config(33, 32))
    # The first task (the parameters' check) refuses it before any work starts.
    source = tmp_path / "src"
    source.mkdir()
    with pytest.raises(ParamError, match=r"num_rows: 1000 tiles a side"):
        validate_params(datasource_uri=str(source), datapool_uri=str(tmp_path / "pool"), lightly_uri=None,
                        selection_config=_config(1000, 1000))
