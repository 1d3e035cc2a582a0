"""Lightly's documented example configs parse unchanged; bad configs list every problem with its path."""

import json

import pytest

from lightly_airflow.config import (
    ConfigError,
    SelectionConfig,
    parse_selection_config,
    parse_worker_config,
    selection_config_json_schema,
)

E = {"type": "EMBEDDINGS"}
DOC_EXAMPLES = {
    "coreset": {"n_samples": 50, "strategies": [{"input": E, "strategy": {"type": "DIVERSITY"}}]},
    "active_learning": {"n_samples": 50, "strategies": [
        {"input": {"type": "SCORES", "task": "my_object_detection_task", "score": "uncertainty_entropy"},
         "strategy": {"type": "WEIGHTS"}}]},
    "coral": {"proportion_samples": 0.1, "strategies": [
        {"input": E, "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.2}},
        {"input": {"type": "SCORES", "task": "my_classification_task", "score": "uncertainty_margin"},
         "strategy": {"type": "WEIGHTS", "strength": 1.5}}]},
    "metadata_threshold": {"n_samples": 50, "strategies": [
        {"input": {"type": "METADATA", "key": "lightly.sharpness"},
         "strategy": {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER_EQUAL"}},
        {"input": E, "strategy": {"type": "DIVERSITY"}}]},
    "object_balancing": {"n_samples": 50, "strategies": [
        {"input": {"type": "PREDICTIONS", "task": "lightly_pretagging", "name": "CLASS_DISTRIBUTION"},
         "strategy": {"type": "BALANCE", "target": {"car": 0.1, "bicycle": 0.5, "bus": 0.1, "motorcycle": 0.1,
                                                    "person": 0.1, "train": 0.05, "truck": 0.05}}}]},
    "metadata_balancing": {"n_samples": 50, "strategies": [
        {"input": {"type": "METADATA", "key": "weather.description"},
         "strategy": {"type": "BALANCE", "target": {"sunny": 0.2, "cloudy": 0.4}}}]},
    "uniform_balancing": {"n_samples": 50, "strategies": [
        {"input": {"type": "METADATA", "key": "weather.description"},
         "strategy": {"type": "BALANCE", "distribution": "UNIFORM"}}]},
    "category_count": {"n_samples": 50, "strategies": [
        {"input": {"type": "PREDICTIONS", "task": "det", "name": "CATEGORY_COUNT", "categories": ["bus"]},
         "strategy": {"type": "WEIGHTS", "target_range": {"min_sum": 10, "max_sum": 100}}}]},
    "similarity": {"n_samples": 50, "strategies": [
        {"input": {"type": "EMBEDDINGS", "dataset_id": "s3://bucket/pool", "tag_name": "my_query_tag"},
         "strategy": {"type": "SIMILARITY"}}]},
    "typicality": {"n_samples": 50, "strategies": [
        {"input": E, "strategy": {"type": "TYPICALITY", "num_nearest_neighbors": 20,
                                  "stopping_condition_minimum_typicality": 0.5}}]},
    "random": {"n_samples": 50, "strategies": [
        {"input": {"type": "RANDOM", "random_seed": 42}, "strategy": {"type": "WEIGHTS", "strength": -1}}]},
}


@pytest.mark.parametrize("name", sorted(DOC_EXAMPLES))
def test_documented_examples_parse(name):
    cfg = parse_selection_config(json.dumps(DOC_EXAMPLES[name]))
    assert isinstance(cfg, SelectionConfig)
    assert len(cfg.strategies) == len(DOC_EXAMPLES[name]["strategies"])
    assert SelectionConfig.model_validate(DOC_EXAMPLES[name]) == cfg


def test_every_problem_listed_with_path_value_and_allowed():
    bad = {"n_samples": 5, "proportion_samples": 1.5, "extra": 1, "strategies": [
        {"input": {"type": "SCORES", "task": "t"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "METADATA", "key": "x"}, "strategy": {"type": "THRESHOLD", "threshold": 1,
                                                                 "operation": "BIG"}},
        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "BALANCE", "target": {"a": 1.5}}},
        {"input": E, "strategy": {"type": "DIVERSITY", "strenght": 2}},
    ]}
    with pytest.raises(ConfigError) as info:
        parse_selection_config(bad)
    msg = str(info.value)
    paths = [p for p, _, _ in info.value.problems]
    for expected in ["proportion_samples", "extra", "strategies[0].input.score",
                     "strategies[1].strategy.operation",
                     "strategies[2].strategy.target.a", "strategies[3].strategy.strenght"]:
        assert expected in paths, (expected, msg)
    assert "BIGGER_EQUAL" in msg and '"BIG"' in msg
    assert "1.5" in msg
    with pytest.raises(ConfigError, match=r"strategies\[0\].strategy.type: .*allowed strategies: \['WEIGHTS', 'THRESHOLD'\]"):
        parse_selection_config({"n_samples": 5, "strategies": [
            {"input": {"type": "SCORES", "task": "t", "score": "s"}, "strategy": {"type": "DIVERSITY"}}]})
    assert isinstance(info.value, ValueError)


def test_neither_count_and_empty_strategies():
    with pytest.raises(ConfigError) as info:
        parse_selection_config({"strategies": []})
    paths = [p for p, _, _ in info.value.problems]
    assert paths == ["proportion_samples", "strategies"]
    assert "set exactly one of n_samples" in str(info.value)


def test_model_validate_rejects_too():
    with pytest.raises(ValueError, match="strategies.0.strategy.THRESHOLD.operation"):
        SelectionConfig.model_validate({"n_samples": 1, "strategies": [
            {"input": {"type": "RANDOM"}, "strategy": {"type": "THRESHOLD", "threshold": 0.5, "operation": "X"}}]})


def test_similarity_needs_query_and_query_only_for_similarity():
    with pytest.raises(ConfigError, match="SIMILARITY needs a query set"):
        parse_selection_config({"n_samples": 1, "strategies": [{"input": E, "strategy": {"type": "SIMILARITY"}}]})
    with pytest.raises(ConfigError, match="only used by SIMILARITY"):
        parse_selection_config({"n_samples": 1, "strategies": [
            {"input": {"type": "EMBEDDINGS", "dataset_id": "p", "tag_name": "t"}, "strategy": {"type": "DIVERSITY"}}]})


def test_json_schema_has_all_strategy_types():
    schema = json.dumps(selection_config_json_schema())
    for t in ("DIVERSITY", "WEIGHTS", "THRESHOLD", "BALANCE", "SIMILARITY", "TYPICALITY", "RANDOM", "METADATA"):
        assert t in schema


def test_target_count():
    cfg = parse_selection_config({"proportion_samples": 0.25, "strategies": [{"input": E, "strategy": {"type": "DIVERSITY"}}]})
    assert cfg.target_count(10) == 2


def test_worker_config_known_and_unknown_keys():
    wc = parse_worker_config({"datasource": {"process_all": True}, "normalize_embeddings": False})
    assert wc.datasource.process_all and not wc.normalize_embeddings and wc.datasource.enable_datapool_update
    with pytest.raises(ConfigError, match="datasource.proces_all"):
        parse_worker_config({"datasource": {"proces_all": True}})
    with pytest.raises(ConfigError, match="selected_sequence_length"):
        parse_worker_config({"selected_sequence_length": 0})


# Verbatim from Lightly's own client tests (tests/api_workflow/test_api_workflow_compute_worker.py), with the
# MongoDB ObjectId dataset_id standing for a datapool name.
LIGHTLY_CLIENT_CONFIGS = {
    "test_selection_config": {"n_samples": 1, "strategies": [
        {"input": {"type": "EMBEDDINGS"},
         "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": -1}},
        {"input": {"type": "SCORES", "task": "my-classification-task", "score": "uncertainty_margin"},
         "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "lightly.sharpness"},
         "strategy": {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER_EQUAL"}},
        {"input": {"type": "PREDICTIONS", "task": "my_object_detection_task", "name": "CLASS_DISTRIBUTION"},
         "strategy": {"type": "BALANCE", "target": {"Ambulance": 0.2, "Bus": 0.4}}}]},
    "test_create_compute_worker_config": {"n_samples": 20, "strategies": [
        {"input": {"type": "EMBEDDINGS", "dataset_id": "0123456789abcdef01234567", "tag_name": "some-tag-name"},
         "strategy": {"type": "SIMILARITY"}}]},
    "test_selection_config_from_dict (one count)": {"n_samples": 10, "strategies": [
        {"input": {"type": "EMBEDDINGS", "dataset_id": "0123456789abcdef01234567", "tag_name": "some-tag-name"},
         "strategy": {"type": "SIMILARITY"}},
        {"input": {"type": "METADATA", "key": "lightly.sharpness"},
         "strategy": {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER"}}],
        "auto_tasks": [{"type": "TILING", "name": "tiling-task", "num_rows": 10, "num_cols": 10, "overlap": 0.1}]},
    "create_docker_worker_config_vx": {"n_samples": 2000000, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]},
}


@pytest.mark.parametrize("name", sorted(LIGHTLY_CLIENT_CONFIGS))
def test_lightly_client_configs_verbatim(name):
    cfg = parse_selection_config(LIGHTLY_CLIENT_CONFIGS[name])
    assert len(cfg.strategies) == len(LIGHTLY_CLIENT_CONFIGS[name]["strategies"])


def test_minimum_distance_minus_one_means_no_stop_and_above_two_is_refused():
    cfg = parse_selection_config(LIGHTLY_CLIENT_CONFIGS["test_selection_config"])
    assert cfg.strategies[0].strategy.stopping_condition_minimum_distance is None  # no stop
    with pytest.raises(ConfigError, match=r"strategies\[0\].strategy.stopping_condition_minimum_distance"):
        parse_selection_config({"n_samples": 1, "strategies": [
            {"input": E, "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 5.0}}]})


def test_a_stopping_bound_out_of_range_says_why_and_the_fix():
    """pydantic's "Input should be less than or equal to 2" alone gave neither the reason nor the fix."""
    with pytest.raises(ConfigError, match=r"stoppingConditionMinimumDistance: .*lie in \[0, 2\].*Fix: a value from 0 "
                                          r"to 2, or -1 for no stop \(given: 2.5\)"):
        parse_selection_config({"n_samples": 1, "strategies": [
            {"input": E, "strategy": {"type": "DIVERSITY", "stoppingConditionMinimumDistance": 2.5}}]})
    for bad in (1.5, -0.5):
        with pytest.raises(ConfigError, match=r"minimum_typicality: .*lies in \(0, 1\]. Fix: a value from 0 to 1"):
            parse_selection_config({"n_samples": 1, "strategies": [
                {"input": E, "strategy": {"type": "TYPICALITY", "stopping_condition_minimum_typicality": bad}}]})


def test_camel_case_aliases_mean_the_same():
    snake = {"n_samples": 5, "lightly_path_regex": "(?P<cam>[^/]+)/", "strategies": [
        {"input": {"type": "RANDOM", "random_seed": 1},
         "strategy": {"type": "WEIGHTS", "stopping_condition_max_sum": 3, "target_range": {"min_sum": 1, "max_sum": 2}}},
        {"input": {"type": "EMBEDDINGS", "dataset_id": "pool", "tag_name": "tag"}, "strategy": {"type": "SIMILARITY"}},
        {"input": E, "strategy": {"type": "TYPICALITY", "num_nearest_neighbors": 5,
                                  "stopping_condition_minimum_typicality": 0.2}}]}
    camel = {"nSamples": 5, "lightlyPathRegex": "(?P<cam>[^/]+)/", "strategies": [
        {"input": {"type": "RANDOM", "randomSeed": 1},
         "strategy": {"type": "WEIGHTS", "stoppingConditionMaxSum": 3, "targetRange": {"minSum": 1, "maxSum": 2}}},
        {"input": {"type": "EMBEDDINGS", "datasetId": "pool", "tagName": "tag"}, "strategy": {"type": "SIMILARITY"}},
        {"input": E, "strategy": {"type": "TYPICALITY", "numNearestNeighbors": 5,
                                  "stoppingConditionMinimumTypicality": 0.2}}]}
    assert parse_selection_config(camel) == parse_selection_config(snake)
    assert parse_selection_config(camel).notes()[0].startswith("lightly_path_regex=")


def test_n_samples_minus_one_is_no_count_limit_and_types_are_strict():
    cfg = parse_selection_config({"n_samples": -1, "strategies": [{"input": E, "strategy": {"type": "DIVERSITY"}}]})
    assert cfg.target_count(17) == 17
    for bad, path in [({"n_samples": 0}, "n_samples"), ({"n_samples": 5.0}, "n_samples"),
                      ({"n_samples": True}, "n_samples"), ({"n_samples": "5"}, "n_samples")]:
        with pytest.raises(ConfigError) as info:
            parse_selection_config({**bad, "strategies": [{"input": E, "strategy": {"type": "DIVERSITY"}}]})
        assert info.value.problems[0][0] == path
    with pytest.raises(ConfigError, match="lightly_path_regex"):
        parse_selection_config({"n_samples": 1, "lightly_path_regex": "(", "strategies": [
            {"input": E, "strategy": {"type": "DIVERSITY"}}]})


def test_trigger_form_schema_and_first_task_agree():
    import jsonschema

    schema = selection_config_json_schema()
    for distance, ok in [(5.0, False), (-1, True), (0.3, True), (2.0, True), (2.5, False)]:
        cfg = {"n_samples": 3, "strategies": [
            {"input": E, "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": distance}}]}
        form_ok = jsonschema.Draft202012Validator(schema).is_valid(cfg)
        try:
            parse_selection_config(cfg)
            task_ok = True
        except ConfigError:
            task_ok = False
        assert form_ok == task_ok == ok, distance
    camel = {"nSamples": 3, "strategies": [{"input": {"type": "RANDOM", "randomSeed": 2},
                                            "strategy": {"type": "WEIGHTS"}}]}
    assert jsonschema.Draft202012Validator(schema).is_valid(camel)
    parse_selection_config(camel)


def test_trigger_form_takes_camel_case_required_keys_as_the_first_task_does():
    """TILING's required num_rows/num_cols in Lightly's camelCase: the first task accepted them, the trigger
    form (Airflow's Param with the published schema) refused "'num_rows' is a required property"."""
    from airflow.exceptions import ParamValidationError
    from airflow.sdk import Param

    schema = {k: v for k, v in selection_config_json_schema().items() if k not in ("title", "description", "type")}
    param = Param({"n_samples": 1, "strategies": [{"input": E, "strategy": {"type": "DIVERSITY"}}]}, type="object",
                  **schema)
    tiles = {"type": "TILING", "name": "tiles", "numRows": 2, "numCols": 3}
    camel = {"nSamples": 4, "autoTasks": [tiles],
             "strategies": [{"input": {"type": "EMBEDDINGS", "task": "tiles"}, "strategy": {"type": "DIVERSITY"}}]}
    assert param.resolve(camel) == camel
    assert parse_selection_config(camel).auto_tasks[0].num_cols == 3
    without = {**camel, "autoTasks": [{"type": "TILING", "name": "tiles", "numRows": 2}]}
    with pytest.raises(ParamValidationError):
        param.resolve(without)
    with pytest.raises(ConfigError, match=r"autoTasks\[0\].numCols: required key is missing"):
        parse_selection_config(without)


@pytest.mark.parametrize("parse, config, path, spellings", [
    (parse_selection_config, {"nSamples": 5, "n_samples": 5, "strategies": [{"input": E, "strategy": {"type": "DIVERSITY"}}]},
     "n_samples", ("nSamples", "n_samples")),
    (parse_selection_config, {"n_samples": 5, "strategies": [{"input": {"type": "RANDOM", "randomSeed": 1, "random_seed": 2},
                                                              "strategy": {"type": "WEIGHTS"}}]},
     "strategies[0].input.random_seed", ("randomSeed", "random_seed")),
    (parse_worker_config, {"datasource": {"processAll": True, "process_all": True}},
     "datasource.process_all", ("processAll", "process_all")),
])
def test_a_key_given_in_both_spellings_is_named_as_given_twice(parse, config, path, spellings):
    """Was "n_samples: unknown key; allowed keys: ['n_samples', …]" (and for the worker config "unknown key;
    Lightly does not know it either. Did you mean 'process_all'?" about process_all itself)."""
    with pytest.raises(ConfigError) as info:
        parse(config)
    assert [p[0] for p in info.value.problems] == [path]
    message = info.value.problems[0][2]
    assert "unknown" not in message and all(repr(s) in message for s in spellings) and "keep one" in message


def test_config_json_saved_with_a_byte_order_mark_parses():
    """A config file saved "UTF-8 with BOM" (Notepad, PowerShell's Out-File) and read as text: was "not valid
    JSON: Unexpected UTF-8 BOM"."""
    text = json.dumps(DOC_EXAMPLES["coral"])
    assert parse_selection_config("\ufeff" + text) == parse_selection_config(text)
    assert parse_worker_config('\ufeff{"datasource": {"process_all": true}}').datasource.process_all is True


@pytest.mark.parametrize("strategies, path, message", [
    ({"input": E, "strategy": {"type": "DIVERSITY"}}, "strategies", "must be a JSON list ([...])"),
    ([], "strategies", "must not be empty"),
    ([["EMBEDDINGS", "DIVERSITY"]], "strategies[0]", "must be a JSON object ({...})"),
    ([{"input": {"type": "SCORES", "task": "", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}}],
     "strategies[0].input.task", "must not be empty"),
    ([{"input": {"type": "METADATA", "key": 3}, "strategy": {"type": "WEIGHTS"}}], "strategies[0].input.key",
     "must be a JSON string"),
])
def test_shape_errors_in_plain_words(strategies, path, message):
    """Not pydantic's "Input should be a valid list", "… instance of StrategyEntry", "String should match
    pattern '^[a-zA-Z0-9_+=,.@:\\/-]+$'" for an empty task."""
    with pytest.raises(ConfigError) as info:
        parse_selection_config({"n_samples": 5, "strategies": strategies})
    assert [(p, m) for p, _, m in info.value.problems] == [(path, message)]


def test_config_json_with_a_trailing_comma_names_the_comma():
    """Was "Expecting property name enclosed in double quotes: line 3 column 1" (the position after it)."""
    text = '{"n_samples": 5, "strategies": [\n  {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},\n]}'
    with pytest.raises(ConfigError) as info:
        parse_selection_config(text)
    assert info.value.problems[0][2] == ("not valid JSON: a trailing comma before ']' at line 2 column 71 (JSON "
                                         "allows none): remove that comma")
    with pytest.raises(ConfigError, match="a trailing comma before '}' at line 1 column 36"):
        parse_worker_config('{"datasource": {"process_all": true,}}')


def test_tiling_overlap_takes_lightlys_closed_range_and_notes_a_full_overlap():
    """Lightly documents TILING's ``overlap`` as "Must be in [0.0, 1.0]" (docs.lightly.ai, Auto Tasks): 1.0 was
    refused in pydantic's words ("less than 1"); it is accepted, and the run's notes say that every tile is then the
    whole image. Above 1 stays refused, naming the key."""
    def config(overlap):
        return {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS", "task": "grid"},
                                                 "strategy": {"type": "DIVERSITY"}}],
                "auto_tasks": [{"type": "TILING", "name": "grid", "num_rows": 2, "num_cols": 3, "overlap": overlap}]}

    full = parse_selection_config(config(1.0))
    [note] = full.notes()
    assert note.startswith("auto_tasks[0].overlap=1.0 (task 'grid')") and "6 tiles are one object" in note
    assert parse_selection_config(config(0.2)).notes() == []
    from lightly_airflow.objects.boxes import tiling_boxes

    assert {t.bbox for t in tiling_boxes("grid", 2, 3, 1.0, 300, 200)} == {(0.0, 0.0, 300.0, 200.0)}
    with pytest.raises(ValueError, match=r"auto_tasks\[0\]\.overlap"):
        parse_selection_config(config(1.5))
