"""Embed manifest shards: in the Airflow worker (``local``) or in a GPU pod (``kubernetes``).

Both run the same code: :class:`EmbedShardOperator` calls :func:`lightly_airflow.embedding.embed_shard`
in-process; :class:`EmbedPodOperator` runs ``lightly-airflow embed`` (which calls the same function) in a
KubernetesPodOperator pod. Map either over the manifest shards::

    EmbedPodOperator.partial(task_id="embed", image=IMAGE, gpus=1).expand(manifest_uri=list_task.output)
    EmbedShardOperator.partial(task_id="embed", datapool_uri=POOL).expand(manifest_uri=list_task.output)

Each returns the small counts dict (the pod writes it to ``/airflow/xcom/return.json``), never data.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowFailException
from kubernetes.client import models as k8s

from lightly_airflow import __version__
from lightly_airflow.embedding.options import DEFAULT_MODEL, EmbedOptions, embed_command
from lightly_airflow.operators.base import LightlyBaseOperator, ShardLabel, read_rendered, rendered

__all__ = [
    "DEFAULT_MODEL", "EmbedOptions", "EmbedPodOperator", "EmbedShardOperator", "check_kubernetes_config",
    "embed_operator_class",
]
DEFAULT_WORKER_IMAGE = f"lightly-airflow-worker:{__version__}"
GPU_RESOURCE = "nvidia.com/gpu"
POD_BATCH_SIZE = 256  # a GPU pod's default batch
EXECUTION_MODES = ("local", "kubernetes")


def default_deferrable() -> bool:
    """``[lightly] default_deferrable`` (default True)."""
    return bool(conf.getboolean("lightly", "default_deferrable", fallback=True))


def default_worker_image() -> str:
    """``[lightly] worker_image``, else ``$LIGHTLY_WORKER_IMAGE``, else ``lightly-airflow-worker:<version>``."""
    return conf.get("lightly", "worker_image", fallback=None) or os.environ.get("LIGHTLY_WORKER_IMAGE") or DEFAULT_WORKER_IMAGE


_Init = TypeVar("_Init", bound=Callable[..., None])


def takes_embed_options(**defaults: Any) -> Callable[[_Init], _Init]:
    """Give an operator's ``__init__`` one keyword parameter per :class:`EmbedOptions` field.

    The option list is written once, in :class:`EmbedOptions`; this adds its fields to the signature Airflow
    inspects (``partial()``/``expand()`` accept exactly the parameters of ``__init__``), with ``defaults``
    overriding the options' own defaults (e.g. a GPU pod's larger batch). The ``__init__`` receives them in
    ``**kwargs`` and takes them out with :func:`pop_embed_options`.
    """
    unknown = sorted(set(defaults) - set(EmbedOptions.names()))
    if unknown:
        raise ValueError(f"Unknown embedding option(s) {unknown}; the options are {list(EmbedOptions.names())}.")

    def wrap(init: _Init) -> _Init:
        sig = inspect.signature(init)
        params = list(sig.parameters.values())
        var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        plain = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        options = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(name, default))
            for name, default in EmbedOptions.defaults().items()
        ]
        init.__signature__ = sig.replace(parameters=[*plain, *options, *var_kw])  # type: ignore[attr-defined]
        return init

    return wrap


def pop_embed_options(kwargs: dict[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Take the :class:`EmbedOptions` fields out of an operator's ``kwargs`` (raw values: maybe templates)."""
    values = dict(EmbedOptions.defaults() if defaults is None else defaults)
    for name in EmbedOptions.names():
        if name in kwargs:
            values[name] = kwargs.pop(name)
    return values


#: What a templated option's value stands for while an operator checks its literal options at DAG parse time.
TEMPLATE_STAND_IN = "<rendered at run time>"


def check_literal_options(values: Mapping[str, Any]) -> EmbedOptions:
    """Fail at DAG parse time for a bad literal option (the others take their defaults); a template, rendered
    at run time, stands in as given."""
    templated = set(EmbedOptions.templated())
    return EmbedOptions.from_mapping({name: TEMPLATE_STAND_IN if name in templated and isinstance(value, str)
                                      and "{{" in value else value for name, value in values.items()})


class _CheckedPartial:
    """Airflow's ``partial`` with the literal options checked as ``__init__`` checks them: a mapped task is built
    only when a run expands it, so an unknown model failed every run's embed tasks after its listing and
    metadata. Like Airflow's own descriptor, a task (not its class) has no ``partial``."""

    def __get__(self, obj: Any, cls: type) -> Any:
        def partial(**kwargs: Any) -> Any:
            if obj is not None:
                raise TypeError("partial can only be called on Operator classes, not Tasks themselves")
            check_literal_options({name: kwargs[name] for name in EmbedOptions.names() if name in kwargs})
            return super(_EmbedOptionsAttributes, cls).partial(**kwargs)  # type: ignore[misc]

        return partial


