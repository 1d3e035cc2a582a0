"""Pages of a pool with a long history (an hourly DAG commits 8,760 versions a year): the version, run and tag
choosers list the :data:`~lightly_airflow.plugins.pages.RECENT` newest and the chosen ones, the overview shows its
versions and tags a page at a time, and every older version, run and tag stays reachable. (A scale audit measured
15,010 ``<option>`` elements in a grid page of 1.24 MB and an overview of 3.7 MB at 5,000 versions.)

``RECENT`` is made small here so that a pool of a few dozen versions is "long"."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from long_pool import build_long_pool, commit_tiny_run

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool
from lightly_airflow.plugins import pages as P

from .test_app import links

RECENT = 10
RUNS = 30  # (tests/long_pool.py) run r commits version r + 1, as run manual__run-{r:03d} with tag t{r:03d}
LATEST = RUNS


@pytest.fixture(scope="module")
def long_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("long") / "pool"
    build_long_pool(str(path), RUNS)
    return path


@pytest.fixture
def long_client(long_pool: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from ui_client import ui_client

    monkeypatch.setattr(P, "RECENT", RECENT, raising=False)
    with ui_client(monkeypatch, {"p": {"uri": str(long_pool)}}) as c:
        yield c


def _options(page: str, name: str) -> list[tuple[str, bool]]:
    """The (value, selected) of the options of select ``name``."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select, name
    return [(html.unescape(v), bool(s)) for v, s in re.findall(r'<option value="([^"]*)"( selected)?', select.group(1))]


def test_the_choosers_list_the_newest_and_the_chosen_one(long_client) -> None:
    grid = long_client.get("/lightly/pools/p/samples").text
    assert [v for v, _ in _options(grid, "version")] == [str(v) for v in range(LATEST, LATEST - RECENT, -1)]
    assert [v for v, _ in _options(grid, "run")] == ["", *[f"manual__run-{r:03d}" for r in range(RUNS - RECENT, RUNS)]]
    tags = [f"t{r:03d}" for r in range(RUNS - RECENT, RUNS)]
    assert [v for v, _ in _options(grid, "tag")] == ["", C.INITIAL_TAG, *tags]
    assert grid.count("<option") <= 3 * RECENT + 10
    # an old version, run and tag chosen (by a link): listed and selected
    old = long_client.get("/lightly/pools/p/samples", params={"version": 8, "run": "manual__run-002"}).text
    assert ("8", True) in _options(old, "version") and ("manual__run-002", True) in _options(old, "run")
    assert f"version 8 of {LATEST}" in old and "<b>2</b> samples match" in old  # the run's two rows, as of version 8
    tagged = long_client.get("/lightly/pools/p/samples", params={"tag": "t001"}).text
    assert ("t001", True) in _options(tagged, "tag")
    map_page = long_client.get("/lightly/pools/p/map", params={"color": "tag:t000"}).text
    assert ("tag:t000", True) in _options(map_page, "color") and "tag:t005" not in map_page
    compare = long_client.get("/lightly/pools/p/compare", params=[("tag", "t000"), ("tag", "t001")]).text
    assert '<option value="t000" selected>' in compare and '<option value="t001" selected>' in compare
    assert "t005" not in compare and "Overlap" in compare


def test_an_old_version_is_reached_by_its_number(long_client) -> None:
    grid = long_client.get("/lightly/pools/p/samples", params={"tag": C.INITIAL_TAG}).text
    form = re.search(r'<form method="get" action="/lightly/pools/p/samples" class="toolbar goto">(.*?)</form>', grid,
                     re.S)
    assert form, "no form to go to an older version"
    assert f'name="version" min="0" max="{LATEST}"' in form.group(1)
    assert f'name="tag" value="{C.INITIAL_TAG}"' in form.group(1)  # (the scope is kept)
    r = long_client.get("/lightly/pools/p/samples", params={"version": 3, "tag": C.INITIAL_TAG})
    assert r.status_code == 200 and f"version 3 of {LATEST}" in r.text and "<b>3</b> samples match" in r.text
    assert ("3", True) in _options(r.text, "version")
    bad = long_client.get("/lightly/pools/p/samples", params={"version": LATEST + 1})
    assert bad.status_code == 400 and f"versions 0..{LATEST}, not {LATEST + 1}" in bad.text


