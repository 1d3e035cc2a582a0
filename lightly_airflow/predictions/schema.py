"""Prediction tasks (``.lightly/predictions/tasks.json``) and each task's ``schema.json``.

Every check returns problems as ``(field, reason)`` instead of raising, so one bad task never hides the
others: a task whose schema is missing or invalid is skipped and reported.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

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
    def implied_index(self) -> int | None:
        """The category index of an instance without ``category_id`` (optional for keypoints): the task's one
        category (a pose schema's "person"), else none. The one owner of that rule: the predictions' category
        counts and the objects' category names read it (they disagreed: counted as "person", cropped as None)."""
        return 0 if self.num_categories == 1 else None

    @property
    def has_class_distribution(self) -> bool:
        return self.task_type != "keypoint-detection" and self.num_categories > 0


def parse_tasks(obj: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """Validate ``tasks.json`` (a list of task names); invalid or repeated names are skipped and reported."""
    if not isinstance(obj, list):
        return [], [("", f"must be a JSON list of task names, found {type(obj).__name__}. Fix: write "
                         '["<task>", ...], each the name of a folder of .lightly/predictions/')]
    tasks: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, name in enumerate(obj):
        if not isinstance(name, str) or not _TASK_NAME_RE.match(name):
            problems.append((f"[{i}]", f"{name!r} is not a task name"[:200] + " (letters, digits, '_' and '-' only; the "
                             "task is skipped). Fix: name the task's folder so and list that name"))
        elif name in tasks:
            problems.append((f"[{i}]", f"task {name!r} is listed twice (read once). Fix: list each task once"))
        else:
            tasks.append(name)
    return tasks, problems


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_task_schema(task: str, obj: Any) -> tuple[TaskSchema | None, list[tuple[str, str]]]:
    """Validate one task's ``schema.json``: ``{"task_type", "categories": [{"id", "name"}, ...]}``.

    Every problem of the file is listed at once, each as ``(JSON path, reason with its fix)``: a missing
    ``task_type`` and a category without ``name`` are two problems of one reading, not one after the other.

    :returns: the schema (``None`` when unusable) and the problems.
    """
    if not isinstance(obj, dict):
        return None, [("", f"must be a JSON object with task_type and categories, found {type(obj).__name__}. Fix: "
                       'write {"task_type": "classification", "categories": [{"id": 0, "name": "cat"}, ...]}')]
    problems: list[tuple[str, str]] = []
    task_type = obj.get("task_type")
    if task_type is None and "task_description" in obj:  # the key of Lightly's first prediction docs
        problems.append(("task_type", f"is missing; found 'task_description' ({_shown(obj['task_description'])}), "
                         "the key of early Lightly docs: rename it to 'task_type'"))
    elif task_type is None:
        problems.append(("task_type", "is missing" + (" (null)" if "task_type" in obj else "")
                         + f'. Fix: add "task_type": one of {list(TASK_TYPES)}'))
    elif task_type not in TASK_TYPES:
        import difflib

        close = difflib.get_close_matches(str(task_type).lower().replace("_", "-"), TASK_TYPES, n=1)
        problems.append(("task_type", f"{_shown(task_type)} is not a task type. Fix: use one of {list(TASK_TYPES)}"
                         + (f" (did you mean {close[0]!r}?)" if close else "")))
    keypoints = task_type == "keypoint-detection"
    categories = obj.get("categories")
    if categories is None:
        if not keypoints:
            problems.append(("categories", "is missing" + (" (null)" if "categories" in obj else "")
                             + '. Fix: add "categories": [{"id": 0, "name": "<class>"}, ...], one per class'))
        categories = []
    elif not isinstance(categories, list):
        problems.append(("categories", f"must be a list of {{'id', 'name'}} objects, found "
                         f"{type(categories).__name__}. Fix: write "
                         '"categories": [{"id": 0, "name": "<class>"}, ...]'))
        categories = []
    elif not categories and not keypoints:
        problems.append(("categories", 'must list at least one category. Fix: add {"id": 0, "name": "<class>"} '
                         "for each class the predictions use"))
    pairs: list[tuple[int, str]] = []
    for i, cat in enumerate(categories):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            problems.append((where, f"must be an object with 'id' and 'name', found {_shown(cat)}. Fix: write "
                             '{"id": <integer>, "name": "<class>"}'))
            continue
        cid, name = cat.get("id"), cat.get("name")
        good = True
        if cid is None:
            problems.append((f"{where}.id", "is missing. Fix: add \"id\": a non-negative integer, unique in the file "
                             "(the category_id the prediction files use)"))
            good = False
        elif not is_int(cid) or cid < 0 or cid >= 2**31:
            problems.append((f"{where}.id", f"{_shown(cid)} is not a non-negative integer. Fix: use the integer "
                             "category_id the prediction files use (0, 1, …)"))
            good = False
        if name is None:
            problems.append((f"{where}.name", "is missing. Fix: add \"name\": the class's name (a non-empty text, "
                             "unique in the file)"))
            good = False
        elif not isinstance(name, str) or not name:
            problems.append((f"{where}.name", f"{_shown(name)} is not a non-empty string. Fix: give the class's name "
                             "as text"))
            good = False
        if good:  # (checked above: a non-negative int and a non-empty str)
            pairs.append((cast(int, cid), cast(str, name)))
    ids = [p[0] for p in pairs]
    names = [p[1] for p in pairs]
    if len(set(ids)) != len(ids):
        twice = sorted(i for i, c in Counter(ids).items() if c > 1)
        problems.append(("categories", f"category ids are not unique: {sorted(ids)}"[:200]
                         + f". Fix: give each category its own id (repeated: {twice[:10]})"))
    if len(set(names)) != len(names):
        twice_n = sorted(n for n, c in Counter(names).items() if c > 1)
        problems.append(("categories", f"category names are not unique: {names}"[:200]
                         + f". Fix: give each category its own name (repeated: {twice_n[:10]})"))
    if problems or task_type not in TASK_TYPES:
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
