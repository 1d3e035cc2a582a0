"""Airflow sensors of lightly_airflow."""

from lightly_airflow.sensors.new_files import NewFilesCheckError, NewFilesSensor

__all__ = ["NewFilesCheckError", "NewFilesSensor"]
