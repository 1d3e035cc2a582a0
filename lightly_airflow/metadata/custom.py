"""Custom metadata from ``.lightly/metadata/``: the schema, dot paths, typed values and defaults.

``.lightly/metadata/schema.json`` is a list of ``{"name", "path", "defaultValue"?, "valueDataType"}``; each
entry becomes the column ``metadata.<path>`` (the ``path`` is what a Lightly ``METADATA`` input names as its
``key``; ``name`` is the display name, kept in the column's field metadata). Per-file files are
``.lightly/metadata/<key without extension>.json`` = ``{"file_name", "type", "metadata": {...}}``; a value
that is missing (or ``null``) takes ``defaultValue`` (else stays null). For a video frame
(``clip-007-mp4.png``) without its own file, the video's file (``clip.json``) applies.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lightly_airflow import columns as C
from lightly_airflow.lightly_dir import METADATA_SCHEMA_FILE, check_relative_file_name, parse_frame_name, same_frame

VALUE_TYPES: dict[str, pa.DataType] = {
    "NUMERIC_INT": pa.int64(),
    "NUMERIC_FLOAT": pa.float64(),
    "CATEGORICAL_STRING": pa.string(),
    "CATEGORICAL_INT": pa.int64(),
    "CATEGORICAL_BOOLEAN": pa.bool_(),
    "CATEGORICAL_DATETIME": pa.string(),
    "CATEGORICAL_TIMESTAMP": pa.int64(),
    "OTHER_STRING": pa.string(),
}
#: Other spellings of a ``valueDataType`` and the type each means: Lightly's current docs ("Work with Metadata")
#: write ``NUMERICAL_*``, its API model and older docs ``NUMERIC_*``; both are read as the canonical name.
VALUE_TYPE_ALIASES: dict[str, str] = {
    "NUMERICAL_INT": "NUMERIC_INT",
    "NUMERICAL_FLOAT": "NUMERIC_FLOAT",
}


def canonical_value_type(value_type: Any) -> Any:
    """``value_type`` under its canonical name (:data:`VALUE_TYPES`'s key); other values come back unchanged."""
    return VALUE_TYPE_ALIASES.get(value_type, value_type) if isinstance(value_type, str) else value_type


FILE_TYPES = ("image", "video", "frame")
RESERVED_TOP_LEVEL = "lightly"
_STEP_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]|(\.)")


class MetadataValueError(ValueError):
    """A value that does not fit its field's ``valueDataType``."""


@dataclass(frozen=True)
class MetadataField:
    """One schema entry: ``column`` is ``metadata.<path>``; ``steps`` the parsed dot path."""

    name: str
    path: str
    value_type: str
    default: Any
    steps: tuple[str | int, ...]

    @property
    def column(self) -> str:
        return C.metadata_column(self.path)

    @property
    def arrow_type(self) -> pa.DataType:
        return VALUE_TYPES[self.value_type]

    def arrow_field(self) -> pa.Field:
        return pa.field(self.column, self.arrow_type, metadata={b"lightly.display_name": self.name.encode()})


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def type_change_problem(field: MetadataField, pool_type: pa.DataType) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``field``'s values cannot be stored in the pool's column of ``pool_type`` (its
    ``valueDataType`` changed since earlier runs: the commit would fail after the whole run), else ``None``.
    Text columns take any value, float columns integers; every other change is refused."""
    new = field.arrow_type
    if new == pool_type or _is_text(pool_type) or (pa.types.is_integer(new) and pa.types.is_floating(pool_type)):
        return None
    if _is_text(new) and _is_text(pool_type):
        return None
    was = " or ".join(name for name, t in VALUE_TYPES.items() if t == pool_type) or str(pool_type)
    return (f".lightly/{METADATA_SCHEMA_FILE} gives {field.name!r} ({field.column}) valueDataType "
            f"{field.value_type} ({new}), but the datapool's earlier runs stored {field.column} as {pool_type}",
            f"keep its valueDataType {was}, or give the field a new path (a new column)")


def parse_dot_path(path: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` -> ``("a", "b", 0, "c")``.

    :raises ValueError: for an empty path, empty segments or unbalanced brackets.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError("must be a non-empty string")
    steps: list[str | int] = []
    pos = 0
    expect_name = True
    for match in _STEP_RE.finditer(path):
        if match.start() != pos:
            raise ValueError(f"unexpected character at position {pos} of {path!r}")
        name, index, dot = match.groups()
        if dot:
            if expect_name:
                raise ValueError(f"empty segment at position {pos} of {path!r}")
            expect_name = True
        elif index is not None:
            if not steps or expect_name:
                raise ValueError(f"index without a name before it at position {pos} of {path!r}")
            steps.append(int(index))
        else:
            if not expect_name:
                raise ValueError(f"missing '.' before position {pos} of {path!r}")
            steps.append(name)
            expect_name = False
        pos = match.end()
    if pos != len(path) or expect_name:
        raise ValueError(f"{path!r} is not a dot path like 'weather.temperature' or 'objects[0].label'")
    return tuple(steps)


_MISSING = object()


def extract(obj: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at ``steps`` inside ``obj`` or the sentinel :data:`_MISSING` (never raises)."""
    for step in steps:
        if isinstance(step, int):
            if not isinstance(obj, list) or step >= len(obj):
                return _MISSING
            obj = obj[step]
        else:
            if not isinstance(obj, dict) or step not in obj:
                return _MISSING
            obj = obj[step]
    return obj


