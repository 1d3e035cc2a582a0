"""A tag's key list (``/pools/{pool}/tags/{tag}`` and its JSON) while runs commit: its pages read the version the
first page read (``version`` in their links and ``paging``), so a client walking them sees every key of the tag as
of the first page once, where offsets into the latest version skipped a key for each one a commit took out of
``initial-tag`` before it and added the keys committed meanwhile."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from long_pool import build_long_pool, commit_tiny_run

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool

from .test_long_history import _replace_key

RUNS = 20  # run r commits version r + 1 and selects r{r}/0.jpg: initial-tag holds those, in commit order
KEYS = [f"r{r}/0.jpg" for r in range(RUNS)]
TAG = f"/lightly/pools/p/tags/{C.INITIAL_TAG}"
API = f"/lightly/api/pools/p/tags/{C.INITIAL_TAG}"


@pytest.fixture
def busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, Callable[[], None], Datapool]]:
    """The long pool served as ``p``, and what a busy hour does between two requests: a run selects a new key and
    another finds an early key's file replaced (``initial-tag`` loses it: the keys after it move up one)."""
    from ui_client import ui_client

    pool, done = build_long_pool(str(tmp_path / "pool"), RUNS), [0]

    def commits() -> None:
        commit_tiny_run(pool, RUNS + done[0])
        _replace_key(pool, 100 + done[0], KEYS[done[0]])
        done[0] += 1

    with ui_client(monkeypatch, {"p": {"uri": str(tmp_path / "pool")}}) as c:
        yield c, commits, pool


def _walk(c, params: dict, between: Callable[[], None], *, pinned: bool = True) -> tuple[list[str], list[dict]]:
    """The keys of every page from ``params`` on, following ``paging.next`` (without its ``version``: the offset
    walk of before), ``between`` run after each page; and each page's answer."""
    keys, pages = [], []
    while params is not None:
        r = c.get(API, params=params)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        keys += [s["key"] for s in pages[-1]["samples"]]
        params = pages[-1]["paging"]["next"]
        if params is not None and not pinned:
            params = {k: v for k, v in params.items() if k != "version"}
        between()
    return keys, pages


def test_walking_next_while_runs_commit_visits_every_key_of_the_first_page_s_version_once(busy) -> None:
    c, commits, pool = busy
    keys, pages = _walk(c, {"limit": 6}, commits)
    assert keys == KEYS  # each key of initial-tag at version RUNS, once, in commit order
    assert [p["pool_version"] for p in pages] == [RUNS] * 4
    assert [p["latest_version"] for p in pages] == [RUNS + 2 * i for i in range(4)]  # (two commits a page)
    assert [p["paging"]["next"] for p in pages] == [{"version": RUNS, "offset": o, "limit": 6} for o in (6, 12, 18)] \
        + [None]
    assert pages[2]["paging"] == {"offset": 12, "limit": 6, "total": RUNS, "next": {"version": RUNS, "offset": 18,
                                  "limit": 6}, "previous": {"version": RUNS, "offset": 6, "limit": 6}}
    assert pages[0]["paging"]["previous"] is None
    # the offset walk of before, through the same commits: a key taken out before the page skipped one, and the
    # keys committed meanwhile came at the end
    start = pool.version()
    offsets, _ = _walk(c, {"limit": 6}, commits, pinned=False)
    then = [s["key"] for s in c.get(API, params={"version": start, "limit": 1000}).json()["samples"]]
    assert then == KEYS[4:] + [f"r{r}/0.jpg" for r in range(RUNS, RUNS + 4)]  # (as of that walk's first page)
    assert len(set(offsets)) == len(offsets) and set(then) - set(offsets) and set(offsets) - set(then)
    # a page of an older version; offsets alone read the latest, as before
    old = c.get(API, params={"version": 3, "offset": 1, "limit": 5}).json()
    assert ([s["key"] for s in old["samples"]], old["pool_version"], old["total"]) == (KEYS[1:3], 3, 3)
    now = c.get(API, params={"offset": 2, "limit": 1}).json()
    assert (now["pool_version"], now["latest_version"]) == (pool.version(), pool.version())
    assert now["paging"]["next"] == {"version": pool.version(), "offset": 3, "limit": 1}


def test_the_page_s_next_link_walks_one_version_while_runs_commit(busy) -> None:
    c, commits, pool = busy
    href, keys, texts = f"{TAG}?limit=6", [], []
    while href:
        page = c.get(href).text
        keys += [html.unescape(k) for k in re.findall(r"<td><code>([^<]*)</code></td>", page)]
        texts.append(re.search(r"<p>(\d+ samples .*?)</p>", page).group(1))
        pager = {text: html.unescape(h) for h, text in re.findall(r'<a href="([^"]*)">(next →|← previous)</a>', page)}
        href = pager.get("next →", "")
        if len(texts) == 2:
            assert pager == {"← previous": f"{TAG}?version={RUNS}&offset=0&limit=6",
                             "next →": f"{TAG}?version={RUNS}&offset=12&limit=6"}
        commits()
    assert keys == KEYS
    assert texts[0] == f"{RUNS} samples (showing 1–6) in version {RUNS}."
    assert texts[3] == (f'{RUNS} samples (showing 19–20) in version {RUNS} (the latest is {RUNS + 6}: '
                        f'<a href="{TAG}?limit=6">first page of the latest</a>).')
    latest = c.get(f"{TAG}?limit=6").text  # that link: the latest version, four keys out and four in
    assert f"{RUNS} samples (showing 1–6) in version {pool.version()}" in latest
    assert "<code>r4/0.jpg</code>" in latest and "<code>r3/0.jpg</code>" not in latest


