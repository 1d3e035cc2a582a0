"""The first task's check of an Azure datasource URI (``check_uri_param``) on Azurite: a container name Azure refuses,
and no storage account anywhere, are parameter errors naming the URI, Azure's rules or the missing account, and the
fix (adlfs raised Azure's whole XML answer, and "Must provide either a connection_string or account_name")."""

from __future__ import annotations

import pytest

from lightly_airflow.pipeline import ParamError, check_uri_param

ENV = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME")


@pytest.mark.emulator
@pytest.mark.parametrize(("container", "code"), [("Bad_Name", "InvalidResourceName"), ("ab", "OutOfRangeInput")])
def test_a_container_name_azure_refuses_is_a_parameter_error(azure_container, container: str, code: str) -> None:  # noqa: ANN001
    """HttpResponseError with Azure's XML went through the check raw; now the listing's message (one owner:
    ``datasource.listing``), as the datasource_uri parameter's error. A valid name of no container stays what it was."""
    with pytest.raises(ParamError) as caught:
        check_uri_param("datasource_uri", f"az://{container}/ds", azure_container.credentials, must_exist=True)
    message = str(caught.value)
    assert message.startswith(f"Parameter 'datasource_uri': az://{container}/ds cannot be listed: {container!r} is not a "
                              f"valid Azure container name (Azure's {code}). Fix: name a container of 3 to 63 ")
    assert "<?xml" not in message and "ErrorCode" not in message


def test_no_azure_account_anywhere_is_a_parameter_error(monkeypatch) -> None:  # noqa: ANN001
    """Ambient credentials (no connection) and no account in the URI or the environment: a ParamError naming the
    parameter and the fix, where the first task raised adlfs' ValueError."""
    for variable in ENV:
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ParamError, match=r"^Parameter 'datasource_uri': az://cont/ds names no storage account.* Fix: "
                                         r"give it a wasb connection"):
        check_uri_param("datasource_uri", "az://cont/ds", None, must_exist=True)


@pytest.mark.emulator
def test_a_missing_container_is_a_parameter_error(azure_container) -> None:  # noqa: ANN001
    """adlfs lists a container that does not exist as empty: the check passed it as "an empty folder" (S3 and GCS
    answered that the bucket does not exist). Now the same error as theirs; an empty prefix of an existing container
    is still an empty folder."""
    with pytest.raises(ParamError, match=r"'az://nosuchcontainer/ds' cannot be listed: its bucket \(or container\) "
                                         r"does not exist \('nosuchcontainer' not found\)\. Fix: create the bucket"):
        check_uri_param("datasource_uri", "az://nosuchcontainer/ds", azure_container.credentials, must_exist=True)
    check_uri_param("datasource_uri", f"{azure_container.uri}/ds", azure_container.credentials, must_exist=True)


@pytest.mark.emulator
def test_no_aws_credentials_anywhere_is_a_parameter_error(s3_bucket, monkeypatch) -> None:  # noqa: ANN001
    """No connection and no AWS credentials on the worker: botocore's NoCredentialsError ("Unable to locate
    credentials": no URI, no fix) went through the first task's check raw."""
    from test_storage_no_credentials import no_aws_credentials

    no_aws_credentials(monkeypatch, s3_bucket.credentials.endpoint_url)
    with pytest.raises(ParamError, match=rf"^Parameter 'datasource_uri': '{s3_bucket.uri}/ds' cannot be listed: no AWS "
                                         r"credentials were found .*Fix: give it an 'aws' connection"):
        check_uri_param("datasource_uri", f"{s3_bucket.uri}/ds", None, must_exist=True)
