"""OS and tool metadata files in a datasource (macOS AppleDouble ``._x.jpg`` sidecars and ``__MACOSX/`` folders
of a zip made on a Mac, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``, hidden folders such as ``.git/`` or
``.ipynb_checkpoints/``) are not samples: they are not listed, so ``._photo.jpg`` is never reported as a corrupt
image, but they are counted and named in the list task's counts, the run summary and the report."""

from __future__ import annotations

from pathlib import Path

from lightly_airflow.demo import Batch, add_batch

from .runs import prepare

SELECTION = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
# The first 4 KiB of a real AppleDouble header file: magic 0x00051607, version 2, FinderInfo entry.
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + b"\x00\x02" + b"\x00" * 4000


def test_os_metadata_files_are_counted_and_named_never_corrupt(tmp_path: Path) -> None:
    from lightly_airflow.pipeline import select_and_commit

    source, pool = tmp_path / "images", tmp_path / "pool"
    keys = add_batch(source, Batch("few", (0, 8), ()))
    first = keys[0]  # e.g. few/digits/scan-0000.png
    folder, name = first.rsplit("/", 1)
    junk = {
        f"{folder}/._{name}": APPLEDOUBLE,               # AppleDouble sidecar next to the image
        f"__MACOSX/{folder}/._{name}": APPLEDOUBLE,      # the same inside a Mac zip's __MACOSX/ folder
        f"{folder}/.DS_Store": b"\x00\x00\x00\x01Bud1",
        f"{folder}/Thumbs.db": b"\xd0\xcf\x11\xe0",
        "desktop.ini": b"[.ShellClassInfo]\r\n",
        f".ipynb_checkpoints/{name}": (source / first).read_bytes(),  # a copy kept by Jupyter
        ".Trash-1000/files/old.png": (source / first).read_bytes(),
        ".git/objects/ab/cdef": b"x\x01",
    }
    for key, data in junk.items():
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(data)

    found: dict = {}
    manifests = prepare(source, pool, "r1", SELECTION, result=found)
    listed = found["listed"]
    assert listed.new == len(keys)  # only the real images are samples
    assert listed.os_files == len(junk) and listed.unsupported == 0 and listed.skipped == 0
    assert listed.to_dict()["os_files"] == len(junk)  # the list task's XCom counts

    summary = select_and_commit(datapool_uri=f"file://{pool}", run_id="r1", dag_id="t", manifests=manifests,
                                selection_config=SELECTION)
    assert summary.corrupt == 0 and summary.processed == len(keys) and summary.selected == 3
    assert summary.listing["os_files"] == len(junk)
    assert f"__MACOSX/{folder}/._{name}" in summary.listing["os_files_examples"]
    page = Path(summary.report_uri.removeprefix("file://")).read_text()
    assert f"{len(junk)} OS or tool metadata files" in page and "__MACOSX/" in page