def coerce(value: Any, value_type: str) -> Any:
    """``value`` as the Python value of ``value_type``.

    :raises MetadataValueError: saying what was expected and what was found.
    """
    found = f"{type(value).__name__} {value!r}"[:120]
    if value_type in ("NUMERIC_INT", "CATEGORICAL_INT", "CATEGORICAL_TIMESTAMP"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MetadataValueError(f"expected an integer for {value_type}, found {found}")
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise MetadataValueError(f"expected an integer for {value_type}, found {found}")
            value = int(value)
        if not -(2**63) <= value < 2**63:
            raise MetadataValueError(f"integer out of the 64-bit range for {value_type}: {found}")
        return int(value)
    if value_type == "NUMERIC_FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MetadataValueError(f"expected a number for NUMERIC_FLOAT, found {found}")
        try:
            number = float(value)
        except OverflowError:
            raise MetadataValueError(f"number too large for NUMERIC_FLOAT: {found}") from None
        if not math.isfinite(number):
            # (Python's json reads NaN, Infinity and 1e400, which JSON has not: an infinite value would be every
            # WEIGHTS pick's winner and pass every BIGGER threshold; json.dump writes NaN for a float gap)
            raise MetadataValueError(f"expected a finite number for NUMERIC_FLOAT, found {found} (JSON has no NaN "
                                     "or Infinity: write null for a missing value, and numbers within ±1.8e308)")
        return number
    if value_type == "CATEGORICAL_BOOLEAN":
        if not isinstance(value, bool):
            raise MetadataValueError(f"expected true/false for CATEGORICAL_BOOLEAN, found {found}")
        return value
    if value_type == "CATEGORICAL_DATETIME":
        if not isinstance(value, str):
            raise MetadataValueError(f"expected an ISO 8601 date/time string for CATEGORICAL_DATETIME, found {found}")
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise MetadataValueError(f"expected an ISO 8601 date/time string for CATEGORICAL_DATETIME, found {found}") from None
        return value
    if value_type in ("CATEGORICAL_STRING", "OTHER_STRING"):
        if not isinstance(value, str):
            raise MetadataValueError(f"expected a string for {value_type}, found {found}")
        return value
    raise MetadataValueError(f"unknown valueDataType {value_type!r}")


def parse_metadata_schema(obj: Any) -> tuple[list[MetadataField], list[tuple[str, str]]]:
    """Validate ``.lightly/metadata/schema.json``; bad entries are skipped and reported.

    :param obj: the parsed JSON.
    :returns: the usable fields and the problems as ``(field, reason)`` (field like ``[2].valueDataType``).
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(obj, list):
        return [], [("", f"must be a JSON list of fields, found {type(obj).__name__}. Fix: write "
                     f'[{_ENTRY_EXAMPLE}, ...]')]
    fields: list[MetadataField] = []
    seen: set[str] = set()
    for i, entry in enumerate(obj):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            problems.append((where, f"must be an object with name, path and valueDataType, found {type(entry).__name__}. "
                             f"Fix: write it as {_ENTRY_EXAMPLE}"))
            continue
        entry = _entry_keys(entry, where, problems)
        name, path = entry.get("name"), entry.get("path")
        value_type = canonical_value_type(entry.get("valueDataType"))
        if not isinstance(name, str) or not name:
            problems.append((f"{where}.name", 'must be a non-empty string. Fix: give the field a display name, e.g. '
                             f'"name": {json.dumps(path if isinstance(path, str) and path else "Weather")}'))
            continue
        if not isinstance(path, str):
            problems.append((f"{where}.path", f"must be a non-empty string. Fix: {_PATH_FIX}"))  # as parse_dot_path's
            continue
        try:
            steps = parse_dot_path(path)
        except ValueError as exc:
            problems.append((f"{where}.path", f"{exc}. Fix: {_PATH_FIX}"))
            continue
        if steps[0] == RESERVED_TOP_LEVEL:
            problems.append((f"{where}.path", f"the top-level key {RESERVED_TOP_LEVEL!r} is reserved for computed "
                             f"metadata. Fix: give the field a path under another key, e.g. 'custom.{path}', in "
                             "schema.json and in the metadata files"))
            continue
        if value_type is None or value_type not in VALUE_TYPES:
            problems.append((f"{where}.valueDataType", _value_type_problem(value_type)))
            continue
        if path in seen:
            problems.append((f"{where}.path", f"{path!r} is listed twice; the first entry is used. Fix: remove this "
                             "entry, or give it another path"))
            continue
        default = entry.get("defaultValue")
        if default is not None:
            try:
                default = coerce(default, value_type)
            except MetadataValueError as exc:
                problems.append((f"{where}.defaultValue", f"{exc}; no default is used. Fix: write a defaultValue "
                                 f"of {_EXPECTED[value_type]}, or remove the defaultValue"))
                default = None
        seen.add(path)
        fields.append(MetadataField(name=name, path=path, value_type=value_type, default=default, steps=steps))
    return fields, problems


_ENTRY_EXAMPLE = '{"name": "Temperature", "path": "weather.temperature", "valueDataType": "NUMERIC_FLOAT"}'
_PATH_FIX = "write the path as a dot path into the files' \"metadata\", like 'weather.temperature' or 'objects[0].label'"
#: What a value of each type is, as a fix names it.
_EXPECTED = {
    "NUMERIC_INT": "an integer (like 3)", "CATEGORICAL_INT": "an integer (like 3)",
    "CATEGORICAL_TIMESTAMP": "an integer (like 1700000000)", "NUMERIC_FLOAT": "a number (like 21.5)",
    "CATEGORICAL_BOOLEAN": "true or false", "CATEGORICAL_DATETIME": 'an ISO 8601 string (like "2024-05-01T12:00:00Z")',
    "CATEGORICAL_STRING": 'a string (like "sunny")', "OTHER_STRING": 'a string (like "sunny")',
}


def _value_type_problem(value_type: Any) -> str:
    """The reason of a missing or unknown ``valueDataType``, with the closest known name as its fix."""
    if value_type is None:
        return f"is missing. Fix: add \"valueDataType\": one of {sorted(VALUE_TYPES)}"
    close = difflib.get_close_matches(str(value_type), [*VALUE_TYPES, *VALUE_TYPE_ALIASES], n=1, cutoff=0.6)
    fix = f"write {close[0]!r}" if close else f"write one of {sorted(VALUE_TYPES)}"
    return (f"{repr(value_type)[:80]} is not one of {sorted(VALUE_TYPES)} (or their aliases "
            f"{sorted(VALUE_TYPE_ALIASES)}). Fix: {fix}")  # (the value cut, never the fix)


#: The keys of a schema entry (Lightly's ``ConfigurationEntry``), with the snake_case spellings its model also
#: accepts (``allow_population_by_field_name``).
ENTRY_KEYS = ("name", "path", "defaultValue", "valueDataType")
_SNAKE = {"default_value": "defaultValue", "value_data_type": "valueDataType"}


def _entry_keys(entry: dict[Any, Any], where: str, problems: list[tuple[str, str]]) -> dict[Any, Any]:
    """``entry`` with snake_case spellings as Lightly's (camelCase) keys; a key given in both spellings and an
    unknown key (which Lightly's model refuses) are reported, never silently dropped."""
    out = dict(entry)
    for snake, camel in _SNAKE.items():
        if snake in out:
            value = out.pop(snake)
            if camel in out:
                problems.append((f"{where}.{snake}", f"given twice, as {camel!r} and {snake!r} ({camel!r} is used). "
                                 f"Fix: remove {snake!r}"))
            else:
                out[camel] = value
    for key in out:
        if key not in ENTRY_KEYS:
            close = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1, cutoff=0.6)
            fix = f"rename it to {close[0]!r}" if close else "remove it"
            problems.append((f"{where}.{key}"[:200], f"unknown key, ignored (an entry has {list(ENTRY_KEYS)}). "
                             f"Fix: {fix}"))
    return out


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _path_text(steps: tuple[str | int, ...]) -> str:
    """``("a", "b", 0, "c")`` -> ``a.b[0].c`` (:func:`parse_dot_path` reversed)."""
    return "".join(f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s) for i, s in enumerate(steps))


