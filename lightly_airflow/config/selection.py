"""Lightly's ``selection_config``: every input and strategy, validated by one set of pydantic models.

The models are the only validation: :func:`parse_selection_config` (the run's first task) and the DAG's
trigger form (the JSON schema the models publish, :func:`selection_config_json_schema`) apply the same
rules, so a value one accepts the other accepts. Field rules (types, ranges, enums) live in the fields;
cross-field rules (exactly one of ``n_samples``/``proportion_samples``, valid input/strategy pairs, a query
set only for SIMILARITY, BALANCE targets) are model validators. Every problem comes back with its JSON path
(``strategies[1].strategy.operation``), the given value and what is allowed.

Compatibility with Lightly's ``SelectionConfigV4`` (docs/lightly-compat.md has the full list): the same
keys, Lightly's camelCase spellings (``nSamples``, ``randomSeed``, …), strict JSON types,
``stopping_condition_minimum_distance: -1`` (no stop), ``n_samples: -1`` (no count limit),
``lightly_path_regex`` and ``auto_tasks``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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

OPERATIONS = ("SMALLER", "SMALLER_EQUAL", "BIGGER", "BIGGER_EQUAL")
DISTRIBUTIONS = ("TARGET", "UNIFORM", "INPUT")
PREDICTION_NAMES = ("CLASS_DISTRIBUTION", "CATEGORY_COUNT")
INPUT_TYPES = ("EMBEDDINGS", "SCORES", "PREDICTIONS", "METADATA", "RANDOM")
STRATEGY_TYPES = ("DIVERSITY", "WEIGHTS", "THRESHOLD", "BALANCE", "SIMILARITY", "TYPICALITY")
STRENGTH_LIMIT = 1e9
#: Distances between unit vectors lie in [0, 2]; a larger minimum distance would stop before any pick.
MAX_DISTANCE = 2.0

# input kind -> strategies allowed with it (lightly-compat.md §1).
VALID_PAIRS: dict[str, tuple[str, ...]] = {
    "EMBEDDINGS": ("DIVERSITY", "SIMILARITY", "TYPICALITY"),
    "METADATA": ("WEIGHTS", "THRESHOLD", "BALANCE"),
    "PREDICTIONS.CATEGORY_COUNT": ("WEIGHTS", "THRESHOLD"),
    "PREDICTIONS.CLASS_DISTRIBUTION": ("BALANCE",),
    "SCORES": ("WEIGHTS", "THRESHOLD"),
    "RANDOM": ("WEIGHTS", "THRESHOLD"),
}

_NAME = r"^[a-zA-Z0-9_+=,.@:\/-]+$"  # Lightly's pattern for task and score names (non-empty here)


class Problems(ValueError):
    """Raised by a model validator: ``(path relative to the model, given, message)`` for each problem."""

    def __init__(self, problems: list[tuple[str, Any, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p or '<here>'}: {m}" for p, _, m in problems))


class _Strict(BaseModel):
    """Unknown keys forbidden, strict JSON types, snake_case or Lightly's camelCase keys."""

    # defer_build: one validator, built at the first validation, for the config and the models inside it (each
    # model's own validator at import: 15-20 ms more per select process, measured 2026-12-06)
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, alias_generator=to_camel,
                              defer_build=True)


# ---------------------------------------------------------------------------------------------- inputs
class EmbeddingsInput(_Strict):
    """Embeddings of the candidates; with ``dataset_id`` + ``tag_name``: a query set (SIMILARITY)."""

    type: Literal["EMBEDDINGS"]
    dataset_id: str | None = Field(None, min_length=1,
                                   description="datapool URI/name (or a Parquet file) of the query set")
    tag_name: str | None = Field(None, min_length=1, description="tag of the query set in that datapool")
    task: str | None = Field(None, min_length=1, description="object-level embeddings of a prediction task")

    @model_validator(mode="after")
    def _query_set_complete(self) -> EmbeddingsInput:
        if (self.dataset_id is None) != (self.tag_name is None):
            raise Problems([("", {"dataset_id": self.dataset_id, "tag_name": self.tag_name},
                             "a query set needs both 'dataset_id' and 'tag_name'")])
        return self


