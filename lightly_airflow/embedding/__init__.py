"""Embeddings: encoders in plain torch, image decoding, the shard runner and the ``embed`` CLI.

Never imports Airflow. The runner :func:`embed_shard` is the same code in a GPU pod
(``lightly-airflow embed``) and in an Airflow worker (local mode), with the same
:class:`~lightly_airflow.embedding.options.EmbedOptions`.

The torch-based names are imported on first use, so ``lightly_airflow.embedding.options`` (imported by the
operators at DAG parse time) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from lightly_airflow.embedding.options import DEFAULT_MODEL, EmbedOptions

_LAZY = {
    "MODEL_NAMES": "lightly_airflow.embedding.options",
    "Encoder": "lightly_airflow.embedding.encoders",
    "canonical_model_name": "lightly_airflow.embedding.options",
    "get_encoder": "lightly_airflow.embedding.encoders",
    "decode_image": "lightly_airflow.embedding.images",
    "embed_shard": "lightly_airflow.embedding.runner",
    "load_embeddings_csv": "lightly_airflow.embedding.custom",
}

__all__ = ["DEFAULT_MODEL", "EmbedOptions", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
