"""Airflow's own auth checks guard every route of the plugin (no overrides here)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lightly_airflow.plugins import app as plugin_app
from lightly_airflow.staging import run_slug

from .conftest import DAG_ID, RUN_1


def _urls() -> list[str]:
    run = quote(RUN_1, safe="")
    return [
        "/lightly/", "/lightly/pools/main", "/lightly/pools/main/tags/initial-tag",
        f"/lightly/pools/main/reports/{run_slug(RUN_1)}/index.html", f"/lightly/pools/main/reports/{run_slug(RUN_1)}/",
        f"/lightly/runs/{DAG_ID}/{run}", "/lightly/api/pools", "/lightly/api/pools/main",
        "/lightly/api/pools/main/tags/initial-tag", f"/lightly/api/runs/{DAG_ID}/{run}",
        # the curation routes: pages, pictures, downloads, JSON, the plugin's scripts
        "/lightly/pools/main/samples", f"/lightly/pools/main/samples/{SID}", f"/lightly/pools/main/samples/{SID}/image",
        f"/lightly/pools/main/thumbnails/{SID}", "/lightly/pools/main/map", "/lightly/pools/main/compare",
        "/lightly/pools/main/export?format=csv", "/lightly/pools/main/export?format=coco&tag=initial-tag",
        "/lightly/api/pools/main/samples", f"/lightly/api/pools/main/samples/{SID}", "/lightly/api/pools/main/map",
        "/lightly/api/pools/main/facets", "/lightly/api/pools/main/compare?tag=a&tag=b", "/lightly/static/map.js",
    ]


SID = "0123456789abcdef0123456789abcdef"
POSTS = ["/lightly/pools/main/tags", "/lightly/api/pools/main/tags"]


@pytest.fixture
def guarded(configured) -> TestClient:
    from airflow.api_fastapi.app import create_auth_manager

    create_auth_manager()  # the API server does this at start; a bad token is then checked for real
    root = FastAPI()
    root.mount("/lightly", plugin_app.create_app())
    return TestClient(root, follow_redirects=False)


@pytest.mark.parametrize("url", _urls())
def test_no_credentials_is_401_and_a_bad_token_403(guarded, url):
    r = guarded.get(url)
    assert r.status_code == 401, (url, r.status_code)
    assert "report" not in r.text.lower() and "digits/" not in r.text
    forged = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"
    assert guarded.get(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    guarded.cookies.set("_token", "not-a-jwt")
    assert guarded.get(url).status_code == 403


@pytest.mark.parametrize("url", POSTS)
def test_making_a_tag_needs_credentials(guarded, configured, url):
    from lightly_airflow.datapool import Datapool

    before = Datapool(configured.uri).version()
    r = guarded.post(url, data={"name": "x", "in.status": "ok"})
    assert r.status_code == 401, r.text
    forged = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"
    assert guarded.post(url, data={"name": "x"}, headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    assert Datapool(configured.uri).version() == before


def test_paths_that_match_no_route_leak_nothing(guarded):
    r = guarded.get("/lightly/pools/main/reports/..%2F..%2Fsecret/x.png")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_there_are_no_public_api_docs(guarded):
    for url in ("/lightly/docs", "/lightly/redoc", "/lightly/openapi.json"):
        assert guarded.get(url).status_code in (401, 404)
    app = plugin_app.create_app()
    assert app.docs_url is None and app.redoc_url is None and app.openapi_url is None


def test_every_route_depends_on_airflow_auth():
    app = plugin_app.create_app()
    routes = [r for r in app.routes if getattr(r, "dependant", None) is not None]
    assert len(routes) >= 10
    for route in routes:
        calls = {d.call for d in route.dependant.dependencies}
        assert plugin_app.AUTHENTICATED in calls, route.path
        if "/runs/" in route.path:
            assert plugin_app.CAN_READ_RUNS in calls, route.path
        if "POST" in getattr(route, "methods", set()):
            assert plugin_app.CAN_TAG in calls, route.path
