"""The object-level part of the demo: images are selected by the crops of their detected objects.

Real photographs with pasted shapes and an object-detection task ``shapes`` in ``.lightly/predictions/``
(:mod:`lightly_airflow.objects.demo_data`). Run 1 selects images with diverse objects (DIVERSITY on the
task's crop embeddings, Lightly's "Selection on object level"); more images arrive and run 2 embeds only
their objects, keeping away from the objects of the images selected before; in run 3 a video arrives with the
shapes detected on its frames (Lightly's per-frame prediction files), and its frames are selected by their
objects beside the images. The selected objects' crops are written as PNG under ``.lightly/crops/shapes/``
(``crops.enable_upload``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

CONFIG = {"n_samples": 6, "strategies": [{"input": {"type": "EMBEDDINGS", "task": "shapes"},
                                          "strategy": {"type": "DIVERSITY"}}]}
WORKER = {"object_level": {"padding": 0.1}, "crops": {"enable_upload": True}}


def _summarize(name: str, pool_uri: str) -> None:
    import pyarrow.compute as pc

    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool

    pool = Datapool(pool_uri)
    last = pool.history()[-1]
    rows = pool.read(columns=[C.KEY, C.PARENT_KEY, C.SELECTED, C.OBJECT_SELECTED, C.RUN_ID])
    rows = rows.filter(pc.equal(rows.column(C.RUN_ID), last.get("run_id")))  # this run's rows
    objects = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY)))
    images = rows.filter(pc.is_null(rows.column(C.PARENT_KEY)))
    picked = pc.sum(pc.fill_null(images.column(C.SELECTED), False)).as_py() or 0
    picked_objects = pc.sum(pc.fill_null(objects.column(C.OBJECT_SELECTED), False)).as_py() or 0
    print(f"   {name}: images/frames processed {images.num_rows} | objects {objects.num_rows} | selected {picked} "
          f"by their objects ({picked_objects} objects) | datapool version {last.get('version')}")


def run_walkthrough(root: Path, run_dag: Callable[[str, dict, dict[str, str]], None], env: dict[str, str]) -> None:
    """Write the images under ``root/objects`` and run the two object-level runs into ``root/objects-datapool``."""
    from lightly_airflow.objects.demo_data import add_images, add_video

    source, pool = root / "objects", root / "objects-datapool"
    conf = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool}",
            "selection_config": CONFIG, "worker_config": WORKER}
    print(f"==> objects, run 1: images with detected shapes in {source.name}/; select images with diverse objects")
    first = add_images(source, 0, 24, seed=1)
    print(f"   wrote {len(first)} images with {sum(len(p) for p in first.values())} predicted boxes (task 'shapes')")
    run_dag("objects-run-1", conf, env)
    _summarize("objects run 1", f"file://{pool}")
    second = add_images(source, 24, 12, seed=2)
    print(f"==> objects, run 2: {len(second)} images arrive; only their objects are cropped and embedded")
    run_dag("objects-run-2", conf, env)
    _summarize("objects run 2", f"file://{pool}")
    frames = add_video(source, "dashcam", 48, seed=3)
    print(f"==> objects, run 3: a video arrives with shapes detected on {sum(1 for p in frames.values() if p)} of its "
          f"{len(frames)} frames ({sum(len(p) for p in frames.values())} boxes); frames are selected by their objects")
    run_dag("objects-run-3", conf, env)
    _summarize("objects run 3", f"file://{pool}")
    crops = sorted((source / ".lightly" / "crops" / "shapes").glob("*.png"))
    print(f"   crops of the selected objects written as PNG: {len(crops)} in "
          f"{(source / '.lightly' / 'crops' / 'shapes').relative_to(root.parent)}")
