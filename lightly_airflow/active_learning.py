"""The active-learning loop of Lightly's docs over a datapool, without Airflow.

Lightly's ``ActiveLearningAgent`` takes a ``query_tag_name`` (select among these samples), a
``preselected_tag_name`` (samples already labelled), exposes the ``unlabeled_set`` (query minus preselected,
the order a model's predictions must follow), scores a prediction array with its scorers and ``query``-s
``n_samples`` into a new tag. :class:`ActiveLearningAgent` does the same on a datapool::

    agent = ActiveLearningAgent("file:///data/pool", preselected_tag_name="round-1")
    probs = model.predict_proba(images_of(agent.unlabeled_set))      # (N, C) in unlabeled_set order
    result = agent.query(20, "round-2", predictions=probs)           # 20 *new* picks, committed as a tag

Meanings, written once here and shared with the DAG's params (``query_tag_name``, ``preselected_tag_name``,
``n_samples_meaning``):

- *query set*: every processed, ok sample of the pool (latest row per key), or only the samples of
  ``query_tag_name``.
- *preselected*: the samples of ``preselected_tag_name``; by default (``None``) ``initial-tag``, i.e.
  everything selected so far (Lightly's default is "nothing": pass a tag that holds nothing to get it).
  Preselected samples are not candidates again and count as already selected (DIVERSITY keeps new picks
  away from them; BALANCE counts them).
- ``n_samples`` means *new picks* by default (``n_samples_meaning="new"``); ``"total"`` is Lightly's
  active-learning meaning: the size of the labelled set after the query, so the new picks are
  ``n_samples`` minus the preselected samples (never below 0).
- the selection: ``selection_config`` when given (its ``n_samples``/``proportion_samples`` are replaced by the
  count above); otherwise, with a margin score, the recommended recipe of docs/selection.md
  (``lightly-airflow recipe active-learning``: TypiClust, typical samples of k-means clusters without a
  labelled sample, plus DIVERSITY, while fewer than 20 are labelled,
  then power sampling on the margin, a random draw that favours uncertain samples); with other scores only, CORAL (DIVERSITY + WEIGHTS on the first score); DIVERSITY
  alone without predictions. Prediction scores are columns ``scores.<task_name>.<score>`` of
  the candidates, so a config may name any of them (``{"type": "SCORES", "task": "active_learning",
  "score": "uncertainty_entropy"}``).
- the commit: one datapool version per query (idempotent by its ``run_id``, by default derived from the
  tag) holding the picked samples' rows with the new tag (and ``initial-tag``) and their scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lightly_airflow import columns as C
from lightly_airflow.storage import StorageCredentials

log = logging.getLogger(__name__)

NEW = "new"
TOTAL = "total"
N_SAMPLES_MEANINGS = (NEW, TOTAL)
DEFAULT_TASK = "active_learning"
DAG_ID = "active_learning"


@dataclass(frozen=True)
class QueryOptions:
    """The loop's options, shared by the Python API and the DAG's params.

    :param query_tag_name: select only among the samples of this tag (``None``: every processed sample).
    :param preselected_tag_name: samples counted as already selected (``None``: ``initial-tag``).
    :param n_samples_meaning: ``new`` (default: ``n_samples`` new picks) or ``total`` (Lightly: the size of
        the labelled set after the query).
    """

    query_tag_name: str | None = None
    preselected_tag_name: str | None = None
    n_samples_meaning: str = NEW

    def __post_init__(self) -> None:
        for name in ("query_tag_name", "preselected_tag_name"):
            value = getattr(self, name)
            if value in ("", "None"):
                object.__setattr__(self, name, None)
            elif value is not None and not isinstance(value, str):
                raise ValueError(f"{name}={value!r} must be a tag name or empty.")
        if self.n_samples_meaning not in N_SAMPLES_MEANINGS:
            raise ValueError(f"n_samples_meaning={self.n_samples_meaning!r}: use 'new' (new picks, the default) "
                             "or 'total' (Lightly's: the size of the labelled set after the query).")

    @property
    def is_default(self) -> bool:
        return self == QueryOptions()

    def new_picks(self, n_samples: int, n_preselected: int) -> int:
        """How many new samples a query of ``n_samples`` picks with ``n_preselected`` already selected."""
        if self.n_samples_meaning == TOTAL:
            return max(0, int(n_samples) - int(n_preselected))
        return int(n_samples)

    def preselected(self, snapshot: Any) -> pa.Table:
        """The preselected samples of a datapool snapshot (latest row per key)."""
        if self.preselected_tag_name is None or self.preselected_tag_name == C.INITIAL_TAG:
            return snapshot.selected()
        from lightly_airflow.datapool.snapshot import latest_per_key

        return latest_per_key(snapshot.read(tag=self.preselected_tag_name))

    def query_keys(self, snapshot: Any) -> pa.Array | None:
        """Keys of the query tag (``None``: no restriction)."""
        if self.query_tag_name is None:
            return None
        return pc.unique(snapshot.read(tag=self.query_tag_name, columns=[C.KEY]).column(C.KEY).combine_chunks())

    def restrict(self, candidates: pa.Table, snapshot: Any) -> pa.Table:
        """The candidates inside the query tag (all of them without one)."""
        keys = self.query_keys(snapshot)
        if keys is None:
            return candidates
        return candidates.filter(pc.is_in(candidates.column(C.KEY), value_set=keys))

    def dag_count(self, config: Any, n_preselected: int) -> tuple[Any, int | None]:
        """For the DAG: ``config`` with its ``n_samples`` as new picks, and that number (``None``: the config
        counts as it is, e.g. ``proportion_samples``)."""
        if self.n_samples_meaning != TOTAL or config.n_samples is None or config.n_samples < 0:
            return config, None
        new = self.new_picks(config.n_samples, n_preselected)
        return (config.model_copy(update={"n_samples": new}) if new else config), new


@dataclass
class QueryResult:
    """What one query did."""

    tag: str
    run_id: str
    version: int | None
    keys: list[str]
    n_candidates: int
    n_preselected: int
    n_new: int
    already_committed: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ActiveLearningAgent:
    """Lightly's active-learning agent over a datapool.

    :param datapool: a :class:`~lightly_airflow.datapool.Datapool` or its URI.
    :param query_tag_name: select among the samples of this tag only (``None``: every processed sample).
    :param preselected_tag_name: samples counted as already selected (``None``: ``initial-tag``).
    :param n_samples_meaning: ``new`` (default) or ``total`` (Lightly's meaning), see the module docs.
    :param credentials: the datapool's store credentials (with a URI).
    """

    def __init__(
        self,
        datapool: Any,
        *,
        query_tag_name: str | None = None,
        preselected_tag_name: str | None = None,
        n_samples_meaning: str = NEW,
        credentials: StorageCredentials | None = None,
    ) -> None:
        from lightly_airflow.datapool import Datapool

        self.pool = Datapool(datapool, credentials) if isinstance(datapool, str) else datapool
        if not self.pool.exists():
            raise ValueError(f"No datapool at {self.pool.uri}: run the DAG (or `lightly-airflow run`) first.")
        self.options = QueryOptions(query_tag_name, preselected_tag_name, n_samples_meaning)
        self._snapshot = self.pool.snapshot()
        self._candidates: pa.Table | None = None
        self._preselected: pa.Table | None = None

    # ------------------------------------------------------------------------------------------ the sets
    def refresh(self) -> None:
        """Read the pool again (after another run committed)."""
        self._snapshot = self.pool.snapshot()
        self._candidates = self._preselected = None

    @property
    def preselected(self) -> pa.Table:
        """The preselected samples (latest row per key)."""
        if self._preselected is None:
            self._preselected = self.options.preselected(self._snapshot)
        return self._preselected

    @property
    def candidates(self) -> pa.Table:
        """The rows of the unlabeled set, sorted by key (the order of :attr:`unlabeled_set`)."""
        if self._candidates is None:
            from lightly_airflow.datapool.snapshot import latest_per_key

            rows = latest_per_key(self._snapshot.read())
            rows = rows.filter(pc.equal(rows.column(C.STATUS), C.STATUS_OK))
            rows = self.options.restrict(rows, self._snapshot)
            if self.preselected.num_rows:
                rows = rows.filter(pc.invert(pc.is_in(rows.column(C.KEY), value_set=self.preselected.column(C.KEY))))
            self._candidates = rows.sort_by(C.KEY)
        return self._candidates

    @property
    def query_set(self) -> list[str]:
        """Keys of the query set (candidates and preselected samples inside it), sorted."""
        keys = set(self.unlabeled_set)
        pre = self.preselected.column(C.KEY).to_pylist()
        scope = self.options.query_keys(self._snapshot)
        allowed = None if scope is None else set(scope.to_pylist())
        keys.update(k for k in pre if allowed is None or k in allowed)
        return sorted(keys)

    @property
    def preselected_set(self) -> list[str]:
        """Keys of the preselected samples, sorted."""
        return sorted(self.preselected.column(C.KEY).to_pylist())

    @property
    def unlabeled_set(self) -> list[str]:
        """Keys of the candidates, sorted: the order a prediction array must follow."""
        return [str(k) for k in self.candidates.column(C.KEY).to_pylist()]

    # --------------------------------------------------------------------------------------------- scores
    def scores_from_predictions(self, predictions: np.ndarray) -> dict[str, np.ndarray]:
        """Lightly's classification scorers on ``(N, C)`` probabilities in :attr:`unlabeled_set` order."""
        from lightly_airflow.predictions.scorers import score_classification

        probs = np.asarray(predictions, dtype=np.float64)
        n = len(self.unlabeled_set)
        if probs.ndim not in (1, 2) or probs.shape[0] != n:
            raise ValueError(f"predictions has shape {probs.shape}: give one row of class probabilities per sample "
                             f"of unlabeled_set ({n} samples), in its order.")
        return score_classification(probs)

    # ---------------------------------------------------------------------------------------------- query
    def query(
        self,
        n_samples: int,
        new_tag_name: str,
        *,
        predictions: np.ndarray | None = None,
        scores: Mapping[str, Sequence[float] | np.ndarray] | None = None,
        selection_config: Any = None,
        task_name: str = DEFAULT_TASK,
        run_id: str | None = None,
    ) -> QueryResult:
        """Select from :attr:`unlabeled_set` and commit the picks as ``new_tag_name``.

        :param n_samples: new picks (``n_samples_meaning="new"``) or the labelled set's size after the query
            (``"total"``).
        :param new_tag_name: the tag of the picks (must be new).
        :param predictions: ``(N, C)`` class probabilities in :attr:`unlabeled_set` order, scored with
            :meth:`scores_from_predictions`.
        :param scores: ready scores ``{score name: values in unlabeled_set order}`` (instead of predictions).
        :param selection_config: a Lightly selection config (its count is replaced); default: the recommended
            active-learning recipe on the margin score (see the module docstring).
        :param task_name: the task name of the score columns (``scores.<task_name>.<score>``).
        :param run_id: the commit's idempotence key (default derived from the tag and the options): a
            repeated query with the same run id changes nothing.
        """
        from lightly_airflow.config import parse_selection_config
        from lightly_airflow.pipeline import _jsonable
        from lightly_airflow.selection import select

        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise ValueError(f"n_samples={n_samples!r} must be a non-negative integer.")
        if predictions is not None and scores is not None:
            raise ValueError("Give predictions or scores, not both.")
        run_id = run_id or _run_id(new_tag_name, self.options)
        done = self._snapshot.committed_version(run_id)
        if done is not None:
            return self._result_of(run_id, done)
        values = dict(scores or {}) if predictions is None else self.scores_from_predictions(predictions)
        candidates = self.candidates
        for name, vals in values.items():
            arr = np.asarray(vals, dtype=np.float64)
            if arr.shape != (candidates.num_rows,):
                raise ValueError(f"scores[{name!r}] has shape {arr.shape}: give one value per sample of unlabeled_set.")
            candidates = _set_column(candidates, C.score_column(task_name, name), pa.array(arr, pa.float64()))
        n_pre = self.preselected.num_rows
        n_new = self.options.new_picks(int(n_samples), n_pre)
        n_new = min(n_new, candidates.num_rows)
        config_dict: dict[str, Any]
        if selection_config is None and "uncertainty_margin" in values:
            from lightly_airflow.selection.recipes import active_learning_config

            config_dict = active_learning_config(task_name, max(n_new, 1))
        elif selection_config is None:
            strategies: list[dict[str, Any]] = [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]
            if values:
                score = "uncertainty_margin" if "uncertainty_margin" in values else sorted(values)[0]
                strategies.append({"input": {"type": "SCORES", "task": task_name, "score": score},
                                   "strategy": {"type": "WEIGHTS"}})
            config_dict = {"n_samples": max(n_new, 1), "strategies": strategies}
        else:
            config_dict = parse_selection_config(selection_config).model_dump(mode="json", exclude_none=True)
            config_dict.pop("proportion_samples", None)
            config_dict["n_samples"] = max(n_new, 1)
        config = parse_selection_config(config_dict)
        picked: list[str] = []
        metrics: dict[str, Any] = {}
        if n_new > 0 and candidates.num_rows:
            result = select(candidates, config, preselected=self.preselected)
            picked, metrics = list(result.keys)[:n_new], dict(result.metrics)
        log.info("active learning: %d candidates, %d preselected, %d new picks into tag %r.",
                 candidates.num_rows, n_pre, len(picked), new_tag_name)
        rank = {k: i for i, k in enumerate(picked)}
        rows = candidates.filter(pc.is_in(candidates.column(C.KEY), value_set=pa.array(picked, pa.string())))
        order = sorted(range(rows.num_rows), key=lambda i: rank[str(rows.column(C.KEY)[i].as_py())])
        rows = rows.take(pa.array(order, pa.int64()))
        rows = _commit_rows(rows, [rank[str(k)] for k in rows.column(C.KEY).to_pylist()])
        info = self._snapshot.embedding_info() or {}
        commit = self.pool.commit(
            rows, run_id=run_id, dag_id=DAG_ID, tag=new_tag_name,
            config={**config.model_dump(mode="json", exclude_none=True), "active_learning": asdict(self.options),
                    "n_samples": int(n_samples)},
            counts={"candidates": candidates.num_rows, "preselected": n_pre, "selected": len(picked),
                    "processed": rows.num_rows},
            embedding_model=str(info.get("model")), embedding_dim=int(info.get("dim") or 0),
            snapshot=self._snapshot,
        )
        result_out = QueryResult(tag=commit.tag, run_id=run_id, version=commit.version, keys=picked,
                                 n_candidates=candidates.num_rows, n_preselected=n_pre, n_new=len(picked),
                                 already_committed=commit.already_committed, metrics=_jsonable(metrics))
        self.refresh()
        return result_out

    def _result_of(self, run_id: str, version: int) -> QueryResult:
        entry = next((h for h in self._snapshot.history() if h.get("run_id") == run_id), {})
        counts = entry.get("counts") or {}
        keys = self._snapshot.read(tag=entry.get("tag"), columns=[C.KEY]).column(C.KEY).to_pylist() if entry.get(
            "tag") else []
        return QueryResult(tag=str(entry.get("tag")), run_id=run_id, version=version, keys=keys,
                           n_candidates=int(counts.get("candidates", 0)), n_preselected=int(counts.get("preselected", 0)),
                           n_new=len(keys), already_committed=True)


def _run_id(tag: str, options: QueryOptions) -> str:
    digest = hashlib.sha256(json.dumps([tag, asdict(options)], sort_keys=True).encode()).hexdigest()[:12]
    return f"active_learning__{tag}__{digest}"


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _commit_rows(rows: pa.Table, ranks: list[int]) -> pa.Table:
    """The picked rows as a run's rows: the pool's bookkeeping columns dropped, selected with a pick rank."""
    from lightly_airflow.datapool.rows import ADDED_COLUMNS

    stale = [c for c in rows.column_names if c in (*ADDED_COLUMNS, C.SELECTED, C.PICK_RANK)
             or c.startswith(C.SELECTION_PREFIX)]
    rows = rows.drop_columns(stale)
    rows = rows.append_column(C.SELECTED, pa.array([True] * rows.num_rows, pa.bool_()))
    return rows.append_column(C.PICK_RANK, pa.array(ranks, pa.int64()))
