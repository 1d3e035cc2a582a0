"""The stable id of a sample (the ``sample_id`` column), its one definition.

Kept out of the datapool package: the metadata and embed shard tasks stamp it on their rows, and importing
:mod:`lightly_airflow.datapool` loads delta-rs and ``pyarrow.compute`` (0.05-0.1 s of each fresh shard process
idle, up to 0.4 s on a loaded machine) for one hash. :mod:`lightly_airflow.datapool.rows` re-exports it.
"""

from __future__ import annotations

import hashlib


def sample_id(key: str, etag: str | None) -> str:
    """The stable id of a sample: a digest of its datasource key and content identity.

    :param key: the datasource key.
    :param etag: the store's content identity (``None`` hashes as empty).
    """
    return hashlib.sha256(f"{key}\x00{etag or ''}".encode()).hexdigest()[:32]
