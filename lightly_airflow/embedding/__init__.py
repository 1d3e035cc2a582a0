"""Embeddings: encoders in plain torch, image decoding, the shard runner and the ``embed`` CLI.

Never imports Airflow. The runner :func:`embed_shard` is the same code in a GPU pod
(``lightly-airflow embed``) and in an Airflow worker (local mode).
"""

from __future__ import annotations

from lightly_airflow.embedding.custom import load_embeddings_csv
from lightly_airflow.embedding.encoders import DEFAULT_MODEL, MODEL_NAMES, Encoder, canonical_model_name, get_encoder
from lightly_airflow.embedding.images import decode_image
from lightly_airflow.embedding.runner import embed_shard, read_manifest

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAMES",
    "Encoder",
    "canonical_model_name",
    "decode_image",
    "embed_shard",
    "get_encoder",
    "load_embeddings_csv",
    "read_manifest",
]
