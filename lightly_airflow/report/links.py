"""Links a run's report shows at its top: the datapool's pages in the UI plugin and the Airflow run.

The report lives at ``<datapool>/_reports/<run slug>/index.html``; the plugin serves it at
``/lightly/pools/<pool>/reports/<run slug>/index.html``, so ``../../`` is the datapool's pages there. Opened from
a downloaded folder, only ``problems.parquet`` resolves (the others need the Airflow UI).
"""

from __future__ import annotations

from urllib.parse import quote


def report_links(dag_id: str | None, run_id: str, tag: str | None) -> dict[str, str]:
    """``label -> URL`` for the report's header (relative to the report folder, or absolute Airflow paths)."""
    links = {"datapool (versions & tags)": "../../"}
    if tag:
        q = quote(tag, safe="")
        links["this run's samples"] = f"../../samples?tag={q}"
        links["map of this run's tag"] = f"../../map?tag={q}&color=tag:{q}"
    links["all samples of the run"] = f"../../samples?run={quote(run_id, safe='')}"
    if dag_id:
        links["Airflow run"] = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return links
