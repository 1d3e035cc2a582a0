"""The note on a sample's and an object's page when the file at its key was replaced or is gone since its row was
processed, in Chromium, light and dark: it shows (with both etags), its text and its ``code`` parts keep WCAG AA
contrast on the note's background, nothing overflows the page; and the picture beside it is the current file, not
a copy the browser cached before the file was replaced (``…/image`` is revalidated on every view: its ETag).
An object's page whose image is gone shows neither a broken crop nor a broken image, and its tables rise beside its
side column. Each test puts the file back afterwards. Screenshots: ``note-changed``, ``note-gone``, ``note-object``,
``note-object-gone`` (page and note), light and dark."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.compute as pc
import pytest
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import Curation, _broken_images, _loaded_images, _shot

pytestmark = pytest.mark.slow

MAGENTA = (255, 0, 255)


@contextmanager
def _replaced(path: Path, colour: tuple[int, int, int]) -> Iterator[None]:
    """The file at ``path`` replaced under its key by a plain picture of ``colour`` (its size, its format), then
    put back."""
    original = path.read_bytes()
    with Image.open(io.BytesIO(original)) as img:
        size, fmt = img.size, img.format
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt or "PNG")
    try:
        path.write_bytes(out.getvalue())
        yield
    finally:
        path.write_bytes(original)


@contextmanager
def _removed(path: Path) -> Iterator[None]:
    original = path.read_bytes()
    try:
        path.unlink()
        yield
    finally:
        path.write_bytes(original)


def _luminance(rgb: tuple[float, ...]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


def _check_note(page, selector: str, *, narrow: bool = False) -> None:
    """The note is visible, inside the page's width, and its text and code parts keep AA contrast (4.5:1) on the
    note's own background; its border stands out from the page (3:1 is for controls; a box edge needs to show).
    ``narrow``: a narrow window, where the note must take the page's width (the side column goes below), not a
    sliver beside it (the page's wide tables may scroll sideways there)."""
    note = page.locator(selector)
    assert note.count() == 1 and note.is_visible()
    styles = page.evaluate(f"""() => {{
        const n = document.querySelector({selector!r});
        const s = getComputedStyle(n), body = getComputedStyle(document.body);
        const codes = [...n.querySelectorAll('code')].map(c => {{
            const cs = getComputedStyle(c); return [cs.color, cs.backgroundColor, c.getClientRects().length];
        }});
        return {{fg: s.color, bg: s.backgroundColor, border: s.borderTopColor, page: body.backgroundColor,
                 overflow: n.scrollWidth - n.clientWidth,
                 pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                 right: n.getBoundingClientRect().right, noteWidth: n.getBoundingClientRect().width,
                 width: document.documentElement.clientWidth, codes}};
    }}""")
    fg, bg = _rgb(styles["fg"]), _rgb(styles["bg"])
    assert _contrast(fg, bg) >= 4.5, styles
    assert styles["codes"], styles  # the key and the etags
    for colour, background, lines in styles["codes"]:
        assert _contrast(_rgb(colour), _rgb(background)) >= 4.5, styles
        assert narrow or lines == 1, styles  # a key or an etag is cut only where the line cannot hold it whole
    assert _contrast(_rgb(styles["border"]), _rgb(styles["page"])) >= 1.5, styles
    assert styles["overflow"] <= 0 and styles["right"] <= styles["width"], styles
    if narrow:
        assert styles["noteWidth"] >= 0.85 * styles["width"], styles
    else:
        assert styles["pageOverflow"] <= 0, styles
    dark = _rgb(styles["page"]) == (17.0, 24.0, 39.0)
    assert dark == (page.theme == "dark"), styles


def _centre_pixel(page, selector: str) -> tuple[int, ...]:
    """The colour the browser drew at the middle of the (same-origin) image ``selector``."""
    return tuple(page.evaluate(f"""() => {{
        const img = document.querySelector({selector!r});
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return [...g.getImageData(img.naturalWidth >> 1, img.naturalHeight >> 1, 1, 1).data].slice(0, 3);
    }}"""))


def _near(rgb: tuple[int, ...], want: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True))


def _demo_sample(curation: Curation, index: int) -> tuple[str, Path]:
    """A sample of the demo pool whose file is a PNG or JPEG the browser gets as it is: (page URL, its file)."""
    rows = Datapool(curation.pool_uri).read(columns=[C.KEY, C.SAMPLE_ID, C.STATUS]).to_pylist()
    source = curation.pool_path.parent / "images"
    found = [r for r in rows if r[C.STATUS] == C.STATUS_OK and r[C.KEY].lower().endswith((".png", ".jpg", ".jpeg"))
             and (source / r[C.KEY]).is_file()]
    row = sorted(found, key=lambda r: r[C.KEY])[index]
    return f"{curation.base}/lightly/pools/demo/samples/{row[C.SAMPLE_ID]}", source / row[C.KEY]


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")


