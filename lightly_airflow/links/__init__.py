"""Operator extra links of lightly_airflow."""

from lightly_airflow.links.report import ReportLink

__all__ = ["ReportLink"]
