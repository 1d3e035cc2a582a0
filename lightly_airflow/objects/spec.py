"""What a run computes on object level, decided once by the list step and read by every embed shard.

:class:`ObjectsSpec` says which tasks become objects (the tasks named by object-level ``EMBEDDINGS`` inputs,
the ``auto_tasks`` and the tasks whose crops are written), the padding around boxes, and which crops are
written. The list step writes it next to the run's manifests (``<run staging dir>/objects.json``), so the
embed tasks (in the worker or in a GPU pod) find it from their manifest URI without new task arguments. A run
without object-level inputs writes none and pays nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from lightly_airflow.storage import StorageCredentials, filesystem, join_uri

SPEC_FILE = "objects.json"


@dataclass(frozen=True)
class ObjectsSpec:
    """The run's object-level settings (JSON-serialisable).

    :param tasks: prediction tasks (object-detection, instance-segmentation, keypoint-detection) to crop.
    :param auto_tasks: ``selection_config.auto_tasks`` entries as dicts (TILING, CROP).
    :param padding: ``worker_config.object_level.padding``: a box's width and height grow by this fraction
        (half of it on each side, as in Lightly); the padded box is clipped to the image.
    :param upload: ``worker_config.crops.enable_upload``.
    :param upload_tasks: ``worker_config.crops.enable_upload_for_tasks`` (``None``: every task).
    :param selection_tasks: the tasks an object-level strategy selects on.
    """

    tasks: tuple[str, ...] = ()
    auto_tasks: tuple[dict[str, Any], ...] = ()
    padding: float = 0.0
    upload: bool = True
    upload_tasks: tuple[str, ...] | None = None
    selection_tasks: tuple[str, ...] = field(default=())

    @property
    def all_tasks(self) -> tuple[str, ...]:
        return (*self.tasks, *(str(t["name"]) for t in self.auto_tasks))

    def uploads(self, task: str) -> bool:
        """Whether the crops of ``task``'s selected objects are written."""
        return self.upload and (self.upload_tasks is None or task in self.upload_tasks)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ObjectsSpec:
        obj = json.loads(text)
        upload_tasks = obj.get("upload_tasks")
        return cls(
            tasks=tuple(obj.get("tasks", ())), auto_tasks=tuple(obj.get("auto_tasks", ())),
            padding=float(obj.get("padding", 0.0)), upload=bool(obj.get("upload", True)),
            upload_tasks=None if upload_tasks is None else tuple(upload_tasks),
            selection_tasks=tuple(obj.get("selection_tasks", ())),
        )


def objects_spec(selection: Any, worker: Any = None) -> ObjectsSpec | None:
    """The spec of a parsed selection config and worker config, ``None`` when nothing is object level.

    A task is cropped when an ``EMBEDDINGS`` input names it, when it is an auto task, or when
    ``crops.enable_upload_for_tasks`` lists it and ``crops.enable_upload`` is on (crops are then written for its
    selected objects; with uploads off the list has no effect, noted by ``config.worker.Crops.notes``, and such a
    task was cropped and embedded for nothing).
    """
    auto = [t.model_dump(mode="json") for t in (getattr(selection, "auto_tasks", None) or [])]
    auto_names = {str(t["name"]) for t in auto}
    selection_tasks: list[str] = []
    for entry in getattr(selection, "strategies", []):
        task = getattr(entry.input, "task", None)
        if entry.input.type == "EMBEDDINGS" and task and task not in selection_tasks:
            selection_tasks.append(task)
    crops = getattr(worker, "crops", None)
    upload = True if crops is None else bool(crops.enable_upload)
    upload_tasks = None if crops is None or crops.enable_upload_for_tasks is None else tuple(crops.enable_upload_for_tasks)
    tasks = [t for t in selection_tasks if t not in auto_names]
    for t in (upload_tasks or ()) if upload else ():
        if t not in tasks and t not in auto_names:
            tasks.append(t)
    if not tasks and not auto:
        return None
    level = getattr(worker, "object_level", None)
    padding = float(level.padding) if level is not None else 0.0
    return ObjectsSpec(tasks=tuple(tasks), auto_tasks=tuple(auto), padding=padding, upload=upload,
                       upload_tasks=upload_tasks, selection_tasks=tuple(selection_tasks))


def spec_uri(run_dir: str) -> str:
    return join_uri(run_dir, SPEC_FILE)


def run_dir_of_manifest(manifest_uri: str) -> str:
    """``<run dir>`` of ``<run dir>/manifest/shard-NNNNN.parquet``."""
    return manifest_uri.rstrip("/").rsplit("/", 2)[0]


def write_spec(spec: ObjectsSpec | None, run_dir: str, credentials: StorageCredentials | None = None) -> str | None:
    """Write (or, with ``None``, remove a stale) spec of the run; returns its URI when written."""
    uri = spec_uri(run_dir)
    fs, path = filesystem(uri, credentials)
    if spec is None:
        if fs.exists(path):
            fs.rm(path)
        return None
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as fh:
        fh.write(spec.to_json())
    return uri


def read_spec(manifest_uri: str, credentials: StorageCredentials | None = None) -> ObjectsSpec | None:
    """The spec of the run a manifest shard belongs to; ``None`` when the run has no object-level work."""
    uri = spec_uri(run_dir_of_manifest(manifest_uri))
    fs, path = filesystem(uri, credentials)
    try:
        with fs.open(path, "r") as fh:
            return ObjectsSpec.from_json(fh.read())
    except FileNotFoundError:
        return None


