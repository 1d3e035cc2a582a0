"""A photo's Live Photo clip on its sample page, in Chromium, light and dark: the "LIVE" control over the photo plays
the clip (a real H.264 ``.MOV`` beside the demo's iPhone HEIC, served by ``…/video``) muted and inline in place of
the photo, its time advancing; pressing it again, or the clip's end, shows the photo. A clip the browser cannot
play leaves the photo shown and says so in the control's title; a photo without a clip has no control. The clips
are written into the demo's datasource for the test and removed after. Screenshots: ``live-photo``,
``live-playing``, ``live-broken``, light and dark."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .conftest import Curation, _loaded_images, _shot, _wait

pytestmark = pytest.mark.slow


def _photo(curation: Curation, suffix: str) -> tuple[str, Path]:
    """A demo sample whose key ends with ``suffix``: (page URL, its file)."""
    rows = Datapool(curation.pool_uri).read(columns=[C.KEY, C.SAMPLE_ID, C.STATUS]).to_pylist()
    source = curation.pool_path.parent / "images"
    row = sorted((r for r in rows if r[C.KEY].endswith(suffix) and (source / r[C.KEY]).is_file()),
                 key=lambda r: r[C.KEY])[0]
    return f"{curation.base}/lightly/pools/demo/samples/{row[C.SAMPLE_ID]}", source / row[C.KEY]


@contextmanager
def _beside(photo: Path, data: bytes) -> Iterator[Path]:
    """``data`` as the Live Photo clip beside ``photo`` (its name, ``.MOV``), removed afterwards."""
    clip = photo.with_suffix(".MOV")
    assert not clip.exists()
    clip.write_bytes(data)
    try:
        yield clip
    finally:
        clip.unlink()


def _state(page) -> dict:
    return page.evaluate("""() => {
        const v = document.querySelector('.figure video.live'), b = document.querySelector('.figure .live-btn');
        return {hidden: v.hidden, paused: v.paused, time: v.currentTime, muted: v.muted, inline: v.playsInline,
                pressed: b.getAttribute('aria-pressed'), disabled: b.getAttribute('aria-disabled'), title: b.title,
                shown: v.getBoundingClientRect().height > 0};
    }""")


def test_live_control_plays_the_clip_in_place_of_the_photo(page, curation):
    from lightly_airflow.demo import live_photo_clip
    from lightly_airflow.pixels import display_rgb, open_image

    url, heic = _photo(curation, "-full.HEIC")  # the demo's iPhone photo
    clip = live_photo_clip(display_rgb(open_image(heic.read_bytes())), frames=45)  # its motion: 3 s at 15 frames/s
    with _beside(heic, clip):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        button = page.locator(".figure button.live-btn")
        assert button.count() == 1 and button.inner_text() == "LIVE" and button.is_visible()
        assert heic.with_suffix(".MOV").name in button.get_attribute("title")
        assert _loaded_images(page, ".figure img")[0] > 0
        before = _state(page)
        assert before["hidden"] and before["paused"] and before["muted"] and before["inline"], before
        _shot(page, curation, "live-photo")
        button.click()
        _wait(page, "!document.querySelector('.figure video.live').hidden && "
                    "document.querySelector('.figure video.live').currentTime > 0.4")
        playing = _state(page)
        assert playing["shown"] and not playing["paused"] and playing["pressed"] == "true", playing
        _shot(page, curation, "live-playing")
        button.click()  # pressed again: the photo
        stopped = _state(page)
        assert stopped["hidden"] and stopped["paused"] and stopped["pressed"] == "false", stopped
        assert page.locator(".figure img").is_visible()
        button.click()  # the clip to its end: the photo again by itself
        _wait(page, "document.querySelector('.figure video.live').ended", timeout=15)
        _wait(page, "document.querySelector('.figure video.live').hidden")
        assert _state(page)["pressed"] == "false"


def test_a_clip_that_cannot_be_played_leaves_the_photo_and_says_so(page, curation):
    url, photo = _photo(curation, "-full.jpg")
    with _beside(photo, b"\x00\x00\x00\x14ftypqt  not a movie" * 64):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        button = page.locator(".figure button.live-btn")
        assert button.count() == 1
        button.click()
        _wait(page, "document.querySelector('.figure .live-btn').getAttribute('aria-disabled') === 'true'")
        state = _state(page)
        assert state["hidden"] and state["pressed"] == "false", state
        assert "cannot be played" in state["title"] and "the photo is shown" in state["title"], state
        assert page.locator(".figure img").is_visible() and _loaded_images(page, ".figure img")[0] > 0
        _shot(page, curation, "live-broken")
        button.click(force=True)  # inert now (aria-disabled: Playwright would wait for it to be enabled)
        assert _state(page)["hidden"]


def test_no_control_without_a_clip(page, curation):
    url, _ = _photo(curation, "-full.jpg")
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert page.locator(".live-btn").count() == 0 and page.locator("video").count() == 0
    assert _loaded_images(page, ".figure img")[0] > 0
