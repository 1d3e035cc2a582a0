"""The Airflow UI plugin: the datapool pages at ``/lightly``, a "Datapools" nav entry and a DAG-run tab."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from lightly_airflow.plugins.app import app
from lightly_airflow.plugins.html import URL_PREFIX

#: The DAG-run tab; Airflow fills in the (URL-encoded) ids.
RUN_TAB_HREF = f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}"


class LightlyPlugin(AirflowPlugin):
    """Shows the configured datapools (``[lightly] datapools``) and each run's curation report in the Airflow UI."""

    name = "lightly"
    fastapi_apps: list[dict[str, Any]] = [{"app": app, "url_prefix": URL_PREFIX, "name": "Lightly datapools"}]
    # Lists, not tuples: Airflow's plugin manager removes rejected views from them in place.
    external_views: list[dict[str, Any]] = [
        {
            "name": "Datapools",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "lightly-datapools",
        },
        {
            "name": "Curation report",
            "href": RUN_TAB_HREF,
            "destination": "dag_run",
            "url_route": "lightly-curation-report",
        },
    ]