class ScoresInput(_Strict):
    """A scorer's value per sample (``scores.<task>.<score>``)."""

    type: Literal["SCORES"]
    task: str = Field(pattern=_NAME)
    score: str = Field(pattern=_NAME)


class PredictionsInput(_Strict):
    """Class distribution (vector) or category count (scalar) of a prediction task."""

    type: Literal["PREDICTIONS"]
    task: str = Field(pattern=_NAME)
    name: Literal["CLASS_DISTRIBUTION", "CATEGORY_COUNT"]
    categories: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _categories_for_count(self) -> PredictionsInput:
        if self.name == "CATEGORY_COUNT" and not self.categories:
            raise Problems([("categories", self.categories, "CATEGORY_COUNT needs a non-empty list of category names")])
        if self.name != "CATEGORY_COUNT" and self.categories is not None:
            raise Problems([("categories", self.categories, "only allowed with name CATEGORY_COUNT")])
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise Problems([("categories", self.categories, "category names must be unique")])
        return self


class MetadataInput(_Strict):
    """Computed (``lightly.<name>``) or custom metadata value per sample."""

    type: Literal["METADATA"]
    key: str = Field(min_length=1)


class RandomInput(_Strict):
    """A seeded uniform random value per sample."""

    type: Literal["RANDOM"]
    random_seed: int | None = None  # (any integer, as Lightly's model: a negative one is taken as 2**64 + seed)


Input = Annotated[
    EmbeddingsInput | ScoresInput | PredictionsInput | MetadataInput | RandomInput, Field(discriminator="type")
]


