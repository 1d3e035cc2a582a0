"""Lightly-compatible selection and worker configs: JSON in, validated models or one clear error out."""

from lightly_airflow.config.errors import ConfigError
from lightly_airflow.config.selection import (
    SelectionConfig,
    parse_selection_config,
    selection_config_json_schema,
)
from lightly_airflow.config.worker import (
    LightlyConfig,
    WorkerConfig,
    key_table,
    parse_lightly_config,
    parse_worker_config,
)

__all__ = [
    "ConfigError",
    "LightlyConfig",
    "SelectionConfig",
    "WorkerConfig",
    "key_table",
    "parse_lightly_config",
    "parse_selection_config",
    "parse_worker_config",
    "selection_config_json_schema",
]
