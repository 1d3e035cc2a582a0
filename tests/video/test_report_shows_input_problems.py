"""The run report shows the run's input problems (``problems.parquet``), grouped by kind with counts, the first
examples of each with their key, file and fix, and where the full list is. Before, the page showed the files not ok
and the listing's skips, but none of the prediction files named otherwise (each with its rename), although the run
wrote them to ``problems.parquet`` and counted them in its summary."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from lightly_airflow.video.synthetic import make_scene_video

from .runs import run_once

CONFIG = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}


def _index(report_uri: str) -> str:
    path = report_uri.removeprefix("file://")
    return unescape(Path(path if path.endswith(".html") else f"{path}/index.html").read_text())


def test_the_report_lists_the_run_s_problems_by_kind_with_the_fix(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    source = tmp_path / "bucket"
    make_scene_video(str(source / "clip.mp4"), "coffee", 12, seed=1)  # 12 frames: clip-00-mp4.png … clip-11-mp4.png
    make_scene_video(str(source / "other.mp4"), "rocket", 4, seed=2)  # 4 frames, no prediction files at all
    task = source / ".lightly" / "predictions" / "t"
    task.mkdir(parents=True)
    (source / ".lightly" / "predictions" / "tasks.json").write_text(json.dumps(["t"]))
    (task / "schema.json").write_text(json.dumps(
        {"task_type": "classification", "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}))
    for i in range(12):  # 0-9 named without the zero padding: not read, each one a problem with its rename
        (task / f"clip-{i}-mp4.json").write_text(json.dumps(
            {"file_name": f"clip-{i}-mp4.png", "predictions": [{"category_id": 0, "probabilities": [0.7, 0.3]}]}))

    _, _, summary = run_once(f"file://{source}", f"file://{tmp_path / 'pool'}", "run1", config=CONFIG)
    problems = pq.read_table(summary.problems_uri.removeprefix("file://")).to_pylist()
    assert summary.problems == len(problems) == 14
    page = _index(summary.report_uri)

    assert "Problems with input files (14)" in page
    assert re.search(r'<div class="n">14</div><div class="l">input problems</div>', page)
    # two kinds: 10 misnamed (with the rename), 4 without any file (with the fix the report knows)
    assert "problems.parquet</code> beside this report" in page
    section = page[page.index("Problems with input files"):]
    assert re.search(r"<td>predictions</td><td>file</td><td>no prediction file for task '…', but … exists: its frame "
                     r"number is written with N digit[^<]*</td><td class=\"num\">10</td>", section)
    assert re.search(r"<td>no prediction file for task '…'</td><td class=\"num\">4</td>", section)
    # the first examples of a kind: key, file, problem, fix
    assert ('<td class="key">clip-00-mp4.png</td><td class="key">.lightly/predictions/t/clip-00-mp4.json</td>'
            in section)
    assert "<td>Rename it to .lightly/predictions/t/clip-00-mp4.json (it is not read under its other name)</td>" in section
    assert '<td class="key">other-0-mp4.png</td><td class="key">.lightly/predictions/t/other-0-mp4.json</td>' in section
    assert "add the file at the path shown" in section
    assert "… and 5 more of this kind, in <code>problems.parquet</code>" in section  # 5 examples of 10
