"""A pool with more versions than the version chooser lists (``long``: RECENT + 10 tiny versions), light and dark,
1360 and 480 px wide: the chooser lists the RECENT newest, the "Older version" form beside the filters opens an
older one by its number (listed and selected then), and the pool page shows its versions a page at a time, the
next (older) page one click away by the cursor ``before`` (a commit in between moves nothing) and the previous one
back; a bad ``offset`` typed into its URL gets the app's 400 page saying what to send.
Screenshots ``long-grid``, ``long-grid-old``, ``long-pool``, ``long-pool-older``, ``long-pool-bad-offset``,
``narrow-long-grid``, ``narrow-long-pool``, ``narrow-long-pool-older``, ``narrow-long-pool-bad-offset``."""

from __future__ import annotations

import pytest

from lightly_airflow.plugins.pages import RECENT

from .conftest import Curation, _shot
from .test_narrow_ui import _overflow

pytestmark = pytest.mark.slow

LATEST = RECENT + 10


def test_an_older_version_is_opened_by_its_number(page, curation: Curation):
    base = f"{curation.base}/lightly/pools/long"
    page.goto(f"{base}/samples")
    versions = page.eval_on_selector_all("select[name=version] option", "os => os.map(o => o.value)")
    assert versions == [str(v) for v in range(LATEST, LATEST - RECENT, -1)]
    assert page.locator("select[name=run] option").count() == RECENT + 1
    _shot(page, curation, "long-grid")
    page.fill("form.goto input[name=version]", "3")
    page.click("form.goto button[type=submit]")
    page.wait_for_url(f"{base}/samples?version=3", timeout=20_000)
    assert page.eval_on_selector("select[name=version]", "s => s.value") == "3"
    assert "version 3 of" in page.inner_text(".main")
    _shot(page, curation, "long-grid-old")
    page.goto(f"{base}")
    assert page.locator("a:text-is('browse')").count() == RECENT
    page.click("a:has-text('next →') >> nth=-1")  # (the versions' pager, below the tags')
    page.wait_for_load_state("networkidle")
    older = f"{base}?tag_offset=0&before={LATEST - RECENT + 1}#versions"  # (older than the first page's oldest)
    assert page.url == older, page.url
    assert f"{RECENT + 1}–{LATEST + 1} of {LATEST + 1}" in page.inner_text("body")
    assert page.locator("a:text-is('browse')").count() == LATEST + 1 - RECENT
    _shot(page, curation, "long-pool-older", full=True)
    page.click("#versions a:has-text('← previous')")
    page.wait_for_load_state("networkidle")
    assert page.url == f"{base}?tag_offset=0&offset=0#versions" and page.locator("a:text-is('browse')").count() == RECENT
    page.goto(f"{base}")
    _shot(page, curation, "long-pool", full=True)
    bad = page.goto(f"{base}?offset=-1")
    assert bad is not None and bad.status == 400
    assert page.inner_text(".box.err") == "offset must be a whole number from 0 up, got '-1'."
    _shot(page, curation, "long-pool-bad-offset")
    page.set_viewport_size({"width": 480, "height": 900})
    try:
        for name, url in (("narrow-long-grid", f"{base}/samples?version=3"), ("narrow-long-pool", base),
                          ("narrow-long-pool-older", older), ("narrow-long-pool-bad-offset", f"{base}?offset=-1")):
            page.goto(url)
            page.wait_for_load_state("networkidle")
            assert _overflow(page) <= 0, (name, _overflow(page))
            _shot(page, curation, name, full=True)
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})


def test_a_tag_s_key_list_pages_through_the_version_its_first_page_read(page, curation: Curation):
    """The key list of ``initial-tag`` (one key a version): "next →" carries the version the first page read, so a
    commit between clicks moves no key; a page of an older version says which is the latest and links its first
    page. Screenshots ``long-tag-keys``, ``long-tag-keys-older``, ``narrow-long-tag-keys-older``."""
    base = f"{curation.base}/lightly/pools/long/tags/initial-tag"
    page.goto(f"{base}?limit=12")
    page.click("a:has-text('next →')")
    page.wait_for_url(f"{base}?version={LATEST}&offset=12&limit=12", timeout=20_000)
    assert f"{LATEST} samples (showing 13–24) in version {LATEST}." in page.inner_text("body")
    assert page.locator("td code").first.inner_text() == "r12/0.jpg"  # (one key a version, in commit order)
    _shot(page, curation, "long-tag-keys", full=True)
    older = f"{base}?version=5&limit=12"
    page.goto(older)
    said = page.inner_text("body")
    assert f"5 samples (showing 1–5) in version 5 (the latest is {LATEST}: first page of the latest)." in said
    _shot(page, curation, "long-tag-keys-older", full=True)
    page.click("a:has-text('first page of the latest')")
    page.wait_for_url(f"{base}?limit=12", timeout=20_000)
    page.set_viewport_size({"width": 480, "height": 900})
    try:
        page.goto(older)
        page.wait_for_load_state("networkidle")
        assert _overflow(page) <= 0, _overflow(page)
        _shot(page, curation, "narrow-long-tag-keys-older", full=True)
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})
