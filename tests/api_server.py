"""A real ``airflow api-server`` with SimpleAuthManager for the plugin's end-to-end and browser tests."""

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
from contextlib import contextmanager
from pathlib import Path

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_server(home: Path, *, user: str, password: str, role: str, datapools: dict[str, dict[str, str]],
               timeout: float = 90) -> Iterator[str]:
    """Migrate a fresh SQLite DB under ``home``, start the api-server on a free loopback port, yield its base URL
    once ``/api/v2/version`` answers, and stop it (SIGTERM, then SIGKILL) afterwards."""
    (home / "dags").mkdir(parents=True, exist_ok=True)
    (home / "passwords.json").write_text(json.dumps({user: password}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:{role}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "LIGHTLY_DATAPOOLS": json.dumps(datapools),
    }
    env.pop("AIRFLOW__LIGHTLY__DATAPOOLS", None)
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)
    port = free_port()
    log_path = home / "api-server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError("api-server exited:\n" + log_path.read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{base}/api/v2/version", timeout=5):
                    break
            except urllib.error.HTTPError:  # 401 and the like: it answers
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"api-server not ready in {timeout:.0f} s:\n" + log_path.read_text()[-3000:])
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
