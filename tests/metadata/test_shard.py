"""compute_metadata_shard on a fixture bucket with every kind of damage, plus the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.cli import main
from lightly_airflow.metadata import TooManyErrorsError, compute_metadata_shard

from .conftest import encode, make_manifest, noise_image, write_tree


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    good = {f"good/img_{i:02d}.png": encode(noise_image(i)) for i in range(12)}
    good["good/photo.jpg"] = encode(noise_image(99), "JPEG")
    png = encode(noise_image(50))
    jpg = encode(noise_image(51), "JPEG")
    bad = {
        "bad/empty.png": b"",
        "bad/text.png": b"hello, I am not an image",
        "bad/png_named.jpg": png,
        "bad/truncated.png": png[: len(png) // 2],
        "bad/truncated.jpg": jpg[: len(jpg) // 3],
        "bad/bomb.png": encode(np.zeros((300, 400, 3), np.uint8)),
    }
    dups = {"dup/copy_b.png": good["good/img_03.png"], "dup/copy_a.png": good["good/img_03.png"]}
    files = {**good, **bad, **dups}
    write_tree(tmp_path / "bucket", files)
    keys = sorted(files) + ["gone/deleted.png"]
    return make_manifest(tmp_path, keys), files


def test_every_damaged_file_is_reported_and_good_ones_kept(damaged, monkeypatch):
    manifest, files = damaged
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # the 400x300 "bomb" exceeds it
    counts = compute_metadata_shard(manifest, num_workers=2)
    table = pq.read_table(counts["output_uri"])
    rows = {r[C.KEY]: r for r in table.to_pylist()}
    assert counts["output_uri"].endswith("_staging/run-1/metadata/shard-00000.parquet")
    assert counts["errors_uri"].endswith("_staging/run-1/errors/metadata-shard-00000.parquet")
    assert (counts["ok"], counts["corrupt"], counts["duplicate"], counts["missing"]) == (13, 6, 2, 1)

    for key in files:
        if key.startswith("good/") and key != "good/img_03.png":
            assert rows[key][C.STATUS] == "ok", rows[key]
            assert rows[key][C.lightly_metadata_column("width")] == 64
            assert rows[key][C.lightly_metadata_column("sharpness")] > 0
            assert rows[key][C.lightly_metadata_column("sizeInBytes")] == len(files[key])
        assert rows[key][C.CONTENT_HASH] == hashlib.sha256(files[key]).hexdigest()
    assert rows["gone/deleted.png"][C.STATUS] == "missing"

    errors = pq.read_table(counts["errors_uri"]).to_pylist()
    reasons = {e[C.KEY]: e["reason"] for e in errors}
    assert set(reasons) == {k for k in files if k.startswith("bad/")} | {"gone/deleted.png"}
    assert "empty file" in reasons["bad/empty.png"]
    assert "not an image" in reasons["bad/text.png"]
    assert "extension" in reasons["bad/png_named.jpg"]
    assert "truncated" in reasons["bad/truncated.png"]
    assert "truncated" in reasons["bad/truncated.jpg"]
    assert "decompression bomb" in reasons["bad/bomb.png"]
    assert "disappeared" in reasons["gone/deleted.png"]
    assert all(e["stage"] == "metadata" for e in errors)
    for row in rows.values():
        if row[C.STATUS] == "corrupt":
            assert row[C.lightly_metadata_column("sharpness")] is None
            assert row[C.STATUS_REASON]


def test_duplicates_keep_smallest_key(damaged):
    manifest, files = damaged
    rows = {r[C.KEY]: r for r in pq.read_table(compute_metadata_shard(manifest)["output_uri"]).to_pylist()}
    # good/img_03.png < dup/... is false: "dup/" < "good/", so dup/copy_a.png is the group's smallest key.
    assert rows["dup/copy_a.png"][C.STATUS] == "ok"
    assert rows["dup/copy_b.png"][C.STATUS] == "duplicate"
    assert rows["dup/copy_b.png"][C.DUPLICATE_OF] == "dup/copy_a.png"
    assert rows["good/img_03.png"][C.DUPLICATE_OF] == "dup/copy_a.png"


def test_max_error_fraction_fails_after_writing_the_report(damaged):
    manifest, _ = damaged
    with pytest.raises(TooManyErrorsError, match="max_error_fraction=0.1"):
        compute_metadata_shard(manifest, max_error_fraction=0.1)
    assert Path(manifest.replace("manifest/shard", "errors/metadata-shard")).exists()
    compute_metadata_shard(manifest, max_error_fraction=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        compute_metadata_shard(manifest, max_error_fraction=2)


def test_one_bad_file_among_many_good(tmp_path):
    files = {f"{i:03d}.png": encode(noise_image(i, (16, 16))) for i in range(60)}
    files["030.png"] = files["030.png"][:40]
    write_tree(tmp_path / "bucket", files)
    counts = compute_metadata_shard(make_manifest(tmp_path, sorted(files)))
    assert (counts["ok"], counts["corrupt"], counts["errors"]) == (59, 1, 1)


def test_cli_writes_output_and_prints_counts(damaged, capsys):
    manifest, _ = damaged
    out = str(Path(manifest).parent.parent / "custom.parquet")
    assert main(["metadata", "--manifest", manifest, "--output", out]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["output_uri"] == out and Path(out).exists()
    assert printed["corrupt"] == 5  # without the lowered pixel limit the 400x300 image is fine


def test_manifest_without_datasource_uri_is_a_clear_error(tmp_path):
    import pyarrow as pa

    path = tmp_path / "pool" / "manifest" / "shard-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({C.KEY: ["a.png"]}), path)
    with pytest.raises(ValueError, match="lightly.datasource_uri"):
        compute_metadata_shard(str(path))


#: Lightly's corruptness-check page ("Configure Selection to Remove Broken Frames", Worker 2.7), as users bring it.
LIGHTLY_BROKEN_FRAME_CONFIG = {"n_samples": 100, "strategies": [
    {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
    {"input": {"type": "METADATA", "key": "lightly.uniformRowRatio"},
     "strategy": {"type": "THRESHOLD", "threshold": 0.025, "operation": "SMALLER"}}]}


def test_lightlys_broken_frame_filter_drops_striped_images_on_the_computed_metadata(tmp_path):
    """The metadata pass computes ``lightly.uniformRowRatio``; Lightly's documented THRESHOLD on it (keep
    less than 2.5 % uniform rows) keeps the clean photos and drops those whose lower rows are colour stripes."""
    import pyarrow as pa
    from skimage import data as skdata

    from lightly_airflow.selection import select

    files, striped = {}, set()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo = np.asarray(getattr(skdata, name)())[:, :, :3]
        h, w = photo.shape[:2]
        for j, (y, x) in enumerate([(0, 0), (h // 4, w // 4)]):
            view = np.ascontiguousarray(photo[y : y + h // 2, x : x + w // 2])
            files[f"{name}-{j}.jpg"] = encode(view, "JPEG", quality=90)
            broken = view.copy()
            broken[-view.shape[0] // 5 :: 2] = (0, 140, 0)  # every other row of the bottom fifth: 10 % stripes
            broken[-view.shape[0] // 5 + 1 :: 2] = (120, 120, 120)
            files[f"{name}-{j}-broken.png"] = encode(broken)
            striped.add(f"{name}-{j}-broken.png")
    write_tree(tmp_path / "bucket", files)
    counts = compute_metadata_shard(make_manifest(tmp_path, sorted(files)))
    assert counts["ok"] == len(files)
    table = pq.read_table(counts["output_uri"])
    ratio = dict(zip(table.column(C.KEY).to_pylist(),
                     table.column(C.lightly_metadata_column("uniformRowRatio")).to_pylist()))
    assert all(ratio[k] < 0.01 for k in files if k not in striped), ratio
    assert all(0.15 < ratio[k] < 0.25 for k in striped), ratio
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(table.num_rows, 8)).astype(np.float32)
    table = table.append_column(C.EMBEDDING, pa.array(list(vectors), pa.list_(pa.float32())))
    picked = set(select(table, LIGHTLY_BROKEN_FRAME_CONFIG).keys)
    assert picked == set(files) - striped


def test_guessed_bit_depths_and_reduced_decodes_are_counted_and_logged(tmp_path, monkeypatch, caplog):
    """A 12-bit camera image in a 16-bit PNG (white guessed: 4095), a JPEG above the pixel limit (decoded at a
    reduced scale) and an animated GIF (its first frame) are ok samples, but what their metrics rest on is counted
    in the result and logged."""
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (64, 1))
    files = {
        "cam/12bit.png": encode(ramp),
        "sat/pano.jpg": encode(noise_image(3, (300, 400)), "JPEG"),
        "plain.png": encode(noise_image(4)),
        "clip.gif": encode(noise_image(5), "GIF", save_all=True, append_images=[Image.new("RGB", (64, 48))]),
    }
    write_tree(tmp_path / "bucket", files)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with caplog.at_level("WARNING", logger="lightly_airflow.metadata.shard"):
        counts = compute_metadata_shard(make_manifest(tmp_path, sorted(files)), thumbnails_uri="")
    assert (counts["ok"], counts["corrupt"], counts["bit_depth_guessed"], counts["decoded_reduced"]) == (4, 0, 1, 1)
    assert counts["first_frame_only"] == 1
    rows = {r[C.KEY]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert rows["sat/pano.jpg"][C.lightly_metadata_column("width")] == 400
    assert rows["cam/12bit.png"][C.lightly_metadata_column("luminance")] > 40  # was ~3: nearly black
    logged = caplog.text
    assert "1 images with a high bit depth whose white was guessed" in logged and "cam/12bit.png" in logged
    assert "1 images above PIL.Image.MAX_IMAGE_PIXELS decoded at a reduced scale" in logged and "sat/pano.jpg" in logged
    assert "1 images animated or multi-page, of which the first frame is the sample, e.g. clip.gif" in logged
    # Each is in the shard's problems file, which the select task gathers into the run's report.
    listed = {r["key"]: r for r in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert counts["errors"] == 3 and set(listed) == {"cam/12bit.png", "sat/pano.jpg", "clip.gif"}
    assert listed["cam/12bit.png"]["field"] == "pixels" and listed["cam/12bit.png"]["reason"].startswith("bit_depth_guessed: ")
    assert listed["sat/pano.jpg"]["reason"].startswith("decoded_reduced: 400x300 = 120000 pixels")
    assert listed["clip.gif"]["reason"].startswith("first_frame_only: a GIF of more than one frame")


def test_colour_profiles_are_applied_and_a_broken_one_is_counted_and_logged(tmp_path, caplog):
    """An iPhone photo (Display P3) gets its sRGB metrics and no note; a JPEG whose profile was cut short by a
    metadata tool is an ok sample with its stored values, counted as ``colour_profile_ignored``, logged and listed
    in the shard's problems like a guessed bit depth."""
    from icc_profiles import display_p3

    flat = np.full((32, 32, 3), (180, 60, 60), np.uint8)
    files = {
        "phone/IMG_0001.png": encode(flat, icc_profile=display_p3()),
        "edited/cut.jpg": encode(flat, "JPEG", icc_profile=display_p3()[:300], quality=95),
    }
    write_tree(tmp_path / "bucket", files)
    with caplog.at_level("WARNING", logger="lightly_airflow.metadata.shard"):
        counts = compute_metadata_shard(make_manifest(tmp_path, sorted(files)), thumbnails_uri="")
    assert (counts["ok"], counts["corrupt"], counts["colour_profile_ignored"]) == (2, 0, 1)
    rows = {r[C.KEY]: r for r in pq.read_table(counts["output_uri"]).to_pylist()}
    assert rows["phone/IMG_0001.png"][C.lightly_metadata_column("meanRed")] == 196  # sRGB of P3 180,60,60
    assert abs(rows["edited/cut.jpg"][C.lightly_metadata_column("meanRed")] - 180) <= 2  # as stored
    assert "1 images whose embedded ICC colour profile could not be applied" in caplog.text
    assert "edited/cut.jpg" in caplog.text
    listed = {r["key"]: r for r in pq.read_table(counts["errors_uri"]).to_pylist()}
    assert set(listed) == {"edited/cut.jpg"} and listed["edited/cut.jpg"]["field"] == "pixels"
    assert listed["edited/cut.jpg"]["reason"].startswith("colour_profile_ignored: the embedded ICC profile")


