"""The plugin inside a real ``airflow api-server`` with SimpleAuthManager: a token opens the pages, none is 401."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from lightly_airflow.staging import run_slug

from .conftest import DAG_ID, RUN_1, PoolFixture

pytestmark = pytest.mark.slow
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    (home / "dags").mkdir()
    (home / "passwords.json").write_text(json.dumps({"viewer": "viewer-pw"}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "LIGHTLY_DATAPOOLS": json.dumps({"main": {"uri": pool_fixture.uri}}),
    }
    env.pop("AIRFLOW__LIGHTLY__DATAPOOLS", None)
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = open(home / "api-server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError("api-server exited:\n" + (home / "api-server.log").read_text()[-3000:])
            try:
                if _get(f"{base}/api/v2/version")[0] in (200, 401):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("api-server not ready in 60 s:\n" + (home / "api-server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


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
