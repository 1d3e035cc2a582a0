"""Lightly's custom embeddings CSV: read, validate, and use it instead of a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lightly_airflow.columns import EMBEDDING, EMBEDDING_DIM_METADATA_KEY, EMBEDDING_MODEL_METADATA_KEY, KEY, STATUS
from lightly_airflow.embedding import embed_shard, load_embeddings_csv

from .conftest import write_manifest


def _csv(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_csv_is_read_and_normalised(tmp_path: Path) -> None:
    uri = _csv(tmp_path / ".lightly/embeddings/default.csv",
               "filenames,embedding_0,embedding_1,embedding_2,labels\n"
               "a/1.jpg,3,4,0,0\n"
               "b/2.png,0,0,-2,1\n")
    table = load_embeddings_csv(uri)
    assert table[KEY].to_pylist() == ["a/1.jpg", "b/2.png"]
    np.testing.assert_allclose(table[EMBEDDING].to_pylist(), [[0.6, 0.8, 0.0], [0.0, 0.0, -1.0]], atol=1e-7)
    assert table["labels"].to_pylist() == ["0", "1"]
    meta = table.schema.metadata
    assert json.loads(meta[EMBEDDING_DIM_METADATA_KEY.encode()]) == 3
    assert json.loads(meta[EMBEDDING_MODEL_METADATA_KEY.encode()]) == "custom-csv:default.csv/d3"
    raw = load_embeddings_csv(uri, normalize=False)
    assert raw[EMBEDDING].to_pylist()[0] == [3.0, 4.0, 0.0]


@pytest.mark.parametrize(
    "text,match",
    [
        ("name,embedding_0\nx.jpg,1\n", "header"),
        ("SECRET=1,embedding_0\nx.jpg,1\n", "header"),
        ("filenames,embedding_0,embedding_2\nx.jpg,1,2\n", "contiguous"),
        ("filenames,embedding_0\nx.jpg,1\nx.jpg,2\n", "duplicate"),
        ("filenames,embedding_0\nx.jpg,abc\n", "number"),
        ("filenames,embedding_0,embedding_1\nx.jpg,0,0\n", "all-zero"),
        ("filenames,embedding_0\nx.jpg,nan\n", "finite"),
        ("", "empty"),
    ],
)
def test_bad_csv_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    uri = _csv(tmp_path / "e.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        load_embeddings_csv(uri)
    assert "e.csv" in str(info.value)
    assert "x.jpg" not in str(info.value) and "abc" not in str(info.value)  # never the file's content


def test_shard_takes_embeddings_from_the_csv(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "pool/_staging/r/manifest/shard-00000.parquet", (tmp_path / "ds").as_uri(),
                              ["a/1.jpg", "c/3.jpg"])
    uri = _csv(tmp_path / "emb.csv", "filenames,embedding_0,embedding_1\na/1.jpg,1,1\nb/2.jpg,1,0\n")
    counts = embed_shard(manifest, embeddings_csv=uri)
    assert (counts["embedded"], counts["missing"], counts["dim"]) == (1, 1, 2)
    table = pq.read_table(counts["output_uri"])
    assert table[STATUS].to_pylist() == ["ok", "missing"]
    np.testing.assert_allclose(table[EMBEDDING][0].as_py(), [2 ** -0.5, 2 ** -0.5], atol=1e-7)
    assert table[EMBEDDING][1].as_py() is None


def _lightly_save_embeddings(path: Path, embeddings: np.ndarray, labels: list[int], filenames: list[str]) -> None:
    """Lightly's ``lightly.utils.io.save_embeddings``, line for line."""
    import csv

    header = ["filenames"] + [f"embedding_{i}" for i in range(embeddings.shape[-1])] + ["labels"]
    with open(path, "w", newline="") as csv_file:
        writer = csv.writer(csv_file, delimiter=",")
        writer.writerow(header)
        for filename, embedding, label in zip(filenames, embeddings, labels):
            writer.writerow([filename] + list(embedding) + [str(label)])


def test_reads_exactly_what_lightly_save_embeddings_writes(tmp_path: Path) -> None:
    names = [" leading.png", "trailing.png ", "with,comma.jpg", 'quote"d.jpg', "dir/ both .png"]
    vectors = np.random.default_rng(0).normal(size=(len(names), 4))
    path = tmp_path / "lightly.csv"
    _lightly_save_embeddings(path, vectors, [0, 1, 2, 3, 4], names)
    table = load_embeddings_csv(str(path), normalize=False)
    assert table[KEY].to_pylist() == names
    np.testing.assert_allclose(np.array(table[EMBEDDING].to_pylist()), vectors, rtol=1e-6)


def test_lightly_selected_and_masked_columns_are_accepted(tmp_path: Path) -> None:
    uri = _csv(tmp_path / "e.csv", "filenames,embedding_0,embedding_1,selected,masked,labels\n"
                                   "a.png,1,0,1,0,3\n b.png,0,1,0,1,4\n")
    table = load_embeddings_csv(uri)
    assert table[KEY].to_pylist() == ["a.png", " b.png"]
    assert table.column_names == [KEY, EMBEDDING, "labels"]
    assert table["labels"].to_pylist() == ["3", "4"]