def _not_found(metadata: dict[str, Any], steps: tuple[str | int, ...]) -> str | None:
    """Why a field's value is absent from a file that holds it in another shape, ending with the fix, else ``None``
    (a plain missing key or list element is Lightly's default case: no problem).

    Two shapes would otherwise give the default silently: a flat key spelled like the dot path
    (``{"weather.temperature": 21}``, what ``pandas.json_normalize`` and many exporters write; a path's dots are
    nesting, in Lightly too) and a value of another JSON type where the path goes on (``"weather": "sunny"`` for
    ``weather.temperature``)."""
    obj: Any = metadata
    for i, step in enumerate(steps):
        if obj is None:  # (a null on the way: missing, as a null value)
            return None
        if not isinstance(obj, list if isinstance(step, int) else dict):
            hint, fix = "", f"write the value as {_nested(steps)}, or change the path in schema.json"
            if isinstance(obj, list) and isinstance(step, str) and step.isdigit():
                bracketed = _path_text((*steps[:i], int(step), *steps[i + 1:]))
                hint, fix = f" (an index is written in brackets: {bracketed})", f"write the path as {bracketed} in schema.json"
            return (f"metadata.{_path_text(steps[:i])} is {_json_type(obj)}, but the path {_path_text(steps)} needs "
                    f"{'a list' if isinstance(step, int) else 'an object'} there{hint}; the default is used. Fix: {fix}")
        parent, obj = obj, extract(obj, (step,))
        if obj is _MISSING:  # (a key or list element not there: a dotted key spelled like the rest of the path?)
            rest = _path_text(steps[i:])
            if "." in rest and isinstance(parent, dict) and rest in parent:
                return (f"found the key {rest!r} (a dot in its name), but a path's dots are nesting; the default is "
                        f"used. Fix: write the value as {_nested(steps[i:])}")
            return None
    return None


