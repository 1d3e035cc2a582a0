"""``lightly_config.model.num_ftrs`` against a custom embeddings CSV of another width: was logged as "Embedding
options from the Lightly configs: {'dim': 64}" and then silently ignored (the run embedded as
``custom-csv:…/d32``). The embed step now refuses it from the CSV's header, before any work, naming the file,
the key, both dimensions and the fix; an error that no retry can fix (the embed operator fails for good)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightly_airflow.config import parse_worker_config
from lightly_airflow.embedding import embed_shard
from lightly_airflow.embedding.custom import EmbeddingsDimMismatchError, check_embeddings_dim
from lightly_airflow.pipeline import embed_option_overrides
from lightly_airflow.staging import PoolModelMismatchError


def _folder(root: Path, n: int = 6, dim: int = 32) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    src = root / "src"
    (src / ".lightly" / "embeddings").mkdir(parents=True)
    path = src / ".lightly" / "embeddings" / "emb.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filenames", *(f"embedding_{i}" for i in range(dim)), "labels"])
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(src / f"img{i}.png")
            writer.writerow([f"img{i}.png", *(f"{v:.5f}" for v in rng.normal(size=dim)), "0"])
    return src, path


def _manifest(src: Path, pool: Path) -> str:
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.pipeline import list_new

    return list_new(NewFilesQuery(datasource_uri=str(src), datapool_uri=str(pool)), run_id="r1").manifests[0]


def test_num_ftrs_other_than_the_csv_is_refused_before_any_work(tmp_path: Path) -> None:
    src, csv_path = _folder(tmp_path)
    overrides = embed_option_overrides(parse_worker_config({"embeddings": "emb.csv"}), {"model": {"num_ftrs": 64}})
    assert overrides == {"dim": 64}
    manifest = _manifest(src, tmp_path / "pool")
    output = tmp_path / "out.parquet"
    with pytest.raises(EmbeddingsDimMismatchError) as info:
        embed_shard(manifest, str(output), embeddings_csv=str(csv_path), **overrides)
    text = str(info.value)
    assert "lightly_config.model.num_ftrs" in text and "is 64" in text and "has 32 embedding columns" in text
    assert str(csv_path) in text and "worker_config.embeddings" in text
    assert "Fix: remove model.num_ftrs from lightly_config (or set it to 32)" in text
    assert isinstance(info.value, PoolModelMismatchError)  # (EmbedShardOperator: AirflowFailException, no retry)
    assert not output.exists()
    # Before any work: not even the manifest is read (a missing one would be a FileNotFoundError).
    with pytest.raises(EmbeddingsDimMismatchError):
        embed_shard(str(tmp_path / "no-such-manifest.parquet"), embeddings_csv=str(csv_path), dim=64)


def test_a_matching_or_absent_num_ftrs_embeds_from_the_csv(tmp_path: Path) -> None:
    src, csv_path = _folder(tmp_path)
    manifest = _manifest(src, tmp_path / "pool")
    for dim in (32, None):
        counts = embed_shard(manifest, str(tmp_path / f"out-{dim}.parquet"), embeddings_csv=str(csv_path), dim=dim)
        assert counts["dim"] == 32 and counts["embedded"] == 6
    assert check_embeddings_dim(str(csv_path), None) == check_embeddings_dim(str(csv_path), 32) == 32
