"""The pages of a pool of images, a video's frames and their objects, as a user reads them (session 67, round 2).

One object-level run of the DAG's stages in process on a folder of 3 object images, 1 corrupt image and an 8-frame
video (the objects demo's shapes; the embed task's video pass with the real CPU model at 64 px):

- an object of a video frame is named by its video and frame number, its task and index, on its grid card and its
  page (they showed its key, ``cat-3-mp4.png#shapes#0``, the run's name for it, which names no file); the key stays
  in the link's title and in a line of the object's page;
- an image's page leaves out the video columns (``video``, ``frame_index``, ``frame_pts``, ``frame_seconds``: four
  "—" lines on every image of a pool with videos); a frame keeps them, and a corrupt image keeps its empty
  embedding and metadata (what its page is about): its embedding, which it has none of, is listed as "—" (the row
  was left out, as if the pool had no embeddings).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from lightly_airflow import columns as C
from plugins.test_home_samples import reprocessed  # noqa: F401 (a fixture)

RUN = "scheduled__2026-06-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    from lightly_airflow.config.selection import parse_selection_config
    from lightly_airflow.config.worker import parse_worker_config
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding import embed_shard
    from lightly_airflow.metadata import compute_metadata_shard
    from lightly_airflow.objects.demo_data import TASK, add_images, add_video
    from lightly_airflow.objects.spec import objects_spec
    from lightly_airflow.pipeline import list_new, select_and_commit
    from lightly_airflow.predictions import load_predictions_shard

    root = tmp_path_factory.mktemp("s67b")
    source, path = root / "src", root / "pool"
    add_video(source, "cat", 8, seed=3, scene="chelsea")
    add_images(source, 0, 3, seed=5)
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")  # a corrupt image
    selection = {"n_samples": 3, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    spec = objects_spec(parse_selection_config(selection), parse_worker_config({"object_level": {"padding": 0.1}}))
    query = NewFilesQuery(datasource_uri=f"file://{source}", datapool_uri=f"file://{path}")
    listed = list_new(query, run_id=RUN, min_shard_size=1000, objects=spec)
    for manifest in listed.manifests:
        embed_shard(manifest, device="cpu", input_size=64, num_workers=1)
        compute_metadata_shard(manifest)
        load_predictions_shard(manifest, lightly_uri=f"file://{source}")
    select_and_commit(datapool_uri=f"file://{path}", run_id=RUN, dag_id="lightly_datapool",
                      manifests=listed.manifests, selection_config=selection)
    return f"file://{path}", path


@pytest.fixture(scope="module")
def rows(pool: tuple[str, Path]) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    found: list[dict[str, Any]] = DeltaTable(pool[0]).to_pyarrow_table().to_pylist()
    return found


@pytest.fixture()
def client(pool: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    from ui_client import ui_client

    with ui_client(monkeypatch, {"p": {"uri": pool[0]}}) as c:
        yield c


def _text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _column_names(page: str) -> set[str]:
    """The names of the page's column tables (``<td class="name">``, line-break opportunities removed)."""
    return {_text(m) for m in re.findall(r'<td class="name">(.*?)</td>', page)}