@pytest.mark.parametrize(("params", "said"), [
    ({"version": -1}, "version must be a whole number from 0 up, got '-1'."),
    ({"version": "v20"}, "version must be a whole number from 0 up, got 'v20'."),
    ({"version": "1.5", "offset": 3}, "version must be a whole number from 0 up, got '1.5'."),
    ({"version": RUNS + 1}, f"version must be a whole number from 0 to {RUNS}, got '{RUNS + 1}'."),
    ({"version": 10 ** 6, "limit": 0},  # (FastAPI refuses the limit before the version is looked at)
     "limit must be a whole number from 1 to 1000, got '0'."),
])
def test_bad_cursor_values_are_400_naming_the_parameter(busy, params, said) -> None:
    c, _, _ = busy
    r = c.get(API, params=params)
    assert r.status_code == 400 and r.json() == {"detail": said}
    page = c.get(TAG, params=params)
    assert page.status_code == 400 and f'<div class="box err">{html.escape(said)}</div>' in page.text
    assert "<title>Bad request</title>" in page.text


def test_a_version_before_the_tag_is_404_naming_it(busy) -> None:
    c, _, _ = busy
    r = c.get("/lightly/api/pools/p/tags/t005", params={"version": 5})  # (run 5 made version 6)
    assert r.status_code == 404 and r.json() == {"detail": "Datapool 'p' has no tag 't005' at version 5."}
    assert [s["key"] for s in c.get("/lightly/api/pools/p/tags/t005", params={"version": 6}).json()["samples"]] \
        == ["r5/0.jpg"]


def test_a_pinned_version_a_vacuum_deleted_says_to_start_again(tmp_path: Path, monkeypatch) -> None:
    """Pages pinned at a version whose files are gone answer 410 naming the version and the way out (the first
    page), as JSON and as the app's error page: a vacuum's record (lightly-airflow's vacuum) or a file found
    missing at the read (Delta's own VACUUM run by hand)."""
    import time
    import types

    from deltalake import DeltaTable
    from ui_client import ui_client

    from lightly_airflow.datapool import compaction, vacuum
    from lightly_airflow.datapool.compaction import CompactionOptions, compact

    by_record, by_hand = tmp_path / "a", tmp_path / "b"
    pools = {"a": build_long_pool(str(by_record), 4), "b": build_long_pool(str(by_hand), 4)}
    with ui_client(monkeypatch, {"a": {"uri": str(by_record)}, "b": {"uri": str(by_hand)}}) as c:
        nexts = {name: c.get(f"/lightly/api/pools/{name}/tags/{C.INITIAL_TAG}", params={"limit": 1}).json()["paging"]
                 ["next"] for name in pools}
        assert nexts == {name: {"version": 4, "offset": 1, "limit": 1} for name in pools}
        clock = types.SimpleNamespace(time=lambda: time.time() - 40 * 86400, perf_counter=time.perf_counter)
        monkeypatch.setattr(compaction, "time", clock)  # (its remove actions say it ran 40 days ago)
        compact(pools["a"], CompactionOptions(min_small_files=2), force=True)
        monkeypatch.setattr(compaction, "time", time)
        assert vacuum(pools["a"], 30).record is not None
        compact(pools["b"], CompactionOptions(min_small_files=2), force=True)
        DeltaTable(str(by_hand)).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
        for name, how in (("a", "the vacuum of "), ("b", "Delta's own VACUUM")):
            r = c.get(f"/lightly/api/pools/{name}/tags/{C.INITIAL_TAG}", params=nexts[name])
            assert r.status_code == 410, r.text
            said = r.json()["detail"]
            assert said.startswith(f"Version 4 of {name!r} can no longer be read: {how}"), said
            assert said.endswith("These pages of tag 'initial-tag' read version 4 (version=4 in their links): start again "
                                 f"from the tag's first page, which reads the latest version ({pools[name].version()}).")
            page = c.get(f"/lightly/pools/{name}/tags/{C.INITIAL_TAG}", params=nexts[name])
            assert page.status_code == 410 and "<title>Gone</title>" in page.text and html.escape(said) in page.text
            again = c.get(f"/lightly/api/pools/{name}/tags/{C.INITIAL_TAG}", params={"limit": 1}).json()
            assert again["samples"] == [{"key": "r0/0.jpg", "run_id": "manual__run-000", "status": "ok", "pick_rank": 0}]