# ------------------------------------------------------------------------------------------ strategies
Strength = Annotated[float, Field(ge=-STRENGTH_LIMIT, le=STRENGTH_LIMIT, allow_inf_nan=False)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class DiversityStrategy(_Strict):
    """Greedy farthest-point (k-center) on unit embeddings; distances in [0, 2]."""

    type: Literal["DIVERSITY"]
    stopping_condition_minimum_distance: float | None = Field(
        None, le=MAX_DISTANCE, allow_inf_nan=False,
        description="stop when the next pick is closer than this to everything selected (distances lie in "
                    "[0, 2]); a negative value (Lightly's -1) means no stop",
    )
    strength: Strength = 1.0

    @field_validator("stopping_condition_minimum_distance")
    @classmethod
    def _negative_is_no_stop(cls, value: float | None) -> float | None:
        return None if value is not None and value < 0 else value


class TargetRange(_Strict):
    """Aim for the sum of the selected values to land in [min_sum, max_sum]."""

    min_sum: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_sum: float | None = Field(None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> TargetRange:
        if self.min_sum is not None and self.max_sum is not None and self.min_sum > self.max_sum:
            raise Problems([("", {"min_sum": self.min_sum, "max_sum": self.max_sum},
                             "min_sum must not exceed max_sum")])
        return self


class WeightsStrategy(_Strict):
    """Prefer high values (low with negative strength)."""

    type: Literal["WEIGHTS"]
    strength: Strength = 1.0
    stopping_condition_max_sum: float | None = Field(None, ge=0, allow_inf_nan=False)
    target_range: TargetRange | None = None


class ThresholdStrategy(_Strict):
    """Hard filter applied before the greedy selection."""

    type: Literal["THRESHOLD"]
    threshold: Number
    operation: Literal["SMALLER", "SMALLER_EQUAL", "BIGGER", "BIGGER_EQUAL"]


Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class BalanceStrategy(_Strict):
    """Match a class distribution (``target`` fractions; a remainder < 1 goes to all other classes)."""

    type: Literal["BALANCE"]
    target: dict[str, Fraction] | None = Field(None, min_length=1)
    distribution: Literal["TARGET", "UNIFORM", "INPUT"] = "TARGET"
    strength: Strength = 1.0

    @model_validator(mode="after")
    def _target_fits_distribution(self) -> BalanceStrategy:
        if self.distribution == "TARGET" and self.target is None:
            raise Problems([("target", None, "distribution TARGET needs a target {class: fraction}")])
        if self.distribution != "TARGET" and self.target is not None:
            raise Problems([("target", self.target, f"only allowed with distribution TARGET (given {self.distribution})")])
        if self.target is not None and sum(self.target.values()) > 1 + 1e-9:
            raise Problems([("target", self.target,
                             f"fractions must sum to at most 1 (they sum to {sum(self.target.values()):g})")])
        return self


class SimilarityStrategy(_Strict):
    """Prefer samples close to the query embeddings."""

    type: Literal["SIMILARITY"]
    strength: Strength = 1.0


class TypicalityStrategy(_Strict):
    """Prefer samples in dense regions (k-NN density)."""

    type: Literal["TYPICALITY"]
    num_nearest_neighbors: int = Field(20, ge=2)
    stopping_condition_minimum_typicality: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    strength: Strength = 1.0
    #: lightly_airflow extension: TypiClust (Hacohen et al. 2022), the most typical sample of each of the
    #: largest k-means clusters that hold no preselected sample (docs/selection.md, TYPICALITY clusters).
    clusters: bool = False


Strategy = Annotated[
    DiversityStrategy
    | WeightsStrategy
    | ThresholdStrategy
    | BalanceStrategy
    | SimilarityStrategy
    | TypicalityStrategy,
    Field(discriminator="type"),
]


def input_kind(inp: Any) -> str:
    """``EMBEDDINGS``, ``SCORES``, …, or ``PREDICTIONS.<name>``: the key of :data:`VALID_PAIRS`."""
    return f"PREDICTIONS.{inp.name}" if inp.type == "PREDICTIONS" else str(inp.type)


class When(_Strict):
    """Extension (not in Lightly's format): use the entry only while the datapool holds a number of
    preselected samples (the labelled set, in an active-learning loop) in ``[min_preselected,
    max_preselected]``; a budget-dependent switch (see ``lightly-airflow recipe active-learning``)."""

    min_preselected: int | None = Field(None, ge=0)
    max_preselected: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> When:
        lo, hi = self.min_preselected, self.max_preselected
        if lo is not None and hi is not None and lo > hi:
            raise Problems([("", {"min_preselected": lo, "max_preselected": hi},
                             "min_preselected must not exceed max_preselected")])
        return self

    def applies(self, n_preselected: int) -> bool:
        """Whether the entry is used with ``n_preselected`` samples already selected."""
        return ((self.min_preselected is None or n_preselected >= self.min_preselected)
                and (self.max_preselected is None or n_preselected <= self.max_preselected))


class StrategyEntry(_Strict):
    """One ``{"input": ..., "strategy": ...}`` pair (``when``: only for some numbers of preselected samples)."""

    input: Input
    strategy: Strategy
    when: When | None = None

    @model_validator(mode="after")
    def _valid_pair(self) -> StrategyEntry:
        kind = input_kind(self.input)
        t = self.strategy.type
        if t not in VALID_PAIRS[kind]:
            raise Problems([("strategy.type", t, f"not valid with input {kind.replace('.', ' ')}; "
                             f"allowed strategies: {list(VALID_PAIRS[kind])}")])
        if isinstance(self.input, EmbeddingsInput):
            query = self.input.dataset_id is not None
            if t == "SIMILARITY" and not query:
                raise Problems([("input", self.input.model_dump(exclude_none=True),
                                 "SIMILARITY needs a query set: input 'dataset_id' and 'tag_name'")])
            if t != "SIMILARITY" and query:
                raise Problems([("input", self.input.model_dump(exclude_none=True),
                                 f"a query set (dataset_id/tag_name) is only used by SIMILARITY, not {t}")])
        return self


# -------------------------------------------------------------------------------------------- auto tasks
_TASK_NAME = r"^[A-Za-z0-9_-]{1,100}$"


#: The finest TILING grid accepted (:meth:`TilingAutoTask._sane_grid`).
MAX_TILES_PER_SIDE = 64
MAX_TILES = 1024


class TilingAutoTask(_Strict):
    """``auto_tasks`` TILING: every image split into a ``num_rows`` x ``num_cols`` grid of synthetic objects."""

    type: Literal["TILING"]
    name: str = Field(pattern=_TASK_NAME)
    num_rows: int = Field(ge=1)
    num_cols: int = Field(ge=1)
    #: Lightly's range, ``[0.0, 1.0]`` (docs.lightly.ai "Auto Tasks"); 1.0 makes every tile the whole image, which
    #: :meth:`SelectionConfig.notes` says (it was refused in pydantic's words, "should be less than 1").
    overlap: float = Field(0.0, ge=0, le=1, description="overlap as a fraction of the tile size")

    @model_validator(mode="after")
    def _sane_grid(self) -> TilingAutoTask:
        """Lightly documents no bound (docs.lightly.ai "Auto Tasks": ``num_rows``, ``num_cols``: int); 1000 x 1000
        was accepted and made a million objects of about 2 x 1 pixels per 1920 x 1080 image, each cropped,
        embedded and committed as a row. Refused past :data:`MAX_TILES_PER_SIDE` a side (tiles of 30 x 17 pixels
        on such an image: the embedding model upscales them to its input size, so a finer grid adds rows, not
        detail) or :data:`MAX_TILES` an image."""
        problems = [(name, n, f"{n} tiles a side is more than {MAX_TILES_PER_SIDE}: on a 1920 x 1080 image a tile "
                     f"would be {1920 // n if name == 'num_cols' else 1080 // n} pixels across. Fix: give at most "
                     f"{MAX_TILES_PER_SIDE} (e.g. {name}=8), or crop larger regions with a CROP auto task")
                    for name, n in (("num_rows", self.num_rows), ("num_cols", self.num_cols))
                    if n > MAX_TILES_PER_SIDE]
        if not problems and self.num_rows * self.num_cols > MAX_TILES:
            problems.append(("num_rows", self.num_rows, f"{self.num_rows} x {self.num_cols} = "
                             f"{self.num_rows * self.num_cols} tiles an image is more than {MAX_TILES} (each tile is "
                             "an object cropped, embedded and committed as a row). Fix: a coarser grid, e.g. "
                             "num_rows=num_cols=16"))
        if problems:
            raise Problems(problems)
        return self


class CropAutoTask(_Strict):
    """``auto_tasks`` CROP: fixed boxes ``[x, y, width, height]`` relative to the image size (0..1)."""

    type: Literal["CROP"]
    name: str = Field(pattern=_TASK_NAME)
    bboxs: list[Annotated[list[Fraction], Field(min_length=4, max_length=4)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _boxes_inside(self) -> CropAutoTask:
        for j, (x, y, w, h) in enumerate(self.bboxs):
            if w <= 0 or h <= 0 or x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
                raise Problems([(f"bboxs[{j}]", [x, y, w, h], "must be [x, y, width, height] with width and "
                                 "height > 0, inside the image (x + width <= 1, y + height <= 1)")])
        return self


AutoTask = Annotated[TilingAutoTask | CropAutoTask, Field(discriminator="type")]


# ---------------------------------------------------------------------------------------------- config
class SelectionConfig(_Strict):
    """Lightly's ``selection_config``; exactly one of ``n_samples`` / ``proportion_samples``."""

    model_config = ConfigDict(title="Lightly selection config")
    n_samples: int | None = Field(
        None, ge=-1, description="how many samples to select; -1: no count limit (until a stopping condition)",
    )
    proportion_samples: float | None = Field(
        None, gt=0, le=1, allow_inf_nan=False, validate_default=True,
        description="the share of the candidates to select, in (0, 1]",
    )
    strategies: list[StrategyEntry] = Field(min_length=1)
    lightly_path_regex: str | None = Field(
        None, min_length=1, description="accepted and checked to compile; it has no effect here (Lightly never "
                                        "documented its meaning): use custom metadata in .lightly/metadata/",
    )
    auto_tasks: list[AutoTask] | None = Field(
        None, description="synthetic object tasks (TILING, CROP) usable as EMBEDDINGS inputs with 'task'",
    )

    @field_validator("n_samples")
    @classmethod
    def _not_zero(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("must be a positive integer (or -1: no count limit); 0 would select nothing")
        return value

    @field_validator("proportion_samples")
    @classmethod
    def _exactly_one_count(cls, value: float | None, info: ValidationInfo) -> float | None:
        n = info.data.get("n_samples")
        if (value is None) == (n is None) and "n_samples" in info.data:
            raise ValueError("set exactly one of n_samples (an integer > 0, or -1) and proportion_samples "
                             f"(in (0, 1]); given n_samples={json.dumps(n)}, proportion_samples={json.dumps(value)}")
        return value

    @field_validator("lightly_path_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("auto_tasks")
    @classmethod
    def _unique_names(cls, value: list[Any] | None) -> list[Any] | None:
        names = [t.name for t in value or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"auto task names must be unique (repeated: {dupes})")
        return value

    def target_count(self, n_candidates: int) -> int:
        """How many samples to select out of ``n_candidates`` (``proportion_samples``: :func:`proportion_count`)."""
        if self.n_samples is not None:
            return n_candidates if self.n_samples < 0 else min(self.n_samples, n_candidates)
        return proportion_count(self.proportion_samples if self.proportion_samples is not None else 1.0, n_candidates)

    def notes(self) -> list[str]:
        """Keys accepted that have no effect here, or an effect a user may not expect, with the reason (shown in
        the run summary)."""
        out = []
        if self.lightly_path_regex is not None:
            out.append(f"lightly_path_regex={json.dumps(self.lightly_path_regex)}: has no effect here, because "
                       "Lightly never documented its meaning; put values derived from file names into custom "
                       "metadata (.lightly/metadata/) and use a METADATA input.")
        for i, task in enumerate(self.auto_tasks or []):
            if isinstance(task, TilingAutoTask) and task.overlap == 1 and task.num_rows * task.num_cols > 1:
                out.append(f"auto_tasks[{i}].overlap=1.0 (task {task.name!r}): tiles that overlap entirely are each "
                           f"the whole image, so its {task.num_rows * task.num_cols} tiles are one object repeated; "
                           "give an overlap below 1 (e.g. 0.2) for a grid of distinct tiles.")
        return out


def proportion_count(proportion: float, n_candidates: int) -> int:
    """The number of samples ``proportion_samples`` selects out of ``n_candidates``: ``floor(p · n)``, and at
    least 1 when ``p > 0`` and there is a candidate (``0.01`` of 50 selects 1, not nothing: a proportion of 0 is
    refused because it would select nothing, so a small positive one selects the least it can; the run's
    warnings say so, docs/lightly-compat.md). The product is floored with a margin of 1e-9: ``0.29 * 100`` is
    28.999999999999996 in floating point, which selected 28."""
    if n_candidates <= 0 or proportion <= 0:
        return 0
    return min(n_candidates, max(1, int(math.floor(proportion * n_candidates + 1e-9))))


def proportion_below_one(config: SelectionConfig, n_candidates: int) -> str | None:
    """The warning for a ``proportion_samples`` of fewer than one of ``n_candidates``: :func:`proportion_count`
    selected one (shown in the run's warnings and the CLI's log); ``None`` otherwise."""
    p = config.proportion_samples
    if p is None or n_candidates <= 0 or p * n_candidates >= 1:
        return None
    return (f"proportion_samples={p:g} of {n_candidates} candidates is {p * n_candidates:.2g} samples, less than "
            "one: selected 1, the least a proportion above 0 selects (docs/lightly-compat.md). Fix: give n_samples "
            "for an exact count, or a larger proportion_samples.")


# ---------------------------------------------------------------------------------------------- parsing
def _json_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("strategies", 0, "strategy", "DIVERSITY", "strength")`` -> ``strategies[0].strategy.strength``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in INPUT_TYPES or part in STRATEGY_TYPES or part in ("TILING", "CROP"):
            continue  # the discriminated union's tag: not part of the user's path
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(prefix: str, path: str) -> str:
    if not path:
        return prefix
    if not prefix:
        return path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        return f"invalid type; allowed values: [{expected}]"
    if kind == "union_tag_not_found":
        return "required key 'type' is missing"
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"invalid value; allowed values: {err.get('ctx', {}).get('expected', '')}"
    if kind == "bool_type":
        return "must be a JSON boolean (true or false)"
    if kind in ("int_type", "int_from_float"):
        return "must be a JSON integer" + _proportion_hint(err)
    if kind in ("float_type", "finite_number"):
        return "must be a finite number"
    if kind in ("less_than_equal", "greater_than_equal") and str(err["loc"][-1]) in _BOUND_WHY:
        return f"{err['msg']}: {_BOUND_WHY[str(err['loc'][-1])]}"
    return shape_message(err) or str(err["msg"]).removeprefix("Value error, ")


#: Why a stopping condition has its bound, and the fix (pydantic said only "Input should be less than or equal
#: to 2", which docs/lightly-compat.md promises to explain), under both of Lightly's spellings.
_BOUND_WHY = {
    name: why
    for names, why in (
        (("stopping_condition_minimum_distance", "stoppingConditionMinimumDistance"),
         "distances between unit embeddings lie in [0, 2], so a larger minimum distance stops the run after its "
         "first pick. Fix: a value from 0 to 2, or -1 for no stop"),
        (("stopping_condition_minimum_typicality", "stoppingConditionMinimumTypicality"),
         "typicality lies in (0, 1]. Fix: a value from 0 to 1"),
    )
    for name in names
}


def _proportion_hint(err: Any) -> str:
    """For ``n_samples: 0.1``: Lightly's V2 ``stopping_condition.n_samples`` took a share below 1 (its docs' worker
    configs still show it), which is ``proportion_samples`` now."""
    given = err.get("input")
    if tuple(err["loc"]) in (("n_samples",), ("nSamples",)) and isinstance(given, float) and 0 < given < 1:
        return (f"; a share of the candidates is proportion_samples: write \"proportion_samples\": {given:g} "
                "(Lightly's V2 stopping_condition.n_samples took a share below 1)")
    return ""


def problems_of(exc: ValidationError) -> list[tuple[str, Any, str]]:
    """``(json_path, given, message)`` for every error of a selection config's ``ValidationError``."""
    out: list[tuple[str, Any, str]] = []
    for err in exc.errors():
        path = _json_path(err["loc"])
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, Problems):
            out.extend((_join(path, sub), given, message) for sub, given, message in inner.problems)
            continue
        if err["type"] == "extra_forbidden":
            out.append((path, err.get("input"), _unknown_key_message(err["loc"])))
            continue
        if err["type"] == "union_tag_not_found":
            out.extend(_untagged_unknown_keys(path, err["loc"], err.get("input")))
        out.append((path, err.get("input"), _message(err)))
    return out


def _untagged_unknown_keys(path: str, loc: tuple[Any, ...] | list[Any], given: Any) -> list[tuple[str, Any, str]]:
    """The unknown keys of an object whose ``type`` is missing (``{"tpye": "DIVERSITY"}``): pydantic reports
    only the missing tag, so a misspelt ``type`` would never be named. Each key that no kind of the union (the
    strategies, the inputs, the auto tasks) knows is named with the closest known key."""
    if not isinstance(given, dict):
        return []
    union = _union_at(loc)
    names = [name for model in union for name in key_names(model)]
    return [(_join(path, str(key)), value, f"unknown key; Lightly does not know it either.{did_you_mean(key, names)}")
            for key, value in given.items() if key not in names]


def _union_at(loc: tuple[Any, ...] | list[Any]) -> tuple[type[BaseModel], ...]:
    """The models of the discriminated union at ``loc`` (an entry's ``input`` or ``strategy``, an auto task)."""
    last = loc[-1] if loc else None
    if last == "input":
        return (EmbeddingsInput, ScoresInput, PredictionsInput, MetadataInput, RandomInput)
    if last == "strategy":
        return (DiversityStrategy, WeightsStrategy, ThresholdStrategy, BalanceStrategy, SimilarityStrategy,
                TypicalityStrategy)
    if isinstance(last, int) and len(loc) >= 2 and loc[-2] == "auto_tasks":
        return (TilingAutoTask, CropAutoTask)
    return ()


def _unknown_key_message(loc: tuple[Any, ...] | list[Any]) -> str:
    """``unknown key; … Did you mean 'x'? Allowed keys: [...]`` for the model the key was given to (the
    suggestion as for the worker config, :func:`~lightly_airflow.config.errors.did_you_mean`); for a key given
    in both spellings (``nSamples`` and ``n_samples``), which pydantic reports as the snake_case one being
    unknown, says so."""
    model = _model_at(loc[:-1])
    if model is None:
        return "unknown key; Lightly does not know it either."
    wrapped = wrapper_key(loc[0]) if len(loc) == 1 else None
    if wrapped:
        return wrapped
    twice = given_twice(model, loc[-1])
    if twice:
        return twice
    return (f"unknown key; Lightly does not know it either.{did_you_mean(loc[-1], key_names(model))} "
            f"Allowed keys: {list(model.model_fields)}")


def _model_at(loc: tuple[Any, ...] | list[Any]) -> type[BaseModel] | None:
    models: dict[str, type[BaseModel]] = {
        "DIVERSITY": DiversityStrategy, "WEIGHTS": WeightsStrategy, "THRESHOLD": ThresholdStrategy,
        "BALANCE": BalanceStrategy, "SIMILARITY": SimilarityStrategy, "TYPICALITY": TypicalityStrategy,
        "EMBEDDINGS": EmbeddingsInput, "SCORES": ScoresInput, "PREDICTIONS": PredictionsInput,
        "METADATA": MetadataInput, "RANDOM": RandomInput, "TILING": TilingAutoTask, "CROP": CropAutoTask,
    }
    if not loc:
        return SelectionConfig
    last = loc[-1]
    if isinstance(last, str) and last in models:
        return models[last]
    if last == "target_range":
        return TargetRange
    if isinstance(last, int) and len(loc) >= 2 and loc[-2] == "strategies":
        return StrategyEntry
    return None


def parse_selection_config(obj: dict[str, Any] | str | SelectionConfig) -> SelectionConfig:
    """Validate a selection config given as a dict, a JSON string or a model.

    :param obj: the config.
    :raises ConfigError: listing every problem with its JSON path, the given value and what is allowed.
    """
    if isinstance(obj, SelectionConfig):
        return obj
    data: Any = obj
    if isinstance(obj, str):
        try:
            data = json.loads(obj.removeprefix("\ufeff"))  # a file saved "UTF-8 with BOM" (Notepad, PowerShell)
        except json.JSONDecodeError as exc:
            raise ConfigError("selection config", [("", obj[:80], f"not valid JSON: {describe_json_error(exc)}")]) from None
    if not isinstance(data, dict):
        raise ConfigError("selection config", [("", data, "the selection config must be a JSON object")])
    try:
        return SelectionConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("selection config", problems_of(exc)) from None


def collect_problems(data: Any) -> list[tuple[str, Any, str]]:
    """Every problem of a selection config as ``(json_path, given value, message)``; empty when valid."""
    try:
        parse_selection_config(data)
    except ConfigError as exc:
        return exc.problems
    return []


def selection_config_json_schema() -> dict[str, Any]:
    """The JSON schema of the selection config (drives the DAG's trigger form).

    Generated from the models, so the form applies the same field rules as :func:`parse_selection_config`;
    every property is also offered under Lightly's camelCase name, and a required one (TILING's ``num_rows``)
    may be given in either spelling. Cross-field rules (valid pairs, exactly one count) are checked by the
    first task.
    """
    schema = SelectionConfig.model_json_schema(by_alias=False)
    for node in [schema, *schema.get("$defs", {}).values()]:
        props = node.get("properties")
        if not isinstance(props, dict):
            continue
        for name in list(props):
            camel = to_camel(name)
            if camel != name:
                props.setdefault(camel, props[name])
        required = node.get("required", [])
        either = [name for name in required if to_camel(name) != name]
        if either:
            node["required"] = [name for name in required if name not in either]
            node.setdefault("allOf", []).extend(
                {"anyOf": [{"required": [name]}, {"required": [to_camel(name)]}]} for name in either)
    return schema
