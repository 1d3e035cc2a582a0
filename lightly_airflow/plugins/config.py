"""Which datapools the UI plugin shows: the ``[lightly] datapools`` option, else ``LIGHTLY_DATAPOOLS``.

Both hold the same JSON object, ``{"<name>": {"uri": "s3://bucket/pool", "conn_id": "aws_default"}, ...}``.
The UI only ever opens these URIs: requests name a datapool by its configured name, never by URI.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

ENV_VAR = "LIGHTLY_DATAPOOLS"
SECTION, OPTION = "lightly", "datapools"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class DatapoolsConfigError(ValueError):
    """The datapools configuration is not valid JSON of the expected shape; the message says where and how."""


@dataclass(frozen=True)
class PoolSpec:
    """One configured datapool.

    :param name: the name the UI and its URLs use.
    :param uri: the datapool table URI.
    :param conn_id: the Airflow connection that reaches its store (``None``: ambient credentials).
    :param datasource_conn_id: the connection that reads the runs' images, when it is not ``conn_id``.
    """

    name: str
    uri: str
    conn_id: str | None = None
    datasource_conn_id: str | None = None

    @property
    def source_conn_id(self) -> str | None:
        """The connection that reads the images (``datasource_conn_id``, else the pool's ``conn_id``)."""
        return self.datasource_conn_id or self.conn_id


def parse_datapools(text: str | None, *, source: str = f"[{SECTION}] {OPTION}") -> dict[str, PoolSpec]:
    """Parse the JSON of the datapools option.

    :param text: the JSON object (empty or ``None``: no datapools).
    :param source: where the text came from, for error messages.
    :raises DatapoolsConfigError: naming the source, the offending name/key and the fix.
    """
    if text is None or not str(text).strip():
        return {}
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatapoolsConfigError(
            f"{source} is not valid JSON ({exc}); expected e.g. "
            '{"main": {"uri": "s3://bucket/pool", "conn_id": "aws_default"}}.'
        ) from None
    if not isinstance(data, dict):
        raise DatapoolsConfigError(f"{source} must be a JSON object of name -> {{uri, conn_id}}, got {type(data).__name__}.")
    out: dict[str, PoolSpec] = {}
    for name, entry in data.items():
        if not NAME_PATTERN.match(str(name)):
            raise DatapoolsConfigError(
                f"{source}: datapool name {name!r} must be 1-64 characters from A-Z a-z 0-9 . _ - starting with a "
                "letter or digit (it appears in URLs)."
            )
        if isinstance(entry, str):
            entry = {"uri": entry}
        if not isinstance(entry, dict):
            raise DatapoolsConfigError(f"{source}: datapool {name!r} must be an object with 'uri' (and 'conn_id').")
        unknown = sorted(set(entry) - {"uri", "conn_id", "datasource_conn_id"})
        if unknown:
            raise DatapoolsConfigError(
                f"{source}: datapool {name!r} has unknown keys {unknown}; allowed: uri, conn_id, datasource_conn_id."
            )
        uri, conn_id, ds_conn = entry.get("uri"), entry.get("conn_id"), entry.get("datasource_conn_id")
        if not isinstance(uri, str) or not uri.strip():
            raise DatapoolsConfigError(f"{source}: datapool {name!r} needs a non-empty string 'uri'.")
        if conn_id is not None and (not isinstance(conn_id, str) or not conn_id.strip()):
            raise DatapoolsConfigError(f"{source}: datapool {name!r} has a 'conn_id' that is not a non-empty string.")
        if ds_conn is not None and (not isinstance(ds_conn, str) or not ds_conn.strip()):
            raise DatapoolsConfigError(
                f"{source}: datapool {name!r} has a 'datasource_conn_id' that is not a non-empty string."
            )
        out[str(name)] = PoolSpec(
            str(name), uri.strip().rstrip("/"), conn_id.strip() if conn_id else None,
            ds_conn.strip() if ds_conn else None,
        )
    return out


def _airflow_option() -> str | None:
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - the plugin always runs inside Airflow
        return None
    value = conf.get(SECTION, OPTION, fallback="")
    return value or None


#: The example DAG's own datapool (and connection), shown as ``default`` when nothing else is configured.
DAG_POOL_ENV, DAG_CONN_ENV = "LIGHTLY_DATAPOOL_URI", "LIGHTLY_DATAPOOL_CONN_ID"


def configured_datapools() -> dict[str, PoolSpec]:
    """The configured datapools: ``[lightly] datapools`` (also ``AIRFLOW__LIGHTLY__DATAPOOLS``), else
    ``LIGHTLY_DATAPOOLS``, else the example DAG's ``LIGHTLY_DATAPOOL_URI`` as the datapool ``default``.

    Read on every call (cheap), so tests and environment changes apply at once.
    """
    option = _airflow_option()
    if option:
        return parse_datapools(option)
    if os.environ.get(ENV_VAR, "").strip():
        return parse_datapools(os.environ.get(ENV_VAR), source=f"${ENV_VAR}")
    uri = os.environ.get(DAG_POOL_ENV, "").strip()
    if not uri:
        return {}
    return {"default": PoolSpec("default", uri.rstrip("/"), os.environ.get(DAG_CONN_ENV, "").strip() or None)}
