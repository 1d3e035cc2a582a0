"""The UI plugin's app mounted at ``/lightly`` as Airflow mounts it, with Airflow's auth checks overridden, for
TestClient tests of any datapool."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def ui_client(
    monkeypatch: pytest.MonkeyPatch | None = None, datapools: dict[str, dict[str, Any]] | None = None,
) -> Iterator[Any]:
    """A ``TestClient`` of the plugin app; ``datapools`` (name -> spec) becomes ``LIGHTLY_DATAPOOLS`` through
    ``monkeypatch`` when given (else the environment is as the caller set it)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lightly_airflow.plugins import app as plugin_app

    if datapools is not None and monkeypatch is not None:
        monkeypatch.delenv("AIRFLOW__LIGHTLY__DATAPOOLS", raising=False)
        monkeypatch.setenv("LIGHTLY_DATAPOOLS", json.dumps(datapools))
    sub = plugin_app.create_app()
    for dep in (plugin_app.AUTHENTICATED, plugin_app.CAN_READ_RUNS, plugin_app.CAN_TAG, plugin_app.CURRENT_USER):
        sub.dependency_overrides[dep] = lambda: None
    root = FastAPI()
    root.mount("/lightly", sub)
    with TestClient(root, follow_redirects=False) as client:
        yield client
