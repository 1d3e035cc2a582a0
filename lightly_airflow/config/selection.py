"""Lightly's ``selection_config``: every input and strategy, validated with every problem reported at once.

:func:`parse_selection_config` walks the JSON first and collects *all* problems (unknown keys, wrong types,
both/neither of ``n_samples``/``proportion_samples``, invalid input/strategy pairs, bad operations, targets
that are not fractions), each with its JSON path, the given value and what is allowed; only a clean config
becomes a :class:`SelectionConfig`. The pydantic models also publish the JSON schema (the DAG's trigger form).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lightly_airflow.config.errors import MISSING, ConfigError

OPERATIONS = ("SMALLER", "SMALLER_EQUAL", "BIGGER", "BIGGER_EQUAL")
DISTRIBUTIONS = ("TARGET", "UNIFORM", "INPUT")
PREDICTION_NAMES = ("CLASS_DISTRIBUTION", "CATEGORY_COUNT")
INPUT_TYPES = ("EMBEDDINGS", "SCORES", "PREDICTIONS", "METADATA", "RANDOM")
STRATEGY_TYPES = ("DIVERSITY", "WEIGHTS", "THRESHOLD", "BALANCE", "SIMILARITY", "TYPICALITY")
STRENGTH_LIMIT = 1e9

# input kind -> strategies allowed with it (lightly-compat.md §1).
VALID_PAIRS: dict[str, tuple[str, ...]] = {
    "EMBEDDINGS": ("DIVERSITY", "SIMILARITY", "TYPICALITY"),
    "METADATA": ("WEIGHTS", "THRESHOLD", "BALANCE"),
    "PREDICTIONS.CATEGORY_COUNT": ("WEIGHTS", "THRESHOLD"),
    "PREDICTIONS.CLASS_DISTRIBUTION": ("BALANCE",),
    "SCORES": ("WEIGHTS", "THRESHOLD"),
    "RANDOM": ("WEIGHTS", "THRESHOLD"),
}

_Strict = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------- inputs
class EmbeddingsInput(BaseModel):
    """Embeddings of the candidates; with ``dataset_id`` + ``tag_name``: a query set (SIMILARITY)."""

    model_config = _Strict
    type: Literal["EMBEDDINGS"]
    dataset_id: str | None = Field(None, description="datapool URI/name (or a Parquet file) of the query set")
    tag_name: str | None = Field(None, description="tag of the query set in that datapool")
    task: str | None = Field(None, description="object-level embeddings of a prediction task")


class ScoresInput(BaseModel):
    """A scorer's value per sample (``scores.<task>.<score>``)."""

    model_config = _Strict
    type: Literal["SCORES"]
    task: str
    score: str


class PredictionsInput(BaseModel):
    """Class distribution (vector) or category count (scalar) of a prediction task."""

    model_config = _Strict
    type: Literal["PREDICTIONS"]
    task: str
    name: Literal["CLASS_DISTRIBUTION", "CATEGORY_COUNT"]
    categories: list[str] | None = None


class MetadataInput(BaseModel):
    """Computed (``lightly.<name>``) or custom metadata value per sample."""

    model_config = _Strict
    type: Literal["METADATA"]
    key: str


class RandomInput(BaseModel):
    """A seeded uniform random value per sample."""

    model_config = _Strict
    type: Literal["RANDOM"]
    random_seed: int | None = None


Input = Annotated[
    EmbeddingsInput | ScoresInput | PredictionsInput | MetadataInput | RandomInput, Field(discriminator="type")
]


# ------------------------------------------------------------------------------------------ strategies
Strength = Annotated[float, Field(ge=-STRENGTH_LIMIT, le=STRENGTH_LIMIT)]


class DiversityStrategy(BaseModel):
    """Greedy farthest-point (k-center) on unit embeddings; distances in [0, 2]."""

    model_config = _Strict
    type: Literal["DIVERSITY"]
    stopping_condition_minimum_distance: float | None = Field(None, ge=0)
    strength: Strength = 1.0


class TargetRange(BaseModel):
    """Aim for the sum of the selected values to land in [min_sum, max_sum]."""

    model_config = _Strict
    min_sum: float | None = None
    max_sum: float | None = None


class WeightsStrategy(BaseModel):
    """Prefer high values (low with negative strength)."""

    model_config = _Strict
    type: Literal["WEIGHTS"]
    strength: Strength = 1.0
    stopping_condition_max_sum: float | None = None
    target_range: TargetRange | None = None