def test_the_overview_pages_through_every_version_and_tag(long_client) -> None:
    href, seen_versions, hrefs = "/lightly/pools/p", [], []
    while True:
        page = long_client.get(html.unescape(href)).text
        hrefs += links(page).hrefs
        assert page.count("browse</a>") <= RECENT and page.count("/tags/t") <= RECENT
        seen_versions += [int(v) for v in re.findall(r'samples\?version=(\d+)">browse', page)]
        nexts = re.findall(r'<a href="([^"]*(?:\?|&amp;)before=[^"]*#versions)">next', page)  # (the cursor)
        if not nexts:
            break
        href = nexts[0]
    assert seen_versions == list(range(LATEST, -1, -1))  # every version, newest first, once
    assert f"/lightly/pools/p/samples?run=manual__run-{RUNS - 1:03d}" in hrefs  # a run's rows
    assert "/lightly/pools/p/samples?run=manual__run-000" in hrefs
    # the tags' pages: initial-tag on top, then the newest first
    href = "/lightly/pools/p"
    seen_tags = []
    while href:
        page = long_client.get(html.unescape(href)).text
        seen_tags += re.findall(r'/tags/([^"/]+)"', page)
        nexts = re.findall(r'<a href="([^"]*tags_before=[^"]*#tags)">next', page)
        href = nexts[0] if nexts else ""
    assert seen_tags == [C.INITIAL_TAG, *[f"t{r:03d}" for r in range(RUNS - 1, -1, -1)]]


def test_page_sizes_do_not_grow_with_the_history(long_pool: Path, tmp_path: Path, monkeypatch) -> None:
    """The same pages of the same pool before and after 20 more commits: the same size but for a few bytes (the
    numbers in them), where every version, run and tag listed grew each by about 3 options a version."""
    import shutil

    from ui_client import ui_client

    path = tmp_path / "pool"
    shutil.copytree(long_pool, path)
    monkeypatch.setattr(P, "RECENT", RECENT, raising=False)
    # (at a fixed version: the samples, facets and histograms the same)
    urls = ["/lightly/pools/p", "/lightly/pools/p/samples?version=5", "/lightly/pools/p/samples?version=25&tag=t001",
            "/lightly/pools/p/map?version=5", "/lightly/pools/p/compare?version=25&tag=t000&tag=t001"]

    def sizes() -> list[int]:
        with ui_client(monkeypatch, {"p": {"uri": str(path)}}) as c:
            out = []
            for url in urls:
                r = c.get(url)
                assert r.status_code == 200, url
                out.append(len(r.content))
            return out

    before = sizes()
    pool = Datapool(str(path))
    for run in range(RUNS, RUNS + 20):
        commit_tiny_run(pool, run)
    after = sizes()
    for url, a, b in zip(urls, before, after, strict=True):
        assert abs(b - a) < 200, f"{url}: {a} bytes at {RUNS} versions, {b} at {RUNS + 20}"


def _walk(client, params: dict[str, int], key: str, between: Callable[[], None] = lambda: None
          ) -> tuple[list[dict], list[dict]]:
    """Every page of ``/api/pools/p``'s list ``key`` (``history`` or ``tags``), following ``paging.<key>.next``
    from ``params`` (``between``: run between two requests): the items and each page's ``paging.<key>``."""
    items, pages = [], []
    while params is not None:
        r = client.get("/lightly/api/pools/p", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body[key]
        pages.append(body["paging"][key])
        params = body["paging"][key]["next"]
        between()
    return items, pages


@pytest.fixture
def busy_pool(long_pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, Callable]]:
    """A copy of the long pool served as ``p``, and a function that commits the next hourly run to it."""
    import shutil

    from ui_client import ui_client

    path = tmp_path / "pool"
    shutil.copytree(long_pool, path)
    pool, runs = Datapool(str(path)), [RUNS]
    monkeypatch.setattr(P, "RECENT", RECENT, raising=False)

    def commit() -> None:
        commit_tiny_run(pool, runs[0])
        runs[0] += 1

    with ui_client(monkeypatch, {"p": {"uri": str(path)}}) as c:
        yield c, commit


