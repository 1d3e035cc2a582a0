"""``worker_config.normalize_embeddings`` and extreme values of a custom embeddings CSV, end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lightly_airflow.columns import EMBEDDING, EMBEDDING_MODEL_METADATA_KEY, STATUS
from lightly_airflow.embedding import embed_shard, load_embeddings_csv
from lightly_airflow.embedding.options import EmbedOptions, add_arguments, embed_command

from .conftest import write_manifest


def _shard(tmp_path: Path, text: str) -> tuple[str, str]:
    csv = tmp_path / ".lightly/embeddings/default.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text(text)
    (tmp_path / "ds").mkdir()
    manifest = write_manifest(tmp_path / "pool/_staging/r/manifest/shard-00000.parquet", str(tmp_path / "ds"),
                              ["a.jpg", "b.jpg"])
    return manifest, str(csv)


def test_normalize_embeddings_false_keeps_the_csv_vectors_and_says_so_in_the_model_id(tmp_path: Path) -> None:
    # The option travels as a pod's arguments do: EmbedOptions -> command line -> EmbedOptions.
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(embed_command("m", EmbedOptions(normalize_embeddings=False))[1:])
    options = EmbedOptions.from_args(args)
    assert options.normalize_embeddings is False
    manifest, csv = _shard(tmp_path, "filenames,embedding_0,embedding_1\na.jpg,3,4\nb.jpg,0,-2\n")
    raw = embed_shard(manifest, str(tmp_path / "raw.parquet"), options, embeddings_csv=csv)
    table = pq.read_table(raw["output_uri"])
    assert table[STATUS].to_pylist() == ["ok", "ok"]
    assert table[EMBEDDING].to_pylist() == [[3.0, 4.0], [0.0, -2.0]]  # (before: [0.6, 0.8], [0, -1])
    assert raw["model"] == "custom-csv:default.csv/d2/raw"
    assert json.loads(table.schema.metadata[EMBEDDING_MODEL_METADATA_KEY.encode()]) == raw["model"]
    unit = embed_shard(manifest, str(tmp_path / "unit.parquet"), embeddings_csv=csv)  # Lightly's default
    np.testing.assert_allclose(pq.read_table(unit["output_uri"])[EMBEDDING].to_pylist(), [[0.6, 0.8], [0, -1]])
    assert unit["model"] == "custom-csv:default.csv/d2"  # another embedding space: a pool refuses to mix them


def test_normalize_embeddings_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="normalize_embeddings='no' is invalid"):
        EmbedOptions(normalize_embeddings="no")  # type: ignore[arg-type]


def test_huge_and_tiny_values_are_normalised_not_zeroed(tmp_path: Path) -> None:
    csv = tmp_path / "e.csv"
    csv.write_text("filenames,embedding_0,embedding_1\nbig.jpg,1e200,-1e200\ntiny.jpg,3e-320,4e-320\n")
    vectors = load_embeddings_csv(str(csv))[EMBEDDING].to_pylist()
    # (before: 1e200 squared overflowed, the row became a zero vector stored as ok; the subnormal row's norm
    # underflowed to zero and the row was refused as all-zero)
    np.testing.assert_allclose(vectors, [[0.70710677, -0.70710677], [0.6, 0.8]], rtol=1e-6)


def test_raw_values_beyond_float32_are_refused_with_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "e.csv"
    csv.write_text("filenames,embedding_0\nok.jpg,1\nbig.jpg,1e39\n")
    with pytest.raises(ValueError, match=r"float32's range .* line\(s\) \[3\]"):
        load_embeddings_csv(str(csv), normalize=False)
    assert load_embeddings_csv(str(csv))[EMBEDDING].to_pylist() == [[1.0], [1.0]]


def test_a_key_the_csv_names_in_another_unicode_form_or_case_is_missing_with_the_look_alike(tmp_path: Path) -> None:
    csv = tmp_path / "e.csv"
    csv.write_text("filenames,embedding_0\ncafe\u0301.jpg,1\nIMG_1.JPG,1\n", encoding="utf-8")  # (a Mac's NFD)
    (tmp_path / "ds").mkdir()
    keys = ["caf\u00e9.jpg", "img_1.jpg", "other.jpg"]
    manifest = write_manifest(tmp_path / "pool/_staging/r/manifest/shard-00000.parquet", str(tmp_path / "ds"), keys)
    counts = embed_shard(manifest, str(tmp_path / "out.parquet"), embeddings_csv=str(csv))
    table = pq.read_table(counts["output_uri"])
    assert table[STATUS].to_pylist() == ["missing"] * 3
    reasons = table["status_reason"].to_pylist()
    assert "'caf\u00e9.jpg'" in reasons[0] and "Unicode normalization" in reasons[0]
    assert "'img_1.jpg'" in reasons[1] and "case" in reasons[1]
    assert reasons[2] == f"not in embeddings CSV {csv}"


@pytest.mark.parametrize("bad", ["c.jpg,3,4", "c.jpg,x"])
def test_a_row_that_cannot_be_parsed_is_named_by_its_line_as_the_other_errors_are(tmp_path: Path, bad: str) -> None:
    csv = tmp_path / "e.csv"
    csv.write_text(f"filenames,embedding_0\na.jpg,1\nb.jpg,2\n{bad}\nd.jpg,5\n")
    with pytest.raises(ValueError, match=r"cannot be parsed \(near line 4\)"):  # (before: "near data row 4", the 3rd)
        load_embeddings_csv(str(csv))
