"""The per-run selection report: static ``index.html`` + PNG plots showing what a run selected and why.

``write_report(rows, out_uri=..., summary=..., config=..., preselected=...)`` is called at the end of the
select step; ``lightly-airflow report`` renders one from a saved rows Parquet file. Never imports Airflow.
"""

from lightly_airflow.report.writer import INDEX, write_report

__all__ = ["INDEX", "write_report"]
