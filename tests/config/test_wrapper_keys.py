"""A Lightly user's scheduled run pasted whole (``{"worker_config": {...}, "lightly_config": {...}}``) into one
config: each wrapper key is named with where its keys go here, not called a key Lightly does not know."""

from __future__ import annotations

import pytest

from lightly_airflow.config import ConfigError, load_config, parse_selection_config, parse_worker_config

WORKER_YAML = """worker_config:
  enable_training: false
  datasource:
    process_all: true
lightly_config:
  loader:
    batch_size: 16
"""


def test_a_worker_config_file_holding_lightlys_scheduled_run_names_each_wrapper_and_where_it_goes(tmp_path) -> None:
    (tmp_path / "run.yaml").write_text(WORKER_YAML)
    with pytest.raises(ValueError) as exc:
        load_config(str(tmp_path / "run.yaml"), "LIGHTLY_WORKER_CONFIG", parse_worker_config)
    text = str(exc.value)
    assert "worker config has 2 problem(s)" in text and "Lightly does not know it" not in text
    assert ("  - worker_config: Lightly's schedule_compute_worker_run argument 'worker_config' wraps a whole config"
            in text)
    assert "give the keys inside 'worker_config', not 'worker_config' itself, as LIGHTLY_WORKER_CONFIG" in text
    assert "give the keys inside 'lightly_config', not 'lightly_config' itself, as LIGHTLY_LIGHTLY_CONFIG" in text


def test_a_selection_config_wrapped_in_selection_config_says_so() -> None:
    inner = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    with pytest.raises(ConfigError) as exc:
        parse_selection_config({"selection_config": inner})
    messages = {path: message for path, _, message in exc.value.problems}
    assert messages["selection_config"].startswith("Lightly's schedule_compute_worker_run argument 'selection_config'")
    assert "LIGHTLY_SELECTION_CONFIG" in messages["selection_config"]
    assert parse_selection_config(inner).n_samples == 5
