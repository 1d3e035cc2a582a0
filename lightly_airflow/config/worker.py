"""Lightly's ``worker_config`` and ``lightly_config``: every key Lightly accepts is known here.

The models mirror Lightly's own (``DockerWorkerConfigV4Docker`` and ``DockerWorkerConfigV3Lightly`` with their
sub-models, from the ``lightly`` client's openapi models): the same keys, the same camelCase aliases, the
same strict types (``"yes"`` or ``1`` for a boolean is an error, as in Lightly) and the same ranges. A key
Lightly does not know is an error naming it and the closest known key.

Every key has one *effect* here, written once in its ``Field`` (and listed in docs/lightly-compat.md):

- ``honoured``: the key does what it does in the Lightly Worker;
- ``no_effect``: accepted, and a set key adds a note "``key``: has no effect here, because …" to
  :meth:`WorkerConfig.notes`, which the run logs and shows in its summary and report;
- ``refused``: a value that would need something this product does not have (``enable_training: true``,
  ``pretagging: true``, a Lightly checkpoint) is an error with the reason and the fix.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from lightly_airflow.config.errors import (
    ConfigError,
    describe_json_error,
    did_you_mean,
    given_twice,
    key_names,
    shape_message,
    wrapper_key,
)

_M = TypeVar("_M", bound="_Strict")

HONOURED = "honoured"
NO_EFFECT = "no_effect"
REFUSED = "refused"

_NO_TRAINING = "training is not part of this product (embeddings come from a pretrained model or your own CSV)"


def _key(default: Any, effect: str, why: str, **kwargs: Any) -> Any:
    """A config field with its effect here (``honoured``/``no_effect``/``refused``) and why."""
    return Field(default, description=why, json_schema_extra={"effect": effect}, **kwargs)


class _Strict(BaseModel):
    """Lightly's config models: unknown keys forbidden, strict JSON types, snake_case or camelCase keys."""

    model_config = ConfigDict(
        extra="forbid", strict=True, populate_by_name=True, alias_generator=to_camel, frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        """Every key of Lightly's models is optional and takes ``null`` (the client's ``None``): not set, so
        its default here (``{"datasource": null}`` was refused as not a dictionary)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def notes(self, prefix: str = "") -> list[str]:
        """"``key``: has no effect here, because …" for every set key whose effect is ``no_effect``."""
        out: list[str] = []
        for name in sorted(self.model_fields_set):
            value = getattr(self, name)
            if value is None:
                continue
            path = f"{prefix}{name}"
            effect = effect_of(type(self), name)
            if isinstance(value, _Strict) and effect != NO_EFFECT:
                out.extend(value.notes(path + "."))
                continue
            if effect == NO_EFFECT and not self._default_like(name, value):
                info = type(self).model_fields[name]
                shown = value.model_dump(exclude_unset=True) if isinstance(value, _Strict) else value
                out.append(f"{path}={json.dumps(shown)}: has no effect here, because {info.description}.")
        return out

    def _default_like(self, name: str, value: Any) -> bool:
        """Values that ask for nothing we lack need no note (``false`` for an upload, a cache, a check)."""
        return value is False


def effect_of(model: type[BaseModel], name: str) -> str:
    """The effect of ``model``'s field ``name``: honoured, no_effect or refused."""
    extra = model.model_fields[name].json_schema_extra
    return str(extra.get("effect", HONOURED)) if isinstance(extra, dict) else HONOURED


# ------------------------------------------------------------------------------------------ worker_config
class InputExpiration(_Strict):
    """``datasource.input_expiration``: files the datasource bucket's lifecycle rules delete within
    ``min_days_to_expiration`` days are skipped (reported) or abort the run in its first task
    (:mod:`lightly_airflow.datasource.expiration`; S3 and GCS rules, Azure's cannot be read and are said)."""

    min_days_to_expiration: float = _key(..., HONOURED, "files whose bucket lifecycle rule deletes them within "
                                         "this many days are handled by handling_strategy", ge=0)
    handling_strategy: Literal["SKIP", "ABORT"] = _key(..., HONOURED, "SKIP: not processed, listed in the report's "
                                                      "skipped files; ABORT: the first task fails naming them")


class DatasourceOptions(_Strict):
    """``worker_config.datasource``."""

    process_all: bool = _key(False, HONOURED, "reprocess every file, not only those the datapool has not seen")
    enable_datapool_update: bool = _key(True, HONOURED, "false: a dry run that selects and reports but commits nothing")
    bypass_verify: bool | None = _key(None, NO_EFFECT, "there is no Lightly cloud permission check to bypass; the "
                                      "first task checks that the datasource is readable")
    input_expiration: InputExpiration | None = _key(None, HONOURED, "files the bucket's lifecycle rules delete soon "
                                                    "are skipped or abort the run")


class CorruptnessCheck(_Strict):
    """``worker_config.corruptness_check``."""

    corruption_threshold: float = _key(0.1, HONOURED, "video frames whose corruptness score (grey-concealed or "
                                       "uniform area, docs/video.md) is above it are corrupt", ge=0, le=1)


class Crops(_Strict):
    """``worker_config.crops``: the crops of selected objects, written as PNG to ``.lightly/crops/<task>/``."""

    enable_upload: bool = _key(True, HONOURED, "write the selected objects' crops (PNG) to .lightly/crops/<task>/ "
                               "(docs/objects.md)")
    enable_upload_for_tasks: list[str] | None = _key(None, HONOURED, "write crops only for these tasks "
                                                     "(prediction or auto tasks; default: all)")

    def notes(self, prefix: str = "") -> list[str]:
        """The list of tasks to upload crops for without uploads (``enable_upload: false``): it has no effect."""
        out = super().notes(prefix)
        if not self.enable_upload and self.enable_upload_for_tasks:
            out.append(f"{prefix}enable_upload_for_tasks={json.dumps(self.enable_upload_for_tasks)}: has no effect "
                       f"here, because {prefix}enable_upload is false (no crop is written; these tasks are cropped "
                       "only where an EMBEDDINGS input names them)")
        return out


class ObjectLevel(_Strict):
    """Legacy ``worker_config.object_level`` (Lightly Worker v2): ``padding`` around object boxes, and ``task_name``
    checked against the selection config's object-level inputs (:func:`lightly_airflow.objects.spec.check_object_level`)."""

    padding: float = _key(0.0, HONOURED, "an object's box grows by this fraction of its width and height (half "
                          "on each side) before cropping", ge=0)
    task_name: str | None = _key(None, HONOURED, "select on this task's objects: checked by the first task, which "
                                 "refuses the run unless an EMBEDDINGS input of selection_config names the task with "
                                 "'task' (that input selects on its objects, LightlyOne's way)")
    crop_dataset_name: str | None = _key(None, NO_EFFECT, "there are no Lightly crop datasets: object rows live "
                                         "in the datapool")


class Training(_Strict):
    """``worker_config.training``."""

    task_name: str | None = _key(None, NO_EFFECT, _NO_TRAINING, pattern=r"^[a-zA-Z0-9_+=,.@:\/-]*$")


class WorkerConfig(_Strict):
    """Every key of Lightly's ``worker_config`` (``DockerWorkerConfigV4Docker``) with its effect here."""

    datasource: DatasourceOptions = Field(default_factory=DatasourceOptions)
    relevant_filenames_file: str | None = _key(None, HONOURED, "only the files listed in this file of "
                                               ".lightly/ are processed")
    embeddings: str | None = _key(None, HONOURED, "a custom embeddings CSV in .lightly/embeddings/ replaces the model")
    normalize_embeddings: bool = _key(True, HONOURED, "L2-normalise the custom CSV's embeddings")
    corruptness_check: CorruptnessCheck = Field(default_factory=CorruptnessCheck)
    selected_sequence_length: int = _key(1, HONOURED, "videos: select runs of this many consecutive frames", ge=1)
    num_processes: int | None = _key(None, HONOURED, "image decoding in this many worker processes while "
                                     "embedding (-1: automatic, 0: in the task's own process)", ge=-1)
    num_threads: int | None = _key(None, HONOURED, "image decoding in this many threads while embedding "
                                   "(-1: automatic)", ge=-1)
    enable_training: bool | None = _key(None, REFUSED, f"true is refused: {_NO_TRAINING}")
    pretagging: bool | None = _key(None, REFUSED, "true is refused: pretagging runs Lightly's hosted detection "
                                   "model; put your own model's predictions into .lightly/predictions/ instead")
    checkpoint: str | None = _key(None, REFUSED, "a Lightly Worker training checkpoint cannot be loaded; give "
                                  "torchvision-compatible backbone weights (the embed task's weights_uri) instead")
    checkpoint_run_id: str | None = _key(None, REFUSED, "names a training run in Lightly's cloud, which is not "
                                         "reachable here; give backbone weights (weights_uri) instead",
                                         pattern=r"^[a-f0-9]{24}$")
    training: Training | None = _key(None, NO_EFFECT, _NO_TRAINING)
    crops: Crops | None = Field(None, description="crops of selected objects written to .lightly/crops/")
    object_level: ObjectLevel | None = Field(None, description="legacy: padding around object boxes, the task "
                                             "whose objects are selected")
    pretagging_upload: bool | None = _key(None, NO_EFFECT, "pretagging is not available, so nothing is uploaded")
    output_image_format: str | None = _key(None, NO_EFFECT, "selected video frames and crops are always written "
                                           "as PNG (lossless)")
    upload_report: bool | None = _key(None, NO_EFFECT, "the report is always written into the datapool "
                                      "(_reports/<run>/) and shown in Airflow, never uploaded")
    use_datapool: bool | None = _key(None, NO_EFFECT, "every run grows the datapool given by datapool_uri; for a "
                                     "fresh start use a new datapool_uri")
    shutdown_when_job_finished: bool | None = _key(None, NO_EFFECT, "Airflow tasks end when their work is done; "
                                                   "there is no long-running worker to shut down")
    cache_size: int | None = _key(None, NO_EFFECT, "there is no disk cache: files are streamed from the store "
                                  "once per stage", ge=-1)

    @model_validator(mode="after")
    def _refuse_what_we_lack(self) -> WorkerConfig:
        problems: list[tuple[str, Any, str]] = []
        if self.enable_training:
            problems.append(("enable_training", True, f"{_NO_TRAINING}. Fix: set enable_training to false or "
                             "remove it; to use your own trained backbone pass its weights as weights_uri"))
        if self.pretagging:
            problems.append(("pretagging", True, "pretagging runs Lightly's hosted object detection model, which "
                             "is not available here. Fix: remove it (or set false) and put your model's "
                             "predictions into .lightly/predictions/<task>/"))
        for name in ("checkpoint", "checkpoint_run_id"):
            if getattr(self, name):
                problems.append((name, getattr(self, name), f"{_field_description(WorkerConfig, name)}. Fix: "
                                 f"remove {name}"))
        if problems:
            raise _Refused(problems)
        return self

    def _default_like(self, name: str, value: Any) -> bool:
        if name == "output_image_format":
            return str(value).lower() == "png"
        if name == "use_datapool":
            return value is True
        if name == "cache_size":  # Lightly: "<= 0 disables the cache", which is what happens here
            return bool(value <= 0)
        if name == "training":  # Lightly's documented default {"task_name": ""} names no task
            return not value.task_name
        return value is False

    def embed_overrides(self) -> dict[str, Any]:
        """What this config asks of the embed step, as :func:`~lightly_airflow.embedding.runner.embed_shard`
        arguments: ``num_workers`` (``None``: automatic), ``loader`` (``processes``/``threads``) and, with a custom
        embeddings CSV, ``normalize_embeddings`` when false (nothing passed it on: every run normalised)."""
        out: dict[str, Any] = {}
        if self.embeddings and not self.normalize_embeddings:
            out["normalize_embeddings"] = False
        if self.num_threads is not None:
            out["loader"] = "threads"
            out["num_workers"] = None if self.num_threads == -1 else self.num_threads
        elif self.num_processes is not None:
            out["loader"] = "processes"
            out["num_workers"] = None if self.num_processes == -1 else self.num_processes
        return out


def _field_description(model: type[BaseModel], name: str) -> str:
    return str(model.model_fields[name].description or "")


class _Refused(ValueError):
    def __init__(self, problems: list[tuple[str, Any, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" for p, _, m in problems))


# ------------------------------------------------------------------------------------------ lightly_config
_AUG = "it is an augmentation for training; " + _NO_TRAINING


def resnet_weights_refusal(name: str) -> tuple[str, str]:
    """Why a run's ``lightly_config.model.name`` ResNet (``resnet-18`` …) is refused, and the ways to embed with
    one here: ``(problem, fix)``. A run cannot switch the model (its datapool keeps one model's embeddings), and no
    ResNet weights ship; the model and its weights are the deployment's: the example DAG's
    ``LIGHTLY_EMBEDDING_MODEL`` with ``LIGHTLY_EMBEDDING_WEIGHTS``, an embed task's ``model`` and ``weights_uri``,
    or ``lightly-airflow embed --model … --weights …``."""
    problem = (f"{name!r} needs ResNet weights, and none ship with this product (Lightly's came from its own "
               "training); a run's lightly_config cannot switch the embedding model of its datapool.")
    fix = (f"remove model.name to embed with the DAG's model (LIGHTLY_EMBEDDING_MODEL, efficientnet-lite0 by "
           f"default); to embed with {name}, set it for the deployment with its weights: "
           f"LIGHTLY_EMBEDDING_MODEL={name} and LIGHTLY_EMBEDDING_WEIGHTS=<torchvision-compatible state dict URI, "
           "e.g. s3://models/resnet18.pth> in the example DAG's environment, or the embed tasks' model and "
           f"weights_uri (EmbedShardOperator / EmbedPodOperator), or `lightly-airflow embed --model {name} "
           "--weights <state dict URI>`. A datapool keeps one model's embeddings: a new model needs a new "
           "datapool_uri.")
    return problem, fix


class LightlyModel(_Strict):
    """``lightly_config.model``."""

    name: Literal["resnet-18", "resnet-34", "resnet-50", "resnet-101", "resnet-152"] | None = _key(
        None, HONOURED, "the embedding model; a ResNet needs its weights, which do not ship, so the DAG's first "
        "tasks refuse it with the fix: set the model and its weights for the deployment (LIGHTLY_EMBEDDING_MODEL "
        "and LIGHTLY_EMBEDDING_WEIGHTS, or the embed tasks' model and weights_uri)")
    num_ftrs: int | None = _key(None, HONOURED, "the embedding dimension (a fixed projection of the backbone's "
                                "features)", ge=1)
    out_dim: int | None = _key(None, NO_EFFECT, "it sizes the projection head used in training; " + _NO_TRAINING, ge=1)
    width: int | None = _key(None, NO_EFFECT, "only the standard-width ResNets are available", ge=1)


class LightlyLoader(_Strict):
    """``lightly_config.loader``."""

    batch_size: int | None = _key(None, HONOURED, "images per forward pass while embedding", ge=1)
    num_workers: int | None = _key(None, HONOURED, "image decoding workers while embedding (-1: automatic)", ge=-1)
    shuffle: bool | None = _key(None, NO_EFFECT, "embedding reads every file once in a fixed order")
    drop_last: bool | None = _key(None, NO_EFFECT, "embedding never drops images")


class LightlyCollate(_Strict):
    """``lightly_config.collate``: the input size and training augmentations."""

    input_size: int | None = _key(None, HONOURED, "images are resized to this side length before embedding", ge=1)
    cj_prob: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    cj_bright: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    cj_contrast: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    cj_sat: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    cj_hue: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    min_scale: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    random_gray_scale: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    gaussian_blur: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    kernel_size: float | None = _key(None, NO_EFFECT, _AUG, ge=0)
    sigmas: list[Annotated[float, Field(gt=0)]] | None = _key(None, NO_EFFECT, _AUG, min_length=2, max_length=2)
    vf_prob: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    hf_prob: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    rr_prob: float | None = _key(None, NO_EFFECT, _AUG, ge=0, le=1)
    rr_degrees: list[float] | None = _key(None, NO_EFFECT, _AUG, min_length=2, max_length=2)


class LightlyTrainer(_Strict):
    """``lightly_config.trainer``."""

    gpus: int | None = _key(None, NO_EFFECT, _NO_TRAINING + "; for GPUs while embedding use "
                            "execution_mode=kubernetes", ge=0)
    max_epochs: int | None = _key(None, NO_EFFECT, _NO_TRAINING, ge=0)
    precision: Literal[16, 32] | None = _key(None, NO_EFFECT, _NO_TRAINING)


class LightlyCheckpointCallback(_Strict):
    """``lightly_config.checkpoint_callback``."""

    save_last: bool | None = _key(None, NO_EFFECT, _NO_TRAINING)


class LightlyCriterion(_Strict):
    """``lightly_config.criterion``."""

    temperature: float | None = _key(None, NO_EFFECT, _NO_TRAINING, gt=0)


class LightlyOptimizer(_Strict):
    """``lightly_config.optimizer``."""

    lr: float | None = _key(None, NO_EFFECT, _NO_TRAINING, ge=0)
    weight_decay: float | None = _key(None, NO_EFFECT, _NO_TRAINING, ge=0, le=1)


class LightlyConfig(_Strict):
    """Every key of Lightly's ``lightly_config`` (``DockerWorkerConfigV3Lightly``) with its effect here."""

    seed: int | None = _key(None, NO_EFFECT, "embedding is deterministic; RANDOM inputs take their own random_seed")
    model: LightlyModel | None = None
    loader: LightlyLoader | None = None
    collate: LightlyCollate | None = None
    trainer: LightlyTrainer | None = _key(None, NO_EFFECT, _NO_TRAINING)
    criterion: LightlyCriterion | None = _key(None, NO_EFFECT, _NO_TRAINING)
    optimizer: LightlyOptimizer | None = _key(None, NO_EFFECT, _NO_TRAINING)
    checkpoint_callback: LightlyCheckpointCallback | None = _key(None, NO_EFFECT, _NO_TRAINING)

    def embed_overrides(self) -> dict[str, Any]:
        """What this config asks of the embed step, as :func:`~lightly_airflow.embedding.runner.embed_shard`
        arguments (``model``, ``dim``, ``batch_size``, ``num_workers``, ``input_size``); unset keys are absent."""
        out: dict[str, Any] = {}
        if self.model is not None:
            if self.model.name is not None:
                out["model"] = self.model.name
            if self.model.num_ftrs is not None:
                out["dim"] = self.model.num_ftrs
        if self.loader is not None:
            if self.loader.batch_size is not None:
                out["batch_size"] = self.loader.batch_size
            if self.loader.num_workers is not None:
                out["num_workers"] = None if self.loader.num_workers == -1 else self.loader.num_workers
        if self.collate is not None and self.collate.input_size is not None:
            out["input_size"] = self.collate.input_size
        return out


# ---------------------------------------------------------------------------------------------- parsing
def _model_along(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model a key at ``path`` (without the key) belongs to, walking ``model``'s fields."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return None
        fields = current.model_fields
        info = fields.get(str(part)) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return None
        current = _model_in(info.annotation)
    return current


def _closest(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``Did you mean 'x'?`` for an unknown key at ``loc``, walking ``model``'s fields along the path; with no
    known key close to it, the fix: remove it, and the keys that level takes (``{"foo": 1}`` said only "unknown
    key", with no fix)."""
    current = _model_along(model, loc[:-1])
    if current is None:
        return " Fix: remove it."
    allowed = sorted(current.model_fields)
    return did_you_mean(loc[-1], key_names(current)) or f" Fix: remove it; the keys here: {allowed}."


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


_V2 = "a Lightly Worker V2 key (Lightly's V3/V4 worker_config refuses it too)"
_USE_SELECTION = ("put the selection into selection_config: 'coreset' is {\"n_samples\": N, \"strategies\": [{\"input\": "
                  "{\"type\": \"EMBEDDINGS\"}, \"strategy\": {\"type\": \"DIVERSITY\"}}]} (docs/selection.md)")
_USE_SCORES = ("use a SCORES input in selection_config: {\"input\": {\"type\": \"SCORES\", \"task\": <task_name>, "
               "\"score\": <score_name>}, \"strategy\": {\"type\": \"WEIGHTS\"}}")
#: Top-level keys of older Lightly Worker configs (in Lightly's docs' examples, e.g. trigger_job.py): what
#: they did and the fix here, instead of a bare "unknown key".
LEGACY_KEYS: dict[str, str] = {
    "enable_corruptness_check": "corrupt images are always detected here, reported and never selected; video "
                                "frames use corruptness_check.corruption_threshold. Fix: remove it",
    "remove_exact_duplicates": "exact duplicates (same content hash) are always marked here, reported and never "
                               "selected. Fix: remove it",
    "pretagging_debug": "pretagging is not available here. Fix: remove it",
    "pretagging_config": "pretagging is not available here. Fix: remove it",
    "method": f"the selection method is the selection_config's strategies now. Fix: remove it and {_USE_SELECTION}",
    "stopping_condition": "the counts are selection_config's n_samples / proportion_samples (a V2 n_samples "
                          "below 1 was a proportion) and DIVERSITY's stopping_condition_minimum_distance (V2's "
                          "min_distance). Fix: remove it and set those in selection_config",
    "scorer": f"active-learning scores come from selection_config inputs. Fix: remove it and {_USE_SCORES}",
    "scorer_config": f"active-learning scores come from selection_config inputs. Fix: remove it and {_USE_SCORES}",
    "active_learning": f"active-learning scores come from selection_config inputs. Fix: remove it and {_USE_SCORES}",
    "dump_dataset": "selected files are never copied: the datapool lists them. Fix: remove it",
    "dump_sampled_embeddings": "the datapool keeps every sample's embedding. Fix: remove it",
    "output_image_size": "selected files are never copied or resized. Fix: remove it",
    "upload_dataset": "there is no Lightly Platform to upload to; the datapool holds the selection. Fix: remove it",
    "append_weak_labels": "there is no Lightly Platform dataset to label. Fix: remove it",
    "datapool": "the datapool is the run's datapool_uri. Fix: remove it and pass datapool_uri",
}


def problems_from(exc: ValidationError, model: type[BaseModel]) -> list[tuple[str, Any, str]]:
    """``(json_path, given, message)`` for every error of a pydantic ``ValidationError``."""
    problems: list[tuple[str, Any, str]] = []
    for err in exc.errors():
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, _Refused):
            prefix = ".".join(_loc_text(err["loc"]))
            for path, given, message in inner.problems:
                problems.append((f"{prefix}.{path}" if prefix else path, given, message))
            continue
        path = _json_path(err["loc"])
        if err["type"] == "extra_forbidden":
            owner = _model_along(model, tuple(err["loc"])[:-1])
            twice = given_twice(owner, err["loc"][-1]) if owner is not None else None
            legacy = LEGACY_KEYS.get(str(err["loc"][-1])) if model is WorkerConfig and len(err["loc"]) == 1 else None
            if legacy:
                problems.append((path, err.get("input"), f"{_V2}: {legacy}."))
                continue
            wrapped = wrapper_key(err["loc"][0]) if len(err["loc"]) == 1 else None
            if wrapped:
                problems.append((path, err.get("input"), wrapped))
                continue
            problems.append((path, err.get("input"), twice or "unknown key; Lightly does not know it either."
                             + _closest(model, tuple(err["loc"]))))
        else:
            problems.append((path, err.get("input"), _message(err)))
    return problems


def _loc_text(loc: tuple[Any, ...] | list[Any]) -> list[str]:
    return [str(p) for p in loc]


def _json_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("strategies", 0, "input", "type")`` -> ``strategies[0].input.type`` (union tags dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).isupper() or str(part).startswith(("function-", "tagged-union")):
            continue  # a discriminated union's tag (e.g. "DIVERSITY"): not part of the user's path
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    msg = str(err["msg"])
    shape = shape_message(err)
    if shape is not None:
        return shape
    if err["type"] == "bool_type":
        return "must be a JSON boolean (true or false), as in Lightly"
    if err["type"] in ("int_type", "int_from_float"):
        return "must be a JSON integer"
    return msg.removeprefix("Value error, ")


def _load(obj: Any, what: str) -> Any:
    if isinstance(obj, str):
        obj = obj.removeprefix("\ufeff")  # a file saved "UTF-8 with BOM" (Notepad, PowerShell)
        if not obj.strip():
            return {}
        try:
            return json.loads(obj)
        except json.JSONDecodeError as exc:
            raise ConfigError(what, [("", obj[:80], f"not valid JSON: {describe_json_error(exc)}")]) from None
    return obj


def _parse(model: type[_M], obj: Any, what: str) -> _M:
    if obj is None:
        return model()
    if isinstance(obj, model):
        return obj
    data = _load(obj, what)
    if not isinstance(data, dict):
        raise ConfigError(what, [("", data, "must be a JSON object")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(what, problems_from(exc, model)) from None


def parse_worker_config(obj: dict[str, Any] | str | WorkerConfig | None) -> WorkerConfig:
    """Validate a Lightly ``worker_config`` (dict, JSON string, model or None for all defaults).

    :raises ConfigError: listing every problem with its JSON path, the given value and the fix.
    """
    return _parse(WorkerConfig, obj, "worker config")


def parse_lightly_config(obj: dict[str, Any] | str | LightlyConfig | None) -> LightlyConfig:
    """Validate a Lightly ``lightly_config`` (dict, JSON string, model or None for all defaults).

    :raises ConfigError: listing every problem with its JSON path, the given value and the fix.
    """
    return _parse(LightlyConfig, obj, "lightly config")


def key_table() -> list[tuple[str, str, str, str]]:
    """Every key of both configs as ``(config, json path, effect, what it does or why not)``, for docs and tests."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(config: str, model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            sub = _model_in(info.annotation)
            path = f"{prefix}{name}"
            if sub is not None and not (isinstance(info.json_schema_extra, dict) and info.json_schema_extra):
                walk(config, sub, path + ".")
            elif sub is not None:
                # A whole section with one effect (e.g. ``training``): list its keys with that effect.
                for sub_name, sub_info in sub.model_fields.items():
                    rows.append((config, f"{path}.{sub_name}", effect_of(model, name), str(sub_info.description)))
            else:
                rows.append((config, path, effect_of(model, name), str(info.description or "")))

    walk("worker_config", WorkerConfig, "")
    walk("lightly_config", LightlyConfig, "")
    return rows