def _nested(steps: tuple[str | int, ...]) -> str:
    """How a value at ``steps`` is written in JSON: ``("a", "b")`` -> ``{"a": {"b": ...}}``."""
    out = "..."
    for step in reversed(steps):
        out = f"[..., {out}]" if isinstance(step, int) else f'{{"{step}": {out}}}'
    return out


def _mismatch_fix(value: Any, value_type: str) -> str:
    """The fix of a number or boolean in quotes (``"12.5"``, ``"true"``: an exporter that writes every value as
    text, the commonest mismatch) that its field's type takes unquoted, or of a number where text is expected
    (an id, ``17``, of a ``CATEGORICAL_STRING``), else the type's value or another ``valueDataType``."""
    if isinstance(value, int) and not isinstance(value, bool) and value_type in ("CATEGORICAL_STRING", "OTHER_STRING"):
        return f'. Fix: write "{value}" in quotes, or make the field CATEGORICAL_INT'
    general = f". Fix: write {_EXPECTED.get(value_type, 'a value of its type')}, or change the field's valueDataType"
    if not isinstance(value, str):
        return general
    text = value.strip()
    try:
        coerce(json.loads(text), value_type)
    except (ValueError, RecursionError):  # (json.JSONDecodeError and MetadataValueError are ValueErrors)
        return general
    return f". Fix: write {text} without quotes"