def _frame_object(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    frames = {r[C.KEY]: r for r in rows if r.get(C.PARENT_KEY) is None and r.get(C.FRAME_INDEX) is not None}
    obj = next(r for r in sorted(rows, key=lambda r: str(r[C.KEY])) if r.get(C.PARENT_KEY) in frames)
    return obj, frames[obj[C.PARENT_KEY]]


def test_an_object_of_a_frame_is_named_by_its_video_and_frame(client: Any, rows: list[dict[str, Any]]) -> None:
    obj, frame = _frame_object(rows)
    name = f"cat.mp4 · frame {frame[C.FRAME_INDEX]}"
    assert frame[C.VIDEO] == "cat.mp4" and obj[C.KEY] != name
    # its card in the objects grid: the video and frame (the link, its key the link's title), the task's index
    grid = client.get("/lightly/pools/p/samples", params={"show": "objects", "limit": 500}).text
    cards = {_text(m.group(2)): (html.unescape(m.group(1)), _text(m.group(3))) for m in re.finditer(
        r'<div class="card obj[^"]*">.*?<div class="cap"><a href="[^"]*" title="([^"]*)">(.*?)</a><br>(.*?)</div>',
        grid)}
    title, caption = cards.get(name, ("", ""))
    assert title == obj[C.KEY] and caption.startswith(f"#{obj[C.OBJECT_INDEX]} {obj[C.OBJECT_TASK]} · "), cards
    # every card names its image as the user knows it: no frame's key anywhere in a caption's link
    frame_keys = {r[C.KEY] for r in rows if r.get(C.FRAME_INDEX) is not None}
    assert not any(k in text for text in cards for k in frame_keys), sorted(cards)
    images = {r[C.KEY] for r in rows if r.get(C.PARENT_KEY) is None and r.get(C.FRAME_INDEX) is None}
    assert any(text in images for text in cards), sorted(cards)  # an image's objects: its key
    # its page: the frame of the video (a link to the frame's page), its task and index; its key still there
    page = client.get(f"/lightly/pools/p/samples/{obj[C.SAMPLE_ID]}").text
    said = _text(re.search(r'<p class="objname">(.*?)</p>', page).group(1))  # type: ignore[union-attr]
    assert said == (f"Object of frame {frame[C.FRAME_INDEX]} of video cat.mp4: {obj[C.OBJECT_TASK]} "
                    f"#{obj[C.OBJECT_INDEX]}, {obj[C.OBJECT_CATEGORY]}."), said
    assert f'/lightly/pools/p/samples/{frame[C.SAMPLE_ID]}' in page
    crumb = _text(re.search(r'<nav>(.*?)</nav>', page, re.S).group(1))  # type: ignore[union-attr]
    assert crumb.endswith(f"{name} · {obj[C.OBJECT_TASK]} #{obj[C.OBJECT_INDEX]}"), crumb
    assert f"object key <code>{html.escape(obj[C.KEY])}</code>" in page.replace("&#x27;", "'")
    assert frame[C.KEY] not in _text(page.split('class="objname"')[1].split("</p>")[0])


def test_an_image_s_page_leaves_out_the_video_columns(client: Any, rows: list[dict[str, Any]]) -> None:
    samples = [r for r in rows if r.get(C.PARENT_KEY) is None]
    image = next(r for r in samples if r[C.KEY] == "img_0000.png")
    frame = next(r for r in samples if r.get(C.FRAME_INDEX) is not None)
    broken = next(r for r in samples if r[C.KEY] == "broken.png")
    assert broken[C.STATUS] == C.STATUS_CORRUPT and broken[C.EMBEDDING] is None
    video = set(C.VIDEO_COLUMNS)
    names = _column_names(client.get(f"/lightly/pools/p/samples/{image[C.SAMPLE_ID]}").text)
    assert C.KEY in names and not names & video, names & video
    # a frame keeps them (its video, its number, its time)
    assert video <= _column_names(client.get(f"/lightly/pools/p/samples/{frame[C.SAMPLE_ID]}").text)
    # a corrupt image keeps its empty embedding and metadata: its page says what is missing
    page = client.get(f"/lightly/pools/p/samples/{broken[C.SAMPLE_ID]}").text
    names = _column_names(page)
    assert not names & video and C.EMBEDDING in names and C.lightly_metadata_column("width") in names, names
    assert re.search(r'<td class="name">embedding</td><td><span class="muted">—</span></td>', page)


def test_a_selected_card_never_says_not_picked(reprocessed: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A sample an earlier run picked and a later run processed again without picking (a ``process_all`` run, a
    re-encoded video: the demo's video pool, 69 of 69 selected frames) is outlined as selected in the whole
    version's grid, its latest row without a pick: its card said "not picked" beside the outline."""
    from ui_client import ui_client

    with ui_client(monkeypatch, {"p": {"uri": str(reprocessed)}}) as c:
        grid = c.get("/lightly/pools/p/samples", params={"limit": 500}).text
        picks = c.get("/lightly/pools/p/samples", params={"limit": 500, "tag": C.INITIAL_TAG}).text
    cards = {_text(m.group(2)): (m.group(1), _text(m.group(3))) for m in re.finditer(
        r'<div class="(card[^"]*)">.*?<div class="cap">.*?<a href="[^"]*" title="[^"]*">(.*?)</a><br>(.*?)</div>', grid)}
    assert len(cards) == 6, cards
    # run 0's pick r0/0.jpg, processed again by the last run: selected, its latest row no pick
    assert cards["r0/0.jpg"] == ("card sel", "selected: an earlier run's pick · ok"), cards["r0/0.jpg"]
    assert cards["r0/1.jpg"] == ("card", "not picked · ok") and cards["r1/0.jpg"] == ("card sel", "pick 1 · ok")
    assert not [k for k, (cls, state) in cards.items() if "sel" in cls and "not picked" in state]
    assert "not picked" not in _text(picks)  # initial-tag's grid: its rows' own picks


def test_a_frame_is_named_by_its_video_and_number(client: Any, rows: list[dict[str, Any]]) -> None:
    """A frame's card in the images grid and its page's breadcrumbs and first line name its video and frame number
    (they showed its key, ``cat-3-mp4.png``, the run's name for it); the key is the card link's title and is on the
    page. An image's card keeps its key."""
    samples = [r for r in rows if r.get(C.PARENT_KEY) is None]
    frame = next(r for r in samples if r.get(C.FRAME_INDEX) == 3)
    grid = client.get("/lightly/pools/p/samples", params={"limit": 500}).text
    cards = {_text(m.group(2)): html.unescape(m.group(1)) for m in re.finditer(
        r'<div class="card[^"]*">.*?<div class="cap">.*?<a href="[^"]*" title="([^"]*)">(.*?)</a>', grid)}
    assert cards["cat.mp4 · frame 3"] == frame[C.KEY] and cards["img_0000.png"] == "img_0000.png", cards
    assert len(cards) == len(samples) and not any(r[C.KEY] in cards for r in samples if r.get(C.FRAME_INDEX) is not None)
    page = client.get(f"/lightly/pools/p/samples/{frame[C.SAMPLE_ID]}").text
    crumb = _text(re.search(r"<nav>(.*?)</nav>", page, re.S).group(1))  # type: ignore[union-attr]
    assert crumb.endswith(" / cat.mp4 · frame 3"), crumb
    assert f"<p>Frame 3 of video <code>cat.mp4</code> · frame key <code>{frame[C.KEY]}</code>" in page


def test_a_pick_s_neighbours_are_named_as_their_cards(client: Any, rows: list[dict[str, Any]]) -> None:
    """"previous pick: …" / "next pick: …" on a pick's page name a frame by its video and number (they named its key)."""
    picks = sorted((r for r in rows if r.get(C.PARENT_KEY) is None and r.get(C.PICK_RANK) is not None),
                   key=lambda r: r[C.PICK_RANK])
    named = {r[C.SAMPLE_ID]: (f"cat.mp4 · frame {r[C.FRAME_INDEX]}" if r.get(C.FRAME_INDEX) is not None else r[C.KEY])
             for r in picks}
    said: list[str] = []
    for r in picks:
        page = client.get(f"/lightly/pools/p/samples/{r[C.SAMPLE_ID]}").text
        for side, sid, text in re.findall(r'(previous|next) pick: <a href="/lightly/pools/p/samples/([0-9a-f]+)[^"]*">'
                                          r"(.*?)</a>", page):
            assert html.unescape(text) == named[sid], (side, text, named[sid])
            said.append(html.unescape(text))
    assert len(said) == 2 * (len(picks) - 1) and any(" · frame " in t for t in said), said
