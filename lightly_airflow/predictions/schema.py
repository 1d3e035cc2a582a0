"""Prediction tasks (``.lightly/predictions/tasks.json``) and each task's ``schema.json``.

Every check returns problems as ``(field, reason)`` instead of raising, so one bad task never hides the
others: a task whose schema is missing or invalid is skipped and reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

TASK_TYPES = (
    "classification",
    "object-detection",
    "semantic-segmentation",
    "instance-segmentation",
    "keypoint-detection",
)
# Lightly task names: letters, digits, '_' and '-' (they become folder and column names).
_TASK_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TaskSchema:
    """One prediction task: its type and categories ordered by id (ids may have gaps)."""

    name: str
    task_type: str
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    index_of: dict[int, int] = field(compare=False, repr=False, default_factory=dict)

    @property
    def num_categories(self) -> int:
        return len(self.category_ids)

    @property
    def has_class_distribution(self) -> bool:
        return self.task_type != "keypoint-detection" and self.num_categories > 0


def parse_tasks(obj: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """Validate ``tasks.json`` (a list of task names); invalid or repeated names are skipped and reported."""
    if not isinstance(obj, list):
        return [], [("", f"must be a JSON list of task names, found {type(obj).__name__}")]
    tasks: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, name in enumerate(obj):
        if not isinstance(name, str) or not _TASK_NAME_RE.match(name):
            problems.append((f"[{i}]", f"{name!r} is not a task name (letters, digits, '_' and '-' only)"[:300]))
        elif name in tasks:
            problems.append((f"[{i}]", f"task {name!r} is listed twice"))
        else:
            tasks.append(name)
    return tasks, problems


def parse_task_schema(task: str, obj: Any) -> tuple[TaskSchema | None, list[tuple[str, str]]]:
    """Validate one task's ``schema.json``: ``{"task_type", "categories": [{"id", "name"}, ...]}``.

    :returns: the schema (``None`` when unusable) and the problems.
    """
    if not isinstance(obj, dict):
        return None, [("", f"must be a JSON object with task_type and categories, found {type(obj).__name__}")]
    problems: list[tuple[str, str]] = []
    task_type = obj.get("task_type")
    if task_type is None and "task_description" in obj:  # the key of Lightly's first prediction docs
        return None, [("task_type", f"is missing; found 'task_description' ({obj['task_description']!r}), the key "
                       "of early Lightly docs: rename it to 'task_type'"[:300])]
    if task_type not in TASK_TYPES:
        return None, [("task_type", f"{task_type!r} is not one of {list(TASK_TYPES)}"[:300])]
    categories = obj.get("categories", [] if task_type == "keypoint-detection" else None)
    if not isinstance(categories, list):
        return None, [("categories", f"must be a list of {{'id', 'name'}} objects, found {type(categories).__name__}")]
    if not categories and task_type != "keypoint-detection":
        return None, [("categories", "must list at least one category")]
    pairs: list[tuple[int, str]] = []
    for i, cat in enumerate(categories):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            problems.append((where, "must be an object with 'id' and 'name'"))
            continue
        cid, name = cat.get("id"), cat.get("name")
        if not is_int(cid) or cid < 0 or cid >= 2**31:
            problems.append((f"{where}.id", f"{cid!r} is not a non-negative integer"[:300]))
            continue
        if not isinstance(name, str) or not name:
            problems.append((f"{where}.name", f"{name!r} is not a non-empty string"[:300]))
            continue
        pairs.append((cid, name))
    ids = [p[0] for p in pairs]
    names = [p[1] for p in pairs]
    if len(set(ids)) != len(ids):
        problems.append(("categories", f"category ids are not unique: {sorted(ids)}"[:300]))
    if len(set(names)) != len(names):
        problems.append(("categories", f"category names are not unique: {names}"[:300]))
    if problems:
        return None, problems
    pairs.sort()
    ids_sorted = tuple(p[0] for p in pairs)
    return (
        TaskSchema(
            name=task,
            task_type=task_type,
            category_ids=ids_sorted,
            category_names=tuple(p[1] for p in pairs),
            index_of={cid: i for i, cid in enumerate(ids_sorted)},
        ),
        [],
    )
