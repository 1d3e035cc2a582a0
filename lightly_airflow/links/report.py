"""The "Curation report" button of the select task: opens the UI plugin's page for the task's DAG run."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: The plugin's run route (``lightly_airflow.plugins.plugin.URL_PREFIX`` + ``/runs/``); kept here so the link
#: class imports nothing of the plugin on workers.
RUNS_PATH = "/lightly/runs"


def _base_url() -> str:
    """``[api] base_url`` without its trailing slash; empty (a path relative to the UI's host) when unset."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.configuration import conf
    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def report_url(dag_id: str, run_id: str, base_url: str | None = None) -> str:
    """The plugin URL of a DAG run's curation report.

    :param dag_id: the DAG id.
    :param run_id: the run id (``+`` and ``:`` are percent-encoded).
    :param base_url: the API server's URL; default ``[api] base_url``.
    """
    base = _base_url() if base_url is None else base_url.rstrip("/")
    return f"{base}{RUNS_PATH}/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


class ReportLink(BaseOperatorLink):
    """Extra link "Curation report": the run's selection report in the Lightly UI plugin.

    Built from the task instance key only (no XCom, no database): the plugin finds the run's datapool.
    """

    name = "Curation report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return report_url(ti_key.dag_id, ti_key.run_id)
