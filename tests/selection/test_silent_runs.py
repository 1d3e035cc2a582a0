"""Runs that selected nothing, or matched no BALANCE target, used to commit silently (user audit): each now says
why and the fix in the run summary's warnings (task log, report, metrics). Whole runs through the plain
functions the DAG's tasks call, on a folder of real PNG files with Lightly's ``.lightly/`` (custom embeddings
CSV, custom metadata) written by the test."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.config import parse_selection_config
from lightly_airflow.pipeline import selection_warnings
from lightly_airflow.selection import select

DIM = 8
DIVERSITY = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def make_folder(src: Path, names: list[str], *, metadata: dict[str, dict[str, Any]] | None = None,
                schema: list[dict[str, Any]] | None = None, seed: int = 0) -> None:
    """PNG files ``names`` (distinct noise) under ``src``, their vectors in ``.lightly/embeddings/emb.csv``
    (Lightly's ``save_embeddings`` layout; rows of earlier files are kept) and custom metadata files."""
    rng = np.random.default_rng(seed)
    lightly = src / ".lightly"
    (lightly / "embeddings").mkdir(parents=True, exist_ok=True)
    csv_path = lightly / "embeddings" / "emb.csv"
    rows = list(csv.reader(csv_path.open())) [1:] if csv_path.exists() else []
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(src / name)
        rows.append([name, *(f"{v:.6f}" for v in rng.normal(size=DIM))])
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filenames", *(f"embedding_{i}" for i in range(DIM)), "labels"])
        writer.writerows([[*r[: DIM + 1], "0"] for r in rows])
    if schema is not None:
        (lightly / "metadata").mkdir(exist_ok=True)
        (lightly / "metadata" / "schema.json").write_text(json.dumps(schema))
    for name, values in (metadata or {}).items():
        path = lightly / "metadata" / (name.rsplit(".", 1)[0] + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"file_name": name, "type": "image", "metadata": values}))


