"""lightly_airflow: curate image datasets into a versioned datapool, natively in Apache Airflow.

The package has a pure core (``config``, ``datasource``, ``embedding``, ``metadata``, ``predictions``,
``selection``, ``datapool``, ``report``) that never imports Airflow, and a thin Airflow layer
(``operators``, ``sensors``, ``triggers``, ``links``, ``plugins``) over it.
"""

__version__ = "0.1.0"
