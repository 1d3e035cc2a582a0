"""What a ``lightly-airflow`` process does before its command runs, and what a shard command imports.

Each probe is a fresh interpreter: an import made by another test of this process would hide one the command makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from startup_probe import modules_loaded

from lightly_airflow import columns as C

PROBE = """
import os, sys
from lightly_airflow.cli import main
code = main(sys.argv[1:])
from pydantic.plugin import _loader
from threadpoolctl import threadpool_info
# None: pydantic never scanned the installed distributions for plugins; a dict: it did
print(repr(os.environ.get("PYDANTIC_DISABLE_PLUGINS")), _loader._plugins is None, code)
# OpenBLAS' idle-thread timeout and its threads (the variable keeps them: only their busy wait is shorter)
print(repr(os.environ.get("OPENBLAS_THREAD_TIMEOUT")),
      max(i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"))
"""


def _select(tmp_path: Path, env: dict[str, str]) -> list[list[str]]:
    """A ``select`` of 5 of 40 samples in a fresh process under ``env``; the PROBE's lines, split."""
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(40)],
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 8)}),
                   tmp_path / "samples.parquet")
    (tmp_path / "config.json").write_text(json.dumps(
        {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "select", "--samples", str(tmp_path / "samples.parquet"),
         "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "picks.parquet")],
        env=env, capture_output=True, text=True, check=True, timeout=120)
    assert pq.read_table(tmp_path / "picks.parquet").num_rows == 5
    return [line.split() for line in out.stdout.splitlines()]


@pytest.mark.parametrize(("given", "expected", "scanned"), [(None, "'__all__'", False), ("", "''", True)])
def test_select_skips_pydantics_plugin_scan_unless_asked(tmp_path: Path, given: str | None, expected: str,
                                                          scanned: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if given is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = given
    assert _select(tmp_path, env)[0] == [expected, str(not scanned), "0"]


@pytest.mark.parametrize(("given", "expected"), [(None, "'4'"), ("28", "'28'")])
def test_openblas_threads_sleep_at_once_unless_set(tmp_path: Path, given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS",
                                                            "OMP_NUM_THREADS")}
    if given is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = given
    timeout, threads = _select(tmp_path, env)[1]
    assert timeout == expected
    # BLAS keeps its threads (TYPICALITY's products use them; OpenBLAS caps their count on large machines): only
    # the idle wait changed.
    assert int(threads) == 1 if len(os.sched_getaffinity(0)) == 1 else int(threads) > 1


# --- What each shard task imports (each mapped shard is a fresh process; benchmarks/startup.py times them) -------

HEAVY = ("pandas", "numba", "torch", "pyarrow.compute", "pyarrow.dataset")
# Packages a shard task has no use for (a sample's id is lightly_airflow.identity's, not the datapool's; the
# datasource's reader is imported on a read error only): their imports were 0.05-0.4 s of each shard process.
UNNEEDED = ("deltalake", "lightly_airflow.datapool", "lightly_airflow.datasource")
@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Four images (one of them not an image: a corrupt row and a problem row), a custom metadata field, a
    classification task (class distributions) and an object-detection task (category counts; the objects the
    embed task crops), listed into one manifest shard of a run with object-level work."""
    from PIL import Image

    from lightly_airflow import staging
    from lightly_airflow.datasource import list_files, write_manifests
    from lightly_airflow.objects.spec import ObjectsSpec, write_spec

    root = tmp_path_factory.mktemp("shard")
    source, pool = root / "src", root / "pool"
    lightly = source / ".lightly"
    rng = np.random.default_rng(0)
    files: dict[str, object] = {
        "metadata/schema.json": [{"name": "weather", "path": "weather", "defaultValue": "unknown",
                                  "valueDataType": "CATEGORICAL_STRING"},
                                 {"name": "width", "path": "camera.width", "defaultValue": 0,
                                  "valueDataType": "NUMERIC_INT"}],
        "predictions/tasks.json": ["digits", "shapes"],
        "predictions/digits/schema.json": {"task_type": "classification",
                                           "categories": [{"id": 0, "name": "zero"}, {"id": 1, "name": "one"}]},
        "predictions/shapes/schema.json": {"task_type": "object-detection",
                                           "categories": [{"id": 0, "name": "square"}, {"id": 1, "name": "disk"}]},
    }
    source.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / f"img{i}.png")
        files[f"metadata/img{i}.json"] = {"file_name": f"img{i}.png", "type": "image",
                                          "metadata": {"weather": "rain", "camera": {"width": 64}}}
        files[f"predictions/digits/img{i}.json"] = {"file_name": f"img{i}.png", "predictions": [
            {"category_id": i % 2, "probabilities": [0.3, 0.7] if i % 2 else [0.8, 0.2]}]}
        if i < 2:  # (img2 has no object predictions: a missing file, a problem row)
            files[f"predictions/shapes/img{i}.json"] = {"file_name": f"img{i}.png", "predictions": [
                {"category_id": 0, "bbox": [4, 4, 20, 16], "score": 0.9},
                {"category_id": 1, "bbox": [30, 20, 24, 24], "score": 0.6}]}
    (source / "broken.png").write_bytes(rng.bytes(100))
    for rel, content in files.items():
        (lightly / rel).parent.mkdir(parents=True, exist_ok=True)
        (lightly / rel).write_text(json.dumps(content))
    listing = pa.Table.from_batches(list(list_files(f"file://{source}")))
    (manifest,) = write_manifests(listing, f"file://{pool}", "run-1", datasource_uri=f"file://{source}",
                                  lightly_uri=f"file://{source}")
    write_spec(ObjectsSpec(tasks=("shapes",)), staging.run_dir(f"file://{pool}", "run-1"))
    return {"manifest": manifest, "source": str(source), "staging": str(Path(manifest[len("file://"):]).parents[1])}


def test_a_metadata_shard_imports_numba_for_its_kernels_but_not_pandas_or_torch(shard: dict[str, str]) -> None:
    """pyarrow 26 imports pandas on the first ``pa.array`` of a list (0.2-0.3 s of the task; arrow.from_pylist)."""
    modules = modules_loaded(HEAVY + UNNEEDED, "metadata", "--manifest", shard["manifest"])
    out = pq.read_table(f"{shard['staging']}/metadata/shard-00000.parquet").to_pydict()
    assert out[C.STATUS] == ["corrupt", "ok", "ok", "ok"] and out[C.lightly_metadata_column("width")][1:] == [64] * 3
    # (the custom fields' columns, built too)
    assert out["metadata.weather"] == ["unknown", "rain", "rain", "rain"] and out["metadata.camera.width"][1] == 64
    assert pq.read_table(f"{shard['staging']}/errors/metadata-shard-00000.parquet").num_rows == 1  # (broken.png)
    assert "numba" in modules  # (its pixel kernels: needed)
    assert not {"pandas", "torch", "pyarrow.dataset", "deltalake", "lightly_airflow.datapool"} & set(modules)


def test_a_predictions_shard_imports_no_pandas_numba_torch_or_compute(shard: dict[str, str]) -> None:
    modules = modules_loaded(HEAVY + UNNEEDED, "predictions", "--manifest", shard["manifest"], "--lightly-uri", shard["source"])
    out = pq.read_table(f"{shard['staging']}/predictions/shard-00000.parquet")
    assert out.num_rows == 4 and out.column(C.class_distribution_column("digits")).to_pylist()[1:] == [
        pytest.approx([0.8, 0.2]), pytest.approx([0.3, 0.7]), pytest.approx([0.8, 0.2])]
    assert out.column(C.category_count_column("shapes", "disk")).to_pylist() == [None, 1, 1, None]  # (img2: none)
    assert pq.read_table(f"{shard['staging']}/errors/predictions-shard-00000.parquet").num_rows >= 1
    assert modules == []


def test_an_embed_shard_with_objects_imports_torch_and_numba_but_not_pandas(shard: dict[str, str]) -> None:
    modules = modules_loaded(HEAVY + UNNEEDED, "embed", "--manifest", shard["manifest"], "--device", "cpu", "--batch-size", "4")
    emb = pq.read_table(f"{shard['staging']}/embeddings/shard-00000.parquet")
    assert emb.column(C.STATUS).to_pylist() == ["corrupt", "ok", "ok", "ok"] and emb.column(C.EMBEDDING).null_count == 1
    objects = pq.read_table(f"{shard['staging']}/objects/shard-00000.parquet")
    assert objects.num_rows == 4 and len(objects.column(C.OBJECT_CROP_BOX).to_pylist()[0]) == 4
    assert {"torch", "numba"} <= set(modules)  # (the encoder; the crops' metrics kernels: needed)
    assert not {"pandas", "pyarrow.dataset", *UNNEEDED} & set(modules)


@pytest.mark.parametrize(("values", "type_"), [
    (["a", None, "ü", ""], pa.string()), ([None] * 3, pa.string()), ([], pa.string()),
    ([1, None, -5], pa.int64()), ([35.0, None, 2], pa.int64()), ([255.0], pa.uint8()),
    ([1.5, None, 2], pa.float64()), ([0.1, 2**24, -(2**24)], pa.float32()), ([2**53, -(2**53)], pa.float64()),
    ([True, None, False] * 4, pa.bool_()),
    ([[1.0, 2.5], None, [], (3, 4)], pa.list_(pa.float64())), ([[1, 2], [None]], pa.list_(pa.int64())),
    # values pyarrow converts by its own rules or refuses: handed to pa.array itself
    ([2**53 + 1], pa.float64()), ([2**24 + 1], pa.float32()), ([300], pa.int8()), ([1.5], pa.int64()), (["x", 1], pa.string()),
    ([True], pa.int64()), ([float("inf")], pa.int64()), ([np.float64(1.5)], pa.float64()), (["\ud800"], pa.string()),
    ([{"a": 1}], pa.struct([("a", pa.int64())])),
])
def test_the_builders_give_pa_arrays_array_or_error(values: list[object], type_: pa.DataType) -> None:
    from lightly_airflow.arrow import from_pylist

    try:
        expected: object = pa.array(values, type_)
    except Exception as exc:  # noqa: BLE001 - the same error type is the contract
        with pytest.raises(type(exc)):
            from_pylist(values, type_)
        return
    got = from_pylist(values, type_)
    got.validate(full=True)
    assert got.type == type_ and got.to_pylist() == expected.to_pylist()  # type: ignore[attr-defined]


def test_from_numpy_and_list_array_are_pa_arrays_arrays() -> None:
    from lightly_airflow.arrow import from_numpy, list_array

    mask = np.array([False, True, False])
    for values in (np.arange(6, dtype=np.float32)[::2], np.array([3, 4, 5]), np.array([True, False, True])):
        got = from_numpy(values, mask)
        got.validate(full=True)
        assert got.equals(pa.array(values, mask=mask))
    offsets = np.array([0, 2, 2, 3], np.int32)
    got = list_array(offsets, from_numpy(np.arange(3, dtype=np.float32)), mask)
    got.validate(full=True)
    assert got.equals(pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.arange(3, dtype=np.float32)),
                                               mask=pa.array(mask)))


def test_an_embed_shard_of_video_frames_imports_no_pandas(tmp_path: Path) -> None:
    """A video's frames: their hashes and metrics (video.frames.FrameExtras.columns) are columns of the output."""
    from lightly_airflow import pipeline
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.video.synthetic import make_scene_video

    (tmp_path / "src").mkdir()
    make_scene_video(str(tmp_path / "src" / "clip.mp4"), "coffee", 6, seed=0)
    (manifest,) = pipeline.list_new(NewFilesQuery.build(datasource_uri=str(tmp_path / "src"),
                                                        datapool_uri=str(tmp_path / "pool")), run_id="r1").manifests
    modules = modules_loaded(HEAVY + UNNEEDED, "embed", "--manifest", manifest, "--device", "cpu", "--output", str(tmp_path / "e.parquet"))
    out = pq.read_table(tmp_path / "e.parquet")
    assert out.num_rows == 6 and out.column(C.CONTENT_HASH).null_count == 0
    assert out.column(C.lightly_metadata_column("width")).to_pylist() == [out.column(C.lightly_metadata_column(
        "width")).to_pylist()[0]] * 6
    assert "torch" in modules and not {"pandas", *UNNEEDED} & set(modules)
