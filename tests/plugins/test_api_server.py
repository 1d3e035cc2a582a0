"""The plugin inside a real ``airflow api-server`` with SimpleAuthManager: a token opens the pages, none is 401."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from api_server import api_server

from lightly_airflow.staging import run_slug

from .conftest import DAG_ID, RUN_1, PoolFixture

pytestmark = pytest.mark.slow



def _get(url: str, token: str | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=20) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace"), dict(err.headers)


@pytest.fixture(scope="module")
def server(pool_fixture: PoolFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("airflow-home")
    with api_server(home, user="viewer", password="viewer-pw", role="viewer",
                    datapools={"main": {"uri": pool_fixture.uri}}, timeout=60) as base:
        yield base


def _token(base: str) -> str:
    req = urllib.request.Request(
        f"{base}/auth/token", data=json.dumps({"username": "viewer", "password": "viewer-pw"}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())["access_token"]


def test_plugin_pages_through_the_api_server(server):
    token = _token(server)
    assert _get(f"{server}/lightly/pools/main")[0] == 401
    assert _get(f"{server}/lightly/pools/main", "forged.token.value")[0] == 403

    status, body, _ = _get(f"{server}/lightly/pools/main", token)
    assert status == 200 and "batch-2" in body and run_slug(RUN_1) in body
    status, body, headers = _get(f"{server}/lightly/pools/main/reports/{run_slug(RUN_1)}/index.html", token)
    assert status == 200 and headers["content-type"].startswith("text/html")
    status, _, headers = _get(f"{server}/lightly/runs/{DAG_ID}/{quote(RUN_1, safe='')}", token)
    assert status == 303 and headers["location"] == f"/lightly/pools/main/reports/{run_slug(RUN_1)}/index.html"

    status, body, _ = _get(f"{server}/api/v2/plugins", token)
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "lightly")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/lightly"]
    assert {v["destination"] for v in plugin["external_views"]} == {"nav", "dag_run"}