class ThresholdStrategy(BaseModel):
    """Hard filter applied before the greedy selection."""

    model_config = _Strict
    type: Literal["THRESHOLD"]
    threshold: float
    operation: Literal["SMALLER", "SMALLER_EQUAL", "BIGGER", "BIGGER_EQUAL"]


class BalanceStrategy(BaseModel):
    """Match a class distribution (``target`` fractions; a remainder < 1 goes to all other classes)."""

    model_config = _Strict
    type: Literal["BALANCE"]
    target: dict[str, float] | None = None
    distribution: Literal["TARGET", "UNIFORM", "INPUT"] = "TARGET"
    strength: Strength = 1.0


class SimilarityStrategy(BaseModel):
    """Prefer samples close to the query embeddings."""

    model_config = _Strict
    type: Literal["SIMILARITY"]
    strength: Strength = 1.0


class TypicalityStrategy(BaseModel):
    """Prefer samples in dense regions (k-NN density)."""

    model_config = _Strict
    type: Literal["TYPICALITY"]
    num_nearest_neighbors: int = Field(20, ge=2)
    stopping_condition_minimum_typicality: float | None = Field(None, ge=0, le=1)
    strength: Strength = 1.0


Strategy = Annotated[
    DiversityStrategy
    | WeightsStrategy
    | ThresholdStrategy
    | BalanceStrategy
    | SimilarityStrategy
    | TypicalityStrategy,
    Field(discriminator="type"),
]


class StrategyEntry(BaseModel):
    """One ``{"input": ..., "strategy": ...}`` pair."""

    model_config = _Strict
    input: Input
    strategy: Strategy


class SelectionConfig(BaseModel):
    """Lightly's ``selection_config``; exactly one of ``n_samples`` / ``proportion_samples``."""

    model_config = ConfigDict(extra="forbid", title="Lightly selection config")
    n_samples: int | None = Field(None, gt=0)
    proportion_samples: float | None = Field(None, gt=0, le=1)
    strategies: list[StrategyEntry] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _check_everything(cls, data: Any) -> Any:
        problems = collect_problems(data)
        if problems:
            raise ValueError(str(ConfigError("selection config", problems)))
        return data

    def target_count(self, n_candidates: int) -> int:
        """How many samples to select out of ``n_candidates``."""
        if self.n_samples is not None:
            return min(self.n_samples, n_candidates)
        return min(n_candidates, int(math.floor(self.proportion_samples * n_candidates)))


