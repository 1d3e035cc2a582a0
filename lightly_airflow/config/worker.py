"""The Lightly ``worker_config`` keys we honour (lightly-compat.md §2); anything else is an error naming it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lightly_airflow.config.errors import ConfigError


class DatasourceOptions(BaseModel):
    """``worker_config.datasource``."""

    model_config = ConfigDict(extra="forbid")
    process_all: bool = Field(False, description="reprocess every file, not only new ones")
    enable_datapool_update: bool = Field(True, description="false = dry run that commits nothing")


class CorruptnessCheck(BaseModel):
    """``worker_config.corruptness_check``."""

    model_config = ConfigDict(extra="forbid")
    corruption_threshold: float = Field(0.1, ge=0, le=1)


class WorkerConfig(BaseModel):
    """Lightly worker-config keys with our defaults."""

    model_config = ConfigDict(extra="forbid")
    datasource: DatasourceOptions = Field(default_factory=DatasourceOptions)
    relevant_filenames_file: str | None = None
    embeddings: str | None = Field(None, description="custom embeddings CSV in .lightly/embeddings/")
    normalize_embeddings: bool = True
    corruptness_check: CorruptnessCheck = Field(default_factory=CorruptnessCheck)
    selected_sequence_length: int = Field(1, ge=1)


_ALLOWED = {
    "": ("datasource", "relevant_filenames_file", "embeddings", "normalize_embeddings", "corruptness_check",
         "selected_sequence_length"),
    "datasource": ("process_all", "enable_datapool_update"),
    "corruptness_check": ("corruption_threshold",),
}


def parse_worker_config(obj: dict | str | WorkerConfig | None) -> WorkerConfig:
    """Validate a worker config; unknown keys and wrong types are reported with their JSON paths.

    :param obj: dict, JSON string, model or None (all defaults).
    :raises ConfigError: listing every problem.
    """
    if obj is None:
        return WorkerConfig()
    if isinstance(obj, WorkerConfig):
        return obj
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise ConfigError("worker config", [("", obj[:80], f"not valid JSON: {exc}")]) from exc
    problems: list[tuple[str, Any, str]] = []
    if not isinstance(obj, dict):
        raise ConfigError("worker config", [("", obj, "must be a JSON object")])
    for section, allowed in _ALLOWED.items():
        node = obj if not section else obj.get(section)
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key not in allowed:
                path = f"{section}.{key}" if section else key
                problems.append((path, value, f"unknown worker_config key; allowed: {list(allowed)}"))
    if not problems:
        from pydantic import ValidationError

        try:
            return WorkerConfig.model_validate(obj)
        except ValidationError as exc:
            for err in exc.errors():
                path = ".".join(str(p) for p in err["loc"])
                problems.append((path, err.get("input"), err["msg"]))
    raise ConfigError("worker config", problems)
