"""Does the ``.lightly/`` folder hold what a selection config reads? Checked by the run's first task.

A config that names a prediction task, a score, categories or a custom metadata key that the datasource's
``.lightly/`` folder does not have would otherwise embed everything and fail in the select task an hour
later. :func:`check_config_inputs` reads only the small schema files (``predictions/tasks.json``, each named
task's ``schema.json``, ``metadata/schema.json``) and, for SIMILARITY, the query tag, and returns every
problem as ``(json path, problem, fix)``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from lightly_airflow.config.errors import did_you_mean
from lightly_airflow.config.selection import (
    EmbeddingsInput,
    MetadataInput,
    PredictionsInput,
    ScoresInput,
    SelectionConfig,
)
from lightly_airflow.fixes import split_fix
from lightly_airflow.lightly_dir import LIGHTLY_DIR, METADATA_SCHEMA_FILE, TASKS_FILE, LightlyDir, LightlyFileError
from lightly_airflow.storage import StorageCredentials, protocol_of

Problem = tuple[str, str, str]

#: The task name of Lightly's hosted pretagging model in Lightly's selection configs (``worker_config.pretagging``).
PRETAGGING_TASK = "lightly_pretagging"

#: Task types with objects (object-level EMBEDDINGS inputs with ``task``).
OBJECT_TYPES = ("object-detection", "instance-segmentation", "keypoint-detection")


#: ``(problem, fix)`` pairs of a ``.lightly/`` file: one fix each (a problem carried its own fix and the check
#: added another after it: "… . Fix: list each task once. Fix: fix .lightly/predictions/tasks.json").
FileProblems = list[tuple[str, str]]


def _read_problem(exc: LightlyFileError) -> FileProblems:
    """A file that cannot be read (not JSON, not UTF-8, a link out of ``.lightly/``): its problem and fix."""
    return [(f"{LIGHTLY_DIR}/{exc.relpath}: {exc.problem}", exc.fix or "correct the file")]


def _file_problems(relpath: str, found: list[tuple[str, str]], fix: str, sep: str = ": ") -> FileProblems:
    """Each ``(field, reason)`` a parser found in ``.lightly/<relpath>`` as ``(problem, fix)``: the reason's own
    fix (``… . Fix: …``, :func:`~lightly_airflow.fixes.split_fix`, which the report uses too), else
    ``fix``."""
    out: FileProblems = []
    for field, reason in found:
        problem, own = split_fix("", reason)
        out.append((f"{LIGHTLY_DIR}/{relpath}: " + (f"{field}{sep}{problem}" if field else problem), own or fix))
    return out


def _tasks(folder: LightlyDir) -> tuple[list[str] | None, FileProblems]:
    try:
        raw = folder.read_json(TASKS_FILE)
    except FileNotFoundError:
        return None, []
    except LightlyFileError as exc:
        return None, _read_problem(exc)
    from lightly_airflow.predictions import parse_tasks

    tasks, problems = parse_tasks(raw)
    return tasks, _file_problems(TASKS_FILE, problems, f"correct .lightly/{TASKS_FILE} (a JSON list of task names)")


def _task_schema(folder: LightlyDir, task: str) -> tuple[Any, FileProblems]:
    from lightly_airflow.predictions import parse_task_schema

    relpath = f"predictions/{task}/schema.json"
    fix = f'write .lightly/{relpath} ({{"task_type": ..., "categories": [...]}})'
    try:
        raw = folder.read_json(relpath)
    except FileNotFoundError:
        return None, [(f"{LIGHTLY_DIR}/{relpath} does not exist", fix)]
    except LightlyFileError as exc:
        return None, _read_problem(exc)
    schema, problems = parse_task_schema(task, raw)  # (every problem of the file, each at its JSON path with its fix)
    if schema is None and not problems:
        problems = [("", "cannot be used")]
    return schema, _file_problems(relpath, problems, fix, sep=" ")


def _metadata_paths(folder: LightlyDir) -> tuple[dict[str, str] | None, FileProblems]:
    """``{path: valueDataType}`` of ``metadata/schema.json`` (``None`` when absent) and its problems."""
    try:
        raw = folder.read_json(METADATA_SCHEMA_FILE)
    except FileNotFoundError:
        return None, []
    except LightlyFileError as exc:
        return None, _read_problem(exc)
    from lightly_airflow.metadata.custom import parse_metadata_schema

    fields, problems = parse_metadata_schema(raw)
    types = {f.path: f.value_type for f in fields}
    return types, _file_problems(METADATA_SCHEMA_FILE, problems, f"correct .lightly/{METADATA_SCHEMA_FILE}")


#: Custom metadata types whose column holds text (the others are numbers or booleans).
TEXT_TYPES = ("CATEGORICAL_STRING", "OTHER_STRING", "CATEGORICAL_DATETIME")


def _value_kind_problem(path: str, key: str, value_type: str, strategy: str) -> Problem | None:
    """Lightly's rule, checked here before the select task would fail on it an hour later: WEIGHTS and
    THRESHOLD take numerical metadata, BALANCE categorical metadata (a float has ~ one class per sample)."""
    if strategy in ("WEIGHTS", "THRESHOLD") and value_type in TEXT_TYPES:
        return (f"{path}.key", f"{key!r} is {value_type} (text), but {strategy} needs a number per sample",
                "use BALANCE on a categorical value, or a NUMERIC_* metadata field")
    if strategy == "BALANCE" and value_type == "NUMERIC_FLOAT":
        return (f"{path}.key", f"{key!r} is a float ({value_type}); BALANCE balances categories, and a float has "
                "about one value per sample", "use WEIGHTS or THRESHOLD on it, or BALANCE a CATEGORICAL_* field")
    return None


def check_config_inputs(
    config: SelectionConfig,
    lightly_uri: str,
    credentials: StorageCredentials | None = None,
    *,
    query_credentials: StorageCredentials | None = None,
    check_remote_queries: bool = False,
    object_tasks: Collection[str] | None = None,
) -> list[Problem]:
    """Every input of ``config`` that ``<lightly_uri>/.lightly/`` cannot provide, as ``(path, problem, fix)``.

    :param config: the parsed selection config.
    :param lightly_uri: the folder holding ``.lightly/`` (the datasource by default).
    :param credentials: credentials of that store.
    :param query_credentials: credentials of the datapools holding SIMILARITY query sets.
    :param check_remote_queries: also read query sets on object stores (with ``query_credentials``); local
        query sets are always checked.
    :param object_tasks: the tasks whose objects the run crops (``ObjectsSpec.all_tasks``; None: the tasks of
        the config's EMBEDDINGS inputs and its auto tasks), which ``objects.<task>.lightly.<metric>`` keys read.
    """
    from lightly_airflow.metadata.metrics import CROP_METRICS, INT_METRICS, METRICS
    from lightly_airflow.predictions.scorers import scores_for_task_type

    folder = LightlyDir(lightly_uri, credentials)
    problems: list[Problem] = []
    tasks: list[str] | None = None
    tasks_read = False
    schemas: dict[str, tuple[Any, FileProblems]] = {}
    metadata: tuple[dict[str, str] | None, FileProblems] | None = None
    auto_tasks = {t.name for t in config.auto_tasks or []}
    if object_tasks is None:
        object_tasks = {*auto_tasks, *(e.input.task for e in config.strategies
                                       if isinstance(e.input, EmbeddingsInput) and e.input.task)}
    where = f"{folder.uri}/"

    def task_schema(path: str, task: str) -> Any:
        nonlocal tasks, tasks_read
        if not tasks_read:
            tasks, errors = _tasks(folder)
            tasks_read = True
            problems.extend(("", problem, fix) for problem, fix in errors)
        if task == PRETAGGING_TASK and task not in (tasks or []):
            problems.append((f"{path}.task", f"{task!r} is the task of Lightly's hosted pretagging model "
                             "(worker_config.pretagging), which is not available here", "run your own detector, "
                             f"write its predictions into .lightly/predictions/<task>/ (listed in .lightly/{TASKS_FILE}) "
                             f"and name that task here (tasks there: {tasks or []})"))
            return None
        if tasks is None:
            problems.append((f"{path}.task", f"names the prediction task {task!r}, but {where}{TASKS_FILE} does not "
                             "exist", f"add .lightly/{TASKS_FILE} listing {task!r} with its predictions, or "
                             "remove this strategy"))
            return None
        if task not in tasks:
            problems.append((f"{path}.task", f"the prediction task {task!r} is not in {where}{TASKS_FILE} "
                             f"(tasks there: {tasks})", f"use one of {tasks}, or add the task's predictions"))
            return None
        if task not in schemas:
            schemas[task] = _task_schema(folder, task)
        schema, errors = schemas[task]
        if errors:
            problems.extend((f"{path}.task", problem, fix) for problem, fix in errors)
            return None
        return schema

    for i, entry in enumerate(config.strategies):
        inp = entry.input
        path = f"strategies[{i}].input"
        if isinstance(inp, ScoresInput):
            schema = task_schema(path, inp.task)
            if schema is not None:
                valid = scores_for_task_type(schema.task_type)
                if inp.score not in valid:
                    problems.append((f"{path}.score", f"{inp.score!r} is not a score of the {schema.task_type} task "
                                     f"{inp.task!r}", f"use one of {list(valid)}"))
        elif isinstance(inp, PredictionsInput):
            schema = task_schema(path, inp.task)
            if schema is None:
                continue
            if inp.name == "CLASS_DISTRIBUTION" and not schema.has_class_distribution:
                problems.append((f"{path}.name", f"the {schema.task_type} task {inp.task!r} has no class "
                                 "distribution (no categories, or keypoints)", "use a task with categories"))
            names = list(schema.category_names)
            missing = [c for c in inp.categories or [] if c not in names]
            if missing:
                problems.append((f"{path}.categories", f"{missing} are not categories of task {inp.task!r}",
                                 f"use names from its schema.json: {names[:20]}"))
            target = getattr(entry.strategy, "target", None) or {}
            unknown = [c for c in target if c not in names]
            if unknown:  # (Lightly's docs: each target class "should be a valid class in your schema.json")
                problems.append((f"strategies[{i}].strategy.target", f"{unknown} are not categories of task "
                                 f"{inp.task!r}, so no sample can count for them",
                                 f"use names from its schema.json: {names[:20]}"
                                 + did_you_mean(unknown[0], names)))
        elif isinstance(inp, MetadataInput):
            key = inp.key
            strategy = config.strategies[i].strategy.type
            if key.startswith(("lightly.", "objects.")):  # computed: an image's metric, or its objects' mean
                if key.startswith("lightly."):
                    metric = key[len("lightly."):]
                    if metric not in METRICS:
                        problems.append((f"{path}.key", f"{key!r} is not a computed metadata value",
                                         f"use one of {[f'lightly.{m}' for m in METRICS]}"))
                        continue
                else:
                    task, _, metric = key[len("objects."):].partition(".lightly.")
                    if metric not in CROP_METRICS:
                        problems.append((f"{path}.key", f"{key!r} is no object metadata key", "write objects.<task>."
                                         f"lightly.<metric> with a metric of {list(CROP_METRICS)} (docs/objects.md)"))
                        continue
                    if task not in object_tasks:
                        problems.append((f"{path}.key", f"{key!r} reads the objects of task {task!r}, which this run "
                                         f"does not crop (cropped: {sorted(object_tasks)})", "name the task in an "
                                         f'EMBEDDINGS input, {{"type": "EMBEDDINGS", "task": "{task}"}}, or in '
                                         "auto_tasks or worker_config.crops.enable_upload_for_tasks (docs/objects.md)"))
                        continue
                kind = _value_kind_problem(path, key, "NUMERIC_INT" if metric in INT_METRICS else "NUMERIC_FLOAT",
                                           strategy)
                if kind is not None:
                    problems.append(kind)
                continue
            if metadata is None:
                metadata = _metadata_paths(folder)
            paths, errors = metadata
            if errors:
                problems.extend((f"{path}.key", problem, fix) for problem, fix in errors)
            elif paths is None:
                problems.append((f"{path}.key", f"the custom metadata key {key!r} needs {where}{METADATA_SCHEMA_FILE}, "
                                 "which does not exist", f"add .lightly/{METADATA_SCHEMA_FILE} with an entry whose "
                                 f"path is {key!r}, or use a computed key such as lightly.sharpness"))
            elif key not in paths:
                problems.append((f"{path}.key", f"{key!r} is not a path in {where}{METADATA_SCHEMA_FILE} "
                                 f"(paths there: {list(paths)[:20]})", "use one of those paths or add the field to "
                                 "the schema"))
            else:
                kind = _value_kind_problem(path, key, paths[key], strategy)
                if kind is not None:
                    problems.append(kind)
        elif isinstance(inp, EmbeddingsInput):
            if inp.task is not None and inp.task not in auto_tasks:
                schema = task_schema(path, inp.task)
                if schema is not None and schema.task_type not in OBJECT_TYPES:
                    problems.append((f"{path}.task", f"object-level embeddings need objects; {inp.task!r} is a "
                                     f"{schema.task_type} task", f"use a task of type {list(OBJECT_TYPES)}"))
            if inp.dataset_id is not None and inp.tag_name is not None:
                problems.extend(_check_query(path, inp, query_credentials, check_remote_queries))
    return problems


def _check_query(path: str, inp: EmbeddingsInput, credentials: StorageCredentials | None, remote: bool) -> list[Problem]:
    try:
        local = protocol_of(str(inp.dataset_id)) == "file"
    except ValueError as exc:
        return [(f"{path}.dataset_id", str(exc), "name a datapool URI (file://, s3://, gs://, az://)")]
    if not local and not remote:
        return []  # read by the select task with the datapool's connection
    from lightly_airflow.selection.queries import resolve_query_sets

    probe = SelectionConfig.model_validate({"n_samples": 1, "strategies": [
        {"input": inp.model_dump(exclude_none=True), "strategy": {"type": "SIMILARITY"}}]})
    try:
        resolve_query_sets(probe, credentials=credentials)
    except ValueError as exc:
        fix = "name a datapool and a tag that holds samples with embeddings"
        if re.fullmatch(r"[a-f0-9]{24}", str(inp.dataset_id)):  # what Lightly's similarity search docs give
            fix = (f"{inp.dataset_id!r} is a Lightly Platform dataset id, which is not reachable here: {fix} (the "
                   "datapool URI a run of this product grew with the query images, e.g. s3://bucket/pools/queries)")
        return [(f"{path}.dataset_id", str(exc).removeprefix("strategies[0].input: "), fix)]
    return []
