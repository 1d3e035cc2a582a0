"""Configs and .lightly/ files as Lightly's documentation writes them (tests/lightly_doc_examples.py, with their
sources): each is accepted, or refused naming the place and the fix in the user's own terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lightly_doc_examples import (
    CORESET_WITH_COMMENT,
    DETECTION_PREDICTION_WITH_COMMENT,
    PRETAGGING_BALANCE,
    PRETAGGING_CLASSES,
    SIMILARITY_SEARCH,
    WEBAPP_DEFAULT_LIGHTLY_CONFIG,
    WORKER_CONFIG_JAVASCRIPT,
    WORKER_CONFIG_PYTHON,
)

from lightly_airflow.config import parse_lightly_config, parse_selection_config, parse_worker_config
from lightly_airflow.config.errors import ConfigError
from lightly_airflow.config.inputs import check_config_inputs
from lightly_airflow.config.load import ConfigSourceError, load_config
from lightly_airflow.lightly_dir import LightlyFileError, parse_json_bytes


@pytest.mark.parametrize(("text", "words"), [
    (CORESET_WITH_COMMENT, ["a comment ('# set to the number", "JSON does not allow: remove it", "line 2 column 23"]),
    (WORKER_CONFIG_PYTHON.replace("    # Enable datapool. See https://docs.lightly.ai/docs/datapool for details.\n", ""),
     ["False is Python's spelling: JSON writes false", "line 2 column 21"]),
    (WORKER_CONFIG_JAVASCRIPT, ["the key enable_corruptness_check without quotes",
                                'JSON writes it "enable_corruptness_check"', "line 2 column 3"]),
    # its quoted value, as the web app's config writes it (method: 'coreset'), with the key in JSON's quotes
    ('{"method": \'coreset\'}', ["a string in single quotes: JSON writes strings (and keys) in double quotes",
                                 "line 1 column 12"]),
])
def test_a_config_pasted_from_lightlys_docs_is_named_in_json_terms(tmp_path: Path, text: str, words: list[str]) -> None:
    """Lightly's docs write configs as Python dicts (``# comments``, ``False``) and the web app's as JavaScript
    objects (unquoted keys, 'single quotes'); the error said only "Expecting property name enclosed in double
    quotes at line 2 column 23" or "Expecting value at line 2 column 21"."""
    config = tmp_path / "config.json"
    config.write_text(text)
    with pytest.raises(ConfigSourceError) as info:
        load_config(str(config), "--config")
    message = str(info.value)
    assert all(w in message for w in words), message
    # each of these spellings is YAML's too: the same text under a .yaml name is read as the docs mean it
    assert message.endswith("Fix: correct the JSON, or give the file a name ending in .yaml: YAML reads this spelling")
    config.rename(config.with_suffix(".yaml"))
    assert load_config(str(config.with_suffix(".yaml")), "--config")


def test_python_none_and_a_double_slash_comment_are_not_sent_to_yaml(tmp_path: Path) -> None:
    """YAML reads ``None`` as the text "None" and has no ``//`` comments: for those the fix is JSON's only."""
    for text in ('{"embeddings": None}', '{"use_datapool": true // the default is false\n}'):
        config = tmp_path / "config.json"
        config.write_text(text)
        with pytest.raises(ConfigSourceError) as info:
            load_config(str(config), "--config")
        assert str(info.value).endswith("Fix: correct the JSON"), str(info.value)


def test_a_prediction_file_with_the_docs_comment_is_named_in_json_terms() -> None:
    with pytest.raises(LightlyFileError) as info:
        parse_json_bytes(DETECTION_PREDICTION_WITH_COMMENT.encode(), "predictions/det/subdir/image_1.json")
    assert info.value.reason == ("invalid JSON: a comment ('// classes: [person, car]'), which JSON does not allow "
                                 "at line 3 column 22 near '…\"predictions\": [ // classes: [person,…'. Fix: remove it")


def test_a_python_word_inside_a_string_is_not_taken_for_python() -> None:
    """Only the text where JSON failed is read: ``"None"`` as a value is fine, a real error keeps Python's words."""
    with pytest.raises(ConfigError, match="Expecting ',' delimiter at line 1 column 32"):
        parse_worker_config('{"output_image_format": "None" x}')


def _tasks(root: Path, **schemas: dict) -> str:
    folder = root / ".lightly" / "predictions"
    for task, schema in schemas.items():
        (folder / task).mkdir(parents=True)
        (folder / task / "schema.json").write_text(json.dumps(schema))
    (folder / "tasks.json").write_text(json.dumps(list(schemas)))
    return root.as_uri()


def _detection(names: list[str]) -> dict:
    return {"task_type": "object-detection", "categories": [{"id": i, "name": n} for i, n in enumerate(names)]}


