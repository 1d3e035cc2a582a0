"""The one error type for config problems."""

from __future__ import annotations

import json
from typing import Any


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