def run(src: Path, pool: Path, run_id: str, config: dict[str, Any], **kwargs: Any) -> Any:
    """list → embed (the CSV) → metadata → select and commit, as the DAG's tasks do."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit

    listed = list_new(NewFilesQuery(datasource_uri=str(src), datapool_uri=str(pool)), run_id=run_id,
                      min_shard_size=1000)
    for m in listed.manifests:
        embed_shard(m, embeddings_csv=str(src / ".lightly" / "embeddings" / "emb.csv"))
        compute_metadata_shard(m)
    return select_and_commit(datapool_uri=str(pool), run_id=run_id, dag_id="t", manifests=listed.manifests,
                             selection_config=config, **kwargs)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}.png" for i in range(n)]


# ------------------------------------------------------------------------- BALANCE on CATEGORICAL_BOOLEAN
BOOL_SCHEMA = [{"name": "Night", "path": "is_night", "valueDataType": "CATEGORICAL_BOOLEAN"},
               {"name": "Speed", "path": "speed", "valueDataType": "NUMERICAL_FLOAT"}]


@pytest.mark.parametrize("spelling", [("true", "false"), ("True", "False"), ("TRUE", "false")])
def test_balance_on_a_boolean_field_takes_the_json_spelling(tmp_path: Path, spelling: tuple[str, str]) -> None:
    """``{"true": 0.5, "false": 0.5}`` on a CATEGORICAL_BOOLEAN field was inert: the classes are 'True'/'False',
    the targets matched nothing, only a log line said so, and the selection followed DIVERSITY alone (about the
    pool's 1 : 4). Every spelling now balances, whatever the other strategy prefers."""
    names = _names("img", 40)
    night = {n: i % 5 == 0 for i, n in enumerate(names)}  # 8 of 40 at night
    make_folder(tmp_path / "src", names, schema=BOOL_SCHEMA,
                metadata={n: {"is_night": night[n], "speed": float(i)} for i, n in enumerate(names)})
    yes, no = spelling
    config = {"n_samples": 12, "strategies": [
        DIVERSITY,
        # (NUMERICAL_FLOAT from Lightly's current docs, read: the day samples are faster, so WEIGHTS pulls away)
        {"input": {"type": "METADATA", "key": "speed"}, "strategy": {"type": "WEIGHTS", "strength": 3}},
        {"input": {"type": "METADATA", "key": "is_night"},
         "strategy": {"type": "BALANCE", "target": {yes: 0.5, no: 0.5}, "strength": 10}}]}
    summary = run(tmp_path / "src", tmp_path / "pool", "r1", config)
    report = summary.metrics["objectives"]["strategies[2]"]
    assert report["classes"] == ["True", "False"] or report["classes"] == ["False", "True"]
    assert "targets_not_among_candidates" not in report
    achieved = dict(zip(report["classes"], report["achieved"]))
    assert achieved == {"True": 0.5, "False": 0.5}, report
    assert summary.selected == 12 and summary.warnings == []


def test_a_target_class_that_matches_nothing_is_a_run_warning(tmp_path: Path) -> None:
    """A misspelt class (``nigth``) was only a log line; the run committed and listed no missed goal."""
    names = _names("img", 20)
    make_folder(tmp_path / "src", names, schema=[{"name": "T", "path": "time", "valueDataType": "CATEGORICAL_STRING"}],
                metadata={n: {"time": "night" if i % 4 == 0 else "day"} for i, n in enumerate(names)})
    config = {"n_samples": 6, "strategies": [DIVERSITY, {
        "input": {"type": "METADATA", "key": "time"},
        "strategy": {"type": "BALANCE", "target": {"nigth": 0.5, "day": 0.5}}}]}
    summary = run(tmp_path / "src", tmp_path / "pool", "r1", config)
    lines = [w for w in summary.warnings if "match no candidate" in w]
    assert len(lines) == 1, summary.warnings
    assert "strategies[1] BALANCE" in lines[0] and "['nigth']" in lines[0] and "'night'" in lines[0]
    assert "Fix:" in lines[0]
    assert summary.goals_missed is not None and summary.goals_missed >= 1  # (the report lists it)
    page = Path(summary.report_uri.removeprefix("file://"))
    html = (page / "index.html" if page.is_dir() else page).read_text()
    assert "nigth" in html


# ------------------------------------------------------------------------------------- nothing selected
def test_n_samples_meaning_total_with_a_full_labelled_set_warns(tmp_path: Path) -> None:
    """(a) ``n_samples_meaning: "total"`` with the pool already holding n_samples: 0 selected, committed, and
    no word in the task log."""
    src, pool = tmp_path / "src", tmp_path / "pool"
    make_folder(src, _names("a", 10))
    config = {"n_samples": 5, "strategies": [DIVERSITY]}
    first = run(src, pool, "r1", config)
    assert first.selected == 5 and first.warnings == []
    make_folder(src, _names("b", 10), seed=1)
    second = run(src, pool, "r2", config, active_learning={"n_samples_meaning": "total"})
    assert second.selected == 0 and second.candidates == 10
    assert len(second.warnings) == 1, second.warnings
    text = second.warnings[0]
    assert text.startswith("Nothing selected: n_samples_meaning 'total'") and "n_samples=5" in text
    assert "Fix:" in text and "n_samples_meaning 'new'" in text


def test_a_sequence_length_on_images_warns(tmp_path: Path) -> None:
    """(b) ``selected_sequence_length: 2`` on an image-only folder: 0 selected, the reason only in the report."""
    make_folder(tmp_path / "src", _names("img", 12))
    summary = run(tmp_path / "src", tmp_path / "pool", "r1", {"n_samples": 4, "strategies": [DIVERSITY]},
                  selected_sequence_length=2)
    assert summary.selected == 0
    assert len(summary.warnings) == 1, summary.warnings
    text = summary.warnings[0]
    assert "Nothing selected: worker_config.selected_sequence_length=2" in text
    assert "none of the 12 candidates" in text and "0 are video frames, 12 are images" in text
    assert "Fix: remove selected_sequence_length" in text


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({C.KEY: [f"f{i:03d}" for i in range(n)],
                     C.EMBEDDING: pa.array(rng.normal(size=(n, DIM)).astype(np.float32).tolist(),
                                           pa.list_(pa.float32())),
                     C.metadata_column("lightly.sharpness"): pa.array(rng.uniform(size=n))})


def test_a_proportion_below_one_sample_selects_one_and_says_so() -> None:
    """(c) ``proportion_samples: 0.01`` of 50 candidates selected nothing ("selected 0 of 50 (n_reached)")
    while ``proportion_samples: 0`` is refused because it would select nothing."""
    config = parse_selection_config({"proportion_samples": 0.01, "strategies": [DIVERSITY]})
    table = _table(50)
    result = select(table, config)
    assert len(result.keys) == 1 and result.metrics["n_target"] == 1
    warnings = selection_warnings(table, config, result.metrics)
    assert warnings == ["proportion_samples=0.01 of 50 candidates is 0.5 samples, less than one: selected 1, the "
                        "least a proportion above 0 selects (docs/lightly-compat.md). Fix: give n_samples for an "
                        "exact count, or a larger proportion_samples."]
    # A proportion of at least one sample is floored as before, with no warning.
    config = parse_selection_config({"proportion_samples": 0.05, "strategies": [DIVERSITY]})
    result = select(table, config)
    assert len(result.keys) == 2 and selection_warnings(table, config, result.metrics) == []


def test_the_select_cli_selects_one_and_logs_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import pyarrow.parquet as pq

    from lightly_airflow.cli import main

    pq.write_table(_table(50), tmp_path / "s.parquet")
    (tmp_path / "c.json").write_text(json.dumps({"proportion_samples": 0.01, "strategies": [DIVERSITY]}))
    with caplog.at_level("INFO"):
        assert main(["select", "--samples", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.json"),
                     "--out", str(tmp_path / "o.parquet")]) == 0
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 1
    assert "selected 1 of 50 samples" in caplog.text and "less than one: selected 1" in caplog.text


def test_thresholds_that_leave_nothing_warn() -> None:
    config = parse_selection_config({"n_samples": 5, "strategies": [DIVERSITY, {
        "input": {"type": "METADATA", "key": "lightly.sharpness"},
        "strategy": {"type": "THRESHOLD", "threshold": 2, "operation": "BIGGER"}}]})
    table = _table(20)
    result = select(table, config)
    assert result.keys == []
    assert selection_warnings(table, config, result.metrics) == [
        "Nothing selected: the THRESHOLD strategies left none of the 20 candidates (a candidate without the input "
        "fails the filter). Fix: loosen the thresholds, or check the inputs' values in the report."]


# --------------------------------------------------------------------- n_samples_meaning total: the run's target
def test_n_samples_meaning_total_misses_no_goal_when_the_new_picks_are_made(tmp_path: Path) -> None:
    """``n_samples: 8`` in total with 5 selected before asks this run for 3 new picks: the report's "Missed goals"
    and the ``lightly.run.goals_missed`` gauge compared the 3 with 8 ("select 8 samples, selected 3"), also in the
    report rebuilt from the pool after a worker died past the commit."""
    import shutil

    from lightly_airflow.pipeline import select_and_commit

    src, pool = tmp_path / "src", tmp_path / "pool"
    make_folder(src, _names("a", 10))
    assert run(src, pool, "r1", {"n_samples": 5, "strategies": [DIVERSITY]}).selected == 5
    make_folder(src, _names("b", 10), seed=1)
    config = {"n_samples": 8, "strategies": [DIVERSITY]}
    second = run(src, pool, "r2", config, active_learning={"n_samples_meaning": "total"})
    assert (second.selected, second.n_wanted, second.pool_selected_before) == (3, 3, 5)
    assert second.goals_missed == 0 and second.warnings == []
    page = Path(second.report_uri.removeprefix("file://"))
    assert "Missed goals" not in page.read_text()
    from lightly_airflow.datapool import Datapool

    assert Datapool(str(pool)).history()[-1]["counts"]["wanted"] == 3
    shutil.rmtree(page.parent)  # (the report is rebuilt from the pool: the commit recorded the run's target)
    again = select_and_commit(datapool_uri=str(pool), run_id="r2", dag_id="t", manifests=[], selection_config=config)
    assert again.already_committed and again.n_wanted == 3 and again.goals_missed == 0
    assert "Missed goals" not in page.read_text()


def test_n_samples_meaning_total_names_a_real_miss_with_the_new_picks(tmp_path: Path) -> None:
    """Fewer candidates than the new picks asked for: the miss counts against the new picks, not n_samples."""
    src, pool = tmp_path / "src", tmp_path / "pool"
    make_folder(src, _names("a", 10))
    run(src, pool, "r1", {"n_samples": 5, "strategies": [DIVERSITY]})
    make_folder(src, _names("b", 2), seed=1)
    second = run(src, pool, "r2", {"n_samples": 9, "strategies": [DIVERSITY]},
                 active_learning={"n_samples_meaning": "total"})
    assert (second.selected, second.n_wanted, second.goals_missed) == (2, 4, 1)
    html = Path(second.report_uri.removeprefix("file://")).read_text()
    assert "select 4 new samples (n_samples 9 in total, 5 selected before)" in html
    assert "only 2 candidates" in html and "select 9 samples" not in html


# ------------------------------------------------------------------------------ stop reasons: why, and the fix
def test_every_stop_reason_says_why_nothing_was_selected_and_the_fix() -> None:
    """The one table of :func:`pipeline._nothing_selected`: a message and a fix for every stop reason."""
    from lightly_airflow.pipeline import _NOTHING_SELECTED
    from lightly_airflow.selection.engine import StopReason

    assert set(_NOTHING_SELECTED) == {r.value for r in StopReason}
    config = parse_selection_config({"n_samples": 5, "strategies": [DIVERSITY]})
    for reason in StopReason:
        [text] = selection_warnings(_table(7), config, {}, stop=reason, n_selected=0)
        assert text.startswith("Nothing selected: ") and ". Fix: " in text and "{" not in text, (reason, text)
        assert selection_warnings(_table(7), config, {}, stop=reason, n_selected=1) == []  # (it selected)
    # A reason this version does not know (an older pool's record): the generic message, not a crash.
    assert selection_warnings(_table(7), config, {"stop_reason": "gone fishing", "n_selected": 0}) == [
        "Nothing selected from 7 candidates: the selection stopped at once (gone fishing). Fix: check the stopping "
        "conditions (stopping_condition_minimum_distance, stopping_condition_max_sum, "
        "stopping_condition_minimum_typicality) and n_samples / proportion_samples."]


def _stop(table: pa.Table, config: dict[str, Any], preselected: pa.Table | None = None) -> tuple[Any, list[str]]:
    """The engine's typed stop reason and the run's warnings, for a selection that picks nothing."""
    result = select(table, config, preselected=preselected)
    assert result.keys == [] and result.metrics["stop_reason"] == result.stop_reason.value
    return result.stop_reason, selection_warnings(table, parse_selection_config(config), result.metrics)


def test_the_engine_says_which_step_left_nothing() -> None:
    from lightly_airflow.selection.engine import StopReason

    no_embeddings = _table(6).set_column(1, C.EMBEDDING, pa.nulls(6, pa.list_(pa.float32())))
    reason, [text] = _stop(no_embeddings, {"n_samples": 2, "strategies": [DIVERSITY]})
    assert reason is StopReason.NO_EMBEDDINGS
    assert text.startswith("Nothing selected: none of the 6 candidates has an embedding") and "Fix: check the embed" in text
    reason, [text] = _stop(_table(0), {"n_samples": 2, "strategies": [DIVERSITY]})
    assert reason is StopReason.NO_CANDIDATES and text.startswith("Nothing selected: this run has no candidates")
    threshold = {"input": {"type": "METADATA", "key": "lightly.sharpness"},
                 "strategy": {"type": "THRESHOLD", "threshold": 2, "operation": "BIGGER"}}
    reason, [text] = _stop(no_embeddings, {"n_samples": 2, "strategies": [DIVERSITY, threshold]})
    assert reason is StopReason.THRESHOLDS_LEFT_NONE  # (the filters alone leave none: they are named first)
    assert text.startswith("Nothing selected: the THRESHOLD strategies left none of the 6 candidates")


def test_a_stopping_condition_met_before_the_first_pick_is_named_with_its_value() -> None:
    from lightly_airflow.selection.engine import StopReason

    table = _table(8)
    near = {"input": {"type": "EMBEDDINGS"},
            "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.5}}
    reason, [text] = _stop(table, {"n_samples": 3, "strategies": [near]}, preselected=table.select([C.KEY, C.EMBEDDING]))
    assert reason is StopReason.MINIMUM_DISTANCE
    assert "closer to a sample selected before" in text and "strategies[0] stopping_condition_minimum_distance=0.5" in text
    assert "Fix: lower stopping_condition_minimum_distance" in text
    weights = {"input": {"type": "METADATA", "key": "lightly.sharpness"},
               "strategy": {"type": "WEIGHTS", "stopping_condition_max_sum": 0.0001}}
    reason, [text] = _stop(table, {"n_samples": 3, "strategies": [DIVERSITY, weights]})
    assert reason is StopReason.MAX_SUM and "strategies[1] stopping_condition_max_sum=0.0001" in text
    assert "Fix: raise stopping_condition_max_sum" in text
    typical = {"input": {"type": "EMBEDDINGS"},
               "strategy": {"type": "TYPICALITY", "stopping_condition_minimum_typicality": 0.99,
                            "num_nearest_neighbors": 3}}  # (of 8 candidates: Lightly's 20 would add a warning)
    reason, [text] = _stop(table, {"n_samples": 3, "strategies": [typical]})
    assert reason is StopReason.MINIMUM_TYPICALITY and "stopping_condition_minimum_typicality=0.99" in text
    assert "Fix: lower stopping_condition_minimum_typicality" in text


def test_sequences_of_images_stop_with_their_own_reason() -> None:
    from lightly_airflow.selection.engine import StopReason
    from lightly_airflow.selection.sequences import select_sequences

    result = select_sequences(_table(6), {"n_samples": 4, "strategies": [DIVERSITY]}, 2)
    assert result.stop_reason is StopReason.NO_COMPLETE_SEQUENCES
    assert result.metrics["stop_reason"] == "no_complete_sequences"
    config = parse_selection_config({"n_samples": 4, "strategies": [DIVERSITY]})
    [text] = selection_warnings(_table(6), config, result.metrics, stop=result.stop_reason, n_selected=0)
    assert text.startswith("Nothing selected: worker_config.selected_sequence_length=2") and "6 left out" in text


def test_a_missed_boolean_class_names_the_input_its_candidates_lack() -> None:
    """A BALANCE class of a boolean field ('True') was looked up as Arrow's 'true': "No candidate of this run has
    it." instead of the input every night candidate lacks."""
    n = 20
    night = [i % 4 == 0 for i in range(n)]
    score = C.score_column("det", "uncertainty_margin")
    table = _table(n).append_column(C.metadata_column("is_night"), pa.array(night, pa.bool_())).append_column(
        score, pa.array([None if v else 0.5 for v in night], pa.float64()))
    config = {"n_samples": 8, "strategies": [
        {"input": {"type": "SCORES", "task": "det", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "is_night"},
         "strategy": {"type": "BALANCE", "target": {"true": 0.5, "false": 0.5}, "strength": 0.01}}]}
    result = select(table, config)
    [line] = [w for w in selection_warnings(table, parse_selection_config(config), result.metrics) if "'True'" in w]
    assert f"All 5 of its candidates lack {score!r}" in line, line
