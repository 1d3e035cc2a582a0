"""What a shard process imports when a file is bad, and what an embed shard imports: each probe is a fresh interpreter
(an import made by another test of this process would hide one the command makes).

- A metadata shard with a corrupt image and a predictions shard with a task whose schema.json is not JSON end those
  problems with their fix (``fixes.split_fix``); it lived in the report package, whose ``__init__`` loads the report
  writer (0.09-0.13 s of CPU a shard process).
- An embed shard imports ``objects.shard``; the ``objects`` package's ``__init__`` imported the select task's
  ``objects.run`` with it, and so ``pyarrow.compute`` (0.03 s).
- A metadata shard imported the predictions shard (and its parsers and scorers) for one question about its manifest's
  rows, ``staging.Manifest.unreadable_videos`` now (0.013 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from startup_probe import modules_loaded

from lightly_airflow import columns as C

WATCHED = ("lightly_airflow.report", "lightly_airflow.objects.run", "lightly_airflow.predictions.shard",
           "pyarrow.compute")
@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two images and a file that is not one (``broken.png``), a classification task and a task whose schema.json is
    not JSON, listed into one manifest shard."""
    from PIL import Image

    from lightly_airflow.datasource import list_files, write_manifests

    root = tmp_path_factory.mktemp("shard")
    source, pool = root / "src", root / "pool"
    rng = np.random.default_rng(0)
    lightly = source / ".lightly" / "predictions"
    (lightly / "digits").mkdir(parents=True)
    (lightly / "broken").mkdir(parents=True)
    (lightly / "tasks.json").write_text(json.dumps(["digits", "broken"]))
    (lightly / "digits" / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": 0, "name": "zero"}, {"id": 1, "name": "one"}]}))
    (lightly / "broken" / "schema.json").write_text('{"task_type": "classification", ')
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / f"img{i}.png")
        (lightly / "digits" / f"img{i}.json").write_text(json.dumps({"file_name": f"img{i}.png", "predictions": [
            {"category_id": i, "probabilities": [0.8, 0.2] if i == 0 else [0.1, 0.9]}]}))
    (source / "broken.png").write_bytes(rng.bytes(100))
    listing = pa.Table.from_batches(list(list_files(f"file://{source}")))
    (manifest,) = write_manifests(listing, f"file://{pool}", "run-1", datasource_uri=f"file://{source}",
                                  lightly_uri=f"file://{source}")
    return {"manifest": manifest, "source": str(source), "staging": str(Path(manifest[len("file://"):]).parents[1])}


def test_a_metadata_shard_with_a_corrupt_file_gives_its_fix_without_the_report_package(shard: dict[str, str]) -> None:
    modules = modules_loaded(WATCHED, "metadata", "--manifest", shard["manifest"])
    out = pq.read_table(f"{shard['staging']}/metadata/shard-00000.parquet").to_pydict()
    assert out[C.KEY] == ["broken.png", "img0.png", "img1.png"] and out[C.STATUS] == ["corrupt", "ok", "ok"]
    (error,) = pq.read_table(f"{shard['staging']}/errors/metadata-shard-00000.parquet").to_pylist()
    assert error[C.KEY] == "broken.png" and ". Fix: " in error["reason"]
    assert modules == []  # (the report package loaded pyarrow.compute too)


def test_a_predictions_shard_with_a_skipped_task_gives_its_fix_without_the_report_package(
        shard: dict[str, str]) -> None:
    modules = modules_loaded(WATCHED, "predictions", "--manifest", shard["manifest"], "--lightly-uri", shard["source"])
    out = pq.read_table(f"{shard['staging']}/predictions/shard-00000.parquet")
    assert out.column(C.class_distribution_column("digits")).to_pylist()[1:] == [
        pytest.approx([0.8, 0.2]), pytest.approx([0.1, 0.9])]
    errors = pq.read_table(f"{shard['staging']}/errors/predictions-shard-00000.parquet").to_pylist()
    skipped = [e["reason"] for e in errors if "(task 'broken' is skipped)" in e["reason"]]
    assert len(skipped) == 1 and ". Fix: " in skipped[0], errors
    assert modules == ["lightly_airflow.predictions.shard"]  # (the report package loaded pyarrow.compute too)


def test_an_embed_shard_imports_neither_the_select_tasks_objects_module_nor_pyarrow_compute(
        shard: dict[str, str]) -> None:
    modules = modules_loaded(WATCHED, "embed", "--manifest", shard["manifest"], "--device", "cpu", "--batch-size", "4")
    emb = pq.read_table(f"{shard['staging']}/embeddings/shard-00000.parquet")
    assert emb.column(C.STATUS).to_pylist() == ["corrupt", "ok", "ok"] and emb.column(C.EMBEDDING).null_count == 1
    assert modules == []


def test_the_objects_packages_names_still_load_on_use() -> None:
    import lightly_airflow.objects as objects
    from lightly_airflow.objects.run import load_run_objects
    from lightly_airflow.objects.spec import ObjectsSpec

    assert objects.load_run_objects is load_run_objects and objects.ObjectsSpec is ObjectsSpec
    assert all(getattr(objects, n) is not None for n in objects.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = objects.nothing
