"""Object rows a ``process_all`` run committed before 2026-12-07 (session 64) said ``object_selected`` false for the
images it processed again without picking them (kept: still in ``initial-tag``), and a later incremental run does
not rewrite them. The UI reads them as their image's selection: the objects grid, its ``object_selected`` filter
and facets, the object's page and its image's page say selected, as the images grid does for the image.

The old state is made with the Datapool API exactly as the pre-64 code committed it: run 1 picks images 0 and 1 (its
object rows of them ``object_selected``), run 2 (``process_all``) processes the same six files again and picks
none (every object row false), run 3 (incremental) adds two files and picks the first."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pyarrow as pa
import pytest
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

RUNS = ("scheduled__2026-03-01T00:00:00+00:00", "manual__2026-03-02T00:00:00+00:00",
        "scheduled__2026-03-03T00:00:00+00:00")
TASK = "shapes"
DIM = 4


def _run_rows(images: list[int], picks: list[int], objects_selected: bool) -> pa.Table:
    """Image rows of ``images`` (two objects each) with ``picks`` selected; the object rows say ``object_selected``
    for picked images when ``objects_selected`` (else false, as the pre-64 ``process_all`` run wrote them)."""
    keys = [f"img/{i:03d}.png" for i in images]
    etags = [f"etag-{i}" for i in images]
    n = len(images)
    parents = [(k, e, i in picks) for k, e, i in zip(keys, etags, images, strict=True) for _ in range(2)]
    m = len(parents)
    rank = {p: r for r, p in enumerate(picks)}
    vector = pa.list_(pa.float32(), DIM)
    return pa.table({
        C.KEY: keys + [f"{k}#{TASK}#{j % 2}" for j, (k, _, _) in enumerate(parents)],
        C.SIZE: pa.array([100] * (n + m), pa.int64()),
        C.ETAG: etags + [e for _, e, _ in parents],
        C.STATUS: [C.STATUS_OK] * (n + m),
        C.EMBEDDING: pa.array([[float(i), 1.0, 0.0, 0.0] for i in range(n + m)], vector),
        C.PARENT_KEY: pa.array([None] * n + [k for k, _, _ in parents], pa.string()),
        C.OBJECT_TASK: pa.array([None] * n + [TASK] * m, pa.string()),
        C.OBJECT_INDEX: pa.array([None] * n + [j % 2 for j in range(m)], pa.int64()),
        C.OBJECT_BBOX: pa.array([None] * n + [[1.0, 1.0, 4.0, 4.0]] * m, pa.list_(pa.float64())),
        C.OBJECT_SELECTED: pa.array([None] * n + [objects_selected and chosen for _, _, chosen in parents],
                                    pa.bool_()),
        C.SELECTED: [i in rank for i in images] + [False] * m,
        C.PICK_RANK: pa.array([rank.get(i) for i in images] + [None] * m, pa.int64()),
    })


@pytest.fixture(scope="module")
def pool_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    pool = Datapool(f"file://{tmp_path_factory.mktemp('kept-objects') / 'pool'}")
    runs = ((list(range(6)), [0, 1], True),  # run 1 picks 0 and 1
            (list(range(6)), [], False),  # pre-64 process_all: the kept images' objects false
            ([6, 7], [6], True))  # incremental: adds 6 and 7, picks 6
    for run_id, (images, picks, objects_selected) in zip(RUNS, runs, strict=True):
        rows = _run_rows(images, picks, objects_selected)
        pool.commit(rows, run_id=run_id, dag_id="lightly_datapool", tag=None, config={}, counts={},
                    embedding_model="test", embedding_dim=DIM, read_version=pool.version())
    return pool.uri


@pytest.fixture
def client(pool_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    with ui_client(monkeypatch, {"kept": {"uri": pool_uri}}) as c:
        yield c


SELECTED_PARENTS = {"img/000.png", "img/001.png", "img/006.png"}  # the images grid's selected images


def _objects(client, **params: str) -> dict:
    return client.get("/lightly/api/pools/kept/samples", params={"show": "objects", "limit": "1000", **params}).json()


def test_the_images_grid_shows_the_kept_images_selected(client) -> None:
    got = client.get("/lightly/api/pools/kept/samples", params={"limit": "1000"}).json()
    assert {i["key"] for i in got["items"] if i["selected"]} == SELECTED_PARENTS


def test_the_objects_grid_filter_and_facets_show_the_kept_images_objects_selected(client) -> None:
    got = _objects(client)
    assert got["total"] == 16  # each object once: its latest row (run 2's for images 0-5)
    assert {i["parent_key"] for i in got["items"] if i["object_selected"]} == SELECTED_PARENTS
    assert sum(1 for i in got["items"] if i["object_selected"]) == 6
    chosen = _objects(client, **{"in.object_selected": "true"})
    assert chosen["total"] == 6 and {i["parent_key"] for i in chosen["items"]} == SELECTED_PARENTS
    assert _objects(client, **{"in.object_selected": "false"})["total"] == 10
    facets = client.get("/lightly/api/pools/kept/facets", params={"show": "objects"}).json()["facets"]
    assert dict(facets[C.OBJECT_SELECTED]["values"]) == {"true": 6, "false": 10}
    html = client.get("/lightly/pools/kept/samples", params={"show": "objects", "in.object_selected": "true"}).text
    assert "<b>6</b> objects match" in html


def test_the_object_page_and_its_images_page_say_selected(client) -> None:
    items = _objects(client)["items"]
    kept = next(i for i in items if i["parent_key"] == "img/000.png")
    other = next(i for i in items if i["parent_key"] == "img/002.png")
    assert kept["commit_version"] == other["commit_version"] == 2  # run 2's rows, false in the pool
    page = unescape(client.get(f"/lightly/pools/kept/samples/{kept['sample_id']}").text)
    assert "Selected: its image is in <code>initial-tag</code> (an earlier run picked it)" in page
    assert "Not selected" not in page
    assert "Not selected: its run did not pick its image." in unescape(
        client.get(f"/lightly/pools/kept/samples/{other['sample_id']}").text)
    api = client.get(f"/lightly/api/pools/kept/samples/{kept['sample_id']}").json()
    assert api["rows"][0][C.OBJECT_SELECTED] is True
    images = client.get("/lightly/api/pools/kept/samples", params={"limit": "1000"}).json()["items"]
    image = next(i for i in images if i["key"] == "img/000.png")
    page = unescape(client.get(f"/lightly/pools/kept/samples/{image['sample_id']}").text)
    assert re.search(r"Objects \(2, 2 selected\)", page), page
    assert "This image is in initial-tag (an earlier run picked it), so all its objects are selected." in page
