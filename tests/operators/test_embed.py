"""Embed operators: the pod request built offline, mapping over shards, and local mode on real images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow.parquet as pq
import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk import DAG
from kubernetes.client import models as k8s
from PIL import Image
from skimage import data

from lightly_airflow.cli import build_parser
from lightly_airflow.columns import DATASOURCE_URI_METADATA_KEY, EMBEDDING, KEY
from lightly_airflow.embedding.options import EmbedOptions, embed_command
from lightly_airflow.operators.embed import (
    EmbedPodOperator,
    EmbedShardOperator,
    embed_operator_class,
)

MANIFEST = "s3://pool/_staging/manual__1-abc/manifest/shard-00003.parquet"


def _pod(op: EmbedPodOperator) -> k8s.V1Pod:
    with mock.patch.object(KubernetesHook, "_get_default_client"):
        return op.build_pod_request_obj()


def _base_container(pod: k8s.V1Pod) -> k8s.V1Container:
    return next(c for c in pod.spec.containers if c.name == "base")


def test_pod_request_runs_the_cli_on_a_gpu_node() -> None:
    op = EmbedPodOperator(
        task_id="embed", manifest_uri=MANIFEST, image="registry.example/lightly-worker:1.2", gpus=2, cpu="8",
        memory="32Gi", node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        service_account_name="lightly-embedder", env_vars={"AWS_REGION": "eu-west-1"}, namespace="curation",
        model="resnet-50", weights_uri="s3://models/r50.pth", dim=256,
    )
    pod = _pod(op)
    container = _base_container(pod)
    assert container.image == "registry.example/lightly-worker:1.2"
    assert container.command == ["lightly-airflow"]
    assert container.args == [
        "embed", "--manifest", MANIFEST, "--model", "resnet-50", "--input-size", "64", "--weights",
        "s3://models/r50.pth", "--dim", "256", "--device", "cuda", "--batch-size", "256", "--loader", "auto", "--precision", "auto",
        "--xcom-return",
    ]
    assert container.resources.limits == {"nvidia.com/gpu": "2", "cpu": "8", "memory": "32Gi"}
    assert container.resources.requests == {"cpu": "8", "memory": "32Gi"}
    env = {e.name: e.value for e in container.env}
    assert env["AWS_REGION"] == "eu-west-1" and env["PYTHONUNBUFFERED"] == "1"
    assert [(t.key, t.operator, t.value, t.effect) for t in pod.spec.tolerations] == [
        ("dedicated", "Equal", "gpu", "NoSchedule")]
    assert pod.spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod.spec.service_account_name == "lightly-embedder"
    assert pod.metadata.namespace == "curation"
    # The xcom sidecar reads /airflow/xcom/return.json, which the CLI writes with --xcom-return.
    assert any(m.mount_path == "/airflow/xcom" for m in container.volume_mounts)
    assert op.do_xcom_push is True and op.deferrable is True


def test_pod_arguments_are_accepted_by_the_cli_parser() -> None:
    options = EmbedOptions(
        model="resnet-18", input_size=96, weights_uri="gs://m/w.pth", dim=128, device="cuda", batch_size=512,
        num_workers=6, reuse_uri="s3://pool/reuse.parquet", embeddings_csv=None, loader="threads",
    )
    args = embed_command(MANIFEST, options, output_uri="s3://pool/out.parquet", xcom_return=True)
    ns = build_parser(only="embed").parse_args(args)
    assert (ns.manifest, ns.output, ns.xcom_return) == (MANIFEST, "s3://pool/out.parquet", True)
    assert EmbedOptions.from_args(ns) == options  # every option survives the pod's command line
    assert EmbedOptions.from_args(build_parser(only="embed").parse_args(["embed", "--manifest", MANIFEST])) == EmbedOptions()
    assert callable(ns.func)


def test_every_embed_option_is_an_operator_argument_and_a_cli_flag() -> None:
    """The option list is written once (EmbedOptions): both operators and the CLI take exactly its fields."""
    import inspect

    for op in (EmbedShardOperator, EmbedPodOperator):
        params = inspect.signature(op.__init__).parameters
        assert set(EmbedOptions.names()) <= set(params), op
    assert inspect.signature(EmbedPodOperator.__init__).parameters["batch_size"].default == 256
    assert inspect.signature(EmbedShardOperator.__init__).parameters["batch_size"].default == 32
    every = EmbedOptions(model="resnet-34", input_size=80, weights_uri="s3://w", dim=64, device="cuda:1", batch_size=7,
                         num_workers=0, loader="processes", reuse_uri="s3://r", embeddings_csv="s3://c.csv")
    shard = EmbedShardOperator(task_id="s", manifest_uri=MANIFEST, **every.to_dict())
    pod = EmbedPodOperator(task_id="p", manifest_uri=MANIFEST, **every.to_dict())
    assert shard.embed_options() == pod.embed_options() == every
    ns = build_parser(only="embed").parse_args(pod.embed_arguments())
    assert EmbedOptions.from_args(ns) == every
    with pytest.raises(ValueError, match="batch_size"):  # a bad literal option fails when the DAG is parsed
        EmbedShardOperator(task_id="bad", manifest_uri=MANIFEST, batch_size=0)
    with pytest.raises(ValueError, match="Unknown embedding option"):
        EmbedOptions.from_mapping({"modle": "resnet-18"})


def test_what_the_encoder_would_refuse_after_a_runs_listing_is_refused_with_the_options() -> None:
    """Model, input size, dimension and the ResNets' weights are checked where the options are made (the
    operator at DAG parse time, the CLI): the encoder used to refuse them in every run's embed tasks."""
    with pytest.raises(ValueError, match=r"model='efficientnet-lit0' is invalid: Unknown embedding model .*resnet-152"):
        EmbedOptions(model="efficientnet-lit0")
    for size in (8, 31, 1025):
        with pytest.raises(ValueError, match=f"input_size={size} is invalid: use an integer from 32 to 1024"):
            EmbedOptions(input_size=size)
    assert EmbedOptions(input_size=32).input_size == 32 and EmbedOptions(input_size=1024).input_size == 1024
    with pytest.raises(ValueError, match="feature dimension 1280"):
        EmbedOptions(dim=1281)
    with pytest.raises(ValueError, match="feature dimension 512"):
        EmbedOptions(model="resnet-18", dim=513, weights_uri="s3://w.pth")
    assert EmbedOptions(model="ResNet50", dim=2048, weights_uri="s3://w.pth").dim == 2048
    with pytest.raises(ValueError, match="'resnet-50' needs weights_uri"):
        EmbedOptions(model="resnet-50")
    assert EmbedOptions(model="resnet-50", embeddings_csv="s3://e.csv").model == "resnet-50"  # (the CSV replaces it)
    # An operator whose URIs are templates (rendered at run time) still checks its literal options when built.
    with pytest.raises(ValueError, match="Unknown embedding model 'no-such-model'"):
        EmbedShardOperator(task_id="m", manifest_uri=MANIFEST, model="no-such-model", reuse_uri="{{ ti.xcom_pull() }}")
    EmbedPodOperator(task_id="r", manifest_uri=MANIFEST, model="resnet-50", weights_uri="{{ params.weights }}")
    # Mapped tasks are built only when a run expands them: their partial() checks the literal options.
    from airflow.sdk import DAG

    with DAG("mapped", schedule=None):
        with pytest.raises(ValueError, match="Unknown embedding model 'no-such-model'"):
            EmbedShardOperator.partial(task_id="ms", model="no-such-model", reuse_uri="{{ x }}")
        with pytest.raises(ValueError, match="feature dimension 512"):
            EmbedPodOperator.partial(task_id="mp", model="resnet-18", dim=600, weights_uri="{{ params.w }}")
        mapped = EmbedPodOperator.partial(task_id="ok", model="resnet-18", weights_uri="{{ params.w }}").expand(
            manifest_uri=[MANIFEST])
        assert mapped.partial_kwargs["model"] == "resnet-18"
        with pytest.raises(TypeError, match="not Tasks"):  # (as Airflow's own partial: classes only)
            EmbedShardOperator(task_id="t", manifest_uri=MANIFEST).partial(task_id="u")