# ------------------------------------------------------------------------------------------- checking
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[tuple[str, Any, str]] = []

    def add(self, path: str, given: Any, message: str) -> None:
        self.problems.append((path, given, message))

    def keys(self, path: str, obj: dict, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
        for k in obj:
            if k not in allowed:
                self.add(f"{path}.{k}" if path else k, obj[k], f"unknown key; allowed keys: {list(allowed)}")
        for k in required:
            if k not in obj:
                self.add(f"{path}.{k}" if path else k, MISSING, "required key is missing")

    def number(self, path: str, obj: dict, k: str, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, integer: bool = False, what: str = "") -> None:
        if k not in obj or obj[k] is None:
            return
        v = obj[k]
        p = f"{path}.{k}" if path else k
        ok_type = _is_int(v) if integer else _is_number(v)
        kind = "an integer" if integer else "a finite number"
        rng = what or _range_text(lo, hi, lo_open)
        if not ok_type:
            self.add(p, v, f"must be {kind}{' ' + rng if rng else ''}")
            return
        if lo is not None and (v < lo or (lo_open and v == lo)) or hi is not None and v > hi:
            self.add(p, v, f"must be {kind} {rng}")

    def choice(self, path: str, obj: dict, k: str, allowed: tuple[str, ...], required: bool = False) -> None:
        if k not in obj:
            if required:
                self.add(f"{path}.{k}", MISSING, f"required; allowed values: {list(allowed)}")
            return
        if obj[k] not in allowed:
            self.add(f"{path}.{k}", obj[k], f"invalid value; allowed values: {list(allowed)}")

    def string(self, path: str, obj: dict, k: str) -> None:
        if k in obj and obj[k] is not None and (not isinstance(obj[k], str) or not obj[k]):
            self.add(f"{path}.{k}", obj[k], "must be a non-empty string")


def _range_text(lo: float | None, hi: float | None, lo_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"<= {hi:g}"
    return ""


_INPUT_KEYS = {
    "EMBEDDINGS": ("type", "dataset_id", "tag_name", "task"),
    "SCORES": ("type", "task", "score"),
    "PREDICTIONS": ("type", "task", "name", "categories"),
    "METADATA": ("type", "key"),
    "RANDOM": ("type", "random_seed"),
}
_INPUT_REQUIRED = {"SCORES": ("task", "score"), "PREDICTIONS": ("task", "name"), "METADATA": ("key",)}
_STRATEGY_KEYS = {
    "DIVERSITY": ("type", "stopping_condition_minimum_distance", "strength"),
    "WEIGHTS": ("type", "strength", "stopping_condition_max_sum", "target_range"),
    "THRESHOLD": ("type", "threshold", "operation"),
    "BALANCE": ("type", "target", "distribution", "strength"),
    "SIMILARITY": ("type", "strength"),
    "TYPICALITY": ("type", "num_nearest_neighbors", "stopping_condition_minimum_typicality", "strength"),
}
_STRATEGY_REQUIRED = {"THRESHOLD": ("threshold", "operation")}


def _input_kind(inp: dict) -> str | None:
    t = inp.get("type")
    if t == "PREDICTIONS":
        name = inp.get("name")
        return f"PREDICTIONS.{name}" if name in PREDICTION_NAMES else None
    return t if t in INPUT_TYPES else None


def _check_input(c: _Collector, path: str, inp: Any) -> None:
    if not isinstance(inp, dict):
        c.add(path, inp, "must be an object with a 'type'")
        return
    c.choice(path, inp, "type", INPUT_TYPES, required=True)
    t = inp.get("type")
    if t not in _INPUT_KEYS:
        return
    c.keys(path, inp, _INPUT_KEYS[t], _INPUT_REQUIRED.get(t, ()))
    for k in ("task", "score", "key", "dataset_id", "tag_name"):
        c.string(path, inp, k)
    if t == "PREDICTIONS":
        c.choice(path, inp, "name", PREDICTION_NAMES)
        cats = inp.get("categories")
        if inp.get("name") == "CATEGORY_COUNT":
            if not isinstance(cats, list) or not cats or not all(isinstance(x, str) and x for x in cats):
                c.add(f"{path}.categories", cats if "categories" in inp else MISSING,
                      "CATEGORY_COUNT needs a non-empty list of category names")
        elif "categories" in inp:
            c.add(f"{path}.categories", cats, "only allowed with name CATEGORY_COUNT")
    if t == "EMBEDDINGS" and (("dataset_id" in inp) != ("tag_name" in inp)):
        c.add(path, {k: inp.get(k) for k in ("dataset_id", "tag_name")},
              "a query set needs both 'dataset_id' and 'tag_name'")
    if t == "RANDOM" and inp.get("random_seed") is not None and not _is_int(inp["random_seed"]):
        c.add(f"{path}.random_seed", inp["random_seed"], "must be an integer")


def _check_strategy(c: _Collector, path: str, strat: Any, inp: Any) -> None:
    if not isinstance(strat, dict):
        c.add(path, strat, "must be an object with a 'type'")
        return
    c.choice(path, strat, "type", STRATEGY_TYPES, required=True)
    t = strat.get("type")
    if t not in _STRATEGY_KEYS:
        return
    c.keys(path, strat, _STRATEGY_KEYS[t], _STRATEGY_REQUIRED.get(t, ()))
    c.number(path, strat, "strength", lo=-STRENGTH_LIMIT, hi=STRENGTH_LIMIT)
    if t == "DIVERSITY":
        c.number(path, strat, "stopping_condition_minimum_distance", lo=0.0, hi=2.0)
    elif t == "WEIGHTS":
        c.number(path, strat, "stopping_condition_max_sum")
        tr = strat.get("target_range")
        if tr is not None:
            if not isinstance(tr, dict):
                c.add(f"{path}.target_range", tr, "must be an object {min_sum, max_sum}")
            else:
                c.keys(f"{path}.target_range", tr, ("min_sum", "max_sum"))
                c.number(f"{path}.target_range", tr, "min_sum")
                c.number(f"{path}.target_range", tr, "max_sum")
                lo, hi = tr.get("min_sum"), tr.get("max_sum")
                if _is_number(lo) and _is_number(hi) and lo > hi:
                    c.add(f"{path}.target_range", tr, "min_sum must not exceed max_sum")
    elif t == "THRESHOLD":
        c.number(path, strat, "threshold")
        if "threshold" in strat and strat["threshold"] is None:
            c.add(f"{path}.threshold", None, "must be a finite number")
        c.choice(path, strat, "operation", OPERATIONS)
    elif t == "BALANCE":
        c.choice(path, strat, "distribution", DISTRIBUTIONS)
        dist = strat.get("distribution", "TARGET")
        target = strat.get("target")
        if dist == "TARGET" and target is None:
            c.add(f"{path}.target", MISSING, "distribution TARGET needs a target {class: fraction}")
        if target is not None:
            if not isinstance(target, dict) or not target:
                c.add(f"{path}.target", target, "must be a non-empty object {class name: fraction in [0, 1]}")
            else:
                for name, frac in target.items():
                    if not _is_number(frac) or not 0 <= frac <= 1:
                        c.add(f"{path}.target.{name}", frac, "must be a fraction in [0, 1]")
                fracs = [f for f in target.values() if _is_number(f)]
                if sum(fracs) > 1 + 1e-9:
                    c.add(f"{path}.target", target, f"fractions must sum to at most 1 (they sum to {sum(fracs):g})")
            if dist != "TARGET":
                c.add(f"{path}.target", target, f"only allowed with distribution TARGET (given {dist})")
    elif t == "TYPICALITY":
        c.number(path, strat, "num_nearest_neighbors", lo=2, integer=True)
        c.number(path, strat, "stopping_condition_minimum_typicality", lo=0.0, hi=1.0)
    # The input/strategy pair.
    if isinstance(inp, dict):
        kind = _input_kind(inp)
        if kind is not None and t not in VALID_PAIRS[kind]:
            c.add(f"{path}.type", t, f"not valid with input {kind.replace('.', ' ')}; "
                  f"allowed strategies: {list(VALID_PAIRS[kind])}")
        if kind == "EMBEDDINGS":
            query = "dataset_id" in inp or "tag_name" in inp
            if t == "SIMILARITY" and not query:
                c.add(path.rsplit(".", 1)[0] + ".input", inp,
                      "SIMILARITY needs a query set: input 'dataset_id' and 'tag_name'")
            if t != "SIMILARITY" and query:
                c.add(path.rsplit(".", 1)[0] + ".input", inp, f"a query set (dataset_id/tag_name) is only used "
                      f"by SIMILARITY, not {t}")


def collect_problems(data: Any) -> list[tuple[str, Any, str]]:
    """Every problem of a selection config as ``(json_path, given value, message)``; empty when valid."""
    c = _Collector()
    if not isinstance(data, dict):
        c.add("", data, "the selection config must be a JSON object")
        return c.problems
    c.keys("", data, ("n_samples", "proportion_samples", "strategies"), ("strategies",))
    has_n = data.get("n_samples") is not None
    has_p = data.get("proportion_samples") is not None
    if has_n == has_p:
        c.add("n_samples", {"n_samples": data.get("n_samples"), "proportion_samples": data.get("proportion_samples")},
              "set exactly one of n_samples (integer > 0) and proportion_samples (in (0, 1])")
    c.number("", data, "n_samples", lo=0, lo_open=True, integer=True)
    c.number("", data, "proportion_samples", lo=0.0, hi=1.0, lo_open=True)
    strategies = data.get("strategies")
    if "strategies" in data:
        if not isinstance(strategies, list) or not strategies:
            c.add("strategies", strategies, "must be a non-empty list of {input, strategy} objects")
        else:
            for i, entry in enumerate(strategies):
                p = f"strategies[{i}]"
                if not isinstance(entry, dict):
                    c.add(p, entry, "must be an object with 'input' and 'strategy'")
                    continue
                c.keys(p, entry, ("input", "strategy"), ("input", "strategy"))
                if "input" in entry:
                    _check_input(c, f"{p}.input", entry["input"])
                if "strategy" in entry:
                    _check_strategy(c, f"{p}.strategy", entry["strategy"], entry.get("input"))
    return c.problems


def parse_selection_config(obj: dict | str | SelectionConfig) -> SelectionConfig:
    """Validate a selection config given as a dict, a JSON string or a model.

    :param obj: the config.
    :raises ConfigError: listing every problem with its JSON path, the given value and what is allowed.
    """
    if isinstance(obj, SelectionConfig):
        return obj
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise ConfigError("selection config", [("", obj[:80], f"not valid JSON: {exc}")]) from exc
    problems = collect_problems(obj)
    if problems:
        raise ConfigError("selection config", problems)
    return SelectionConfig.model_validate(obj)


def selection_config_json_schema() -> dict:
    """The JSON schema of the selection config (also drives the DAG's trigger form)."""
    return SelectionConfig.model_json_schema()
