"""Airflow sensors of lightly_airflow."""

from lightly_airflow.sensors.new_files import NewFilesSensor

__all__ = ["NewFilesSensor"]