def test_a_replaced_image_s_note_and_its_picture_are_the_current_file(page, curation):
    url, path = _demo_sample(curation, 0)
    _open(page, url)  # seen before the file is replaced: the browser keeps its picture
    assert page.locator(".content-changed, .content-gone, .content-unknown").count() == 0
    assert _loaded_images(page, ".figure img")[0] > 0
    assert not _near(_centre_pixel(page, ".figure img"), MAGENTA)
    with _replaced(path, MAGENTA):
        _open(page, url)  # back to the page: the note, and the new picture (not the browser's copy of the old one)
        body = page.inner_text(".content-changed")
        assert "changed after this sample was processed" in body and "recorded etag" in body and "now" in body
        assert "the image below is the current file, not the one the scores describe" in body
        _check_note(page, ".box.warn.content-changed")
        assert _loaded_images(page, ".figure img")[0] > 0
        assert _near(_centre_pixel(page, ".figure img"), MAGENTA), _centre_pixel(page, ".figure img")
        _shot(page, curation, "note-changed", full=True)
        page.locator(".content-changed").screenshot(
            path=str(curation.shots / f"note-changed-box-{page.theme}.png"))
        page.set_viewport_size({"width": 480, "height": 900})  # a narrow window: the etags wrap, nothing overflows
        try:
            _check_note(page, ".box.warn.content-changed", narrow=True)
            _shot(page, curation, "note-changed-narrow")
        finally:
            page.set_viewport_size({"width": 1360, "height": 900})
    _open(page, url)  # put back: no note, the original picture again
    assert page.locator(".content-changed").count() == 0
    assert not _near(_centre_pixel(page, ".figure img"), MAGENTA)


def test_a_gone_image_s_note(page, curation):
    url, path = _demo_sample(curation, 1)
    with _removed(path):
        _open(page, url)
        body = page.inner_text(".content-gone")
        assert "is gone: the datasource no longer holds it" in body and "its image cannot be shown" in body
        _check_note(page, ".box.err.content-gone")
        assert page.locator(".figure img").count() == 0  # the note instead of a broken image
        _check_no_blank_below(page, narrow=False)
        _shot(page, curation, "note-gone", full=True)
        page.locator(".content-gone").screenshot(path=str(curation.shots / f"note-gone-box-{page.theme}.png"))
        page.set_viewport_size({"width": 480, "height": 900})
        try:
            _check_no_blank_below(page, narrow=True)
            _shot(page, curation, "note-gone-narrow", full=True)
        finally:
            page.set_viewport_size({"width": 1360, "height": 900})


def _check_no_blank_below(page, *, narrow: bool) -> None:
    """Under a gone picture's note no empty block as tall as the side column: wide, the page's next heading (its
    column tables) starts right below the note, beside the side column; narrow, the side column follows the note
    and the heading follows the side column."""
    box = page.evaluate("""() => {
        const r = e => e.getBoundingClientRect();
        const note = r(document.querySelector('.content-gone')), side = r(document.querySelector('.layout .side'));
        const next = r(document.querySelector('.layout ~ h2'));
        return {note: [note.top, note.bottom], side: [side.left, side.top, side.bottom], next: [next.left, next.top],
                width: document.documentElement.clientWidth};
    }""")
    note_bottom, (side_left, side_top, side_bottom), (next_left, next_top) = box["note"][1], box["side"], box["next"]
    assert narrow or side_bottom - side_top > 300, box  # a tall side column (status, tags, why it was picked, …)
    if narrow:
        assert 0 <= side_top - note_bottom < 40 and 0 <= next_top - side_bottom < 60, box
    else:
        assert 0 <= next_top - note_bottom < 60 and next_top < side_bottom, box  # beside the side column
        assert side_left > box["width"] / 2 and next_left < side_left, box


def test_an_objects_page_notes_its_replaced_image_and_shows_the_current_crop(page, curation):
    rows = Datapool(curation.objects.uri).read()
    objects = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).to_pylist()
    obj = sorted(objects, key=lambda r: (r[C.PARENT_KEY], r[C.SAMPLE_ID]))[0]
    url = f"{curation.base}/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}"
    _open(page, url)
    assert page.locator(".content-changed").count() == 0
    assert _loaded_images(page, ".figure.crop img")[0] > 0
    with _replaced(curation.objects.source / obj[C.PARENT_KEY], MAGENTA):
        _open(page, url)
        body = page.inner_text(".content-changed")
        assert "changed after this object was processed" in body
        assert "the crop and the image below are cut from the current file" in body
        _check_note(page, ".box.warn.content-changed")
        assert _near(_centre_pixel(page, ".figure.crop img"), MAGENTA), _centre_pixel(page, ".figure.crop img")
        _shot(page, curation, "note-object", full=True)
        page.locator(".content-changed").screenshot(path=str(curation.shots / f"note-object-box-{page.theme}.png"))


def _object_of_an_image(curation: Curation) -> dict:
    rows = Datapool(curation.objects.uri).read()
    objects = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).to_pylist()
    return sorted(objects, key=lambda r: (r[C.PARENT_KEY], r[C.SAMPLE_ID]))[-1]


