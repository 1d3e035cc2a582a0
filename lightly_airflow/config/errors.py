"""The one error type for config problems."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel


class ConfigError(ValueError):
    """A config with problems; ``problems`` lists ``(json_path, given, message)`` for every one found."""

    def __init__(self, what: str, problems: list[tuple[str, Any, str]]) -> None:
        self.problems = problems
        lines = [f"{what} has {len(problems)} problem(s):"]
        for path, given, message in problems:
            lines.append(f"  - {path or '<root>'}: {message} (given: {_show(given)})")
        super().__init__("\n".join(lines))


_MISSING = object()


def _show(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


MISSING = _MISSING


def given_twice(model: type[BaseModel], key: Any) -> str | None:
    """The message for ``key`` reported as unknown although it is a field of ``model``: it was given in both
    spellings (pydantic takes the camelCase alias and calls the field name unknown); ``None`` otherwise."""
    info = model.model_fields.get(key) if isinstance(key, str) else None
    if info is None or not info.alias or info.alias == key:
        return None
    return f"given twice, as {info.alias!r} and {key!r} (the same key in camelCase and snake_case): keep one"
