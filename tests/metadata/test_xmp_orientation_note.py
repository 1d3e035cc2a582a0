"""A picture turned by an orientation only its XMP packet gives is turned (as desktop viewers show it), and the
metadata pass says so: a note on the image and a count in the shard's result (browsers show the file as stored)."""

from __future__ import annotations

from pathlib import Path

from test_pixels_xmp_orientation import files

from lightly_airflow.metadata import compute_metadata_shard
from lightly_airflow.metadata.metrics import inspect_image
from tests.embedding.conftest import write_manifest


def test_an_orientation_from_xmp_alone_is_noted_and_counted(tmp_path: Path) -> None:
    made = files()
    notes = {name: dict(inspect_image(data, name).notes) for name, data in made.items()}
    assert "tiff:Orientation 6" in notes["xmp.jpg"]["orientation_from_xmp"]
    assert "orientation_from_xmp" in notes["xmp.png"]
    assert not any("orientation_from_xmp" in notes[name] for name in made if not name.startswith("xmp."))
    root = tmp_path / "images"
    root.mkdir()
    for name, data in made.items():
        (root / name).write_bytes(data)
    manifest = write_manifest(tmp_path / "pool/_staging/run/manifest/shard-00000.parquet", root.as_uri(),
                              sorted(made), root)
    counts = compute_metadata_shard(manifest, thumbnails_uri="")
    assert counts["ok"] == len(made) and counts["orientation_from_xmp"] == 2, counts