def test_the_cursors_walk_every_version_and_tag_once_while_runs_commit(busy_pool) -> None:
    """An hourly DAG commits between two requests of a client paging back through the history: ``next`` is a cursor
    (``before`` / ``tags_before``: older than the page's oldest), so every version and tag of the first page's time
    comes once (by offsets the list moved on by one a commit: a page's last came again on top of the next)."""
    c, commit = busy_pool
    history, pages = _walk(c, {"limit": 7}, "history", between=commit)
    assert [h["version"] for h in history] == list(range(LATEST, -1, -1))
    assert [p["next"] for p in pages] == [{"before": v, "limit": 7} for v in range(LATEST - 6, 0, -7)] + [None]
    latest = c.get("/lightly/api/pools/p").json()["version"]
    assert latest == LATEST + len(pages)  # (a commit after each page)
    tags, pages = _walk(c, {"tag_limit": 4}, "tags", between=commit)
    runs = latest  # (run r made version r + 1: runs 0 .. latest - 1)
    assert [t["name"] for t in tags] == [C.INITIAL_TAG, *[f"t{r:03d}" for r in range(runs - 1, -1, -1)]]
    assert pages[0]["next"] == {"tags_before": runs - 2, "tag_limit": 4}  # (t{runs - 3}, made at version runs - 2)
    latest += len(pages)
    # a page of a cursor counts its offset from there; previous: the page above it, by the same cursor
    page = c.get("/lightly/api/pools/p", params={"before": 20, "offset": 3, "limit": 2, "tags_before": 5}).json()
    assert [h["version"] for h in page["history"]] == [16, 15] and page["tags"] == [
        {"name": f"t{r:03d}", "run_id": f"manual__run-{r:03d}", "version": r + 1, "count": 1} for r in (3, 2, 1, 0)]
    assert page["paging"]["history"] == {"offset": latest - 16, "limit": 2, "total": latest + 1,
                                         "next": {"before": 15, "limit": 2}, "previous": {"before": 19, "limit": 2}}
    assert page["paging"]["tags"]["offset"] == latest - 3 and page["paging"]["tags"]["next"] is None
    commit()
    above = c.get("/lightly/api/pools/p", params=page["paging"]["history"]["previous"]).json()
    assert [h["version"] for h in above["history"]] == [18, 17]
    for params, versions in (({"before": 0}, []), ({"before": 10 ** 6, "limit": 2}, [latest + 1, latest])):
        assert [h["version"] for h in c.get("/lightly/api/pools/p", params=params).json()["history"]] == versions
    # offsets page as they did, from the newest
    page = c.get("/lightly/api/pools/p", params={"offset": 3, "limit": 2, "tag_offset": 1, "tag_limit": 1}).json()
    assert [h["version"] for h in page["history"]] == [latest - 2, latest - 3]
    assert [t["name"] for t in page["tags"]] == [f"t{latest:03d}"] and page["paging"]["tags"]["previous"] == {
        "tag_offset": 0, "tag_limit": 1}
    first = c.get("/lightly/api/pools/p", params={"tag_limit": 1}).json()["paging"]["tags"]  # (initial-tag alone)
    assert first["next"] == {"tag_offset": 1, "tag_limit": 1}


