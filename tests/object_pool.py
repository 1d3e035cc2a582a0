"""A datapool with object rows, made by the pipeline's own stages for the UI tests (TestClient and browser).

The objects demo datasource (scikit-image photographs with pasted shapes and detection predictions of exactly
those shapes, :mod:`lightly_airflow.objects.demo_data`), two runs of the example DAG's stages in process
(listing with the run's object spec, metadata with thumbnails, predictions, the object pass of the embed task
with its crop thumbnails, select-and-commit with object DIVERSITY): only the model is replaced by 16x16 grey
pixels (torchvision models do not run here), for the images and their crops alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAG_ID = "lightly_datapool"
OBJECT_RUNS = ("scheduled__2026-05-01T00:00:00+00:00", "scheduled__2026-05-02T00:00:00+00:00")
N_SAMPLES = 5


@dataclass(frozen=True)
class ObjectPool:
    uri: str
    path: Path
    source: Path
    predictions: dict[str, list[dict[str, Any]]]  # key -> the predicted boxes written for it


class PixelEncoder:
    """The embed stage's encoder interface with 16x16 grey pixels instead of a model (L2-normalised)."""

    model_id, dim, input_size = "pixels-16", 256, 16

    def __call__(self, images: Any) -> Any:

        grey = images.float().mean(dim=1).reshape(images.shape[0], -1) - 128.0
        return grey / grey.norm(dim=1, keepdim=True).clamp_min(1e-6)


def _pixels(path: Path) -> list[float] | None:
    from PIL import Image

    try:
        img = Image.open(path).convert("L").resize((16, 16), Image.Resampling.BILINEAR, reducing_gap=3.0)
    except Exception:  # noqa: BLE001 - a corrupt file has no embedding, as with a model
        return None
    v = np.asarray(img, dtype=np.float32).ravel() - 128.0
    return (v / (np.linalg.norm(v) or 1.0)).tolist()


def pixel_embeddings(manifest_uri: str, source: Path) -> None:
    """The embed stage's staging file of the images, with the pixel encoder."""
    from lightly_airflow import columns as C
    from lightly_airflow import staging

    table = pq.read_table(manifest_uri)
    vectors = [_pixels(source / key) for key in table.column(C.KEY).to_pylist()]
    meta = {C.EMBEDDING_MODEL_METADATA_KEY: json.dumps(PixelEncoder.model_id),
            C.EMBEDDING_DIM_METADATA_KEY: json.dumps(PixelEncoder.dim),
            C.EMBEDDING_INPUT_SIZE_METADATA_KEY: json.dumps(PixelEncoder.input_size)}
    out = pa.table({
        C.KEY: table.column(C.KEY), C.ETAG: table.column(C.ETAG).cast(pa.string()),
        C.EMBEDDING: pa.array(vectors, pa.list_(pa.float32())),
        C.STATUS: ["ok" if v is not None else "corrupt" for v in vectors],
        C.STATUS_REASON: pa.nulls(table.num_rows, pa.string()),
    }).replace_schema_metadata(meta)
    path = staging.sibling_uri(manifest_uri, staging.EMBEDDINGS)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, path)


def run_objects_pipeline(source: Path, pool: Path, run_id: str, selection: dict[str, Any], spec: Any, *,
                         process_all: bool = False) -> Any:
    """One run of the example DAG's stages, in process, with object-level work (``spec``: the run's
    :class:`~lightly_airflow.objects.ObjectsSpec`, as the list task derives it from the configs; ``None``: none)."""
    import torch

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.objects.shard import embed_objects_shard
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard

    query = NewFilesQuery.build(datasource_uri=str(source), datapool_uri=str(pool), process_all=process_all)
    listed = list_new(query, run_id=run_id, objects=spec)
    for manifest in listed.manifests:
        compute_metadata_shard(manifest)
        load_predictions_shard(manifest, lightly_uri=str(source))
        pixel_embeddings(manifest, source)
        embed_objects_shard(manifest, encoder=PixelEncoder(), device=torch.device("cpu"), batch_size=8,
                            num_workers=2)
    return select_and_commit(datapool_uri=str(pool), run_id=run_id, dag_id=DAG_ID, manifests=listed.manifests,
                             selection_config=selection)


def build_object_pool(root: Path) -> ObjectPool:
    """Two object-level runs (12 then 6 images) selecting :data:`N_SAMPLES` images by object DIVERSITY."""
    from lightly_airflow.objects import ObjectsSpec
    from lightly_airflow.objects.demo_data import TASK, add_images

    source, pool = root / "object-images", root / "object-pool"
    selection = {"n_samples": N_SAMPLES,
                 "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK}, "strategy": {"type": "DIVERSITY"}}]}
    spec = ObjectsSpec(tasks=(TASK,), padding=0.1, upload=False, selection_tasks=(TASK,))
    preds = add_images(source, 0, 12, seed=5)
    run_objects_pipeline(source, pool, OBJECT_RUNS[0], selection, spec)
    preds.update(add_images(source, 12, 6, seed=5))
    run_objects_pipeline(source, pool, OBJECT_RUNS[1], selection, spec)
    return ObjectPool(f"file://{pool}", pool, source, preds)
