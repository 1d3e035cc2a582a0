"""The Airflow UI plugin of lightly_airflow: datapool pages and run reports (see docs/ui.md).

Importing this package imports nothing of Airflow; :mod:`lightly_airflow.plugins.plugin` holds the
``AirflowPlugin`` and :mod:`lightly_airflow.plugins.app` the FastAPI app.
"""
