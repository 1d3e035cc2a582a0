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
    for expected in ["n_samples", "proportion_samples", "extra", "strategies[0].input.score",
                     "strategies[0].strategy.type", "strategies[1].strategy.operation",
                     "strategies[2].strategy.target.a", "strategies[3].strategy.strenght"]:
        assert expected in paths, (expected, msg)
    assert "BIGGER_EQUAL" in msg and '"BIG"' in msg
    assert "allowed strategies: ['WEIGHTS', 'THRESHOLD']" in msg
    assert "1.5" in msg
    assert isinstance(info.value, ValueError)


def test_neither_count_and_empty_strategies():
    with pytest.raises(ConfigError) as info:
        parse_selection_config({"strategies": []})
    paths = [p for p, _, _ in info.value.problems]
    assert paths == ["n_samples", "strategies"]


def test_model_validate_rejects_too():
    with pytest.raises(ValueError, match="strategies\\[0\\].strategy.operation"):
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