class _EmbedOptionsAttributes:
    """One attribute per option on the operator (what Airflow templates and maps), and the typed options."""

    #: read back by ``operators.base.read_rendered`` (both embed operators; a non-native DAG renders text)
    rendered_kinds: Mapping[str, Any] = {"output_uri": str}
    #: its result is a shard's embedding counts: the select task adds up those of its upstream tasks that have
    #: this (``SelectAndCommitOperator.embed_task_ids``) into the run's ``lightly.embed.*`` gauges
    returns_embed_counts = True

    partial = _CheckedPartial()

    def _set_embed_options(self, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            setattr(self, name, value)
        check_literal_options(values)

    def embed_options(self) -> EmbedOptions:
        """The (rendered) options of this task, with the run's ``option_overrides`` applied (the options a
        Lightly ``worker_config``/``lightly_config`` asks for, resolved by the list task)."""
        options = EmbedOptions.from_mapping({name: getattr(self, name) for name in EmbedOptions.names()})
        overrides = getattr(self, "option_overrides", None)
        if isinstance(overrides, str) and "{{" in overrides:  # unrendered (DAG parse time)
            overrides = None
        overrides = rendered(overrides, "option_overrides", dict)  # rendered as text without native rendering
        return options.replace(**overrides) if overrides else options


class EmbedShardOperator(_EmbedOptionsAttributes, ShardLabel, LightlyBaseOperator):
    """Embed one manifest shard in the Airflow worker (CPU or a local GPU); returns the counts.

    Takes every :class:`~lightly_airflow.embedding.options.EmbedOptions` field as a keyword argument (``model``,
    ``input_size``, ``weights_uri``, ``dim``, ``device``, ``batch_size``, ``num_workers``, ``loader``,
    ``reuse_uri``, ``embeddings_csv``; the URIs are templated). The reuse file and weights are read with the
    datapool connection, the images with the datasource connection.

    :param manifest_uri: the manifest shard (templated; map over shards with ``.expand(manifest_uri=...)``).
    :param output_uri: output file (templated); default: the shard's ``embeddings/`` sibling.
    :param option_overrides: option values that replace the ones above (templated; the DAG passes what the
        run's Lightly ``worker_config``/``lightly_config`` ask for, pushed by the list task).
    """

    template_fields: Sequence[str] = (
        *LightlyBaseOperator.template_fields, "manifest_uri", "output_uri", *EmbedOptions.templated(),
        "option_overrides",
    )
    ui_color = "#f6e7c8"

    @takes_embed_options()
    def __init__(self, *, manifest_uri: str, output_uri: str | None = None, datapool_uri: str = "",
                 option_overrides: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        options = pop_embed_options(kwargs)
        super().__init__(datapool_uri=datapool_uri, **kwargs)
        self.option_overrides = option_overrides
        self.manifest_uri = manifest_uri
        self.output_uri = output_uri
        self._set_embed_options(options)

    def execute(self, context: Any) -> dict[str, Any]:
        from lightly_airflow.embedding.runner import embed_shard
        from lightly_airflow.staging import PoolModelMismatchError

        self.read_rendered()
        try:
            counts = embed_shard(
                self.manifest_uri,
                self.output_uri or None,
                self.embed_options(),
                credentials=self.datapool_credentials,
                datasource_credentials=self.datasource_credentials,
            )
        except PoolModelMismatchError as exc:
            raise AirflowFailException(str(exc)) from None  # the next try embeds with the same model
        self.log.info(
            "Embedded %s: %d computed, %d reused, %d corrupt, %d missing (%.1f images/s) -> %s",
            self.manifest_uri, counts["embedded"], counts["reused"], counts["corrupt"], counts["missing"],
            counts["images_per_s"], counts["output_uri"],
        )
        self.shard_samples = int(counts["total"])
        return counts


def _toleration(value: k8s.V1Toleration | Mapping[str, Any]) -> k8s.V1Toleration:
    if isinstance(value, k8s.V1Toleration):
        return value
    allowed = {"key", "operator", "value", "effect", "toleration_seconds"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"Toleration {dict(value)!r} has unknown keys {unknown}; allowed: {sorted(allowed)}.")
    return k8s.V1Toleration(**dict(value))


def _with_unbuffered(
    env_vars: Mapping[str, str] | Sequence[k8s.V1EnvVar] | None,
) -> dict[str, str] | list[k8s.V1EnvVar]:
    """The pod's environment with ``PYTHONUNBUFFERED=1`` (what the embed CLI prints reaches the pod's log, which
    the task log follows, as it is printed: a pipe's stdout is block-buffered) unless the user set it, for both
    forms KubernetesPodOperator takes: a dict, or a list of ``V1EnvVar`` (a list lost it until session 65)."""
    if env_vars is None or isinstance(env_vars, Mapping):
        return {"PYTHONUNBUFFERED": "1", **dict(env_vars or {})}
    env = list(env_vars)
    if any(getattr(var, "name", None) == "PYTHONUNBUFFERED" for var in env):
        return env
    return [k8s.V1EnvVar(name="PYTHONUNBUFFERED", value="1"), *env]


class EmbedPodOperator(_EmbedOptionsAttributes, ShardLabel, KubernetesPodOperator):
    """Run ``lightly-airflow embed`` for one manifest shard in a (GPU) pod; returns the pod's counts pointer.

    Credentials inside the pod are ambient: give the pod a service account with workload identity (IRSA,
    GKE Workload Identity, Azure Workload Identity) or ``env_vars``/``secrets`` with the store's variables.

    Takes every :class:`~lightly_airflow.embedding.options.EmbedOptions` field as a keyword argument (the
    URIs are templated); ``batch_size`` defaults to 256 for a GPU, and ``device="auto"`` becomes ``cuda`` with
    ``gpus > 0`` and ``cpu`` otherwise. The pod runs :func:`~lightly_airflow.embedding.options.embed_command`.

    :param manifest_uri: the manifest shard (templated; map over shards with ``.expand(manifest_uri=...)``).
    :param output_uri: output file (templated); default: the shard's ``embeddings/`` sibling.
    :param option_overrides: option values that replace the ones above (templated; the DAG passes what the
        run's Lightly ``worker_config``/``lightly_config`` ask for, pushed by the list task).
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
        *KubernetesPodOperator.template_fields, "manifest_uri", "output_uri", *EmbedOptions.templated(), "datapool_uri",
        "option_overrides",
    )
    ui_color = "#f6e7c8"

    @takes_embed_options(batch_size=POD_BATCH_SIZE)
    def __init__(
        self,
        *,
        manifest_uri: str,
        output_uri: str | None = None,
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
        option_overrides: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        options = pop_embed_options(kwargs, {**EmbedOptions.defaults(), "batch_size": POD_BATCH_SIZE})
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
        env = _with_unbuffered(env_vars)
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
        self.gpus = gpus
        self.datapool_uri = datapool_uri
        self.option_overrides = option_overrides
        self._set_embed_options(options)

    def embed_arguments(self) -> list[str]:
        """The ``lightly-airflow`` arguments for this shard (from the rendered template fields)."""
        read_rendered(self)
        options = self.embed_options()
        if options.device == "auto":
            options = options.replace(device="cuda" if self.gpus else "cpu")
        return embed_command(self.manifest_uri, options, output_uri=self.output_uri, xcom_return=self.do_xcom_push)

    def build_pod_request_obj(self, context: Any = None, **kwargs: Any) -> k8s.V1Pod:
        self.arguments = self.embed_arguments()  # reads the rendered fields back (used below too)
        pod = super().build_pod_request_obj(context, **kwargs)
        self._check_local_folders_are_mounted(pod)
        return pod

    def _check_local_folders_are_mounted(self, pod: k8s.V1Pod) -> None:
        """Fail before a pod is created when it would read or write a local folder of the Airflow worker
        (a ``file://`` datapool or datasource) that is not mounted into it: the pod would only fail later,
        after its image was pulled, with "does not exist"."""
        from lightly_airflow.staging import read_manifest
        from lightly_airflow.storage import local_path, protocol_of

        uris = {"the manifest shard": self.manifest_uri, "the output": self.output_uri}
        if self.manifest_uri and protocol_of(self.manifest_uri) == "file":
            try:
                manifest = read_manifest(self.manifest_uri)
                uris.update({"the datasource": manifest.datasource_uri, "the .lightly/ folder": manifest.lightly_uri})
            except (OSError, ValueError):
                pass  # the pod reports an unreadable shard itself
        mounts = [m.mount_path.rstrip("/") for c in pod.spec.containers if c.name == "base"
                  for m in (c.volume_mounts or []) if m.mount_path]
        for what, uri in uris.items():
            if not uri or protocol_of(uri) != "file":
                continue
            path = local_path(uri)
            if not any(path == m or path.startswith(f"{m}/") for m in mounts):
                raise AirflowFailException(
                    f"{self.task_id}: {what} {path} is a local folder of the Airflow worker, which the embedding "
                    "pod cannot see. Fix: mount it into the pod at the same path (volumes=[...] and "
                    "volume_mounts=[...] of the embed task, e.g. a PersistentVolumeClaim the workers share), put "
                    "the datasource and the datapool on s3:// / gs:// / az://, or use execution_mode 'local'."
                )


def embed_operator_class(execution_mode: str) -> type[EmbedShardOperator] | type[EmbedPodOperator]:
    """``local`` → :class:`EmbedShardOperator`, ``kubernetes`` → :class:`EmbedPodOperator`.

    :raises ValueError: for another mode, naming the allowed ones.
    """
    if execution_mode == "local":
        return EmbedShardOperator
    if execution_mode == "kubernetes":
        return EmbedPodOperator
    raise ValueError(f"execution_mode={execution_mode!r} is invalid: use one of {EXECUTION_MODES}.")


#: The settings of a KubernetesPodOperator that decide where its Kubernetes configuration comes from.
KUBERNETES_SETTINGS = ("kubernetes_conn_id", "config_file", "in_cluster", "cluster_context")


def check_kubernetes_config(
    kubernetes_conn_id: str | None = "kubernetes_default",
    config_file: str | None = None,
    in_cluster: bool | None = None,
    cluster_context: str | None = None,
) -> str:
    """For ``execution_mode: kubernetes``, in the first task: the Kubernetes configuration the embed pods'
    operator would use can be loaded, asked of the provider's own :class:`KubernetesHook` (``get_conn`` reads
    the connection, the in-cluster environment or the kubeconfig; it contacts no cluster). Return which source
    it used.

    :raises lightly_airflow.pipeline.ParamError: (``execution_mode``) naming every source tried and the fix,
        instead of ``ConfigException: Service host/port is not set`` in every embed task after the listing,
        the metadata and the predictions ran.
    """
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.config import kube_config

    from lightly_airflow.pipeline import ParamError

    hook = KubernetesHook(conn_id=kubernetes_conn_id, config_file=config_file, in_cluster=in_cluster,
                          cluster_context=cluster_context)
    fix = ("set execution_mode to 'local' (embed in the Airflow worker), or configure Kubernetes for the embed "
           f"pods: give the Airflow connection {kubernetes_conn_id!r} (type kubernetes) 'In cluster configuration', "
           "a kube_config_path or a kube_config, run the workers in the cluster, or put a kubeconfig at "
           f"{kube_config.KUBE_CONFIG_DEFAULT_LOCATION} (KUBECONFIG).")
    try:
        extras = hook.conn_extras if kubernetes_conn_id else {}
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException and the secrets backends' errors
        raise ParamError("execution_mode", f"'kubernetes' reads the Airflow connection {kubernetes_conn_id!r}, which "
                         f"cannot be read ({type(exc).__name__}: {exc}).", fix) from None
    conn_keys = [k for k in ("in_cluster", "kube_config_path", "kube_config")
                 if extras.get(k) or extras.get(f"extra__kubernetes__{k}")]
    service = [v for v in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT") if os.environ.get(v)]
    in_cluster_env = f"in-cluster ({', '.join(service) or 'KUBERNETES_SERVICE_HOST/PORT unset'})"
    if in_cluster or (in_cluster is None and "in_cluster" in conn_keys):
        source = in_cluster_env
    elif config_file or "kube_config_path" in conn_keys:
        source = f"the kubeconfig file {config_file or extras.get('kube_config_path')!r}"
    elif "kube_config" in conn_keys:
        source = f"the kube_config of the connection {kubernetes_conn_id!r}"
    else:
        source = (f"the connection {kubernetes_conn_id!r} (no in_cluster, kube_config_path or kube_config set), "
                  f"then {in_cluster_env}, then the default kubeconfig "
                  f"{os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION)!r}")
    try:
        hook.get_conn()
    except Exception as exc:  # noqa: BLE001 - ConfigException, AirflowException (exclusive options), OSError
        raise ParamError(
            "execution_mode", f"'kubernetes' runs the embed step in pods, but no Kubernetes configuration could be "
            f"loaded for them (tried {source}: {type(exc).__name__}: {exc}).", fix,
        ) from None
    if conn_keys or in_cluster is not None or config_file:
        return source
    return in_cluster_env if hook.is_in_cluster else (
        f"the default kubeconfig {os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION)!r}")