def _check_object_gone_layout(page, *, narrow: bool) -> None:
    """An object's page without pictures: the note spans the page, then (wide) its column tables start right below
    it, beside the side column; (narrow) the side column follows the note, the tables follow the side column."""
    box = page.evaluate("""() => {
        const r = e => e.getBoundingClientRect();
        const note = r(document.querySelector('.content-gone')), side = r(document.querySelector('.layout .side'));
        const next = r(document.querySelector('.layout ~ h2'));
        const out = [...document.querySelectorAll('.layout .side *')].filter(e => r(e).right > side.right + 1)
            .map(e => e.tagName + ': ' + e.textContent.slice(0, 40));
        return {note: [note.top, note.bottom], side: [side.left, side.top, side.bottom], next: [next.left, next.top],
                width: document.documentElement.clientWidth, out};
    }""")
    note_bottom, (side_left, side_top, side_bottom), (next_left, next_top) = box["note"][1], box["side"], box["next"]
    assert box["out"] == [], box  # nothing of the side column (its objective's table) sticks out of it
    if narrow:
        assert 0 <= side_top - note_bottom < 40 and 0 <= next_top - side_bottom < 60, box
    else:
        assert 0 <= next_top - note_bottom < 60 and next_top < side_bottom, box  # beside the side column
        assert side_left > box["width"] / 2 and next_left < side_left, box


def _check_stored_crop(page, *, narrow: bool) -> None:
    """The object's stored crop (its thumbnail) right under the note, loaded, captioned as the stored crop, and
    nothing sticking out of the page."""
    box = page.evaluate("""() => {
        const r = e => e.getBoundingClientRect();
        const img = document.querySelector('.figure.crop.stored img'), note = r(document.querySelector('.content-gone'));
        return {src: img.getAttribute('src'), width: img.naturalWidth, top: r(img).top, right: r(img).right,
                note: note.bottom, caption: document.querySelector('.stored-crop').textContent,
                page: document.documentElement.clientWidth,
                overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth};
    }""")
    assert "/thumbnails/" in box["src"] and box["width"] > 0, box
    assert 0 <= box["top"] - box["note"] < 80 and box["right"] <= box["page"], box
    assert box["caption"].startswith("The stored crop: the thumbnail its run made of this object's crop"), box
    assert narrow or box["overflow"] <= 0, box


def test_an_objects_page_whose_image_is_gone(page, curation):
    """The image an object was cut from is gone: the page shows the crop's thumbnail its run stored (a picture of
    the object, captioned as the stored crop) and the note says so; without that thumbnail too, the note says that
    neither its crop nor its image can be shown, the page shows no broken picture and no empty block, wide and
    narrow (it said only that its crop could not be cut, while its image was not shown either)."""
    obj = _object_of_an_image(curation)
    url = f"{curation.base}/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}"
    thumb = curation.objects.path / "_thumbnails" / f"{obj[C.SAMPLE_ID]}.jpg"
    with _removed(curation.objects.source / obj[C.PARENT_KEY]):
        _open(page, url)
        body = page.inner_text(".content-gone")
        assert f"The file at {obj[C.PARENT_KEY]} is gone: the datasource no longer holds it" in body, body
        assert ("so its image cannot be shown nor its crop cut from it: the crop below is the thumbnail its run "
                "stored of it.") in body, body
        _check_note(page, ".box.err.content-gone")
        assert page.locator(".figure img").count() == 1 and _broken_images(page) == []
        _check_stored_crop(page, narrow=False)
        _shot(page, curation, "note-object-stored-crop", full=True)
        page.set_viewport_size({"width": 480, "height": 900})
        try:
            _check_note(page, ".box.err.content-gone", narrow=True)
            _check_stored_crop(page, narrow=True)
            _shot(page, curation, "note-object-stored-crop-narrow", full=True)
        finally:
            page.set_viewport_size({"width": 1360, "height": 900})
        with _removed(thumb):
            _open(page, url)
            body = page.inner_text(".content-gone")
            assert "so neither its crop nor its image can be shown" in body, body
            _check_note(page, ".box.err.content-gone")
            assert page.locator(".figure img").count() == 0 and _broken_images(page) == []
            assert "Object of image" in page.inner_text("body")  # its image's page is still linked (its rows are there)
            _check_object_gone_layout(page, narrow=False)
            _shot(page, curation, "note-object-gone", full=True)
            page.locator(".content-gone").screenshot(
                path=str(curation.shots / f"note-object-gone-box-{page.theme}.png"))
            page.set_viewport_size({"width": 480, "height": 900})
            try:
                _check_note(page, ".box.err.content-gone", narrow=True)
                _check_object_gone_layout(page, narrow=True)
                _shot(page, curation, "note-object-gone-narrow", full=True)
            finally:
                page.set_viewport_size({"width": 1360, "height": 900})
    _open(page, url)  # put back: no note, its crop and its image again
    assert page.locator(".content-gone").count() == 0 and page.locator(".figure img").count() == 2
    assert _broken_images(page) == []
