"""Video frames and their objects in Chromium, light and dark (the ``video`` pool of the conftest: two videos, one
object-level run): a frame's page (its objects drawn over the stored frame, their crops, its video's player), an
object's page of a frame, and both once the video is gone: a frame whose run stored its PNG still shows its crop and
frame; one without shows no broken picture. Screenshots ``video-frame``, ``video-object``, ``video-gone-object``,
``video-gone-object-stored``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import Curation, _broken_images, _shot
from .test_content_note_ui import _check_note, _check_object_gone_layout, _open, _removed

pytestmark = pytest.mark.slow


def _rows(curation: Curation) -> dict[str, dict]:
    return {r[C.KEY]: r for r in Datapool(curation.video.uri).read().to_pylist()}


def _url(curation: Curation, row: dict) -> str:
    return f"{curation.base}/lightly/pools/video/samples/{row[C.SAMPLE_ID]}"


def _frame_objects(rows: dict[str, dict], video: str, *, picked: bool) -> tuple[dict, dict]:
    """A frame of ``video`` with an object, picked by its run or not, and its first object."""
    frames = sorted((r for r in rows.values() if r[C.PARENT_KEY] is None and r[C.VIDEO] == video
                     and bool(r[C.SELECTED]) == picked), key=lambda r: r[C.FRAME_INDEX])
    for frame in frames:
        objects = sorted((o for o in rows.values() if o[C.PARENT_KEY] == frame[C.KEY]), key=lambda o: o[C.KEY])
        if objects:
            return frame, objects[0]
    raise AssertionError(f"no {'picked' if picked else 'unpicked'} frame of {video} has objects")


def _tokens_whole(page, selector: str) -> list[str]:
    """The space-separated parts of the ``code`` values in ``selector`` that the browser cut across lines (a
    number such as ``26.0`` drawn as ``2`` / ``6.0``)."""
    return page.evaluate(f"""() => {{
        const cut = [];
        for (const code of document.querySelectorAll({selector!r})) {{
            const text = code.firstChild; if (!text) continue;
            let at = 0;
            for (const token of text.data.split(' ')) {{
                const r = document.createRange(); r.setStart(text, at); r.setEnd(text, at + token.length);
                const tops = new Set([...r.getClientRects()].map(b => Math.round(b.top)));
                if (tops.size > 1) cut.push(token);
                at += token.length + 1;
            }}
        }}
        return cut;
    }}""")


def _cut_inside_words(page, selector: str) -> list[str]:
    """The texts in ``selector`` that the browser wrapped inside a word: a new line that does not follow a space,
    ``.``, ``_`` or ``-`` (``selection.object_distan`` / ``ce``)."""
    return page.evaluate(f"""() => {{
        const cut = [];
        for (const cell of document.querySelectorAll({selector!r})) {{
            const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            let top = null, prev = ' ', node;
            while ((node = walker.nextNode())) {{
                for (let i = 0; i < node.data.length; i++) {{
                    const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
                    const box = r.getClientRects()[0]; if (!box) continue;
                    if (top !== null && box.top > top + 2 && !' ._-'.includes(prev)) cut.push(cell.textContent);
                    top = box.top; prev = node.data[i];
                }}
            }}
        }}
        return cut;
    }}""")


def test_a_frame_s_page_and_its_objects(page, curation):
    rows = _rows(curation)
    frame, obj = _frame_objects(rows, "street.mp4", picked=True)
    _open(page, _url(curation, frame))
    assert _broken_images(page) == []
    body = page.inner_text("body")
    # the run's counts are of frames (20), not of its rows (frames and objects)
    frames = sum(1 for r in rows.values() if r[C.PARENT_KEY] is None)
    assert frames < len(rows) and f"which selected 4 of {frames} samples" in body, body
    assert "Its run picked this frame, so all its objects are selected" in body  # a frame, not an "image"
    assert page.locator(".figure svg rect.obj").count() >= 1 and page.locator("video.player").count() == 1
    # its objective's names in the narrow side column wrap between their parts, never inside a word
    assert page.locator(".side td", has_text="selection.object_distance").count() == 1
    assert _cut_inside_words(page, ".side td") == []
    _shot(page, curation, "video-frame", full=True)
    _open(page, _url(curation, obj))
    assert _broken_images(page) == [] and page.locator(".figure img").count() == 2  # its crop, its frame
    assert "Object of frame" in page.inner_text("body")
    # the box and crop [x, y, w, h] in the side column wrap between numbers, never inside one
    assert _tokens_whole(page, ".side td code") == [] and _cut_inside_words(page, ".side td") == []
    _shot(page, curation, "video-object", full=True)
    page.set_viewport_size({"width": 480, "height": 900})
    try:
        assert _tokens_whole(page, "td code") == []
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})


def test_the_objects_of_a_gone_video_s_frames(page, curation):
    """The video is gone: an object of a frame its run stored as PNG still shows its crop and the frame (cut from
    the PNG); an object of a frame without one shows neither, and no broken picture (it showed a broken "In its
    frame" image under a note that said twice that the frame cannot be shown)."""
    rows = _rows(curation)
    _, stored = _frame_objects(rows, "street.mp4", picked=True)
    _, unstored = _frame_objects(rows, "street.mp4", picked=False)
    thumb = Path(curation.video.uri.removeprefix("file://")) / "_thumbnails" / f"{unstored[C.SAMPLE_ID]}.jpg"
    with _removed(curation.video.source / "street.mp4"):
        _open(page, _url(curation, unstored))  # its crop's thumbnail, stored by its run: the object is still seen
        body = page.inner_text(".content-gone")
        assert ("The file at street.mp4 is gone" in body and "so its frame cannot be shown nor its crop cut from it: "
                "the crop below is the thumbnail its run stored of it." in body), body
        _check_note(page, ".box.err.content-gone")
        assert page.locator(".figure.crop.stored img").count() == 1 and page.locator(".figure img").count() == 1
        assert _broken_images(page) == [] and "The stored crop" in page.inner_text(".stored-crop")
        _shot(page, curation, "video-gone-object-stored-crop", full=True)
        with _removed(thumb):  # no stored crop either: no picture
            _open(page, _url(curation, unstored))
            body = page.inner_text(".content-gone")
            assert "so neither its crop nor its frame can be shown." in body, body
            assert "cannot be shown either" not in body, body
            _check_note(page, ".box.err.content-gone")
            assert page.locator(".figure img").count() == 0 and _broken_images(page) == []
            _check_object_gone_layout(page, narrow=False)
            _shot(page, curation, "video-gone-object", full=True)
        _open(page, _url(curation, stored))
        body = page.inner_text(".content-gone")
        assert "cut from the PNG its run stored of the processed frame" in body, body
        assert page.locator(".figure img").count() == 2 and _broken_images(page) == []
        _shot(page, curation, "video-gone-object-stored", full=True)


def test_the_objects_grid_says_frame_for_the_objects_of_frames(page, curation):
    """The objects grid of frames' objects says "frame picked" / "frame not picked" (it said "image")."""
    _open(page, f"{curation.base}/lightly/pools/video/samples?show=objects&limit=200")
    caps = page.eval_on_selector_all(".card.obj .cap", "els => els.map(e => e.innerText)")
    assert caps and all(re.search(r"\nframe (not )?picked$", c) for c in caps), caps[:4]
    assert any(c.endswith("\nframe picked") for c in caps) and any(c.endswith("frame not picked") for c in caps)
    assert "image" not in " ".join(caps)
    _shot(page, curation, "video-objects-grid")
