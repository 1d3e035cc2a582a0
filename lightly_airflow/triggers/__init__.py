"""Airflow triggers of lightly_airflow (run in the triggerer; importable from the installed package)."""

from lightly_airflow.triggers.new_files import NewFilesTrigger

__all__ = ["NewFilesTrigger"]