def test_the_pool_page_pages_back_by_the_cursor_while_runs_commit(busy_pool) -> None:
    """The pool page's "next →" of its versions and tags carry the cursor (the other list kept where it is), its
    "← previous" the page above by the cursor too: a commit between two clicks moves nothing."""
    c, commit = busy_pool

    def pager(page: str, anchor: str) -> dict[str, str]:
        section = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
        assert section, anchor
        return {text: html.unescape(href) for href, text in re.findall(r'<a href="([^"]*)">(next →|← previous)</a>',
                                                                        section.group(1))}

    href, seen, tags_hrefs = "/lightly/pools/p?tag_offset=1", [], []
    while href:
        page = c.get(href).text
        seen += [int(v) for v in re.findall(r'samples\?version=(\d+)">browse', page)]
        tags_hrefs.append(pager(page, "tags"))
        href = pager(page, "versions").get("next →", "")
        commit()
    assert seen == list(range(LATEST, -1, -1))
    # the tags' pager of the second page: the versions kept; tags from the second (t030, a commit on) to t021,
    # made at version 22
    assert tags_hrefs[1] == {"← previous": "/lightly/pools/p?offset=0&before=21&tag_offset=0#tags",
                             "next →": "/lightly/pools/p?offset=0&before=21&tags_before=22#tags"}
    third = c.get("/lightly/pools/p?before=11&tags_before=20").text
    assert pager(third, "versions") == {"← previous": "/lightly/pools/p?tag_offset=0&tags_before=20&before=21#versions",
                                        "next →": "/lightly/pools/p?tag_offset=0&tags_before=20&before=1#versions"}
    assert "25–34 of 35, newest first" in third  # (versions 10..1 of 34..0: four commits on)
    commit()
    above = c.get(pager(third, "versions")["← previous"]).text
    assert [int(v) for v in re.findall(r'samples\?version=(\d+)">browse', above)] == list(range(20, 10, -1))


def test_the_pool_json_pages_its_versions_and_tags_newest_first(long_client) -> None:
    first = long_client.get("/lightly/api/pools/p").json()
    assert (first["exists"], first["version"], first["name"]) == (True, LATEST, "p")
    # by default the page's RECENT newest versions and tags, as the pool page shows them
    assert [h["version"] for h in first["history"]] == list(range(LATEST, LATEST - RECENT, -1))
    assert [t["name"] for t in first["tags"]] == [C.INITIAL_TAG, *[f"t{r:03d}" for r in range(RUNS - 1, RUNS - RECENT, -1)]]
    assert first["paging"] == {
        "history": {"offset": 0, "limit": RECENT, "total": LATEST + 1, "previous": None,
                    "next": {"before": LATEST - RECENT + 1, "limit": RECENT}},  # (the oldest version of the page)
        "tags": {"offset": 0, "limit": RECENT, "total": RUNS + 1, "previous": None,
                 "next": {"tags_before": RUNS - RECENT + 2, "tag_limit": RECENT}},  # (t{r} made version r + 1)
    }
    assert first["tags"][0]["count"] == RUNS  # (each run selected one new key)
    history, pages = _walk(long_client, {"limit": 7}, "history")
    assert [h["version"] for h in history] == list(range(LATEST, -1, -1))  # every version once, newest first
    assert [p["offset"] for p in pages] == list(range(0, LATEST + 1, 7)) and pages[-1]["next"] is None
    assert {h["run_id"] for h in history if h["run_id"]} == {f"manual__run-{r:03d}" for r in range(RUNS)}
    tags, pages = _walk(long_client, {"tag_limit": 4, "offset": 3}, "tags")
    assert [t["name"] for t in tags] == [C.INITIAL_TAG, *[f"t{r:03d}" for r in range(RUNS - 1, -1, -1)]]
    assert [p["offset"] for p in pages] == list(range(0, RUNS + 1, 4)) and {t["count"] for t in tags[1:]} == {1}
    past = long_client.get("/lightly/api/pools/p", params={"offset": LATEST + 5, "limit": 500}).json()
    assert past["history"] == [] and past["paging"]["history"]["total"] == LATEST + 1
    assert past["paging"]["history"]["next"] is None


