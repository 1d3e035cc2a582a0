"""The video part of the demo: Lightly's datapool walk-through on a bucket of short generated videos.

Run 1 selects frames with DIVERSITY (minimum distance 0.1, n_samples 100) and ``enable_training: false``;
two more videos arrive and run 2 (minimum distance 0.2) processes only their frames; run 3 sets
``process_all`` (every frame again, nothing decoded: embeddings, hashes and metrics are reused).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _config(distance: float) -> dict:
    return {"n_samples": 100, "strategies": [{"input": {"type": "EMBEDDINGS"},
                                              "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": distance}}]}


def _summarize(name: str, pool_uri: str) -> None:
    from lightly_airflow.datapool import Datapool

    pool = Datapool(pool_uri)
    last = pool.history()[-1]
    counts = last.get("counts") or {}
    selected_total = next((t["count"] for t in pool.tags() if t["name"] == "initial-tag"), 0)
    print(f"   {name}: frames processed {counts.get('processed')} | corrupt {counts.get('corrupt')} | "
          f"selected {counts.get('selected')} (all runs: {selected_total}) | datapool version {last.get('version')}")


def run_walkthrough(root: Path, run_dag: Callable[[str, dict, dict[str, str]], None], env: dict[str, str]) -> None:
    """Generate the videos under ``root/videos`` and run the three walk-through runs into ``root/video-datapool``."""
    from lightly_airflow.video.synthetic import add_walkthrough_videos

    source, pool = root / "videos", root / "video-datapool"
    base = {"datasource_uri": f"file://{source}", "datapool_uri": f"file://{pool}",
            "worker_config": {"enable_training": False}}
    print(f"==> videos, run 1: Lightly's datapool walk-through on generated videos in {source.name}/")
    keys = add_walkthrough_videos(str(source), 0)
    print(f"   wrote {', '.join(keys)}; DIVERSITY with minimum distance 0.1, n_samples 100")
    run_dag("video-run-1", {**base, "selection_config": _config(0.1)}, env)
    _summarize("video run 1", f"file://{pool}")
    keys = add_walkthrough_videos(str(source), 1)
    print(f"==> videos, run 2: {', '.join(keys)} arrive; minimum distance 0.2; only their frames are processed")
    run_dag("video-run-2", {**base, "selection_config": _config(0.2)}, env)
    _summarize("video run 2", f"file://{pool}")
    print("==> videos, run 3: process_all (every frame again; unchanged videos are not decoded)")
    run_dag("video-run-3", {**base, "selection_config": _config(0.2),
                            "worker_config": {"datasource": {"process_all": True}, "enable_training": False}}, env)
    _summarize("video run 3", f"file://{pool}")
    frames = sorted((source / ".lightly" / "frames").glob("*.png"))
    print(f"   selected frames written as PNG: {len(frames)} in {(source / '.lightly' / 'frames').relative_to(root.parent)}")
