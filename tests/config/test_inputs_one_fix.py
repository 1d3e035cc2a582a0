"""The first task's check of ``.lightly/`` names one fix per problem: the file's own problems (``tasks.json``
listing a task twice, a ``metadata/schema.json`` that is no JSON) carry their fix, and the check added its own
after it ("… . Fix: list each task once. Fix: fix .lightly/predictions/tasks.json (a JSON list of task names)")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lightly_airflow.config import parse_selection_config
from lightly_airflow.config.inputs import check_config_inputs
from lightly_airflow.pipeline import ParamError, check_selection_inputs

CLS = {"task_type": "classification", "categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]}
STRATEGIES = [{"input": {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
              {"input": {"type": "METADATA", "key": "weather"}, "strategy": {"type": "BALANCE", "target": {"sun": 1}}}]


def _lightly(root: Path, tasks: str, metadata_schema: str) -> str:
    (root / ".lightly" / "predictions" / "cls").mkdir(parents=True)
    (root / ".lightly" / "metadata").mkdir(parents=True)
    (root / ".lightly" / "predictions" / "tasks.json").write_text(tasks)
    (root / ".lightly" / "predictions" / "cls" / "schema.json").write_text(json.dumps(CLS))
    (root / ".lightly" / "metadata" / "schema.json").write_text(metadata_schema)
    return root.as_uri()


def test_each_problem_of_a_lightly_file_has_one_fix(tmp_path: Path) -> None:
    uri = _lightly(tmp_path, '["cls", "cls", "no task"]', '[{"name": "W", "path": "weather",\n'
                   ' "valueDataType": "CATEGORICAL_STRING",}]')
    config = parse_selection_config({"n_samples": 2, "strategies": STRATEGIES})
    problems = check_config_inputs(config, uri)
    assert [(path, problem) for path, problem, _ in problems] == [
        ("", ".lightly/predictions/tasks.json: [1]: task 'cls' is listed twice (read once)"),
        ("", ".lightly/predictions/tasks.json: [2]: 'no task' is not a task name (letters, digits, '_' and '-' only; "
             "the task is skipped)"),
        ("strategies[1].input.key", ".lightly/metadata/schema.json: invalid JSON: a trailing comma before '}' at line 2 "
                                    "column 39 (JSON allows none) near '…\"valueDataType\": \"CATEGORICAL_STRING\",}]'"),
    ]
    assert [fix for _, _, fix in problems] == ["list each task once", "name the task's folder so and list that name",
                                               "remove that comma"]
    # what the first task says: one "Fix:" a line
    with pytest.raises(ParamError) as info:
        check_selection_inputs(config, uri)
    lines = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == 3 and all(len(re.findall("Fix:", line)) == 1 for line in lines), lines


def test_a_tasks_json_that_is_no_json_names_its_place_and_fix(tmp_path: Path) -> None:
    uri = _lightly(tmp_path, '["cls" "det"]', "[]")
    config = parse_selection_config({"n_samples": 2, "strategies": STRATEGIES[:1]})
    problems = check_config_inputs(config, uri)
    assert problems[0] == ("", ".lightly/predictions/tasks.json: invalid JSON: Expecting ',' delimiter at line 1 "
                               "column 8 near '[\"cls\" \"det\"]'", "correct the JSON there (a JSON validator names the "
                               "same place)")
