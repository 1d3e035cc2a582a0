"""Provider metadata that Airflow discovers through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from lightly_airflow import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow: its UI plugin, extra links and the ``[lightly]`` config section."""
    return {
        "package-name": "lightly-airflow",
        "name": "Lightly Airflow",
        "description": "Data curation for image datasets: grow a versioned, curated datapool from your buckets.",
        "versions": [__version__],
        "extra-links": ["lightly_airflow.links.ReportLink"],
        # Every module with a trigger (``airflow providers triggers``): the sensor's, the asset watcher's and the
        # SQS queue watcher's.
        "triggers": [{"integration-name": "Lightly", "python-modules": [
            "lightly_airflow.triggers.new_files", "lightly_airflow.triggers.new_files_event",
            "lightly_airflow.triggers.s3_notifications"]}],
        "config": {
            "lightly": {
                "description": "Defaults of the lightly_airflow operators and sensors.",
                "options": {
                    "default_deferrable": {
                        "description": "Whether the lightly sensors and pod operators defer by default.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "True",
                    },
                    "worker_image": {
                        "description": "Container image of the embedding pods (docker/worker/Dockerfile). Empty: "
                        "the LIGHTLY_WORKER_IMAGE environment variable, else lightly-airflow-worker:<version>.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "registry.example.com/lightly-airflow-worker:0.1.0",
                        "default": "",
                    },
                    "datapools": {
                        "description": "The datapools the Airflow UI plugin shows (Browse > Datapools, the DAG-run "
                        "tab 'Curation report'): a JSON object name -> {\"uri\": ..., \"conn_id\": ...}. Empty: the "
                        "LIGHTLY_DATAPOOLS environment variable (same JSON). See docs/ui.md.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": '{"main": {"uri": "s3://bucket/datapool", "conn_id": "aws_default"}}',
                        "default": "",
                    },
                },
            }
        },
    }
