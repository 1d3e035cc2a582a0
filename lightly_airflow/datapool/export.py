"""Hand a tag to a labelling tool: the tag's files as a plain list or as Label Studio tasks."""

from __future__ import annotations

from typing import Any

from lightly_airflow import columns as C
from lightly_airflow.datapool.errors import DatapoolError
from lightly_airflow.datapool.pool import Datapool
from lightly_airflow.storage import join_uri

EXPORT_FORMATS = ("list", "label-studio")


def tag_datasource_uri(pool: Datapool, tag: str) -> str | None:
    """The datasource URI the run behind ``tag`` recorded (for ``initial-tag``: the latest run's); or ``None``."""
    found = None
    for entry in pool.history():
        if entry.get("datasource_uri") and (entry["tag"] == tag or tag == C.INITIAL_TAG):
            found = entry["datasource_uri"]
    return found


def export_tag(pool: Datapool, tag: str, *, fmt: str = "list", datasource_uri: str | None = None) -> Any:
    """The files of ``tag`` in pick order: ``list`` gives URIs (or keys), ``label-studio`` gives task dicts.

    :param pool: the datapool.
    :param tag: a run's tag or ``initial-tag``.
    :param fmt: ``list`` (list of str) or ``label-studio`` (list of ``{"data": {"image": uri}, "meta": ...}``).
    :param datasource_uri: the datasource root the keys are relative to; default: what the tag's run recorded.
        Without one, keys are exported as they are.
    :raises DatapoolError: for an unknown tag or format.
    """
    if fmt not in EXPORT_FORMATS:
        raise DatapoolError(f"Unknown export format {fmt!r}; use one of {list(EXPORT_FORMATS)}.")
    wanted = [C.KEY, C.SAMPLE_ID, C.RUN_ID, C.PICK_RANK]
    rows = pool.selected(wanted) if tag == C.INITIAL_TAG else pool.read(tag=tag, columns=wanted).sort_by(C.PICK_RANK)
    root = datasource_uri or tag_datasource_uri(pool, tag)
    records = rows.to_pylist()

    def uri_of(key: str) -> str:
        return join_uri(root, key) if root else key

    if fmt == "list":
        return [uri_of(r[C.KEY]) for r in records]
    return [
        {
            "data": {"image": uri_of(r[C.KEY])},
            "meta": {"key": r[C.KEY], "sample_id": r[C.SAMPLE_ID], "run_id": r[C.RUN_ID], "tag": tag,
                     "pick_rank": r[C.PICK_RANK]},
        }
        for r in records
    ]