def test_every_image_problem_names_the_file_the_key_and_one_fix(damaged, monkeypatch):
    """A corrupt or vanished image's problem said what was wrong and no fix: the report's fix column was empty for
    every one of them (wrong extension aside, whose fix hid inside the reason)."""
    from lightly_airflow.datasource.reader import archived_read_error
    from lightly_airflow.metadata.shard import CORRUPT_FIX, MISSING_FIX, UNREADABLE_FIX, file_problem
    from lightly_airflow.report.problems import split_fix

    manifest, _ = damaged
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    errors = pq.read_table(compute_metadata_shard(manifest, num_workers=2)["errors_uri"]).to_pylist()
    assert len(errors) == 7
    fixes = {}
    for e in errors:
        assert e["path"] == str(Path(manifest).parents[4] / "bucket" / e["key"])  # the file, beside its key
        assert e["reason"].count("Fix: ") == 1, e
        problem, fixes[e["key"]] = split_fix("metadata", e["reason"])
        assert problem and fixes[e["key"]], e
    assert fixes["bad/png_named.jpg"] == "rename it to .png"  # (its own fix, not a second one)
    assert fixes["gone/deleted.png"] == MISSING_FIX
    assert {fixes[k] for k in ("bad/empty.png", "bad/text.png", "bad/truncated.png")} == {CORRUPT_FIX}
    assert fixes["bad/bomb.png"].startswith("raise the limit in the workers")  # (pixels' own fix, marked)
    archived = file_problem(archived_read_error(PermissionError("InvalidObjectState: archived")) or "", UNREADABLE_FIX)
    assert split_fix("metadata", archived)[1].startswith("restore it (S3 RestoreObject")
    assert archived.count("Fix: ") == 1
