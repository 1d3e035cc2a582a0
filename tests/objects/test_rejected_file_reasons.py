"""The object pass's list of rejected prediction files (its warning) after a real object run: each entry is the
file's path and the error's own text, once; it read ``.lightly/predictions/det/broken.json: LightlyFileError:
.lightly/predictions/det/broken.json: invalid JSON …``: the class name and the path a second time."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from objects.test_user_boxes import _box, _run


def test_a_rejected_prediction_file_is_named_once_with_its_own_reason(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for key in ("good.png", "broken.png"):
        Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(source / key)
    (source / ".lightly" / "predictions" / "det").mkdir(parents=True)
    (source / ".lightly" / "predictions" / "det" / "broken.json").write_text('{"file_name": "broken.png", "predi')
    caplog.set_level(logging.WARNING, logger="lightly_airflow.objects.shard")
    counts = _run(source, tmp_path / "pool", {"good.png": [_box([1, 1, 10, 10])]})
    assert counts["prediction_files_rejected"] == 1 and counts["objects"] == 1
    (entry,) = [m.split("): ", 1)[1] for m in caplog.messages if "prediction file" in m]
    assert entry.startswith(".lightly/predictions/det/broken.json: invalid JSON: "), entry
    assert "Error" not in entry and entry.count("broken.json") == 1, entry
    assert "Fix: " in entry  # (the error's own fix, at its end)
