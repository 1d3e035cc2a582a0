"""The shard runner on real images: statuses, determinism, reuse, output layout, stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightly_airflow.columns import (
    EMBEDDING,
    EMBEDDING_DIM_METADATA_KEY,
    EMBEDDING_INPUT_SIZE_METADATA_KEY,
    EMBEDDING_MODEL_METADATA_KEY,
    ETAG,
    KEY,
    STATUS,
    STATUS_REASON,
)
from lightly_airflow.embedding import embed_shard, get_encoder
from lightly_airflow.storage import join_uri

from .conftest import broken_files, write_manifest


def _vectors(table: pa.Table) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float32) for k, v in zip(table[KEY].to_pylist(), table[EMBEDDING].to_pylist()) if v is not None}


def test_shard_is_embedded_with_status_per_file(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    root, keys = image_root
    bad = broken_files(root)
    all_keys = keys + bad + ["nope/missing.jpg"]
    manifest = write_manifest(tmp_path / "pool/_staging/run/manifest/shard-00007.parquet", root.as_uri(), all_keys, root)

    counts = embed_shard(manifest, batch_size=8, num_workers=1)

    expected_out = str(tmp_path / "pool/_staging/run/embeddings/shard-00007.parquet")
    assert counts["output_uri"] == expected_out
    assert (counts["total"], counts["embedded"], counts["corrupt"], counts["missing"], counts["reused"]) == (
        len(all_keys), len(keys), 3, 1, 0)
    assert counts["dim"] == 1280 and counts["model"] == get_encoder().model_id and counts["images_per_s"] > 0
    json.dumps(counts)  # XCom-safe

    table = pq.read_table(expected_out)
    assert table.column_names == [KEY, ETAG, EMBEDDING, STATUS, STATUS_REASON]
    assert table.schema.field(EMBEDDING).type == pa.list_(pa.float32())
    meta = table.schema.metadata
    assert json.loads(meta[EMBEDDING_MODEL_METADATA_KEY.encode()]) == counts["model"]
    assert json.loads(meta[EMBEDDING_DIM_METADATA_KEY.encode()]) == 1280
    assert json.loads(meta[EMBEDDING_INPUT_SIZE_METADATA_KEY.encode()]) == 64
    assert table[KEY].to_pylist() == all_keys  # manifest order
    rows = {r[KEY]: r for r in table.to_pylist()}
    for key in keys:
        assert rows[key][STATUS] == "ok" and rows[key][STATUS_REASON] is None
        assert np.linalg.norm(rows[key][EMBEDDING]) == pytest.approx(1.0, abs=1e-5)
    assert rows["bad/truncated.jpg"][STATUS] == "corrupt" and "truncated" in rows["bad/truncated.jpg"][STATUS_REASON]
    assert rows["bad/empty.jpg"][STATUS] == "corrupt" and "empty" in rows["bad/empty.jpg"][STATUS_REASON]
    assert rows["bad/text.jpg"][STATUS] == "corrupt" and "0x" not in rows["bad/text.jpg"][STATUS_REASON]
    assert rows["nope/missing.jpg"][STATUS] == "missing"
    assert all(rows[k][EMBEDDING] is None for k in bad + ["nope/missing.jpg"])

    vec = _vectors(table)
    # The same photo as JPEG and PNG is far closer than two different photos.
    same = float(vec["photos/chelsea.jpg"] @ vec["photos/chelsea.png"])
    other = float(vec["photos/chelsea.jpg"] @ vec["photos/coffee.jpg"])
    assert same > 0.95 and other < same - 0.1


def test_embeddings_are_identical_across_runs_workers_and_batch_company(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    root, keys = image_root
    full = write_manifest(tmp_path / "a/manifest/shard-00000.parquet", root.as_uri(), keys, root)
    alone = write_manifest(tmp_path / "b/manifest/shard-00000.parquet", root.as_uri(), ["photos/rocket.jpg"], root)
    first = pq.read_table(embed_shard(full, batch_size=8, num_workers=0)["output_uri"])
    second = pq.read_table(embed_shard(full, batch_size=8, num_workers=2, loader="processes")["output_uri"])
    third = pq.read_table(embed_shard(full, batch_size=8, num_workers=2, loader="threads")["output_uri"])
    single = pq.read_table(embed_shard(alone, batch_size=8, num_workers=0)["output_uri"])
    assert first.equals(second) and first.equals(third)
    np.testing.assert_array_equal(_vectors(single)["photos/rocket.jpg"], _vectors(first)["photos/rocket.jpg"])


def test_retry_overwrites_only_its_own_output(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    root, keys = image_root
    manifest = write_manifest(tmp_path / "pool/_staging/r/manifest/shard-00001.parquet", root.as_uri(), keys[:3], root)
    neighbour = tmp_path / "pool/_staging/r/embeddings/shard-00002.parquet"
    neighbour.parent.mkdir(parents=True)
    neighbour.write_bytes(b"another shard's output")
    out = embed_shard(manifest, num_workers=0)["output_uri"]
    Path(out).write_bytes(b"half-written garbage from a killed attempt")
    embed_shard(manifest, num_workers=0)
    assert pq.read_table(out).num_rows == 3
    assert neighbour.read_bytes() == b"another shard's output"
    assert sorted(p.name for p in neighbour.parent.iterdir()) == ["shard-00001.parquet", "shard-00002.parquet"]


def test_reuse_copies_matching_key_and_etag_only(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    root, keys = image_root
    subset = keys[:4]
    manifest = write_manifest(tmp_path / "m/manifest/shard-00000.parquet", root.as_uri(), subset, root)
    table = pq.read_table(embed_shard(manifest, num_workers=0, output_uri=str(tmp_path / "first.parquet"))["output_uri"])
    marker = np.zeros(1280, np.float32)
    marker[0] = 1.0
    etags = table[ETAG].to_pylist()
    reuse = pa.table({
        KEY: [subset[0], subset[1], subset[2]],
        ETAG: [etags[0], etags[1], "changed-content"],
        EMBEDDING: pa.array([marker.tolist()] * 3, pa.list_(pa.float32())),
    })
    counts = embed_shard(manifest, num_workers=0, reuse=reuse, output_uri=str(tmp_path / "second.parquet"))
    assert (counts["reused"], counts["embedded"]) == (2, 2)
    vec = _vectors(pq.read_table(counts["output_uri"]))
    original = _vectors(table)
    np.testing.assert_array_equal(vec[subset[0]], marker)
    np.testing.assert_array_equal(vec[subset[1]], marker)
    np.testing.assert_array_equal(vec[subset[2]], original[subset[2]])  # etag changed: recomputed
    np.testing.assert_array_equal(vec[subset[3]], original[subset[3]])


def test_reuse_from_another_model_or_dimension_is_refused(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    root, keys = image_root
    manifest = write_manifest(tmp_path / "m/manifest/shard-00000.parquet", root.as_uri(), keys[:2], root)
    etag = pq.read_table(manifest)[ETAG][0].as_py()
    wrong_dim = pa.table({KEY: [keys[0]], ETAG: [etag], EMBEDDING: pa.array([[1.0, 0.0]], pa.list_(pa.float32()))})
    with pytest.raises(ValueError, match="dimension 2"):
        embed_shard(manifest, num_workers=0, reuse=wrong_dim)
    other_model = wrong_dim.replace_schema_metadata({EMBEDDING_MODEL_METADATA_KEY: json.dumps("resnet50@abc/in64/d2048")})
    with pytest.raises(ValueError, match="same model"):
        embed_shard(manifest, num_workers=0, reuse=other_model)


def test_bad_arguments_and_manifests_fail_with_clear_errors(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    root, keys = image_root
    manifest = write_manifest(tmp_path / "m/manifest/shard-00000.parquet", root.as_uri(), keys[:1], root)
    with pytest.raises(ValueError, match="batch_size"):
        embed_shard(manifest, batch_size=0)
    with pytest.raises(ValueError, match="device"):
        embed_shard(manifest, device="tpu")
    with pytest.raises(ValueError, match="loader"):
        embed_shard(manifest, loader="fibers")
    no_meta = tmp_path / "x/manifest/shard-00000.parquet"
    no_meta.parent.mkdir(parents=True)
    pq.write_table(pq.read_table(manifest).replace_schema_metadata(None), no_meta)
    with pytest.raises(ValueError, match="lightly.datasource_uri"):
        embed_shard(str(no_meta))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        embed_shard(str(tmp_path / "nope/manifest/shard-00000.parquet"))
    loose = tmp_path / "loose.parquet"  # not in a manifest/ folder: no default output location
    loose.write_bytes(Path(manifest).read_bytes())
    with pytest.raises(ValueError, match="not a manifest shard"):
        embed_shard(str(loose))


def test_empty_shard_writes_an_empty_file(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    root, _ = image_root
    manifest = write_manifest(tmp_path / "m/manifest/shard-00000.parquet", root.as_uri(), [], root)
    counts = embed_shard(manifest)
    table = pq.read_table(counts["output_uri"])
    assert table.num_rows == 0 and counts["embedded"] == 0
    assert table.schema.field(EMBEDDING).type == pa.list_(pa.float32())


def test_images_and_staging_on_s3(s3_bucket, image_root: tuple[Path, list[str]], tmp_path: Path) -> None:  # noqa: ANN001
    from lightly_airflow.storage import filesystem

    root, keys = image_root
    fs, base = filesystem(s3_bucket.uri, s3_bucket.credentials)
    subset = keys[:5]
    for key in subset:
        fs.pipe_file(f"{base}/images/{key}", (root / key).read_bytes())
    local_manifest = write_manifest(tmp_path / "manifest/shard-00000.parquet", join_uri(s3_bucket.uri, "images"),
                                    subset + ["gone.jpg"], root)
    manifest_uri = join_uri(s3_bucket.uri, "pool/_staging/r/manifest/shard-00000.parquet")
    fs.pipe_file(f"{base}/pool/_staging/r/manifest/shard-00000.parquet", Path(local_manifest).read_bytes())

    # Worker processes fork with s3fs already used in the parent: each opens its own client.
    counts = embed_shard(manifest_uri, credentials=s3_bucket.credentials, num_workers=1, batch_size=4,
                         loader="processes")
    assert counts["output_uri"] == join_uri(s3_bucket.uri, "pool/_staging/r/embeddings/shard-00000.parquet")
    assert (counts["embedded"], counts["missing"]) == (5, 1)
    with fs.open(f"{base}/pool/_staging/r/embeddings/shard-00000.parquet", "rb") as f:
        remote = pq.read_table(f)
    # The same images read from the local disk embed identically.
    local_counts = embed_shard(write_manifest(tmp_path / "local/manifest/shard-00000.parquet", root.as_uri(), subset, root),
                               num_workers=0, batch_size=4)
    local = _vectors(pq.read_table(local_counts["output_uri"]))
    assert sorted(local) == sorted(subset)
    for key, vec in local.items():
        np.testing.assert_array_equal(_vectors(remote)[key], vec)


def test_daemonic_process_decodes_in_threads_with_identical_results(
    tmp_path: Path, image_root: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import multiprocessing

    root, keys = image_root
    manifest = write_manifest(tmp_path / "m/manifest/shard-00000.parquet", root.as_uri(), keys, root)
    reference = pq.read_table(embed_shard(manifest, batch_size=8, num_workers=0, output_uri=str(tmp_path / "a.parquet"))["output_uri"])
    # A Celery prefork child is daemonic: it may not start DataLoader worker processes.
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)
    with caplog.at_level(logging.INFO, logger="lightly_airflow.embedding.runner"):
        out = embed_shard(manifest, batch_size=8, num_workers=2, loader="processes",
                          output_uri=str(tmp_path / "b.parquet"))["output_uri"]
    assert "threads" in caplog.text
    assert pq.read_table(out).equals(reference)


def test_bfloat16_precision_is_an_explicit_close_approximation(tmp_path: Path, image_root: tuple[Path, list[str]]) -> None:
    # precision="bfloat16" (EmbedOptions) runs the CPU forward pass under bf16 autocast: close to float32, not
    # equal; the default stays float32 (equal to the eager encoder, see test_encoders).
    root, keys = image_root
    manifest = write_manifest(tmp_path / "m/manifest/shard-00000.parquet", root.as_uri(), keys, root)
    full = pq.read_table(embed_shard(manifest, device="cpu", batch_size=8, num_workers=0,
                                     output_uri=str(tmp_path / "f32.parquet"))["output_uri"])
    counts = embed_shard(manifest, device="cpu", batch_size=8, num_workers=0, precision="bfloat16",
                         output_uri=str(tmp_path / "bf16.parquet"))
    half = pq.read_table(counts["output_uri"])
    assert half[STATUS].to_pylist() == full[STATUS].to_pylist()
    a, b = _vectors(full), _vectors(half)
    assert set(a) == set(b) and len(a) >= 8
    cosines = [float(a[k] @ b[k]) for k in a]
    assert min(cosines) > 0.98 and max(float(np.abs(a[k] - b[k]).max()) for k in a) > 1e-4
    with pytest.raises(ValueError, match="precision"):
        embed_shard(manifest, precision="fp8")
