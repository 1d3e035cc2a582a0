"""Airflow connections -> :class:`~lightly_airflow.storage.StorageCredentials`.

Every task, sensor, trigger and the UI plugin resolve a connection id here, at run time (never at DAG parse
time), so rotated keys are picked up and nothing secret is serialised.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from lightly_airflow.datasource.query import NewFilesQuery, QueryCredentials
from lightly_airflow.storage import StorageCredentials, credentials_from_connection


def credentials_for(conn_id: str | None) -> StorageCredentials | None:
    """Credentials of an Airflow connection (aws, google_cloud_platform, wasb); ``None`` for ambient ones.

    :param conn_id: the Airflow connection id, or ``None``/empty for the environment's credentials.
    """
    if not conn_id:
        return None
    conn = BaseHook.get_connection(conn_id)
    return credentials_from_connection(
        conn.conn_type or "",
        login=conn.login,
        password=conn.password,
        host=conn.host,
        extra=conn.extra_dejson,
    )


def query_credentials(query: NewFilesQuery) -> QueryCredentials:
    """The credentials of the stores a :class:`NewFilesQuery` reads (resolved now, from its connection ids)."""
    datasource = credentials_for(query.datasource_conn_id)
    lightly = credentials_for(query.lightly_conn_id) if query.lightly_conn_id else datasource
    return QueryCredentials(datasource=datasource, datapool=credentials_for(query.datapool_conn_id), lightly=lightly)
