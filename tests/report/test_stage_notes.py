"""What the stages guessed or dropped without failing a file reaches the run summary and the report's notes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from lightly_doc_examples import CLASSIFICATION_ONLY_CATEGORY, CLASSIFICATION_SCHEMA
from metadata.conftest import make_manifest, write_tree

from lightly_airflow import columns as C
from lightly_airflow.pipeline import _merged_meta, _prediction_counts
from lightly_airflow.predictions import load_predictions_shard
from lightly_airflow.report import write_report

P = ".lightly/predictions/"


def _meta(path: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}


def test_predictions_without_probabilities_are_summed_over_shards_into_the_summary(tmp_path: Path) -> None:
    """Each predictions shard counts its predictions without probabilities (logged); the select task merges the
    shards' schema metadata, where a later shard's value used to win: the count never reached the summary."""
    store = tmp_path / "store"
    files = {P + "tasks.json": ["weather"], P + "weather/schema.json": CLASSIFICATION_SCHEMA}
    files.update({P + f"weather/a/{i}.json": {**CLASSIFICATION_ONLY_CATEGORY, "file_name": f"a/{i}.png"}
                  for i in range(3)})
    write_tree(store, files)
    shards = [make_manifest(tmp_path / "s0", ["a/0.png", "a/1.png"], lightly_uri=str(store)),
              make_manifest(tmp_path / "s1", ["a/2.png", "a/3.png"], lightly_uri=str(store))]  # (a/3: no file)
    results = [load_predictions_shard(m) for m in shards]
    assert [r["derived_probabilities"] for r in results] == [{"weather": 2}, {"weather": 1}]
    outs = [r["output_uri"] for r in results]
    meta: dict[str, str] = {}
    for out in outs:
        meta = _merged_meta(meta, _meta(out))
    assert _prediction_counts(meta) == ({"weather": 3}, [])
    assert json.loads(meta[C.CATEGORIES_METADATA_KEY]) == {"weather": ["sunny", "clouded", "rainy"]}  # (others: kept)
    assert _prediction_counts({}) == ({}, [])  # a run without predictions


def test_report_notes_show_derived_probabilities_object_drops_and_failed_frames(tmp_path: Path) -> None:
    rows = pa.table({C.KEY: ["a.png", "b.png"], C.STATUS: [C.STATUS_OK] * 2, C.SELECTED: [True, False]})
    summary = {"run_id": "r1", "derived_probabilities": {"<b>weather</b>": 1234},
               "objects": {"tasks": ["det"], "objects": 5, "boxes_outside_image": 7, "prediction_files_rejected": 2,
                           "video_frames_failed": 0, "images_failed": 3,
                           "notes": ["strategies[0]: 3 images selected before have no objects of task 'shapes'"]},
               "frames": {"written": 3, "failed": 2}}
    index = write_report(rows, out_uri=str(tmp_path / "rep"), summary=summary, config={})
    page = Path(index).read_text()
    notes = page.split("<h2>Notes (", 1)[1].split("</ul>", 1)[0]
    assert notes.startswith("6)")
    assert "strategies[0]: 3 images selected before have no objects of task &#x27;shapes&#x27;" in notes
    assert "1,234 predictions of task &#x27;&lt;b&gt;weather&lt;/b&gt;&#x27; have no &#x27;probabilities&#x27;" in notes
    assert "7 predicted boxes have no area inside their image" in notes
    assert "2 prediction files of object tasks give their image no objects" in notes
    assert "3 images with objects yield no objects: they could not be decoded or cropped" in notes
    assert "video frames with objects did not decode" not in notes  # (0: not said)
    assert "2 selected video frames could not be written as PNG" in notes
    empty = write_report(rows, out_uri=str(tmp_path / "rep2"), summary={"run_id": "r2"}, config={})
    assert "<h2>Notes" not in Path(empty).read_text()


def _index_embeddings(manifest_uri: str) -> None:
    """The embed stage's staging file without a model: each file's vector from its position in the shard."""
    from lightly_airflow import staging

    keys = pq.read_table(manifest_uri).column(C.KEY)
    angle = [0.3 * i + len(k) for i, k in enumerate(keys.to_pylist())]
    out = pa.table({C.KEY: keys, C.EMBEDDING: pa.array([[float(np.cos(a)), float(np.sin(a))] for a in angle],
                                                        pa.list_(pa.float32()))})
    meta = {C.EMBEDDING_MODEL_METADATA_KEY: json.dumps("index-2"), C.EMBEDDING_DIM_METADATA_KEY: json.dumps(2)}
    path = Path(staging.sibling_uri(manifest_uri, staging.EMBEDDINGS))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out.replace_schema_metadata(meta), path)


def test_a_run_of_two_shards_reports_its_predictions_without_probabilities(tmp_path: Path) -> None:
    """End to end in process: list (two shards), metadata, predictions, embeddings, select and commit: the run
    summary and the report's notes hold both shards' predictions without probabilities."""
    from metadata.conftest import encode, noise_image

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit

    source, pool = tmp_path / "images", tmp_path / "pool"
    keys = [f"img/{i:02d}.png" for i in range(8)]
    files: dict[str, object] = {k: encode(noise_image(i)) for i, k in enumerate(keys)}
    files.update({P + "tasks.json": ["weather"], P + "weather/schema.json": CLASSIFICATION_SCHEMA})
    files.update({P + f"weather/{k[:-4]}.json": {**CLASSIFICATION_ONLY_CATEGORY, "file_name": k} for k in keys[:5]})
    write_tree(source, files)
    listed = list_new(NewFilesQuery.build(datasource_uri=str(source), datapool_uri=str(pool)), run_id="r1",
                      min_shard_size=4)
    assert len(listed.manifests) == 2
    for manifest in listed.manifests:
        compute_metadata_shard(manifest, thumbnails_uri="")
        load_predictions_shard(manifest, lightly_uri=str(source))
        _index_embeddings(manifest)
    summary = select_and_commit(datapool_uri=str(pool), run_id="r1", dag_id="d", manifests=listed.manifests,
                                selection_config={"n_samples": 2, "strategies": [
                                    {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]})
    assert summary.derived_probabilities == {"weather": 5}
    assert summary.report_uri is not None
    page = Path(summary.report_uri.removeprefix("file://")).read_text()
    assert "5 predictions of task &#x27;weather&#x27; have no &#x27;probabilities&#x27;" in page