@pytest.mark.parametrize(("params", "said"), [
    ({"limit": 0}, "limit must be a whole number from 1 to 500, got '0'."),
    ({"limit": 501}, "limit must be a whole number from 1 to 500, got '501'."),
    ({"tag_limit": "ten"}, "tag_limit must be a whole number from 1 to 500, got 'ten'."),
    ({"offset": -1}, "offset must be a whole number from 0 up, got '-1'."),
    ({"tag_offset": "1.5"}, "tag_offset must be a whole number from 0 up, got '1.5'."),
    ({"offset": ""}, "offset must be a whole number from 0 up, got ''."),
    ({"before": -1}, "before must be a whole number from 0 up, got '-1'."),
    ({"before": "v20", "limit": 5}, "before must be a whole number from 0 up, got 'v20'."),
    ({"tags_before": "t003"}, "tags_before must be a whole number from 0 up, got 't003'."),
])
def test_bad_paging_of_the_pool_json_is_400_naming_the_parameter(long_client, params, said) -> None:
    r = long_client.get("/lightly/api/pools/p", params=params)
    assert r.status_code == 400 and r.json() == {"detail": said}


def test_a_bad_parameter_of_a_json_route_is_400_naming_it_its_range_and_the_value(long_client) -> None:
    """Every route's ``Query`` constraints answer alike (not FastAPI's 422): the detail says what to send."""
    for url, said in (
        ("/lightly/api/pools/p/samples?order=sideways&limit=1001",
         "order must be one of asc, desc, got 'sideways'. limit must be a whole number from 1 to 1000, got '1001'."),
        ("/lightly/api/pools/p/map?max_points=99", "max_points must be a whole number from 100 to 100000, got '99'."),
        ("/lightly/api/pools/p/compare?version=-3", "version must be a whole number from 0 up, got '-3'."),
    ):
        r = long_client.get(url)
        assert (r.status_code, r.json()) == (400, {"detail": said}), url
    good = long_client.get("/lightly/api/pools/p/samples?order=desc&limit=1000")
    assert good.status_code == 200 and len(good.json()["items"]) == 2 * RUNS  # (every row: two a run)


def test_a_bad_parameter_of_a_page_is_a_400_page_naming_it_its_range_and_the_value(long_client) -> None:
    for url, said in (
        ("/lightly/pools/p?offset=-1", "offset must be a whole number from 0 up, got '-1'."),
        ("/lightly/pools/p?tag_offset=ten", "tag_offset must be a whole number from 0 up, got 'ten'."),
        ("/lightly/pools/p?before=1.5&tags_before=-2",
         "before must be a whole number from 0 up, got '1.5'. tags_before must be a whole number from 0 up, got '-2'."),
        ("/lightly/pools/p/samples?order=up&limit=0",
         "order must be one of asc, desc, got 'up'. limit must be a whole number from 1 to 1000, got '0'."),
        ("/lightly/pools/p/tags/t001?limit=1.5", "limit must be a whole number from 1 to 1000, got '1.5'."),
    ):
        r = long_client.get(url)
        assert r.status_code == 400 and r.headers["content-type"].startswith("text/html"), url
        # the app's own error page (its title, style and way back), not FastAPI's JSON
        assert "<title>Bad request</title>" in r.text and f'<div class="box err">{html.escape(said)}</div>' in r.text
        assert '<a href="/lightly/">Datapools</a>' in r.text
    good = long_client.get("/lightly/pools/p?offset=25&tag_offset=30")
    assert good.status_code == 200 and "26–31 of 31" in good.text


