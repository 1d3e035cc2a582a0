"""The browser suite: a real ``airflow api-server`` with the plugin, Debian's Chromium driven by Playwright.

One api-server with four small datapools per session (``demo``; ``objects`` with object rows; ``video``: video
frames and their objects; ``long``: 60 tiny versions, more than the version chooser lists). The pool is made by
the pipeline's own stages on the demo's real images (listing, metadata with thumbnails, predictions,
select-and-commit with the map layout and the report); only the embedding model of the image pools is replaced
by 16x16 grey pixels (the video pool's frames go through the embed task's video pass and its CPU model at 64 px).
Screenshots land in ``$LIGHTLY_SCREENSHOTS`` (default: the test's temporary folder), light and dark.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from api_server import api_server
from long_pool import build_long_pool
from object_pool import ObjectPool, build_object_pool

pytestmark = pytest.mark.slow

DAG_ID = "lightly_datapool"
USER, PASSWORD = "curator", "curator-pw"
SELECTION = {
    "n_samples": 16,
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {"input": {"type": "SCORES", "task": "digits", "score": "uncertainty_margin"}, "strategy": {"type": "WEIGHTS"}},
        {"input": {"type": "METADATA", "key": "source"},
         "strategy": {"type": "BALANCE", "target": {"digits": 0.8, "photos": 0.2}}},
    ],
}
RUNS = ("scheduled__2026-03-01T00:00:00+00:00", "scheduled__2026-03-02T00:00:00+00:00")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class VideoPool:
    uri: str
    source: Path


@dataclass(frozen=True)
class Curation:
    base: str
    pool_uri: str
    pool_path: Path
    shots: Path
    objects: ObjectPool  # a second datapool ("objects") with object rows (tests/object_pool.py)
    video: VideoPool  # a third ("video"): frames of two videos, with the objects of Lightly's frame predictions
    long_uri: str  # a fourth ("long"): more versions than the choosers list (tests/long_pool.py), tiny ones


def build_video_pool(root: Path) -> VideoPool:
    """Two videos of the objects demo (shapes moving over a photo, Lightly's per-frame predictions of them), one
    object-level run of the DAG's stages in process (the embed task's video pass with its one decode per frame and the
    frames' objects cropped in it, the real CPU model at 64 px), 4 frames selected by their objects' DIVERSITY: the
    selected frames' PNGs are stored under ``.lightly/frames``."""
    from lightly_airflow.config.selection import parse_selection_config
    from lightly_airflow.config.worker import parse_worker_config
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.objects.demo_data import TASK, add_video
    from lightly_airflow.objects.spec import objects_spec
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard

    source, pool = root / "video-src", root / "video-pool"
    add_video(source, "street", 12, seed=1, scene="astronaut")
    add_video(source, "cat", 8, seed=3, scene="chelsea")
    selection = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    spec = objects_spec(parse_selection_config(selection), parse_worker_config({"object_level": {"padding": 0.1}}))
    query = NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{pool}")
    listed = list_new(query, run_id="scheduled__2026-06-01T00:00:00+00:00", min_shard_size=1000, objects=spec)
    for manifest in listed.manifests:
        embed_shard(manifest, device="cpu", input_size=64, num_workers=1)
        compute_metadata_shard(manifest)
        load_predictions_shard(manifest, lightly_uri=f"file://{source}")
    select_and_commit(datapool_uri=f"file://{pool}", run_id="scheduled__2026-06-01T00:00:00+00:00", dag_id=DAG_ID,
                      manifests=listed.manifests, selection_config=selection)
    return VideoPool(f"file://{pool}", source)


def _pixel_embeddings(manifest_uri: str, source: Path) -> None:
    """The embed stage's staging file, with 16x16 grey pixels instead of a model (L2-normalised)."""
    from PIL import Image

    from lightly_airflow import columns as C
    from lightly_airflow import staging

    table = pq.read_table(manifest_uri)
    vectors, status = [], []
    for key in table.column(C.KEY).to_pylist():
        try:
            img = Image.open(source / key).convert("L").resize((16, 16))
            v = np.asarray(img, dtype=np.float32).ravel() - 128.0
            vectors.append((v / (np.linalg.norm(v) or 1.0)).tolist())
            status.append("ok")
        except Exception:  # noqa: BLE001 - a corrupt file has no embedding, as with a model
            vectors.append(None)
            status.append("corrupt")
    meta = {C.EMBEDDING_MODEL_METADATA_KEY: json.dumps("pixels-16"), C.EMBEDDING_DIM_METADATA_KEY: json.dumps(256),
            C.EMBEDDING_INPUT_SIZE_METADATA_KEY: json.dumps(16)}
    out = pa.table({
        C.KEY: table.column(C.KEY), C.ETAG: table.column(C.ETAG).cast(pa.string()),
        C.EMBEDDING: pa.array(vectors, pa.list_(pa.float32())), C.STATUS: status,
        C.STATUS_REASON: pa.nulls(table.num_rows, pa.string()),
    }).replace_schema_metadata(meta)
    path = staging.sibling_uri(manifest_uri, staging.EMBEDDINGS)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, path)


