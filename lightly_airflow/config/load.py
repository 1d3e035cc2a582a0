"""One place that turns a Lightly config as a user gives it into a dict: inline JSON (``{...}``), the path or
``file://`` URI of a local file, or the URI of a bucket's file (``s3://``, ``gs://``, ``az://``/``abfs://``), each
file JSON or YAML (``.yaml``/``.yml``, as Lightly users keep their worker configs).

The DAG's ``LIGHTLY_*_CONFIG`` variables and the command line's ``--config`` read their values with
:func:`load_config`; every error names the variable or option, the value (a path, a URI) and the fix.
Nothing heavy is imported here: YAML only for a YAML file, the store's client only for a bucket URI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from lightly_airflow.storage import StorageCredentials

__all__ = ["ConfigSourceError", "config_source", "invalid_config", "load_config"]

#: What a value is, decided from its text alone (:func:`config_source`).
Source = Literal["inline", "local", "bucket"]

_YAML_SUFFIXES = (".yaml", ".yml")
_WHAT_IS_ACCEPTED = "inline JSON ({...}), or the path or URI (file://, s3://, gs://, az://) of a JSON or YAML file"


class ConfigSourceError(ValueError):
    """A config value that cannot be read, decoded or validated; the message names the variable or option, the
    value and the fix.

    :ivar name: the variable or option that gave the value (``LIGHTLY_SELECTION_CONFIG``, ``--config``).
    :ivar value: the value as given (a bucket URI with its secrets masked).
    """

    def __init__(self, name: str, value: str, problem: str, fix: str) -> None:
        self.name, self.value = name, value
        if not name.startswith("-"):  # a variable may be unset; an option has no default to fall back to
            fix = f"{fix}, or unset {name} to use the default"
        super().__init__(f"{_label(name, value)}: {problem}\nFix: {fix}")


def _label(name: str, value: str) -> str:
    """``LIGHTLY_WORKER_CONFIG='s3://b/w.yaml'`` for a variable, ``--config 'c.yaml'`` for an option."""
    shown = value if len(value) <= 120 else value[:117] + "..."
    return f"{name} {shown!r}" if name.startswith("-") else f"{name}={shown!r}"


def config_source(value: str, name: str) -> Source:
    """What ``value`` is, from its text alone (nothing is read): ``"inline"`` JSON (it starts with ``{`` or ``[``),
    ``"local"`` (a path or ``file://`` URI) or ``"bucket"`` (``s3://``, ``gs://``, ``az://``/``abfs://``).

    :raises ConfigSourceError: for an empty value, an unsupported URI scheme or a URI carrying a secret (a
        signature, a password), naming ``name``.
    """
    from lightly_airflow.storage import masked_uri, protocol_of, secret_in_uri

    text = value.strip()
    if not text:
        raise ConfigSourceError(name, value, "is empty", f"give {_WHAT_IS_ACCEPTED}")
    if text.startswith(("{", "[")):  # (a list is refused by load_config as not one object)
        return "inline"
    try:
        protocol = protocol_of(text)
    except ValueError as exc:
        raise ConfigSourceError(name, masked_uri(text), str(exc), f"give {_WHAT_IS_ACCEPTED}") from None
    if protocol == "file":
        return "local"
    secret = secret_in_uri(text)
    if secret is not None:  # (it would show wherever the value does: logs, the trigger form)
        raise ConfigSourceError(name, masked_uri(text), secret,
                                "remove it from the URI and give the credentials through the environment")
    return "bucket"


def load_config(
    value: str,
    name: str,
    parse: Callable[[dict[str, Any]], Any] | None = None,
    *,
    credentials: StorageCredentials | None = None,
) -> dict[str, Any]:
    """The config ``value`` gives, as the JSON object (dict) the trigger form and a run's conf hold.

    :param value: inline JSON (``{"n_samples": 100, ...}``), the path or ``file://`` URI of a local file, or the
        ``s3://``, ``gs://``, ``az://``/``abfs://`` URI of a bucket's file; a file is YAML when its name ends in
        ``.yaml``/``.yml``, else JSON. Text is decoded as ``.lightly/`` files are (UTF-8 with or without a byte
        order mark, UTF-16 with one: :func:`~lightly_airflow.config.errors.decode_user_text`).
    :param name: the variable or option that gave ``value`` (``LIGHTLY_SELECTION_CONFIG``, ``--config``): every
        error names it.
    :param parse: a validator such as :func:`~lightly_airflow.config.parse_selection_config`; its
        :class:`~lightly_airflow.config.ConfigError` (every problem with its JSON path) becomes this function's
        error. ``None``: the JSON object is returned unchecked.
    :param credentials: for a bucket URI; ``None``: the environment's (ambient) credentials.
    :raises ConfigSourceError: (a ``ValueError``) naming ``name``, the value, the problem and the fix: a file that
        does not exist or cannot be read, text that is not UTF-8, JSON or YAML, a value that is not one JSON
        object, or a config with problems.
    """
    source = config_source(value, name)
    text = value.strip()
    if source == "inline":
        where, data = value, _decode_json(text, name, value, in_file=False)
    else:
        where, raw = _read(text, source, name, credentials)
        try:
            from lightly_airflow.config.errors import decode_user_text

            decoded = decode_user_text(raw)
        except ValueError as exc:
            raise ConfigSourceError(name, where, str(exc), "save the file as UTF-8") from None
        if text.lower().endswith(_YAML_SUFFIXES):
            data = _decode_yaml(decoded, name, where)
        else:
            data = _decode_json(decoded, name, where, in_file=True)
    if not isinstance(data, dict):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise ConfigSourceError(name, where, f"holds {kind}, not a JSON object ({{...}})",
                                "give the config's keys at the top level ({\"n_samples\": 100, ...})")
    if parse is not None:
        from lightly_airflow.config.errors import ConfigError

        try:
            parse(data)
        except ConfigError as exc:
            raise invalid_config(name, where, exc) from None
    return data


def invalid_config(name: str, value: str, exc: ValueError) -> ConfigSourceError:
    """A config's problems (``exc``: a :class:`~lightly_airflow.config.ConfigError`, every problem at its JSON
    path) as the error naming the variable or option and the value (a file, a URI, inline JSON) that gave it."""
    return ConfigSourceError(name, value, str(exc), "correct the listed keys (docs/lightly-compat.md, "
                             "docs/selection.md)")


def _read(text: str, source: Source, name: str, credentials: StorageCredentials | None) -> tuple[str, bytes]:
    """``(the value as errors show it, the file's bytes)``."""
    from lightly_airflow.storage import describe_store_error, filesystem, local_path, masked_uri

    where = text if source == "local" else masked_uri(text)
    missing_fix = f"correct the path or URI (inline JSON starts with '{{'): give {_WHAT_IS_ACCEPTED}"
    try:
        if source == "local":
            from pathlib import Path

            path = Path(local_path(text))
            if path.is_dir():
                raise ConfigSourceError(name, where, "is a folder, not a file", missing_fix)
            return where, path.read_bytes()
        fs, path_in_store = filesystem(text, credentials)
        return where, fs.cat_file(path_in_store)
    except ConfigSourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, a store's credential errors: named with the fix, never raw
        reader = "the environment's credentials" if credentials is None else "the given credentials"
        store = describe_store_error(exc)
        if store is not None:  # (a missing bucket, rejected or insufficient credentials)
            what, fix = store
            if "bucket" in what:
                fix = "correct the URI, or create the bucket"
            raise ConfigSourceError(name, where, f"cannot be read with {reader}: {what}", fix) from None
        if isinstance(exc, FileNotFoundError):
            raise ConfigSourceError(name, where, "does not exist", missing_fix) from None
        if isinstance(exc, PermissionError):
            raise ConfigSourceError(name, where, f"cannot be read: permission denied ({exc})",
                                    "let the user this runs as read the file") from None
        raise ConfigSourceError(name, where, f"cannot be read with {reader} ({type(exc).__name__}: {exc})",
                                "check that the file exists and that these credentials can read it") from None


def _decode_json(text: str, name: str, where: str, *, in_file: bool) -> Any:
    import json

    from lightly_airflow.config.errors import describe_json_error, yaml_reads

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        looks_like_json = text.lstrip().startswith(("{", "["))
        hint = " (a YAML file needs a name ending in .yaml or .yml)" if in_file and not looks_like_json else ""
        if in_file and looks_like_json and yaml_reads(exc):
            hint = ", or give the file a name ending in .yaml: YAML reads this spelling"
        raise ConfigSourceError(name, where, f"is not valid JSON: {describe_json_error(exc)}",
                                f"correct the JSON{hint}") from None
    return data


def _decode_yaml(text: str, name: str, where: str) -> Any:
    import json

    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigSourceError(name, where, f"is not valid YAML: {exc}", "correct the YAML") from None
    try:
        json.dumps(data)  # (the trigger form and a run's conf hold JSON: no YAML dates or sets)
    except (TypeError, ValueError) as exc:
        raise ConfigSourceError(name, where, f"holds a value JSON cannot hold ({exc})",
                                "quote it (YAML reads 2026-01-01 as a date)") from None
    return data
