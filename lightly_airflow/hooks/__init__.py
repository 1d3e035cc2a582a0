"""Airflow connections -> the core's :class:`~lightly_airflow.storage.StorageCredentials`, through the
providers' own hooks (shared by the operators, the sensor, the trigger and the UI plugin)."""

from lightly_airflow.hooks.storage import credentials_for, query_credentials

__all__ = ["credentials_for", "query_credentials"]
