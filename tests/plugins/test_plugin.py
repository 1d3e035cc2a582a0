"""Airflow discovers the plugin through the provider and accepts its apps and views."""

from __future__ import annotations

from airflow.api_fastapi.core_api.datamodels.plugins import (
    ExternalViewResponse,
    FastAPIAppResponse,
)
from airflow.plugins_manager import AirflowPlugin

from lightly_airflow.plugins.data import REPORTS_DIR
from lightly_airflow.plugins.plugin import LightlyPlugin
from lightly_airflow.provider import get_provider_info

RESERVED = ("/api/v2", "/ui", "/execution", "/auth", "/pluginsv2")


def test_plugin_attributes():
    from airflow._shared.plugins_manager.plugins_manager import is_valid_plugin

    assert issubclass(LightlyPlugin, AirflowPlugin) and is_valid_plugin(LightlyPlugin)
    (entry,) = LightlyPlugin.fastapi_apps
    assert entry["url_prefix"] == "/lightly" and not entry["url_prefix"].startswith(RESERVED)
    assert entry["app"].openapi_url is None
    FastAPIAppResponse.model_validate({**entry, "app": "lightly_airflow.plugins.app:app"})
    views = {v["destination"]: ExternalViewResponse.model_validate(v) for v in LightlyPlugin.external_views}
    assert views["nav"].name == "Datapools" and views["nav"].href == "/lightly/"
    tab = views["dag_run"]
    assert tab.name == "Curation report" and tab.href == "/lightly/runs/{DAG_ID}/{RUN_ID}"
    assert all(v.url_route for v in views.values())  # the UI shows tabs only for views with a url_route


def test_provider_info_lists_plugin_link_and_option():
    info = get_provider_info()
    # The plugin loads through its entry point; listing it here too would register it twice.
    assert "plugins" not in info
    assert info["extra-links"] == ["lightly_airflow.links.ReportLink"]
    option = info["config"]["lightly"]["options"]["datapools"]
    assert option["type"] == "string" and option["default"] == ""


def test_airflow_loads_the_plugin_with_default_settings():
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert [p for p in plugins if isinstance(p, LightlyPlugin) or p is LightlyPlugin] and not errors


def test_report_folder_matches_the_pipeline():
    from lightly_airflow import pipeline

    assert REPORTS_DIR == pipeline.REPORTS_DIR
