"""Label Studio and COCO documents: JSON that loads back to exactly the tasks and images, one per line."""

from __future__ import annotations

import json

import pytest

from lightly_airflow.datapool.export import (
    ExportRecord,
    coco_images,
    json_document,
    key_uri,
    label_studio_tasks,
    render,
)

KEYS = ["a.jpg", "sub dir/ünï cöde.png", 'q"uote\\back.jpg', "line\nbreak.jpg", "\u2028sep.jpg", "frame-001-mp4.png"]


def _records() -> list[ExportRecord]:
    out = []
    for i, key in enumerate(KEYS):
        frame = {"video": "v.mp4", "frame_index": 1, "frame_pts": 512, "frame_seconds": 0.04} if "frame" in key else {}
        out.append(ExportRecord(key=key, uri=key_uri("s3://bucket/data", key), sample_id=f"{i:032x}", run_id="r1",
                                pick_rank=i, width=640 if i % 2 else None, height=480 if i % 2 else None, **frame))
    return out


@pytest.mark.parametrize("fmt", ["label-studio", "coco"])
def test_a_document_loads_back_to_its_entries_one_line_each(fmt: str) -> None:
    records = _records()
    text = render(records, "t1", fmt)
    assert text.isascii() and text.endswith("\n")
    doc = json.loads(text)
    if fmt == "label-studio":
        assert doc == label_studio_tasks(records, "t1")
        assert [t["meta"]["key"] for t in doc] == KEYS
        assert "video" in doc[-1]["meta"] and "video" not in doc[0]["meta"]  # frames only
        entries = doc
    else:
        assert doc == coco_images(records, "t1")
        entries = doc["images"]
    lines = text.splitlines()
    for entry in entries:  # each entry is one line of the document (a key's line break stays escaped)
        assert sum(json.dumps(entry, ensure_ascii=True) in line for line in lines) == 1


def test_json_document_keeps_every_value() -> None:
    for value in ([], {}, [1, [2, [3]], {"a": []}], {"info": {"x": "é"}, "images": [], "n": None}, "s", 1.5, None):
        assert json.loads(json_document(value)) == value