def check_object_level(selection: Any, worker: Any) -> tuple[str, str, str] | None:
    """A problem of the object-level settings as ``(parameter, problem, fix)`` (the first task fails with
    it), or ``None``. Object-level inputs need a model: a custom embeddings CSV has no crop embeddings.
    ``object_level.task_name`` (Lightly Worker v2: select on that task's objects) must be the task of an
    ``EMBEDDINGS`` input, the way LightlyOne names it: else the run would select whole images unawares."""
    auto = auto_task_input(selection)
    if auto is not None:
        return auto
    spec = objects_spec(selection, worker)
    name = getattr(getattr(worker, "object_level", None), "task_name", None)
    if name and (spec is None or name not in spec.selection_tasks):
        return ("worker_config.object_level.task_name",
                f"{name!r} asks for selection on the objects of task {name!r} (Lightly Worker v2), but no EMBEDDINGS "
                f"input of selection_config names that task: this run would select whole images.",
                f'name it in the input, {{"input": {{"type": "EMBEDDINGS", "task": "{name}"}}, "strategy": {{"type": '
                '"DIVERSITY"}}, as LightlyOne does (docs/objects.md), or remove object_level.task_name.')
    if spec is None:
        return None
    if getattr(worker, "embeddings", None):
        return ("worker_config.embeddings",
                "a custom embeddings CSV has no embeddings of object crops, but the selection config uses "
                f"object-level tasks {list(spec.selection_tasks or spec.all_tasks)}.",
                "remove worker_config.embeddings (crops are embedded with the model) or the object-level inputs.")
    return None


def auto_task_input(selection: Any) -> tuple[str, str, str] | None:
    """A ``SCORES`` or ``PREDICTIONS`` input naming an ``auto_tasks`` entry, as ``(JSON path, problem, fix)``, or
    ``None``. Lightly's auto tasks (docs "Auto Tasks") are fixed boxes made by the worker, not a model's predictions:
    no category, no score, no file in ``.lightly/predictions``; they serve object-level selection (object diversity,
    typicality) through an ``EMBEDDINGS`` input with ``task``. The first task said only "'tiles' is not in
    tasks.json", which sends the user looking for a file that cannot exist. Checked by the first task before the
    ``.lightly/`` inputs (``pipeline.validate_params``)."""
    autos = {str(t.name): (i, str(t.type)) for i, t in enumerate(getattr(selection, "auto_tasks", None) or [])}
    for i, entry in enumerate(getattr(selection, "strategies", [])):
        kind, task = entry.input.type, getattr(entry.input, "task", None)
        if kind not in ("SCORES", "PREDICTIONS") or task not in autos:
            continue
        at, auto_type = autos[task]
        return (f"selection_config.strategies[{i}].input.task",
                f"{task!r} is the {auto_type} auto task auto_tasks[{at}]: auto tasks are fixed boxes with no "
                f"categories and no scores, so a {kind} input has nothing to read (in Lightly they work only with an "
                "object-level EMBEDDINGS input).",
                f'select on its objects with {{"input": {{"type": "EMBEDDINGS", "task": "{task}"}}, "strategy": '
                '{"type": "DIVERSITY"}} (or TYPICALITY), or name a prediction task of .lightly/predictions/tasks.json '
                f"in this {kind} input (docs/objects.md).")
    return None


def check_tasks(spec: ObjectsSpec | None, lightly_uri: str, credentials: StorageCredentials | None = None
                ) -> tuple[str, str, str] | None:
    """A problem with the spec's prediction tasks as ``(parameter, problem, fix)``, or ``None``: every task an
    object-level input or ``crops.enable_upload_for_tasks`` names must be an auto task or an object task
    (object-detection, instance-segmentation, keypoint-detection) of ``.lightly/predictions/tasks.json``.
    Checked by the first task (``pipeline.validate_params``, the sensor's and the list task's), so a misspelled task
    fails the run before anything is waited for or embedded."""
    if spec is None or not spec.tasks:
        return None
    from lightly_airflow.lightly_dir import LightlyDir
    from lightly_airflow.objects.boxes import OBJECT_TASK_TYPES
    from lightly_airflow.predictions.shard import load_tasks
    from lightly_airflow.staging import ProblemLog

    log = ProblemLog("objects")
    schemas = {s.name: s.task_type for s in load_tasks(LightlyDir(lightly_uri, credentials), log)}
    bad = [t for t in spec.tasks if schemas.get(t) not in OBJECT_TASK_TYPES]
    if not bad:
        return None
    found = {t: schemas[t] for t in bad if t in schemas}
    # The files behind it (tasks.json unreadable, a task's schema.json missing or invalid), named with the reason.
    files = {".lightly/predictions/tasks.json", *(f".lightly/predictions/{t}/schema.json" for t in bad)}
    why = [f"{key}{f' {field}' if field else ''}: {reason}" for key, field, reason, _ in log.rows if key in files]
    param = "selection_config" if set(bad) & set(spec.selection_tasks) else "worker_config.crops.enable_upload_for_tasks"
    return (param, f"object-level task(s) {bad} are not object tasks of {lightly_uri}/.lightly/predictions/tasks.json"
            f"{f' (found as {found})' if found else ''}{': ' + '; '.join(why[:5]) if why else ''}.",
            f"{'fix those files, or ' if why else ''}name an object-detection, instance-segmentation or "
            "keypoint-detection task listed in tasks.json (with its schema.json), or an auto_tasks name.")
