"""Embed manifest shards: in the Airflow worker (``local``) or in a GPU pod (``kubernetes``).

Both run the same code: :class:`EmbedShardOperator` calls :func:`lightly_airflow.embedding.embed_shard`
in-process; :class:`EmbedPodOperator` runs ``lightly-airflow embed`` (which calls the same function) in a
KubernetesPodOperator pod. Map either over the manifest shards::

    EmbedPodOperator.partial(task_id="embed", image=IMAGE, gpus=1).expand(manifest_uri=list_task.output)
    EmbedShardOperator.partial(task_id="embed", datapool_uri=POOL).expand(manifest_uri=list_task.output)

Each returns the small counts dict (the pod writes it to ``/airflow/xcom/return.json``), never data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.configuration import conf
from kubernetes.client import models as k8s

from lightly_airflow import __version__
from lightly_airflow.operators.base import LightlyBaseOperator

DEFAULT_MODEL = "efficientnet-lite0"  # kept equal to lightly_airflow.embedding.DEFAULT_MODEL (no torch import here)
DEFAULT_WORKER_IMAGE = f"lightly-airflow-worker:{__version__}"
GPU_RESOURCE = "nvidia.com/gpu"
EXECUTION_MODES = ("local", "kubernetes")


def default_deferrable() -> bool:
    """``[lightly] default_deferrable`` (default True)."""
    return conf.getboolean("lightly", "default_deferrable", fallback=True)


def default_worker_image() -> str:
    """``[lightly] worker_image``, else ``$LIGHTLY_WORKER_IMAGE``, else ``lightly-airflow-worker:<version>``."""
    return conf.get("lightly", "worker_image", fallback=None) or os.environ.get("LIGHTLY_WORKER_IMAGE") or DEFAULT_WORKER_IMAGE


def embed_cli_arguments(
    manifest_uri: str, *, output_uri: str | None = None, model: str = DEFAULT_MODEL, input_size: int = 64,
    weights_uri: str | None = None, dim: int | None = None, device: str = "auto", batch_size: int = 32,
    num_workers: int | None = None, reuse_uri: str | None = None, embeddings_csv: str | None = None,
    loader: str = "auto", xcom_return: bool = True,
) -> list[str]:
    """The argument vector of ``lightly-airflow embed`` for these options (what the pod runs)."""
    args = ["embed", "--manifest", str(manifest_uri)]
    if output_uri:
        args += ["--output", str(output_uri)]
    args += ["--model", str(model), "--input-size", str(int(input_size)), "--device", str(device),
             "--batch-size", str(int(batch_size))]
    optional = (("--weights", weights_uri), ("--dim", dim), ("--num-workers", num_workers), ("--reuse", reuse_uri),
                ("--embeddings-csv", embeddings_csv))
    for flag, value in optional:
        if value is not None and value != "":
            args += [flag, str(value)]
    if loader != "auto":
        args += ["--loader", str(loader)]
    if xcom_return:
        args.append("--xcom-return")
    return args


class EmbedShardOperator(LightlyBaseOperator):
    """Embed one manifest shard in the Airflow worker (CPU or a local GPU); returns the counts.

    :param manifest_uri: the manifest shard (templated; map over shards with ``.expand(manifest_uri=...)``).
    :param output_uri: output file (templated); default: the shard's ``embeddings/`` sibling.
    :param model: ``efficientnet-lite0`` (default) or ``resnet-18`` … ``resnet-152``.
    :param input_size: square input side in pixels (default 64, Lightly's default).
    :param weights_uri: state dict on any store (required for the ResNets; read with the datapool connection).
    :param dim: output dimension (``None``: the model's).
    :param device: ``auto``, ``cpu``, ``cuda``.
    :param batch_size: images per forward pass.
    :param num_workers: decoding workers (``None``: from the cores; 0: in the main thread).
    :param reuse_uri: Parquet of known embeddings (``key, etag, embedding``) of the same model (templated).
    :param embeddings_csv: a Lightly custom embeddings CSV to use instead of a model (templated).
    :param loader: ``auto`` (threads on a CPU, processes on a GPU), ``threads`` or ``processes``.
    """

    template_fields: Sequence[str] = (
        *LightlyBaseOperator.template_fields, "manifest_uri", "output_uri", "weights_uri", "reuse_uri", "embeddings_csv",
    )
    ui_color = "#f6e7c8"

    def __init__(
        self,
        *,
        manifest_uri: str,
        output_uri: str | None = None,
        model: str = DEFAULT_MODEL,
        input_size: int = 64,
        weights_uri: str | None = None,
        dim: int | None = None,
        device: str = "auto",
        batch_size: int = 32,
        num_workers: int | None = None,
        reuse_uri: str | None = None,
        embeddings_csv: str | None = None,
        loader: str = "auto",
        datapool_uri: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(datapool_uri=datapool_uri, **kwargs)
        self.loader = loader
        self.manifest_uri = manifest_uri
        self.output_uri = output_uri
        self.model = model
        self.input_size = input_size
        self.weights_uri = weights_uri
        self.dim = dim
        self.device = device
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.reuse_uri = reuse_uri
        self.embeddings_csv = embeddings_csv

    def execute(self, context: Any) -> dict[str, Any]:
        from lightly_airflow.embedding.runner import embed_shard
        from lightly_airflow.storage import read_parquet

        pool_credentials = self.datapool_credentials
        reuse = read_parquet(self.reuse_uri, pool_credentials) if self.reuse_uri else None
        counts = embed_shard(
            self.manifest_uri,
            self.output_uri or None,
            model=self.model,
            input_size=self.input_size,
            weights_uri=self.weights_uri or None,
            dim=self.dim,
            device=self.device,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            credentials=pool_credentials,
            reuse=reuse,
            datasource_credentials=self.datasource_credentials,
            embeddings_csv=self.embeddings_csv or None,
            loader=self.loader,
        )
        self.log.info(
            "Embedded %s: %d computed, %d reused, %d corrupt, %d missing (%.1f images/s) -> %s",
            self.manifest_uri, counts["embedded"], counts["reused"], counts["corrupt"], counts["missing"],
            counts["images_per_s"], counts["output_uri"],
        )
        return counts


def _toleration(value: k8s.V1Toleration | Mapping[str, Any]) -> k8s.V1Toleration:
    if isinstance(value, k8s.V1Toleration):
        return value
    allowed = {"key", "operator", "value", "effect", "toleration_seconds"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"Toleration {dict(value)!r} has unknown keys {unknown}; allowed: {sorted(allowed)}.")
    return k8s.V1Toleration(**dict(value))


class EmbedPodOperator(KubernetesPodOperator):
    """Run ``lightly-airflow embed`` for one manifest shard in a (GPU) pod; returns the pod's counts pointer.

    Credentials inside the pod are ambient: give the pod a service account with workload identity (IRSA,
    GKE Workload Identity, Azure Workload Identity) or ``env_vars``/``secrets`` with the store's variables.

    :param manifest_uri: the manifest shard (templated; map over shards with ``.expand(manifest_uri=...)``).
    :param output_uri: output file (templated); default: the shard's ``embeddings/`` sibling.
    :param model: ``efficientnet-lite0`` (default, weights baked into the image) or ``resnet-18`` … ``resnet-152``.
    :param input_size: square input side in pixels.
    :param weights_uri: state dict on any store (templated).
    :param dim: output dimension (``None``: the model's).
    :param batch_size: images per forward pass (default 256 for a GPU).
    :param num_workers: decoding processes in the pod (``None``: from the pod's cores).
    :param reuse_uri: Parquet of known embeddings of the same model (templated).
    :param embeddings_csv: a Lightly custom embeddings CSV instead of a model (templated).
    :param loader: how the pod decodes: ``auto`` (processes on a GPU), ``threads`` or ``processes``.
    :param image: the worker image (``docker/worker/Dockerfile``); default :func:`default_worker_image`.
    :param gpus: GPUs per pod, requested as ``nvidia.com/gpu`` limits (0: CPU pod, ``--device cpu``).
    :param gpu_resource: the extended resource name of the GPU (``nvidia.com/gpu``, ``amd.com/gpu``).
    :param cpu: CPU request and limit (e.g. ``"4"``); ``None`` leaves it unset.
    :param memory: memory request and limit (e.g. ``"16Gi"``); ``None`` leaves it unset.
    :param node_selector: node labels the pod must run on (e.g. ``{"cloud.google.com/gke-accelerator": "nvidia-l4"}``).
    :param tolerations: V1Toleration objects or dicts; default tolerates the ``nvidia.com/gpu`` taint when
        ``gpus > 0``.
    :param service_account_name: the pod's service account (workload identity for the stores).
    :param deferrable: wait in the triggerer; default ``[lightly] default_deferrable`` (True).
    :param namespace: the pod's namespace; default ``$LIGHTLY_K8S_NAMESPACE`` or the connection's.
    :param datapool_uri: the datapool (informational here: the manifest locates the run's staging area).
    :param kwargs: any other KubernetesPodOperator argument (namespace, env_vars, secrets, labels, …).
    """

    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields, "manifest_uri", "output_uri", "weights_uri", "reuse_uri", "embeddings_csv",
        "datapool_uri",
    )
    ui_color = "#f6e7c8"

    def __init__(
        self,
        *,
        manifest_uri: str,
        output_uri: str | None = None,
        model: str = DEFAULT_MODEL,
        input_size: int = 64,
        weights_uri: str | None = None,
        dim: int | None = None,
        batch_size: int = 256,
        num_workers: int | None = None,
        reuse_uri: str | None = None,
        embeddings_csv: str | None = None,
        loader: str = "auto",
        image: str | None = None,
        gpus: int = 1,
        gpu_resource: str = GPU_RESOURCE,
        cpu: str | None = None,
        memory: str | None = None,
        node_selector: dict[str, str] | None = None,
        tolerations: Sequence[k8s.V1Toleration | Mapping[str, Any]] | None = None,
        service_account_name: str | None = None,
        deferrable: bool | None = None,
        name: str = "lightly-embed",
        do_xcom_push: bool = True,
        container_resources: k8s.V1ResourceRequirements | None = None,
        env_vars: dict[str, str] | list[k8s.V1EnvVar] | None = None,
        namespace: str | None = None,
        datapool_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise ValueError(f"gpus={gpus!r} is invalid: use 0 (CPU pod) or a positive number of GPUs per pod.")
        if container_resources is None:
            limits: dict[str, str] = {}
            requests: dict[str, str] = {}
            if gpus:
                limits[gpu_resource] = str(gpus)
            for resource, value in (("cpu", cpu), ("memory", memory)):
                if value:
                    limits[resource] = requests[resource] = str(value)
            container_resources = k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None)
        if tolerations is None:
            tolerations = [{"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"}] if gpus else []
        env: dict[str, str] | list[k8s.V1EnvVar]
        if env_vars is None or isinstance(env_vars, Mapping):
            env = {"PYTHONUNBUFFERED": "1", **dict(env_vars or {})}
        else:
            env = list(env_vars)
        super().__init__(
            image=image or default_worker_image(),
            namespace=namespace or os.environ.get("LIGHTLY_K8S_NAMESPACE") or None,
            cmds=["lightly-airflow"],
            arguments=[],
            name=name,
            container_resources=container_resources,
            node_selector=node_selector,
            tolerations=[_toleration(t) for t in tolerations],
            service_account_name=service_account_name,
            deferrable=default_deferrable() if deferrable is None else deferrable,
            do_xcom_push=do_xcom_push,
            env_vars=env,
            **kwargs,
        )
        self.manifest_uri = manifest_uri
        self.output_uri = output_uri
        self.model = model
        self.input_size = input_size
        self.weights_uri = weights_uri
        self.dim = dim
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.reuse_uri = reuse_uri
        self.embeddings_csv = embeddings_csv
        self.gpus = gpus
        self.loader = loader
        self.datapool_uri = datapool_uri

    def embed_arguments(self) -> list[str]:
        """The ``lightly-airflow`` arguments for this shard (from the rendered template fields)."""
        return embed_cli_arguments(
            self.manifest_uri, output_uri=self.output_uri, model=self.model, input_size=self.input_size,
            weights_uri=self.weights_uri, dim=self.dim, device="cuda" if self.gpus else "cpu",
            batch_size=self.batch_size, num_workers=self.num_workers, reuse_uri=self.reuse_uri,
            embeddings_csv=self.embeddings_csv, loader=self.loader, xcom_return=self.do_xcom_push,
        )

    def build_pod_request_obj(self, context: Any = None, **kwargs: Any) -> k8s.V1Pod:
        self.arguments = self.embed_arguments()
        return super().build_pod_request_obj(context, **kwargs)


def embed_operator_class(execution_mode: str) -> type[EmbedShardOperator] | type[EmbedPodOperator]:
    """``local`` → :class:`EmbedShardOperator`, ``kubernetes`` → :class:`EmbedPodOperator`.

    :raises ValueError: for another mode, naming the allowed ones.
    """
    if execution_mode == "local":
        return EmbedShardOperator
    if execution_mode == "kubernetes":
        return EmbedPodOperator
    raise ValueError(f"execution_mode={execution_mode!r} is invalid: use one of {EXECUTION_MODES}.")
