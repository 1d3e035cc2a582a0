"""The one error type for config problems."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
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


def did_you_mean(key: Any, names: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` with the known name closest to an unknown ``key`` (``""`` when none is close):
    the one suggestion rule of all three configs."""
    match = difflib.get_close_matches(str(key), list(dict.fromkeys(names)), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""


#: Lightly's ``schedule_compute_worker_run`` arguments, each wrapping one whole config, and where each is given here.
CONFIG_WRAPPERS = {
    "selection_config": "LIGHTLY_SELECTION_CONFIG, the run's conf key selection_config or select --config",
    "worker_config": "LIGHTLY_WORKER_CONFIG or the run's conf key worker_config",
    "lightly_config": "LIGHTLY_LIGHTLY_CONFIG or the run's conf key lightly_config",
}


def wrapper_key(key: Any) -> str | None:
    """The message for a config's top-level ``key`` that is one of Lightly's wrappers (``{"worker_config": {...}}``:
    the keys of a scheduled run pasted whole); ``None`` for any other key."""
    where = CONFIG_WRAPPERS.get(key) if isinstance(key, str) else None
    if where is None:
        return None
    return (f"Lightly's schedule_compute_worker_run argument {key!r} wraps a whole config, and each config is given "
            f"on its own here. Fix: give the keys inside {key!r}, not {key!r} itself, as {where}")


def key_names(model: type[BaseModel]) -> list[str]:
    """Every key ``model`` accepts: its field names and their camelCase aliases."""
    fields = model.model_fields
    return [*fields, *(f.alias for f in fields.values() if f.alias)]


def shape_message(err: Any) -> str | None:
    """Plain words for pydantic's errors about a value's JSON shape (no model class names, no "Input should
    be ..."); ``None`` for other errors."""
    kind = err["type"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object ({...})"
    if kind == "list_type":
        return "must be a JSON list ([...])"
    if kind == "string_type":
        return "must be a JSON string"
    if kind in ("string_too_short", "too_short") and not err.get("input"):
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern", "")
        return "must not be empty" if err.get("input") == "" else f"has characters not allowed here (allowed: {pattern})"
    if kind == "missing":
        return "required key is missing"
    return None


_PYTHON_WORDS = {"True": "true", "False": "false", "None": "null"}


def _literal_hint(text: str, pos: int, msg: str) -> tuple[str, bool] | None:
    """What the text at ``pos`` is, when it is how Lightly's docs write their examples (Python dicts with
    ``# comments`` and ``True``/``False``/``None``, JavaScript objects with ``// comments``, unquoted keys and
    'single quotes'), pasted as JSON: ``(the JSON spelling, whether YAML reads that spelling)``; ``None`` for any
    other text."""
    rest = text[pos : pos + 80]
    word = re.match(r"(True|False|None)\b", rest)
    if word:  # (YAML reads True and False as booleans, but None as the text "None")
        return f"{word[1]} is Python's spelling: JSON writes {_PYTHON_WORDS[word[1]]}", word[1] != "None"
    if rest.startswith(("#", "//")):
        comment = rest.split("\n", 1)[0].strip()
        return f"a comment ({comment[:40]!r}), which JSON does not allow: remove it", rest.startswith("#")
    if rest.startswith("'"):
        return "a string in single quotes: JSON writes strings (and keys) in double quotes", True
    key = re.match(r"[A-Za-z_][A-Za-z0-9_]*", rest)
    if key and "property name" in msg:
        return f"the key {key[0]} without quotes: JSON writes it \"{key[0]}\"", True
    return None


def yaml_reads(exc: json.JSONDecodeError) -> bool:
    """Whether the spelling JSON failed on (:func:`_literal_hint`) is one YAML reads: a config file with it may be
    saved under a ``.yaml`` name instead of being rewritten (the web app's JavaScript objects, ``# comments``)."""
    hint = _literal_hint(exc.doc, exc.pos, exc.msg)
    return hint is not None and hint[1]


def describe_json_error(exc: json.JSONDecodeError) -> str:
    """``<what> at line L column C``; a trailing comma (Python's "Expecting property name" or "Expecting value"
    right before a closing bracket) is named with the comma's own position, and the Python and JavaScript
    spellings of Lightly's documented examples (``# comments``, ``False``, unquoted keys, 'single quotes') with
    the JSON spelling (:func:`_literal_hint`)."""
    text, pos = exc.doc, exc.pos
    before = text[:pos].rstrip()
    if before.endswith(",") and text[pos : pos + 1] in ("}", "]"):
        comma = len(before) - 1
        line = text.count("\n", 0, comma) + 1
        column = comma - (text.rfind("\n", 0, comma) + 1) + 1
        return f"a trailing comma before '{text[pos]}' at line {line} column {column} (JSON allows none): remove that comma"
    where = f"at line {exc.lineno} column {exc.colno}"
    hint = _literal_hint(text, pos, exc.msg)
    return f"{hint[0]} ({where})" if hint else f"{exc.msg} {where}"


def decode_user_text(data: bytes) -> str:
    """Text a user wrote: UTF-8, with or without a byte order mark (BOM), or UTF-16 with one. Windows tools write
    these (Notepad's "UTF-8 with BOM", PowerShell 5's ``>`` and ``Out-File``: UTF-16); a BOM kept in the text
    would make the first line (a file name, a JSON value) silently never match.

    :raises ValueError: saying which byte is wrong and the fix, for any other encoding.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) and not data.startswith(b"\xff\xfe\x00\x00"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ValueError(f"starts with a UTF-16 byte order mark but is not UTF-16 text ({exc.reason} at byte "
                             f"{exc.start}); save it as UTF-8") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None


def read_config_text(path: Path, option: str) -> str:
    """The text of a local file passed to a command-line option (``--summary``), decoded as ``.lightly/`` files
    are (:func:`decode_user_text`). A config as users give it (inline JSON, a local or bucket file, JSON or YAML):
    :func:`~lightly_airflow.config.load.load_config`.

    :raises ValueError: naming the option, the file and the fix, for any other encoding.
    """
    try:
        return decode_user_text(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{option} {str(path)!r}: {exc}") from None