def _stale_staging_folder(pool_path: Path, run_id: str) -> None:
    """The staging folder of a run that failed 40 days ago: the next vacuum removes it, so it runs and records
    itself (``datapool.reclaim.vacuum``), at the pool's latest version."""
    import os
    import time

    from lightly_airflow.staging import run_dir

    folder = Path(run_dir(str(pool_path), run_id))
    (folder / "embeddings").mkdir(parents=True)
    (folder / "embeddings" / "shard-00000.parquet").write_bytes(b"x" * 1000)
    old = time.time() - 40 * 86400
    for p in (folder, folder / "embeddings", folder / "embeddings" / "shard-00000.parquet"):
        os.utime(p, (old, old))


def test_the_pool_json_lists_only_the_vacuums_beside_its_page_of_versions(tmp_path: Path, monkeypatch) -> None:
    """A vacuum adds no version: the pool JSON lists those that ran while a version of its page was the latest
    (the page shows each above that version), not every vacuum of the pool."""
    from deltalake import DeltaTable
    from ui_client import ui_client

    from lightly_airflow.datapool import vacuum
    from lightly_airflow.datapool.compaction import CompactionOptions, compact

    path = tmp_path / "pool"
    pool = build_long_pool(str(path), 6)  # versions 0..6
    for run in range(6, 24, 6):  # vacuums at versions 6, 12 and 18; the latest is 24
        _stale_staging_folder(path, f"failed-{run}")
        assert vacuum(pool, 30).record is not None
        for r in range(run, run + 6):
            commit_tiny_run(pool, r)
    compact(pool, CompactionOptions(min_small_files=2), force=True)  # version 25, then Delta's own VACUUM: 26, 27
    DeltaTable(str(path)).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    assert [e["operation"] for e in pool.history()[-3:]] == ["compact", "VACUUM START", "VACUUM END"]

    def vacuums(**params: int) -> list[int]:
        body = c.get("/lightly/api/pools/p", params=params).json()
        versions = {h["version"] for h in body["history"]}
        assert all(v["version"] in versions for v in body["vacuums"])
        return [v["version"] for v in body["vacuums"]]

    with ui_client(monkeypatch, {"p": {"uri": str(path)}}) as c:
        assert vacuums() == [6, 12, 18, 27]  # (every version on the page: every vacuum, oldest first)
        assert vacuums(limit=2) == [27]  # versions 27, 26: Delta's own VACUUM only
        assert vacuums(offset=2, limit=5) == []  # 25..21
        assert vacuums(offset=7, limit=4) == [18]  # 20..17
        assert vacuums(offset=9, limit=13) == [6, 12, 18]  # 18..6
        assert vacuums(offset=15, limit=3) == [12]  # 12..10
        assert vacuums(offset=21, limit=7) == [6]  # 6..0


def test_the_pool_json_does_not_grow_with_the_history(long_pool: Path, tmp_path: Path, monkeypatch) -> None:
    """Before and after 60 more commits: the default page holds pages.RECENT (50) versions and tags however long
    the history (it held all 91), a page of 10 is the same size but for a few bytes."""
    import shutil

    from ui_client import ui_client

    path = tmp_path / "pool"
    shutil.copytree(long_pool, path)

    def sizes() -> tuple[int, int, dict]:
        with ui_client(monkeypatch, {"p": {"uri": str(path)}}) as c:
            default, ten = c.get("/lightly/api/pools/p"), c.get("/lightly/api/pools/p?limit=10&tag_limit=10")
            return len(default.content), len(ten.content), default.json()

    ten_before = sizes()[1]
    pool = Datapool(str(path))
    for run in range(RUNS, RUNS + 60):
        commit_tiny_run(pool, run)
    _, ten_after, body = sizes()
    assert (len(body["history"]), len(body["tags"]), body["paging"]["history"]["total"]) == (P.RECENT, P.RECENT, 91)
    assert abs(ten_after - ten_before) < 200, (ten_before, ten_after)


