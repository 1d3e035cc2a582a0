"""The one base class that owns connection handling for every lightly operator.

Operators stay tiny: they declare their templated arguments and call one core function; this base turns
Airflow connection ids into :class:`~lightly_airflow.storage.StorageCredentials` for the core (through
:mod:`lightly_airflow.hooks.storage`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from lightly_airflow.hooks.storage import credentials_for
from lightly_airflow.storage import StorageCredentials

__all__ = ["LightlyBaseOperator", "credentials_for"]


class LightlyBaseOperator(BaseOperator):
    """Base of the lightly operators: the datapool and the connections used to reach each store.

    :param datapool_uri: where the datapool table lives (its ``_staging/`` folder holds the run's files).
    :param datasource_conn_id: connection for the datasource bucket (None: ambient credentials).
    :param datapool_conn_id: connection for the datapool's store (None: ambient credentials).
    :param lightly_conn_id: connection for the store holding ``.lightly/`` (defaults to ``datasource_conn_id``).
    """

    template_fields: Sequence[str] = ("datapool_uri", "datasource_conn_id", "datapool_conn_id", "lightly_conn_id")
    ui_color = "#d7f0e8"

    def __init__(
        self,
        *,
        datapool_uri: str,
        datasource_conn_id: str | None = None,
        datapool_conn_id: str | None = None,
        lightly_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.datapool_uri = datapool_uri
        self.datasource_conn_id = datasource_conn_id
        self.datapool_conn_id = datapool_conn_id
        self.lightly_conn_id = lightly_conn_id

    @property
    def datasource_credentials(self) -> StorageCredentials | None:
        return credentials_for(self.datasource_conn_id)

    @property
    def datapool_credentials(self) -> StorageCredentials | None:
        return credentials_for(self.datapool_conn_id)

    @property
    def lightly_credentials(self) -> StorageCredentials | None:
        return credentials_for(self.lightly_conn_id or self.datasource_conn_id)
