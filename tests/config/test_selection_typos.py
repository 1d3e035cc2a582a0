"""A misspelt selection-config key is named with the closest known key ("Did you mean …?"), as the worker and
lightly configs do (one helper, ``config.errors.did_you_mean``). ``n_sample`` got only the allowed-keys list;
``{"tpye": ...}`` got "required key 'type' is missing" and 'tpye' itself was never named."""

from __future__ import annotations

import pytest

from lightly_airflow.config import ConfigError, parse_selection_config, parse_worker_config
from lightly_airflow.config.selection import collect_problems

E = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def _problems(config: dict) -> dict[str, str]:
    return {path: message for path, _, message in collect_problems(config)}


def test_a_misspelt_top_level_key() -> None:
    problems = _problems({"n_sample": 5, "strategies": [E]})
    assert "Did you mean 'n_samples'?" in problems["n_sample"]
    assert "Allowed keys: ['n_samples', 'proportion_samples'" in problems["n_sample"]
    camel = _problems({"nSample": 5, "strategies": [E]})
    assert "Did you mean 'nSamples'?" in camel["nSample"]


@pytest.mark.parametrize("entry, path, suggestion", [
    ({"input": {"type": "EMBEDDINGS"}, "strategy": {"tpye": "DIVERSITY"}}, "strategies[0].strategy.tpye", "type"),
    ({"input": {"tpye": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}, "strategies[0].input.tpye", "type"),
    ({"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY", "strenght": 2}},
     "strategies[0].strategy.strenght", "strength"),
    ({"input": {"type": "METADATA", "key": "x"},
      "strategy": {"type": "BALANCE", "distrbution": "UNIFORM"}}, "strategies[0].strategy.distrbution", "distribution"),
    ({"inptu": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}, "strategies[0].inptu", "input"),
])
def test_a_misspelt_key_inside_a_strategy_entry(entry: dict, path: str, suggestion: str) -> None:
    problems = _problems({"n_samples": 5, "strategies": [entry]})
    assert f"Did you mean {suggestion!r}?" in problems[path], problems


def test_a_misspelt_type_is_named_beside_the_missing_type() -> None:
    with pytest.raises(ConfigError) as info:
        parse_selection_config({"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"},
                                                                "strategy": {"tpye": "DIVERSITY", "strength": 2}}]})
    assert [(p, m) for p, _, m in info.value.problems] == [
        ("strategies[0].strategy.tpye", "unknown key; Lightly does not know it either. Did you mean 'type'?"),
        ("strategies[0].strategy", "required key 'type' is missing")]
    auto = _problems({"n_samples": 5, "strategies": [E], "auto_tasks": [{"tpye": "TILING", "name": "t"}]})
    assert "Did you mean 'type'?" in auto["auto_tasks[0].tpye"]


def test_an_unrelated_key_gets_no_suggestion() -> None:
    problems = _problems({"n_samples": 5, "strategies": [E], "zzzz": 1})
    assert "Did you mean" not in problems["zzzz"] and "unknown key" in problems["zzzz"]


def test_the_worker_config_uses_the_same_suggestions() -> None:
    with pytest.raises(ConfigError, match=r"datasource.proces_all: unknown key.*Did you mean 'process_all'\?"):
        parse_worker_config({"datasource": {"proces_all": True}})
