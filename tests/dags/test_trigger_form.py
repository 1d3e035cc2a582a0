"""The trigger form as an Airflow user meets it: every param titled and described, a URI typo refused by the form
(and by a run's conf) naming the param, and the first task checking the tag before it waits."""

from __future__ import annotations

import copy

import pytest
from test_dag_import import _load_dag

URI_PARAMS = ("datasource_uri", "datapool_uri", "lightly_uri")


def _validate(dagbag, **conf):
    """What Airflow does with a run's conf (the form's, ``airflow dags trigger -c``, the API) before the run exists."""
    params = copy.deepcopy(dagbag.dags["lightly_datapool"].params)
    params.update(conf)
    return params.validate()


def test_every_param_has_a_title_a_description_and_a_type(dagbag) -> None:
    params = dagbag.dags["lightly_datapool"].params
    for name in params:
        schema = params.get_param(name).schema
        assert schema.get("title") and params.get_param(name).description and schema.get("type"), name


@pytest.mark.parametrize("uri", ["s3//bucket/pool", "file:/data/pool", "gs:/bucket/images", "data/pool", " s3://b/p"])
def test_a_uri_typo_is_refused_by_the_form_naming_the_param(dagbag, uri: str) -> None:
    """Before, "s3//bucket/pool" or "file:/data/pool" passed every check as a relative local path: the run
    committed its datapool into the worker's working directory."""
    from airflow.sdk.exceptions import ParamValidationError

    for name in URI_PARAMS:
        with pytest.raises(ParamValidationError, match=rf"{name}.*does not match"):
            _validate(dagbag, **{name: uri})


def test_every_store_and_absolute_paths_pass_the_form(dagbag) -> None:
    for uri in ("file:///data/images", "s3://bucket/images", "gs://bucket", "az://container/p", "abfs://c@a/p",
                "/data/images"):
        assert _validate(dagbag, datasource_uri=uri, datapool_uri=uri, lightly_uri=uri)["datapool_uri"] == uri
    assert _validate(dagbag, lightly_uri=None)["lightly_uri"] is None
    assert _validate(dagbag, lightly_uri="")["lightly_uri"] == ""  # (the first task reads it as unset)


def test_a_uri_variable_with_a_typo_stops_the_dag_from_loading_naming_it() -> None:
    """Airflow's own message for an invalid default of a scheduled DAG names neither the param nor the variable."""
    proc = _load_dag({"LIGHTLY_DATAPOOL_URI": "s3//bucket/pool"})
    assert proc.returncode != 0 and "LIGHTLY_DATAPOOL_URI='s3//bucket/pool' is invalid" in proc.stderr, proc.stderr[-800:]


def test_the_first_task_checks_the_forms_tag_before_it_waits(dagbag) -> None:
    assert dagbag.dags["lightly_datapool"].get_task("wait_for_new_files").tag_name == "{{ params.tag_name }}"
