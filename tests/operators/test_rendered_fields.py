"""A user's DAG without ``render_template_as_native_obj=True``: Airflow renders a templated list or dict argument
(``"{{ ti.xcom_pull(task_ids='list_new_files') }}"``, ``"{{ params.selection_config }}"``) as text, the value's
Python repr. The select task iterated that text by character ("Manifest shard [ is missing"), and the configs
failed as "not valid JSON"; an unset optional param rendered as ``"None"`` failed the same way, or was taken as
text: a tag named "None", a ``.lightly/`` folder named "None" (its predictions silently not read)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from lightly_airflow.demo import Batch, add_batch
from lightly_airflow.operators.embed import EmbedPodOperator, EmbedShardOperator
from lightly_airflow.operators.list_files import ListNewFilesOperator
from lightly_airflow.operators.select import SelectAndCommitOperator
from lightly_airflow.operators.stages import ComputeMetadataOperator, LoadPredictionsOperator

# As in Lightly's docs: Python's repr of these has True/False/None, which JSON does not read.
SELECTION = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
WORKER = {"enable_training": False, "datasource": {"process_all": True}, "relevant_filenames_file": None}
LIGHTLY = {"loader": {"batch_size": 4, "shuffle": True, "num_workers": 0, "drop_last": True}}
PULL = "{{ ti.xcom_pull(task_ids='list_new_files') }}"
OVERRIDES = "{{ ti.xcom_pull(task_ids='list_new_files', key='embed_overrides') }}"


class _TaskInstance:
    """What the operators push and the templates pull: one run's XComs."""

    def __init__(self) -> None:
        self.xcoms: dict[tuple[str, str], Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms["list_new_files", key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: object) -> Any:
        return self.xcoms.get((task_ids or "list_new_files", key))


def _render(op: Any, dag: DAG, ti: _TaskInstance) -> None:
    """Render ``op``'s templates as the task runner does: the DAG's Jinja environment (not native here)."""
    op.render_template_fields({"ti": ti, "params": dag.params.dump(), "run_id": "r1", "dag": dag},
                              jinja_env=dag.get_template_env())


def _user_dag(**params: Any) -> DAG:
    return DAG("user_dag", schedule=None, start_date=datetime(2026, 1, 1), params=params)


def test_a_dag_without_native_rendering_runs_with_list_and_config_templates(tmp_path: Path) -> None:
    source, pool = tmp_path / "images", tmp_path / "pool"
    keys = add_batch(source, Batch("few", (0, 8), ()))
    common = {"datapool_uri": str(pool)}
    ti = _TaskInstance()
    with _user_dag(selection_config=SELECTION, worker_config=WORKER, lightly_config=LIGHTLY,
                   active_learning=None, tag_name=None, lightly_uri=None, output_uri=None) as dag:
        listing = ListNewFilesOperator(
            task_id="list_new_files", datasource_uri=str(source), lightly_uri="{{ params.lightly_uri }}",
            tag_name="{{ params.tag_name }}", selection_config="{{ params.selection_config }}",
            worker_config="{{ params.worker_config }}", lightly_config="{{ params.lightly_config }}",
            active_learning="{{ params.active_learning }}", **common)
        select = SelectAndCommitOperator(
            task_id="select_and_commit", manifests=PULL, selection_config="{{ params.selection_config }}",
            worker_config="{{ params.worker_config }}", lightly_config="{{ params.lightly_config }}",
            active_learning="{{ params.active_learning }}", tag_name="{{ params.tag_name }}", **common)
    assert not dag.render_template_as_native_obj
    _render(listing, dag, ti)
    assert isinstance(listing.worker_config, str) and "'process_all': True" in listing.worker_config
    assert listing.active_learning == "None"
    manifests = listing.execute({"run_id": "r1", "ti": ti, "dag_run": None})
    ti.xcoms["list_new_files", "return_value"] = manifests
    assert ti.xcoms["list_new_files", "embed_overrides"] == {"batch_size": 4, "num_workers": 0}
    for i, manifest in enumerate(manifests):
        embed = EmbedShardOperator(task_id=f"embed_{i}", manifest_uri=manifest, device="cpu",
                                   option_overrides=OVERRIDES, output_uri="{{ params.output_uri }}", dag=dag, **common)
        pod = EmbedPodOperator(task_id=f"embed_pod_{i}", manifest_uri=manifest, option_overrides=OVERRIDES,
                               output_uri="{{ params.output_uri }}", dag=dag)
        for op in (embed, pod):
            _render(op, dag, ti)
            assert op.option_overrides == "{'batch_size': 4, 'num_workers': 0}"  # Python's repr, not JSON
            assert op.output_uri == "None" and op.embed_options().batch_size == 4
        assert "--output" not in pod.embed_arguments()  # not a file named "None" in the pod
        counts = embed.execute({})
        assert counts["total"] > 0 and counts["output_uri"].endswith(f"/embeddings/shard-{i:05d}.parquet")
        stages = [cls(task_id=f"{cls.__name__}_{i}", manifest_uri=manifest, lightly_uri="{{ params.lightly_uri }}",
                      dag=dag, **common) for cls in (ComputeMetadataOperator, LoadPredictionsOperator)]
        for op in stages:
            _render(op, dag, ti)
            assert op.lightly_uri == "None"
        stages[0].execute({})
        predictions = stages[1].execute({})
        assert predictions["with_predictions"] == predictions["files"] > 0  # the datasource's .lightly/ was read

    _render(select, dag, ti)
    assert select.manifests == str(manifests) and select.worker_config.startswith("{'enable_training': False")
    summary = select.execute({"run_id": "r1", "dag": dag})
    assert summary["version"] == 1 and summary["processed"] == len(keys) and summary["selected"] == 3
    assert not summary["dry_run"] and summary["tag"] == "r1"  # "None": no tag given, the run id (not "None")
    assert select.manifests == manifests and select.selection_config == SELECTION and select.active_learning is None


@pytest.mark.parametrize(("field", "text", "problem"), [
    ("manifests", "s3://pool/_staging/r1/manifest/shard-00000.parquet", "neither JSON"),  # one URI, not a list
    ("manifests", "{'a': 1}", "holds dict, not a list"),
    ("selection_config", "{'n_samples': 3, 'strategies': [", "neither JSON"),
    ("selection_config", "[{'n_samples': 3}]", "holds list, not an object"),
    ("worker_config", "{'datasource': {'process_all': true}}", "neither JSON"),  # JSON's true in a Python repr
])
def test_rendered_text_that_is_no_list_or_object_fails_naming_the_field_and_the_fix(
        tmp_path: Path, field: str, text: str, problem: str) -> None:
    args: dict[str, Any] = {"manifests": [], "selection_config": SELECTION, field: "{{ params.value }}"}
    with _user_dag(value=text) as dag:
        op = SelectAndCommitOperator(task_id="select_and_commit", datapool_uri=str(tmp_path / "pool"), **args)
    _render(op, dag, _TaskInstance())
    with pytest.raises(AirflowFailException) as err:  # for good: a retry renders the same text
        op.execute({"run_id": "r1", "dag": dag})
    message = str(err.value)
    assert message.startswith(f"select_and_commit: {field}: the text {text[:80]!r}") and problem in message
    assert "render_template_as_native_obj=True" in message and "| tojson" in message


def test_the_sensor_reads_its_rendered_configs_back(tmp_path: Path) -> None:
    """The wait-for-new-files sensor, the first task, validates the same templated configs."""
    from lightly_airflow.sensors import NewFilesSensor

    source = tmp_path / "images"
    keys = add_batch(source, Batch("few", (0, 4), ()))
    with _user_dag(selection_config=SELECTION, worker_config=None, lightly_config=LIGHTLY, lightly_uri=None) as dag:
        sensor = NewFilesSensor(
            task_id="wait_for_new_files", datasource_uri=str(source), datapool_uri=str(tmp_path / "pool"), wait=False,
            selection_config="{{ params.selection_config }}", worker_config="{{ params.worker_config }}",
            lightly_config="{{ params.lightly_config }}", lightly_uri="{{ params.lightly_uri }}")
    _render(sensor, dag, _TaskInstance())
    assert sensor.worker_config == "None" and sensor.selection_config.startswith("{'n_samples': 3")
    assert sensor.execute({})["new"] == len(keys)


@pytest.mark.parametrize("tag", ["20240601", "2024.10", "1_000", "1e3", "0x10"])
def test_a_native_dag_keeps_the_tag_the_user_gave(tmp_path: Path, tag: str) -> None:
    """With ``render_template_as_native_obj=True`` (the example DAG) Jinja reads rendered text as a Python literal:
    a tag_name "20240601" became an int (refused as "Invalid tag name 20240601"), "2024.10" the float 2024.1 and
    "1_000" the int 1000 (the run silently tagged "2024.1", "1000"). The operators render their text arguments
    as text: the tag committed is the tag given, also inside the active-learning options and without ``{{ }}``."""
    source, pool = tmp_path / "images", tmp_path / "pool"
    add_batch(source, Batch("few", (0, 6), ()))
    ti = _TaskInstance()
    al = {"query_tag_name": "{{ params.query_tag }}", "preselected_tag_name": "0.50", "n_samples_meaning": "new"}
    with DAG("native", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True,
             params={"tag_name": tag, "query_tag": "1.50", "selection_config": SELECTION}) as dag:
        common: dict[str, Any] = {"datapool_uri": str(pool), "selection_config": "{{ params.selection_config }}",
                                  "tag_name": "{{ params.tag_name }}"}
        listing = ListNewFilesOperator(task_id="list_new_files", datasource_uri=str(source), active_learning=al,
                                       **common)
        select = SelectAndCommitOperator(task_id="select_and_commit", manifests=PULL, **common)
        literal = SelectAndCommitOperator(task_id="literal", manifests=PULL, **common | {"tag_name": tag})
    for op in (listing, literal):  # (rendering is in place: select renders once the listing's XCom is there)
        _render(op, dag, ti)
        assert op.tag_name == tag and op.selection_config == SELECTION  # dicts stay native
    assert listing.active_learning == {"query_tag_name": "1.50", "preselected_tag_name": "0.50",
                                       "n_samples_meaning": "new"}
    listing.active_learning = None  # the query tag names no tag of this new pool
    ti.xcoms["list_new_files", "return_value"] = listing.execute({"run_id": "r1", "ti": ti, "dag_run": None})
    for manifest in ti.xcoms["list_new_files", "return_value"]:
        for cls in (EmbedShardOperator, ComputeMetadataOperator, LoadPredictionsOperator):
            cls(task_id=cls.__name__, manifest_uri=manifest, datapool_uri=str(pool)).execute({})
    _render(select, dag, ti)
    assert select.tag_name == tag and select.execute({"run_id": "r1", "dag": dag})["tag"] == tag


def test_a_mapped_task_renders_its_text_arguments_as_text() -> None:
    """A mapped task renders through ``MappedOperator.render_template_fields`` (the unmapped task's fields)."""
    with DAG("native", schedule=None, start_date=datetime(2026, 1, 1), render_template_as_native_obj=True,
             params={"lightly_uri": "2024.10"}) as dag:
        mapped = LoadPredictionsOperator.partial(task_id="predictions", datapool_uri="/pool",
                                                 lightly_uri="{{ params.lightly_uri }}").expand(manifest_uri=["a", "b"])

    class _Ti:
        map_index = 1

    class _Run:
        conf: dict[str, Any] = {}

    context: dict[str, Any] = {"params": dag.params.dump(), "run_id": "r1", "dag": dag, "ti": _Ti(), "task": mapped,
                               "dag_run": _Run()}
    mapped.render_template_fields(context)  # type: ignore[arg-type]
    assert context["task"].lightly_uri == "2024.10" and context["task"].manifest_uri == "b"
