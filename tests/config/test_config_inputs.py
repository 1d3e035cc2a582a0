"""The first task checks that .lightly/ holds what the selection config reads, and names the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightly_airflow.config import parse_selection_config
from lightly_airflow.config.inputs import check_config_inputs
from lightly_airflow.pipeline import ParamError, validate_params

E = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def _cfg(*strategies: dict) -> object:
    return parse_selection_config({"n_samples": 5, "strategies": [E, *strategies]})


def _lightly(root: Path) -> Path:
    lightly = root / ".lightly"
    (lightly / "predictions" / "cls").mkdir(parents=True)
    (lightly / "predictions" / "det").mkdir(parents=True)
    (lightly / "metadata").mkdir(parents=True)
    (lightly / "predictions" / "tasks.json").write_text(json.dumps(["cls", "det"]))
    (lightly / "predictions" / "cls" / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]}))
    (lightly / "predictions" / "det" / "schema.json").write_text(json.dumps(
        {"task_type": "object-detection", "categories": [{"id": 0, "name": "car"}, {"id": 3, "name": "bus"}]}))
    (lightly / "metadata" / "schema.json").write_text(json.dumps(
        [{"name": "Weather", "path": "weather.description", "defaultValue": "sunny",
          "valueDataType": "CATEGORICAL_STRING"},
         {"name": "Temperature", "path": "weather.temperature", "valueDataType": "NUMERIC_FLOAT"}]))
    return root


def test_a_datasource_without_lightly_folder_serves_embeddings_and_computed_metadata(tmp_path: Path) -> None:
    cfg = _cfg({"input": {"type": "METADATA", "key": "lightly.sharpness"},
                "strategy": {"type": "THRESHOLD", "threshold": 1, "operation": "BIGGER"}},
               {"input": {"type": "RANDOM"}, "strategy": {"type": "WEIGHTS"}})
    assert check_config_inputs(cfg, tmp_path.as_uri()) == []


@pytest.mark.parametrize(("strategy", "path", "words"), [
    ({"input": {"type": "SCORES", "task": "digits", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
     "strategies[1].input.task", ["'digits'", "tasks.json"]),
    ({"input": {"type": "METADATA", "key": "source"}, "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}},
     "strategies[1].input.key", ["'source'", "metadata/schema.json"]),
    ({"input": {"type": "METADATA", "key": "lightly.sharpnes"}, "strategy": {"type": "WEIGHTS"}},
     "strategies[1].input.key", ["lightly.sharpness"]),
])
def test_missing_inputs_without_lightly_folder(tmp_path: Path, strategy: dict, path: str, words: list[str]) -> None:
    problems = check_config_inputs(_cfg(strategy), tmp_path.as_uri())
    assert [p for p, _, _ in problems] == [path]
    text = " ".join(problems[0][1:])
    assert all(w in text for w in words), text


@pytest.mark.parametrize(("strategy", "path", "ok"), [
    ({"input": {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}}, "", True),
    ({"input": {"type": "SCORES", "task": "cls", "score": "object_frequency"}, "strategy": {"type": "WEIGHTS"}},
     "strategies[1].input.score", False),
    ({"input": {"type": "SCORES", "task": "det", "score": "object_frequency"}, "strategy": {"type": "WEIGHTS"}}, "", True),
    ({"input": {"type": "SCORES", "task": "seg", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
     "strategies[1].input.task", False),
    ({"input": {"type": "PREDICTIONS", "task": "det", "name": "CATEGORY_COUNT", "categories": ["bus"]},
      "strategy": {"type": "WEIGHTS"}}, "", True),
    ({"input": {"type": "PREDICTIONS", "task": "det", "name": "CATEGORY_COUNT", "categories": ["truck"]},
      "strategy": {"type": "WEIGHTS"}}, "strategies[1].input.categories", False),
    ({"input": {"type": "PREDICTIONS", "task": "cls", "name": "CLASS_DISTRIBUTION"},
      "strategy": {"type": "BALANCE", "target": {"cat": 0.5}}}, "", True),
    ({"input": {"type": "METADATA", "key": "weather.description"},
      "strategy": {"type": "BALANCE", "target": {"sunny": 0.5}}}, "", True),
    ({"input": {"type": "METADATA", "key": "weather.temp"}, "strategy": {"type": "WEIGHTS"}},
     "strategies[1].input.key", False),
    ({"input": {"type": "EMBEDDINGS", "task": "cls"}, "strategy": {"type": "DIVERSITY"}}, "strategies[1].input.task", False),
    ({"input": {"type": "EMBEDDINGS", "task": "det"}, "strategy": {"type": "DIVERSITY"}}, "", True),
])
def test_inputs_against_a_lightly_folder(tmp_path: Path, strategy: dict, path: str, ok: bool) -> None:
    problems = check_config_inputs(_cfg(strategy), _lightly(tmp_path).as_uri())
    assert [p for p, _, _ in problems] == ([] if ok else [path]), problems


def test_local_query_set_is_checked(tmp_path: Path) -> None:
    cfg = _cfg({"input": {"type": "EMBEDDINGS", "dataset_id": str(tmp_path / "nopool"), "tag_name": "queries"},
                "strategy": {"type": "SIMILARITY"}})
    problems = check_config_inputs(cfg, tmp_path.as_uri())
    assert [p for p, _, _ in problems] == ["strategies[1].input.dataset_id"]


def test_first_task_fails_naming_the_task_and_the_fix(tmp_path: Path) -> None:
    cfg = {"n_samples": 5, "strategies": [
        E, {"input": {"type": "SCORES", "task": "digits", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}}]}
    (tmp_path / "ds").mkdir()
    with pytest.raises(ParamError) as info:
        validate_params(datasource_uri=(tmp_path / "ds").as_uri(), datapool_uri=(tmp_path / "pool").as_uri(),
                        lightly_uri=None, selection_config=cfg)
    message = str(info.value)
    assert "Parameter 'selection_config'" in message and "strategies[1].input.task" in message
    assert "'digits'" in message and "Fix:" in message


M = "METADATA"


@pytest.mark.parametrize("key, strategy, ok", [
    ("weather.temperature", {"type": "WEIGHTS"}, True),
    ("weather.temperature", {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER"}, True),
    ("weather.temperature", {"type": "BALANCE", "distribution": "UNIFORM"}, False),
    ("weather.description", {"type": "WEIGHTS"}, False),
    ("weather.description", {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER"}, False),
    ("weather.description", {"type": "BALANCE", "target": {"sunny": 0.2, "cloudy": 0.4}}, True),
    ("lightly.sharpness", {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER"}, True),
    ("lightly.sharpness", {"type": "BALANCE", "distribution": "UNIFORM"}, False),
    ("lightly.width", {"type": "BALANCE", "distribution": "UNIFORM"}, True),
])
def test_metadata_kind_fits_the_strategy_as_lightly_documents(tmp_path: Path, key: str, strategy: dict, ok: bool) -> None:
    """Lightly: WEIGHTS and THRESHOLD take numerical metadata, BALANCE categorical metadata. WEIGHTS on a
    CATEGORICAL_STRING passed the first task and failed the select task after the whole embedding ("column …
    holds string, not numbers"); BALANCE on a float made one class per distinct value without a word."""
    problems = check_config_inputs(_cfg({"input": {"type": M, "key": key}, "strategy": strategy}), _lightly(tmp_path).as_uri())
    assert [p for p, _, _ in problems] == ([] if ok else ["strategies[1].input.key"]), problems
    if not ok:
        _, problem, fix = problems[0]
        assert repr(key) in problem and strategy["type"] in problem + fix


@pytest.mark.parametrize("content, words", [
    (None, ["not found at", ".lightly/relevant.txt"]),
    ("image_1.png\nsubdir/caf\xe9.png\n".encode("latin-1"), [".lightly/relevant.txt: not UTF-8 text"]),
    (b"image_1.png\n!image_2.png\n", [".lightly/relevant.txt, line 2", "re-include rule must follow a prefix"]),
    (b"\xef\xbb\xbfimage_1.png\r\nsubdir/* subdir/image_4*\r\n", None),
])
def test_relevant_filenames_file_is_checked_by_the_first_task(tmp_path: Path, content: bytes | None, words) -> None:
    """A missing, non-UTF-8 or unparsable relevant-filenames file failed the sensor (the DAG's first task) with
    a plain exception, so Airflow retried it twice before failing (the list task likewise); now the first task
    names the param, the file and the line, and fails for good in seconds."""
    from airflow.sdk.exceptions import AirflowFailException

    from lightly_airflow.sensors.new_files import NewFilesSensor

    ds = tmp_path / "ds"
    (ds / ".lightly").mkdir(parents=True)
    (ds / "image_1.png").write_bytes(b"png")
    if content is not None:
        (ds / ".lightly" / "relevant.txt").write_bytes(content)
    args = {"datasource_uri": ds.as_uri(), "datapool_uri": (tmp_path / "pool").as_uri(), "lightly_uri": None,
            "selection_config": {"n_samples": 1, "strategies": [E]},
            "worker_config": {"relevant_filenames_file": ".lightly/relevant.txt"}}
    if words is None:
        validate_params(**args)
        return
    with pytest.raises(ParamError) as info:
        validate_params(**args)
    assert info.value.param == "worker_config.relevant_filenames_file"
    assert all(w in str(info.value) for w in words), str(info.value)
    sensor = NewFilesSensor(task_id="wait", wait=False, deferrable=False, **args)
    with pytest.raises(AirflowFailException, match="relevant_filenames_file"):
        sensor.execute({})
