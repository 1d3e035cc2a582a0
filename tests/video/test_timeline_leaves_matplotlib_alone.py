"""The report's video timeline is drawn on its own Agg canvas, as the report's other plots: it used
``matplotlib.use("Agg")`` and pyplot, which switched the backend of the whole process (a user's notebook, a test's),
and drew "selected now" in red where the embedding map uses orange."""

from __future__ import annotations

import io

import matplotlib
import pyarrow as pa
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.report.plots import GROUP_COLOURS
from lightly_airflow.video.report import video_timeline_png


def test_the_timeline_keeps_the_process_backend_and_the_map_s_colours() -> None:
    rows = pa.table({C.KEY: [f"v-{i:02d}-mp4.png" for i in range(20)], C.VIDEO: ["v.mp4"] * 20,
                     C.FRAME_INDEX: list(range(20)), C.FRAME_SECONDS: [i / 10 for i in range(20)],
                     C.SELECTED: [i % 5 == 0 for i in range(20)]})
    backend = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        png = video_timeline_png(rows)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    assert png is not None
    colours = {c for _, c in Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 16)}
    orange = tuple(int(GROUP_COLOURS[2][i : i + 2], 16) for i in (1, 3, 5))
    assert orange in colours and (214, 39, 40) not in colours  # (the selected frames' dots: the map's orange)
