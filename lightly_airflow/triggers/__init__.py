"""Airflow triggers of lightly_airflow (run in the triggerer; importable from the installed package)."""

from lightly_airflow.triggers.new_files import NewFilesTrigger
from lightly_airflow.triggers.new_files_event import NewFilesEventTrigger

__all__ = ["NewFilesEventTrigger", "NewFilesTrigger"]
