"""The plugin's pages and JSON against a real datapool and real reports (Airflow's auth checks overridden)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import quote

import pytest

from lightly_airflow import columns as C
from lightly_airflow.staging import run_slug

from .conftest import DAG_ID, EVIL_KEY, RUN_1, RUN_2, RUN_DRY, RUN_REVIEW


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a["src"])


def links(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


def report_url(run_id: str, name: str = "index.html") -> str:
    return f"/lightly/pools/main/reports/{run_slug(run_id)}/{name}"


def test_index_lists_the_configured_pools(client, configured):
    r = client.get("/lightly/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert links(r.text).hrefs == ["/lightly/pools/main", "/lightly/pools/empty"]
    assert r.headers["content-security-policy"].startswith("default-src 'none'")  # no script runs on our pages
    pools = client.get("/lightly/api/pools").json()
    assert (pools[0]["name"], pools[0]["uri"], pools[0]["conn_id"]) == ("main", configured.uri, None)


def test_overview_shows_versions_tags_counts_and_report_links(client, configured):
    data = client.get("/lightly/api/pools/main").json()
    assert data["exists"] and data["version"] == 2
    assert [h["version"] for h in data["history"]] == [2, 1, 0]
    by_run = {h["run_id"]: h for h in data["history"]}
    assert by_run[RUN_1]["report"] == run_slug(RUN_1)
    assert by_run[RUN_2]["report"] is None  # committed without a report
    assert by_run[RUN_1]["selected"] == len(configured.picks_1) and by_run[RUN_1]["rows"] == configured.n_1
    assert by_run[RUN_2]["tag"] == "batch-2" and by_run[RUN_2]["counts"]["processed"] == configured.n_2
    tags = {t["name"]: t["count"] for t in data["tags"]}
    assert tags == {C.INITIAL_TAG: len(configured.picks_1) + len(configured.picks_2),
                    "scheduled__2026-01-01T00-00-00-00-00": len(configured.picks_1), "batch-2": len(configured.picks_2)}

    r = client.get("/lightly/pools/main")
    assert r.status_code == 200
    hrefs = links(r.text).hrefs
    assert report_url(RUN_1) in hrefs
    assert not any(run_slug(RUN_2) in h for h in hrefs)
    assert "/lightly/pools/main/tags/batch-2" in hrefs and "/lightly/pools/main/tags/initial-tag" in hrefs
    assert RUN_1 in r.text and "batch-2" in r.text
    assert "/required_actions" in hrefs  # (Airflow's page, for the proposal awaiting review)
    for href in hrefs:  # every link on the page works
        if href.startswith("/lightly/"):
            assert client.get(href).status_code == 200, href


def test_the_overview_lists_the_proposals_awaiting_review_and_no_other_run(client, configured):
    """RUN_REVIEW proposed 1 pick of the pool's version 2 and nobody answered: listed with its report and
    Airflow's Required Actions. A reviewed proposal that was committed (RUN_1) or discarded (RUN_DRY: the
    no-commit record) is not."""
    import json

    from lightly_airflow.pipeline import DRY_RUN_SUMMARY
    from lightly_airflow.review import PROPOSAL_FILE
    from lightly_airflow.staging import reports_dir

    def waiting() -> list[dict]:
        return client.get("/lightly/api/pools/main").json()["awaiting_review"]

    [w] = waiting()
    assert (w["run_id"], w["slug"], w["version"], w["picks"], w["warnings"]) == (RUN_REVIEW, run_slug(RUN_REVIEW), 2, 1, 0)
    r = client.get("/lightly/pools/main")
    assert "Awaiting review (1)" in r.text and "1 picks" in r.text and "version 2" in r.text
    assert report_url(RUN_REVIEW) in links(r.text).hrefs and "/required_actions" in links(r.text).hrefs
    from lightly_airflow.plugins import html as H

    # Behind a base_url prefix Airflow mounts the app at <prefix>/lightly; its own pages are under <prefix>/
    assert H.airflow_link("/airflow/lightly", "/required_actions", "R") == (
        '<a href="/airflow/required_actions" target="_top">R</a>')
    written = []
    try:
        for run, names in ((RUN_1, [PROPOSAL_FILE]), (RUN_DRY, [PROPOSAL_FILE, DRY_RUN_SUMMARY])):
            for name in names:
                path = reports_dir(str(configured.path), run) + "/" + name
                with open(path, "w") as f:
                    json.dump({"run_id": run, "version": 1, "picks": ["a"], "summary": {}}, f)
                written.append(path)
        assert [w["run_id"] for w in waiting()] == [RUN_REVIEW]
    finally:
        import os

        for path in written:
            os.remove(path)


def test_pool_without_commits_says_so(client):
    assert client.get("/lightly/api/pools/empty").json()["exists"] is False
    r = client.get("/lightly/pools/empty")
    assert r.status_code == 200 and "No run has committed" in r.text


def test_tag_samples_are_paged_in_order_and_escaped(client, configured):
    first = client.get("/lightly/api/pools/main/tags/initial-tag", params={"limit": 5}).json()
    assert first["total"] == 11 and first["offset"] == 0 and len(first["samples"]) == 5
    rest = client.get("/lightly/api/pools/main/tags/initial-tag", params={"offset": 5, "limit": 100}).json()
    keys = [s["key"] for s in first["samples"] + rest["samples"]]
    assert sorted(keys) == sorted(configured.picks_1 + configured.picks_2)
    assert {s["run_id"] for s in first["samples"]} == {RUN_1} and rest["samples"][-1]["run_id"] == RUN_2
    assert all(s["status"] == "ok" for s in first["samples"] + rest["samples"])

    tag = client.get("/lightly/api/pools/main/tags/batch-2").json()
    assert [s["key"] for s in sorted(tag["samples"], key=lambda s: s["pick_rank"])] == configured.picks_2
    assert tag["run_id"] == RUN_2

    everything = client.get("/lightly/pools/main/tags/initial-tag")
    assert "<script>" not in everything.text and "&lt;script&gt;alert(&quot;x&quot;)" in everything.text  # escaped
    r = client.get("/lightly/pools/main/tags/initial-tag", params={"limit": 4})
    assert r.status_code == 200
    assert "/lightly/pools/main/tags/initial-tag?version=2&offset=4&limit=4" in links(r.text).hrefs  # (pinned)
    last = client.get("/lightly/pools/main/tags/initial-tag", params={"offset": 8, "limit": 4})
    assert "next" not in last.text and "offset=4&limit=4" in " ".join(links(last.text).hrefs)
    assert EVIL_KEY in keys


@pytest.mark.parametrize("url", [
    "/lightly/pools/main/tags/no-such-tag", "/lightly/api/pools/main/tags/no-such-tag",
    "/lightly/pools/nope", "/lightly/api/pools/nope", "/lightly/api/pools/nope/tags/initial-tag",
])
def test_unknown_pools_and_tags_are_404(client, url):
    r = client.get(url)
    assert r.status_code == 404
    if "/api/" in url:
        assert "detail" in r.json()


@pytest.mark.parametrize(("params", "said"), [
    ({"offset": -1}, "offset must be a whole number from 0 up, got '-1'."),
    ({"limit": 0}, "limit must be a whole number from 1 to 1000, got '0'."),
    ({"limit": 100000}, "limit must be a whole number from 1 to 1000, got '100000'."),
])
def test_bad_paging_is_400_naming_the_parameter(client, params, said):
    r = client.get("/lightly/api/pools/main/tags/initial-tag", params=params)
    assert r.status_code == 400 and r.json() == {"detail": said}


def test_report_files_are_served_with_their_types(client):
    r = client.get(report_url(RUN_1))
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    imgs = links(r.text).imgs
    assert imgs, "the report has plots"
    for src in imgs:
        png = client.get(report_url(RUN_1, src))
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    folder = client.get(f"/lightly/pools/main/reports/{run_slug(RUN_1)}/")
    assert folder.status_code == 303 and folder.headers["location"] == report_url(RUN_1)


@pytest.mark.parametrize("path", [
    "reports/{slug}/..%2F..%2F_delta_log%2F00000000000000000000.json",
    "reports/{slug}/%2e%2e",
    "reports/..%2F_delta_log/00000000000000000000.json",
    "reports/..%2F..%2F..%2Fetc/passwd.html",
    "reports/{slug}/.hidden.html",
    "reports/{slug}/secret.json",  # exists in the folder (written by the test) but is no report file type
    "reports/{slug}/absent.png",  # well-formed, not in the folder listing
    "reports/{slug}/index.html%00.png",
    "reports/..-00000000/index.html",
    "reports/{slug}/%5C..%5Cindex.html",
    "reports/%2Fetc/passwd.png",
])
def test_report_paths_cannot_escape_the_report_folder(client, configured, path):
    folder = configured.path / "_reports" / run_slug(RUN_1)
    (folder / "secret.json").write_text('{"token": "do-not-serve"}')
    (folder / ".hidden.html").write_text("hidden")
    r = client.get("/lightly/pools/main/" + path.format(slug=run_slug(RUN_1)))
    assert r.status_code == 404, (path, r.status_code)
    assert b"do-not-serve" not in r.content and r.content != b"hidden"


def test_run_tab_redirects_to_the_report_of_a_committed_run(client):
    r = client.get(f"/lightly/runs/{DAG_ID}/{quote(RUN_1, safe='')}")
    assert r.status_code == 303 and r.headers["location"] == report_url(RUN_1)
    assert client.get(r.headers["location"]).status_code == 200
    data = client.get(f"/lightly/api/runs/{DAG_ID}/{quote(RUN_1, safe='')}").json()
    assert data["committed"]["datapool"] == "main" and data["committed"]["version"] == 1
    assert data["report_url"] == report_url(RUN_1) and data["reports"] == ["main"]


def test_run_tab_of_a_committed_run_without_report(client):
    r = client.get(f"/lightly/runs/{DAG_ID}/{quote(RUN_2, safe='')}")
    assert r.status_code == 200
    assert "committed version <b>2</b>" in r.text and "no report was found" in r.text


def test_run_tab_of_a_dry_run_links_its_report(client):
    r = client.get(f"/lightly/runs/{DAG_ID}/{quote(RUN_DRY, safe='')}")
    assert r.status_code == 200 and "committed nothing" in r.text and "dry run" in r.text
    assert report_url(RUN_DRY) in links(r.text).hrefs
    data = client.get(f"/lightly/api/runs/{DAG_ID}/{quote(RUN_DRY, safe='')}").json()
    assert data["committed"] is None and data["report_url"] == report_url(RUN_DRY)


def test_run_tab_of_a_proposal_awaiting_review_opens_its_report(client):
    """The Human-in-the-loop task's body links the run tab: the reviewer lands on the proposal's report."""
    r = client.get(f"/lightly/runs/{DAG_ID}/{quote(RUN_REVIEW, safe='')}")
    assert r.status_code == 303 and r.headers["location"] == report_url(RUN_REVIEW)
    data = client.get(f"/lightly/api/runs/{DAG_ID}/{quote(RUN_REVIEW, safe='')}").json()
    assert data["awaiting_review"] is True and data["committed"] is None
    assert client.get(f"/lightly/api/runs/{DAG_ID}/{quote(RUN_DRY, safe='')}").json()["awaiting_review"] is False


def test_run_tab_of_a_skipped_run_or_another_dag(client):
    for dag_id, run_id in ((DAG_ID, "scheduled__2026-02-01T00:00:00+00:00"), ("other_dag", RUN_2)):
        r = client.get(f"/lightly/runs/{dag_id}/{quote(run_id, safe='')}")
        # (it said "skipped", which read as a failure; what is true: nothing committed, no report written yet)
        assert r.status_code == 200 and "committed nothing" in r.text and "no report" in r.text
        assert "skipped" not in r.text.lower() and 'box warn' not in r.text
        assert client.get(f"/lightly/api/runs/{dag_id}/{quote(run_id, safe='')}").json()["report_url"] is None


def test_run_tab_names_an_unreadable_pool_and_still_answers(client, monkeypatch, configured):
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", f'{{"main": {{"uri": "{configured.uri}"}}, "bad": {{"uri": "ftp://x/y"}}}}')
    r = client.get(f"/lightly/runs/{DAG_ID}/{quote(RUN_2, safe='')}")
    assert r.status_code == 200 and "could not be read" in r.text and "bad" in r.text
    assert "committed version <b>2</b>" in r.text


def test_invalid_configuration_is_a_clear_500(client, monkeypatch):
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", '{"../x": {"uri": "/tmp"}}')
    r = client.get("/lightly/")
    assert r.status_code == 500 and "datapool name" in r.text and "LIGHTLY_DATAPOOLS" in r.text
    assert client.get("/lightly/api/pools/main").json()["detail"].startswith("$LIGHTLY_DATAPOOLS")


def test_an_undefined_connection_of_a_pool_is_a_clear_500(client, monkeypatch, configured):
    monkeypatch.setenv("LIGHTLY_DATAPOOLS", '{"s3": {"uri": "s3://pool/p", "conn_id": "no_such_conn"}}')
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    for path in ("/lightly/pools/s3", "/lightly/pools/s3/samples", "/lightly/api/pools/s3"):
        r = client.get(path)
        assert r.status_code == 500, (path, r.status_code)
        text = r.text if "/api/" not in path else r.json()["detail"]
        assert "no_such_conn" in text and "LIGHTLY_DATAPOOLS" in text and "Traceback" not in text


def test_pages_have_no_dangling_internal_links(client):
    seen, todo = set(), ["/lightly/", f"/lightly/runs/{DAG_ID}/{quote(RUN_DRY, safe='')}"]
    stepped = 0  # sample pages opened from a grid (``at=``): every card of every grid and sort links one, and
    while todo:  # each links its neighbours: a sample of them is followed (their walk is tested in test_curation)
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        if "at=" in url:
            stepped += 1
            if stepped > 40:
                continue
        r = client.get(url)
        assert r.status_code in (200, 303), url
        if r.headers["content-type"].startswith("text/html") and "/reports/" not in url:
            todo += [h for h in links(r.text).hrefs if h.startswith("/lightly/")]
    assert any(re.search(r"/tags/batch-2$", u) for u in seen)