def test_lightly_pretagging_is_named_as_lightlys_hosted_model(tmp_path: Path) -> None:
    """Lightly's pretagging example names the task ``lightly_pretagging``, which its hosted model fills; it was
    reported as any task missing from tasks.json ("use one of ['det'], or add the task's predictions")."""
    config = parse_selection_config(PRETAGGING_BALANCE)
    for uri in (_tasks(tmp_path / "with", det=_detection(["car"])), (tmp_path / "without").as_uri()):
        problems = check_config_inputs(config, uri)
        assert [p[0] for p in problems] == ["strategies[0].input.task"], problems
        assert "Lightly's hosted pretagging model (worker_config.pretagging), which is not available here" in problems[0][1]
        assert "write its predictions into .lightly/predictions/<task>/" in problems[0][2]
    # a task of that name in .lightly/ (e.g. the pretagging predictions kept from Lightly) is read as any other
    uri = _tasks(tmp_path / "kept", lightly_pretagging=_detection(PRETAGGING_CLASSES))
    assert check_config_inputs(config, uri) == []


def test_a_balance_target_class_missing_from_the_schema_fails_the_first_task(tmp_path: Path) -> None:
    """Lightly: "`Ambulance` should be a valid class in your `schema.json`". A class the task does not have was
    only a warning after the whole run ("class 'bus' matches no candidate"), although the schema, read by the
    first task, already says no sample can ever count for it."""
    config = parse_selection_config({**PRETAGGING_BALANCE, "strategies": [
        {**PRETAGGING_BALANCE["strategies"][0], "input": {"type": "PREDICTIONS", "task": "det",
                                                           "name": "CLASS_DISTRIBUTION"}}]})
    uri = _tasks(tmp_path, det=_detection(["car", "bicycle", "person", "busses"]))
    problems = check_config_inputs(config, uri)
    assert problems == [("strategies[0].strategy.target",
                         "['bus', 'motorcycle', 'train', 'truck'] are not categories of task 'det', so no sample can "
                         "count for them",
                         "use names from its schema.json: ['car', 'bicycle', 'person', 'busses'] Did you mean 'busses'?")]
    full = _tasks(tmp_path / "full", det=_detection(PRETAGGING_CLASSES))
    assert check_config_inputs(config, full) == []


def test_the_web_apps_default_lightly_config_is_accepted_and_sigmas_are_lightlys() -> None:
    config = parse_lightly_config(WEBAPP_DEFAULT_LIGHTLY_CONFIG)
    assert config.embed_overrides() == {"model": "resnet-18", "dim": 32, "batch_size": 16, "num_workers": None,
                                        "input_size": 64}
    assert parse_lightly_config({"collate": {"sigmas": [0.1, 2]}}).collate.sigmas == [0.1, 2.0]
    with pytest.raises(ConfigError) as info:  # Lightly's model: two numbers > 0
        parse_lightly_config({"collate": {"sigmas": [0, 2.0]}})
    assert [p[0] for p in info.value.problems] == ["collate.sigmas[0]"]


def test_documented_defaults_that_ask_for_nothing_need_no_note() -> None:
    """Lightly's documented defaults ``"training": {"task_name": ""}`` and ``cache_size`` <= 0 ("disables the
    cache") ask for what happens here anyway; they were noted as "has no effect here"."""
    assert parse_worker_config({"training": {"task_name": ""}, "cache_size": -1}).notes() == []
    assert parse_worker_config({"cache_size": 0}).notes() == []
    notes = parse_worker_config({"training": {"task_name": "det"}, "cache_size": 1000}).notes()
    assert [n.split(": has no effect")[0] for n in notes] == ["cache_size=1000", 'training={"task_name": "det"}']


def test_a_v2_share_as_n_samples_points_to_proportion_samples() -> None:
    """The web app's default V2 worker config selects ``stopping_condition: {n_samples: 0.1}`` (a share below 1);
    moved into ``selection_config`` as ``n_samples: 0.1`` it was only "must be a JSON integer"."""
    entry = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}
    with pytest.raises(ConfigError) as info:
        parse_selection_config({"n_samples": 0.1, "strategies": [entry]})
    assert info.value.problems[0][2] == ('must be a JSON integer; a share of the candidates is proportion_samples: '
                                         'write "proportion_samples": 0.1 (Lightly\'s V2 stopping_condition.n_samples '
                                         'took a share below 1)')
    with pytest.raises(ConfigError) as info:  # a whole number written as a float: no share to point to
        parse_selection_config({"n_samples": 100.0, "strategies": [entry]})
    assert info.value.problems[0][2] == "must be a JSON integer"


def test_a_lightly_dataset_id_as_query_set_is_named(tmp_path: Path) -> None:
    """Lightly's similarity search names the query images by a Platform dataset id; the fix said only "name a
    datapool and a tag", as for a misspelt datapool path."""
    (path, problem, fix), = check_config_inputs(parse_selection_config(SIMILARITY_SEARCH), tmp_path.as_uri())
    assert path == "strategies[0].input.dataset_id" and "cannot be read" in problem
    assert fix.startswith("'6401d4534d2ed9112da782f5' is a Lightly Platform dataset id, which is not reachable here")
    other = {**SIMILARITY_SEARCH, "strategies": [{**SIMILARITY_SEARCH["strategies"][0], "input": {
        "type": "EMBEDDINGS", "dataset_id": str(tmp_path / "pools" / "queries"), "tag_name": "initial-tag"}}]}
    (_, _, fix), = check_config_inputs(parse_selection_config(other), tmp_path.as_uri())
    assert fix == "name a datapool and a tag that holds samples with embeddings"