def test_default_gpu_toleration_and_cpu_pods() -> None:
    gpu = _pod(EmbedPodOperator(task_id="g", manifest_uri=MANIFEST))
    assert [(t.key, t.operator, t.effect) for t in gpu.spec.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert _base_container(gpu).resources.limits == {"nvidia.com/gpu": "1"}
    cpu_op = EmbedPodOperator(task_id="c", manifest_uri=MANIFEST, gpus=0, batch_size=32)
    cpu = _pod(cpu_op)
    assert not cpu.spec.tolerations
    assert not (_base_container(cpu).resources.limits or {})
    assert _base_container(cpu).args[_base_container(cpu).args.index("--device") + 1] == "cpu"
    with pytest.raises(ValueError, match="gpus"):
        EmbedPodOperator(task_id="x", manifest_uri=MANIFEST, gpus=-1)


def test_deferrable_follows_the_lightly_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EmbedPodOperator(task_id="a", manifest_uri=MANIFEST).deferrable is True
    monkeypatch.setenv("AIRFLOW__LIGHTLY__DEFAULT_DEFERRABLE", "False")
    assert EmbedPodOperator(task_id="b", manifest_uri=MANIFEST).deferrable is False
    assert EmbedPodOperator(task_id="c", manifest_uri=MANIFEST, deferrable=True).deferrable is True


def test_pod_operator_maps_over_manifest_shards() -> None:
    shards = [MANIFEST.replace("00003", f"{i:05d}") for i in range(3)]
    with DAG(dag_id="embed_mapped", schedule=None):
        mapped = EmbedPodOperator.partial(
            task_id="embed", image="w:1", gpus=1, node_selector={"pool": "gpu"}, datapool_uri="s3://pool",
        ).expand(manifest_uri=shards)
    for shard in shards:
        pod = _pod(mapped.unmap({"manifest_uri": shard}))
        container = _base_container(pod)
        assert container.args[:3] == ["embed", "--manifest", shard]
        assert container.image == "w:1" and container.resources.limits == {"nvidia.com/gpu": "1"}
        assert pod.spec.node_selector == {"pool": "gpu"}


def test_templated_manifest_is_rendered_into_the_arguments() -> None:
    with DAG(dag_id="embed_templated", schedule=None):
        op = EmbedPodOperator(task_id="embed", manifest_uri="{{ params.shard }}", output_uri="{{ params.out }}")
    op.render_template_fields({"params": {"shard": MANIFEST, "out": "s3://pool/x.parquet"}})
    args = _base_container(_pod(op)).args
    assert args[:5] == ["embed", "--manifest", MANIFEST, "--output", "s3://pool/x.parquet"]


def test_execution_mode_picks_the_operator() -> None:
    assert embed_operator_class("local") is EmbedShardOperator
    assert embed_operator_class("kubernetes") is EmbedPodOperator
    with pytest.raises(ValueError, match="local"):
        embed_operator_class("ray")


# --------------------------------------------------------------------------------------------- local mode
def _write_shard(tmp_path: Path) -> tuple[str, list[str]]:
    import pyarrow as pa

    root = tmp_path / "images"
    root.mkdir()
    keys = []
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera"):
        Image.fromarray(getattr(data, name)()).save(root / f"{name}.jpg", quality=90)
        keys.append(f"{name}.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    keys.append("broken.jpg")
    table = pa.table({
        "key": keys, "size": [(root / k).stat().st_size for k in keys], "etag": [f"e{i}" for i in range(len(keys))],
        "mtime": pa.array([0] * len(keys), pa.timestamp("us", tz="UTC")),
    }).replace_schema_metadata({DATASOURCE_URI_METADATA_KEY: json.dumps(root.as_uri())})
    manifest = tmp_path / "pool/_staging/run/manifest/shard-00000.parquet"
    manifest.parent.mkdir(parents=True)
    pq.write_table(table, manifest)
    return str(manifest), keys


def test_local_mode_mapped_over_shards_equals_the_cli(tmp_path: Path) -> None:
    manifest, keys = _write_shard(tmp_path)
    with DAG(dag_id="embed_local", schedule=None):
        mapped = EmbedShardOperator.partial(task_id="embed", datapool_uri=str(tmp_path / "pool"), num_workers=1).expand(
            manifest_uri=[manifest])
    counts = mapped.unmap({"manifest_uri": manifest}).execute(context={})
    assert counts["embedded"] == 5 and counts["corrupt"] == 1
    assert counts["output_uri"] == str(tmp_path / "pool/_staging/run/embeddings/shard-00000.parquet")
    local = pq.read_table(counts["output_uri"])

    # The pod's command line, run as a real process (CPU, same batch size).
    cli_out = tmp_path / "cli.parquet"
    xcom = tmp_path / "xcom/return.json"
    args = embed_command(manifest, EmbedOptions(device="cpu", batch_size=32), output_uri=str(cli_out), xcom_return=True)
    proc = subprocess.run(
        [sys.executable, "-m", "lightly_airflow.cli", *args, "--xcom-path", str(xcom)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pointer = json.loads(xcom.read_text())
    assert pointer["output_uri"] == str(cli_out) and pointer["embedded"] == 5 and pointer["model"] == counts["model"]
    assert "images/s" in proc.stderr  # progress log
    cli = pq.read_table(cli_out)
    assert cli[KEY].to_pylist() == local[KEY].to_pylist() == keys
    for a, b in zip(local[EMBEDDING].to_pylist(), cli[EMBEDDING].to_pylist()):
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    assert cli.equals(local)


def test_example_dags_embed_task_runs_locally_on_real_images(tmp_path: Path) -> None:
    import runpy

    manifest, keys = _write_shard(tmp_path)
    dag = runpy.run_path(str(Path(__file__).resolve().parents[2] / "dags/lightly_datapool.py"))["dag"]
    task = dag.get_task("embed_local")
    op = task.unmap({"manifest_uri": manifest})

    class _TaskInstance:  # what the templates pull: no known embeddings on the first run
        def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: object) -> object:
            return None

    params = {**dag.params.dump(), "datapool_uri": str(tmp_path / "pool")}
    op.render_template_fields({"params": params, "ti": _TaskInstance()})
    assert isinstance(op, EmbedShardOperator) and op.datapool_uri == str(tmp_path / "pool")
    counts = op.execute(context={})
    assert (counts["total"], counts["embedded"], counts["corrupt"]) == (len(keys), len(keys) - 1, 1)
    table = pq.read_table(counts["output_uri"])
    assert table[KEY].to_pylist() == keys


def test_example_dags_kubernetes_task_builds_a_gpu_pod_running_the_cli(tmp_path: Path) -> None:
    import runpy

    dag = runpy.run_path(str(Path(__file__).resolve().parents[2] / "dags/lightly_datapool.py"))["dag"]
    op = dag.get_task("embed_kubernetes").unmap({"manifest_uri": "s3://pool/_staging/run/manifest/shard-00003.parquet"})
    reuse = "s3://pool/_staging/run/reuse-embeddings.parquet"

    class _TaskInstance:  # what the templates pull: the pool's reusable embeddings of this run
        def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: object) -> object:
            return reuse if key == "reuse_uri" else None

    op.render_template_fields({"params": {**dag.params.dump(), "datapool_uri": "s3://pool"}, "ti": _TaskInstance()})
    container = _base_container(_pod(op))
    args = [*container.command, *container.args]
    assert "embed" in args
    assert args[args.index("--manifest") + 1] == "s3://pool/_staging/run/manifest/shard-00003.parquet"
    assert args[args.index("--reuse") + 1] == reuse
    assert str(container.resources.limits["nvidia.com/gpu"]) == "1"
    parsed = build_parser(only="embed").parse_args(args[args.index("embed"):])
    assert parsed.manifest.endswith("shard-00003.parquet") and EmbedOptions.from_args(parsed).reuse_uri == reuse


def test_a_local_folder_not_mounted_into_the_pod_fails_before_the_pod_is_made(tmp_path: Path) -> None:
    """A file:// datapool or datasource with execution_mode kubernetes: the pod cannot see the worker's disk."""
    from airflow.sdk.exceptions import AirflowFailException

    manifest, _ = _write_shard(tmp_path)
    with pytest.raises(AirflowFailException, match="the manifest shard .* local folder .* volume_mounts"):
        _pod(EmbedPodOperator(task_id="e", manifest_uri=manifest))
    # The pool is mounted, the datasource (also a local folder, named by the manifest) is not.
    pool = k8s.V1VolumeMount(name="pool", mount_path=str(tmp_path / "pool"))
    volume = k8s.V1Volume(name="pool", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name="p"))
    with pytest.raises(AirflowFailException, match=f"the datasource {tmp_path / 'images'} is a local folder"):
        _pod(EmbedPodOperator(task_id="e", manifest_uri=manifest, volumes=[volume], volume_mounts=[pool]))
    # Both mounted at the same paths: the pod is built.
    images = k8s.V1VolumeMount(name="pool", mount_path=str(tmp_path), sub_path=None)
    pod = _pod(EmbedPodOperator(task_id="e", manifest_uri=manifest, volumes=[volume], volume_mounts=[images]))
    assert _base_container(pod).args[:3] == ["embed", "--manifest", manifest]


@pytest.mark.parametrize("given", [
    [k8s.V1EnvVar(name="AWS_REGION", value="eu-west-1")],
    {"AWS_REGION": "eu-west-1"},
])
def test_pod_env_is_unbuffered_for_a_list_of_env_vars_as_for_a_dict(given: object) -> None:
    """A list of ``V1EnvVar`` (KubernetesPodOperator's other form) dropped the default PYTHONUNBUFFERED=1."""
    op = EmbedPodOperator(task_id="embed", manifest_uri=MANIFEST, image="w:1", env_vars=given)  # type: ignore[arg-type]
    env = {e.name: e.value for e in _base_container(_pod(op)).env}
    assert env == {"PYTHONUNBUFFERED": "1", "AWS_REGION": "eu-west-1"}


def test_pod_env_keeps_the_users_pythonunbuffered_in_a_list() -> None:
    secret = k8s.V1EnvVarSource(config_map_key_ref=k8s.V1ConfigMapKeySelector(name="cfg", key="unbuffered"))
    op = EmbedPodOperator(task_id="embed", manifest_uri=MANIFEST, image="w:1",
                          env_vars=[k8s.V1EnvVar(name="PYTHONUNBUFFERED", value_from=secret)])
    env = _base_container(_pod(op)).env
    assert [(e.name, e.value, e.value_from) for e in env] == [("PYTHONUNBUFFERED", None, secret)]