def _check_file_name(file_name: Any, key: str, own: str, accepted_names: tuple[str, ...],
                     problems: list[tuple[str, str]]) -> None:
    """``file_name`` (optional) must name the file's sample: one of ``accepted_names``, or the video frame ``key``
    in another of Lightly's frame formats (:func:`~lightly_airflow.lightly_dir.same_frame`)."""
    if file_name is None:
        return
    fix = f". Fix: write \"file_name\": {json.dumps(own)}"
    problem = check_relative_file_name(file_name)
    if problem:
        problems.append(("file_name", f"{file_name!r} {problem}"[:250] + fix))
    elif accepted_names and file_name not in accepted_names and not same_frame(file_name, key):
        problems.append(("file_name", f"{file_name!r} does not match the file {own!r}"[:250] + fix))


def values_from_file(
    obj: Any, fields: list[MetadataField], key: str, *, accepted_names: tuple[str, ...] = ()
) -> tuple[list[Any], list[tuple[str, str]]]:
    """The values of ``fields`` from one parsed per-file metadata JSON, with defaults and problems.

    :param obj: the parsed file.
    :param fields: the schema's fields.
    :param key: the image key the file belongs to.
    :param accepted_names: ``file_name`` values that match (the key, or the video of a frame).
    :returns: one value per field (default or None where missing/invalid) and ``(field, reason)`` problems.
    """
    problems: list[tuple[str, str]] = []
    defaults = [f.default for f in fields]
    own = accepted_names[0] if accepted_names else key  # (the file's own sample: the video, for a video's file)
    file_type = "image" if parse_frame_name(key) is None else ("video" if own != key else "frame")
    example = f'{{"file_name": {json.dumps(own)}, "type": "{file_type}", "metadata": {{...}}}}'
    if not isinstance(obj, dict):
        return defaults, [("", f"must be a JSON object with file_name and metadata, found {_json_type(obj)}. "
                           f"Fix: write {example}")]
    _check_file_name(obj.get("file_name"), key, own, accepted_names, problems)
    if obj.get("type") is not None and obj["type"] not in FILE_TYPES:
        problems.append(("type", f"{repr(obj['type'])[:80]} is not one of {list(FILE_TYPES)}. Fix: write "
                         f'"type": "{file_type}"'))
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        if "metadata" not in obj:
            top = sorted({str(f.steps[0]) for f in fields} & set(obj))
            hint = f" (found {top[:5]} at the top level)" if top else ""
            problems.append(("metadata", f"is missing{hint}. Fix: put the values under \"metadata\", as in "
                             f"Lightly's format: {example}"))
        else:
            problems.append(("metadata", f"must be a JSON object, found {_json_type(metadata)}. Fix: write "
                             f"{example}"))
        return defaults, problems
    if RESERVED_TOP_LEVEL in metadata:
        problems.append((f"metadata.{RESERVED_TOP_LEVEL}", "the top-level key 'lightly' is reserved and was ignored. "
                         "Fix: move its values under another key (and their paths in schema.json)"))
    values: list[Any] = []
    for f in fields:
        raw = extract(metadata, f.steps)
        if raw is _MISSING or raw is None:
            why = _not_found(metadata, f.steps) if raw is _MISSING else None
            if why is not None:
                problems.append((f"metadata.{f.path}", why))
            values.append(f.default)
            continue
        try:
            values.append(coerce(raw, f.value_type))
        except MetadataValueError as exc:
            problems.append((f"metadata.{f.path}", f"type mismatch with schema.json: {exc}{_mismatch_fix(raw, f.value_type)}"))
            values.append(f.default)
    return values, problems


SCHEMA_RELPATH = METADATA_SCHEMA_FILE