def run_pipeline(source: Path, pool: Path, run_id: str) -> None:
    """One run of the example DAG's stages, in process."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard

    query = NewFilesQuery.build(datasource_uri=str(source), datapool_uri=str(pool))
    listed = list_new(query, run_id=run_id)
    for manifest in listed.manifests:
        compute_metadata_shard(manifest)
        load_predictions_shard(manifest, lightly_uri=str(source))
        _pixel_embeddings(manifest, source)
    select_and_commit(datapool_uri=str(pool), run_id=run_id, dag_id=DAG_ID, manifests=listed.manifests,
                      selection_config=SELECTION)


@pytest.fixture(scope="session")
def curation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Curation]:
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (scripts/test.sh installs Debian's chromium).")
    from lightly_airflow.demo import PHOTOS, Batch, add_batch

    root = tmp_path_factory.mktemp("browser")
    source, pool = root / "images", root / "pool"
    add_batch(source, Batch("batch-1", (0, 90), PHOTOS[:5]))
    run_pipeline(source, pool, RUNS[0])
    add_batch(source, Batch("batch-2", (90, 150), PHOTOS[5:8]))
    run_pipeline(source, pool, RUNS[1])
    objects = build_object_pool(root)
    video = build_video_pool(root)
    from lightly_airflow.plugins.pages import RECENT

    long_uri = f"file://{root / 'long'}"
    build_long_pool(long_uri, RECENT + 10)

    shots = Path(os.environ.get("LIGHTLY_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with api_server(root / "airflow-home", user=USER, password=PASSWORD, role="admin",
                    datapools={"demo": {"uri": f"file://{pool}"}, "objects": {"uri": objects.uri},
                               "video": {"uri": video.uri}, "long": {"uri": long_uri}}) as base:
        yield Curation(base, f"file://{pool}", pool, shots, objects, video, long_uri)


# Module scope: a live sync Playwright keeps its event loop running in the main thread, which breaks every
# later test that calls asyncio.run() (the trigger tests, dag.test()); the api-server stays session-wide.
@pytest.fixture(scope="module")
def browser(curation: Curation) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        try:
            yield b
        finally:
            b.close()


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def _login(page, base: str, path: str) -> None:
    """Open ``path``; Airflow's login page comes first and sends the browser back."""
    page.goto(base + path)
    page.wait_for_url(re.compile(r".*/auth/login.*"), timeout=30_000)
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(base + path, timeout=30_000)


@pytest.fixture(scope="module", params=["light", "dark"])
def page(request, browser, curation: Curation):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme=request.param,
                                  accept_downloads=True)
    pg = context.new_page()
    pg.theme = request.param
    _login(pg, curation.base, "/lightly/pools/demo/samples")
    yield pg
    context.close()


def _shot(page, curation: Curation, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(curation.shots / f"{name}-{page.theme}.png"), full_page=full)


def _wait(page, js: str, timeout: float = 20.0) -> None:
    """Poll a JS expression (a function body's return value) until it is true; the pages' CSP forbids the
    ``eval`` Playwright's own ``wait_for_function`` uses, ``evaluate`` goes through the DevTools protocol."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => {{ return {js}; }}"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {js}")
        page.wait_for_timeout(200)


def _loaded_images(page, selector: str) -> list[int]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.complete ? e.naturalWidth : 0)")


def _broken_images(page) -> list[str]:
    """The page's pictures that the browser could not draw (a broken image: an error answer or no picture), after
    every lazy one was made eager and loaded."""
    page.eval_on_selector_all("img", "els => els.forEach(e => { e.loading = 'eager'; })")
    _wait(page, "[...document.querySelectorAll('img')].every(e => e.complete)")
    return page.eval_on_selector_all("img", "els => els.filter(e => !e.naturalWidth).map(e => e.getAttribute('src'))")
