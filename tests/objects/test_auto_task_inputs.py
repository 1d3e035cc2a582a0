"""A ``SCORES`` or ``PREDICTIONS`` input naming an ``auto_tasks`` entry (session 63 audit). Lightly's auto tasks
are fixed boxes the worker makes (TILING grids, CROP boxes): no model, no categories, no scores, no files in
``.lightly/predictions``; they serve object-level selection through an ``EMBEDDINGS`` input with ``task``. The first
task said "the prediction task 'tiles' is not in .../tasks.json", which sends the user looking for a file that
cannot exist; it now names the input's JSON path, says what auto tasks are for and gives the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightly_airflow.config import parse_selection_config
from lightly_airflow.objects.demo_data import TASK, write_task
from lightly_airflow.objects.spec import check_object_level

AUTO = [{"type": "TILING", "name": "tiles", "num_rows": 2, "num_cols": 2},
        {"type": "CROP", "name": "centre", "bboxs": [[0.25, 0.25, 0.5, 0.5]]}]
DIVERSE_TILES = {"input": {"type": "EMBEDDINGS", "task": "tiles"}, "strategy": {"type": "DIVERSITY"}}


def _config(wrong: dict) -> dict:
    return {"n_samples": 2, "auto_tasks": AUTO,
            "strategies": [DIVERSE_TILES, {"input": wrong, "strategy": {"type": "WEIGHTS"}}]}


@pytest.mark.parametrize(("wrong", "named"), [
    ({"type": "SCORES", "task": "tiles", "score": "uncertainty_entropy"}, "the TILING auto task auto_tasks[0]"),
    ({"type": "PREDICTIONS", "task": "centre", "name": "CATEGORY_COUNT", "categories": ["thing"]},
     "the CROP auto task auto_tasks[1]"),
])
def test_scores_or_predictions_of_an_auto_task_fail_the_first_task_with_the_fix(
        tmp_path: Path, wrong: dict, named: str) -> None:
    from lightly_airflow.pipeline import ParamError, validate_params

    problem = check_object_level(parse_selection_config(_config(wrong)), None)
    assert problem is not None
    path, what, fix = problem
    assert path == "selection_config.strategies[1].input.task"
    assert named in what and f"a {wrong['type']} input has nothing to read" in what and "EMBEDDINGS" in what
    assert f'{{"input": {{"type": "EMBEDDINGS", "task": "{wrong["task"]}"}}' in fix and "tasks.json" in fix
    # The first task (validate_params) says so, not "not in tasks.json", with a datasource that has predictions.
    (tmp_path / "ds").mkdir()
    write_task(tmp_path / "ds")
    with pytest.raises(ParamError) as info:
        validate_params(datasource_uri=(tmp_path / "ds").as_uri(), datapool_uri=(tmp_path / "pool").as_uri(),
                        lightly_uri=None, selection_config=_config(wrong))
    message = str(info.value)
    assert message.startswith("Parameter 'selection_config.strategies[1].input.task': ")
    assert named in message and "not in" not in message


def test_embeddings_of_an_auto_task_and_scores_of_a_prediction_task_pass() -> None:
    config = _config({"type": "SCORES", "task": TASK, "score": "uncertainty_entropy"})
    assert check_object_level(parse_selection_config(config), None) is None