def _replace_key(pool: Datapool, run: int, key: str) -> None:
    """A run that finds ``key`` replaced (another etag) and does not select it: ``initial-tag`` loses it."""
    import pyarrow as pa

    rows = pa.table({
        C.KEY: [key], C.ETAG: [f"new-{run}"], C.STATUS: ["ok"],
        C.EMBEDDING: pa.array([[0.5, 0.5, 0.5, float(run)]], pa.list_(pa.float32(), 4)),
        C.SELECTED: [False], C.PICK_RANK: pa.array([None], pa.int64()),
    })
    pool.commit(rows, run_id=f"manual__replace-{run:03d}", dag_id="hourly", tag=f"replace{run:03d}", config={},
                counts={}, embedding_model="m", embedding_dim=4, read_version=pool.version())


def test_the_initial_tag_count_is_read_from_its_commit_and_stays_exact(tmp_path: Path, monkeypatch) -> None:
    """Each commit records the ``initial-tag`` count: the pool page, its JSON and the tags' key lists read it and
    count nothing, exact after a run replacing a selected file and in a pool made anew at the same place with as
    many versions. A pool written before counts were recorded is counted by reading every data file, once a
    version (``data.pool_tags`` keeps it), until its next commit records the count."""
    import shutil

    from long_pool import strip_initial_tag_counts
    from ui_client import ui_client

    from lightly_airflow.datapool import snapshot

    counted = []
    real = snapshot._count_selected
    monkeypatch.setattr(snapshot, "_count_selected", lambda table: counted.append(table.version()) or real(table))
    path, old = tmp_path / "pool", tmp_path / "old"
    pool = build_long_pool(str(path), 4)

    def initial_count(c, name: str = "p") -> int:
        [initial] = [t for t in c.get(f"/lightly/api/pools/{name}").json()["tags"] if t["name"] == C.INITIAL_TAG]
        return int(initial["count"])

    with ui_client(monkeypatch, {"p": {"uri": str(path)}, "old": {"uri": str(old)}}) as c:
        assert initial_count(c) == 4 and initial_count(c) == 4
        assert "4 samples" in c.get("/lightly/pools/p/tags/initial-tag").text and c.get("/lightly/pools/p").is_success
        _replace_key(pool, 10, "r1/0.jpg")  # run 1's pick, replaced and not selected again
        assert initial_count(c) == 3 and c.get("/lightly/api/pools/p/tags/initial-tag").json()["total"] == 3
        shutil.rmtree(path)  # made anew at the same place, with as many versions: one selected key fewer
        pool = build_long_pool(str(path), 3)
        _replace_key(pool, 11, "r0/0.jpg")
        _replace_key(pool, 12, "r2/0.jpg")
        assert initial_count(c) == 1
        assert counted == []  # (every version's commit recorded its count)

        written_before = build_long_pool(str(old), 4)
        strip_initial_tag_counts(old)
        snapshot._history_cache.pop(written_before.uri)  # (as the UI server reads a pool it has not read yet)
        assert initial_count(c, "old") == 4 and initial_count(c, "old") == 4
        assert "4 samples" in c.get("/lightly/pools/old/tags/initial-tag").text
        assert counted == [4]
        _replace_key(written_before, 10, "r1/0.jpg")  # its commit reads initial-tag (selected()) and records
        assert initial_count(c, "old") == 3 and counted == [4]


def test_a_pinned_tag_page_loads_the_log_once(long_client, monkeypatch) -> None:
    """A page of a tag pinned at an older version (``version=N``, its links) loads the pool's log once: the latest
    version is pinned back, not opened a second time (~7 ms). Past the latest it stays 400."""
    real = Datapool._open
    opened: list[int | None] = []
    monkeypatch.setattr(Datapool, "_open", lambda self, version=None: opened.append(version) or real(self, version))
    pinned = long_client.get("/lightly/api/pools/p/tags/initial-tag", params={"version": 5, "limit": 2}).json()
    assert (pinned["pool_version"], pinned["latest_version"], pinned["total"]) == (5, LATEST, 5)
    assert opened == [None]
    assert long_client.get("/lightly/api/pools/p/tags/t003", params={"version": LATEST + 1}).status_code == 400
