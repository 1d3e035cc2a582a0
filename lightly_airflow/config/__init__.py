"""Lightly-compatible selection and worker configs: JSON in, validated models or one clear error out;
:func:`load_config` reads one as a user gives it (inline JSON, a local or bucket file, JSON or YAML).

The names are loaded on first use (PEP 562): a ``select`` process needs the selection models only, not the
worker config's (~10 ms of pydantic model building).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightly_airflow.config.errors import ConfigError
    from lightly_airflow.config.load import ConfigSourceError, config_source, load_config
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

_WHERE = {
    "ConfigError": "errors",
    "ConfigSourceError": "load",
    "config_source": "load",
    "load_config": "load",
    "SelectionConfig": "selection",
    "parse_selection_config": "selection",
    "selection_config_json_schema": "selection",
    "LightlyConfig": "worker",
    "WorkerConfig": "worker",
    "key_table": "worker",
    "parse_lightly_config": "worker",
    "parse_worker_config": "worker",
}

__all__ = [
    "ConfigError",
    "ConfigSourceError",
    "LightlyConfig",
    "SelectionConfig",
    "WorkerConfig",
    "config_source",
    "key_table",
    "load_config",
    "parse_lightly_config",
    "parse_selection_config",
    "parse_worker_config",
    "selection_config_json_schema",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
