"""The run's input problems (``problems.parquet``: ``key, stage, field, reason, path``) as the report shows them:
grouped by kind, with counts and the first examples of each, so a page stays readable for 100,000 problems.

A *kind* is the problem's stage, field and reason with what differs between files (quoted names, paths, numbers)
left out: "no prediction file for task '…', but … exists: its frame number is written with N digit; …". Each
kind lists its first :data:`EXAMPLES` rows (key, file, the reason, the fix); the full list stays in
``problems.parquet``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lightly_airflow.fixes import split_fix

log = logging.getLogger(__name__)

#: Examples listed per kind.
EXAMPLES = 5
#: Kinds listed (the most frequent first); the others are counted.
MAX_KINDS = 30
#: Characters of a kind's text.
KIND_CHARS = 160

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PATHISH = re.compile(r"(?<![\w.])(?:[\w.~+-]*/)+[\w.~+-]*|\b[\w~+-]+\.(?:json|png|jpe?g|mp4|avi|mov|mkv|webm|ts|txt|"
                      r"parquet|tiff?|bmp|gif|webp|heic|heif)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

@dataclass
class ProblemKind:
    """One kind of problem: how many rows, and the first ones."""

    stage: str
    field: str
    kind: str
    count: int = 0
    files: int = 0
    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclass
class Problems:
    """The report's view of the run's problems."""

    total: int
    kinds: list[ProblemKind]
    other_kinds: int = 0
    other_count: int = 0
    error: str | None = None
    uri: str | None = None


def kind_of(reason: str) -> str:
    """The reason with what differs between files left out (quoted names, paths, numbers: ``…``, ``N``)."""
    text = _QUOTED.sub("'…'", reason)
    text = _PATHISH.sub("…", text)
    text = _NUMBER.sub("N", text)
    text = " ".join(text.split())
    return text if len(text) <= KIND_CHARS else text[: KIND_CHARS - 1].rstrip() + "…"


def summarize(table: pa.Table, *, examples: int = EXAMPLES, max_kinds: int = MAX_KINDS) -> Problems:
    """Group ``problems.parquet``'s rows by kind (stage, field, :func:`kind_of` the reason), most frequent first."""
    cols = {name: table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows
            for name in ("key", "stage", "field", "reason", "path")}
    kind_cache: dict[str, str] = {}
    groups: dict[tuple[str, str, str], ProblemKind] = {}
    files: dict[tuple[str, str, str], set[str]] = {}
    for key, stage, fld, reason, path in zip(cols["key"], cols["stage"], cols["field"], cols["reason"], cols["path"]):
        stage, fld, reason = str(stage or "?"), str(fld or ""), str(reason or "no reason given")
        kind = kind_cache.get(reason)
        if kind is None:
            kind = kind_cache[reason] = kind_of(reason)
        g = groups.get((stage, fld, kind))
        if g is None:
            g = groups[(stage, fld, kind)] = ProblemKind(stage, fld, kind)
            files[(stage, fld, kind)] = set()
        g.count += 1
        files[(stage, fld, kind)].add(str(key))
        if len(g.examples) < examples:
            problem, fix = split_fix(stage, reason)
            g.examples.append({"key": key, "path": path, "problem": problem, "fix": fix})
    for k, g in groups.items():
        g.files = len(files[k])
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.stage, g.field, g.kind))
    shown, rest = ordered[:max_kinds], ordered[max_kinds:]
    return Problems(total=table.num_rows, kinds=shown, other_kinds=len(rest), other_count=sum(g.count for g in rest))


def read_problems(summary: Mapping[str, Any], credentials: Any) -> Problems | None:
    """The run's problems from ``summary["problems_uri"]``; ``None`` when the run has no problems file. A file
    that cannot be read gives a :class:`Problems` whose ``error`` says why (logged; the page says so)."""
    uri = summary.get("problems_uri")
    count = summary.get("problems")
    if not uri:
        if count:
            return Problems(total=int(count), kinds=[], error="the run's summary has no problems_uri")
        return None
    try:
        from lightly_airflow.storage import read_parquet

        table = read_parquet(str(uri), credentials)
    except Exception as exc:  # noqa: BLE001 - the report goes on without the table, and says so
        log.warning("Report: could not read the run's problems file %s: %s: %s", uri, type(exc).__name__, exc)
        return Problems(total=int(count or 0), kinds=[], error=f"{type(exc).__name__}: {exc}", uri=str(uri))
    out = summarize(table)
    out.uri = str(uri)
    return out
