"""A store reached with no credentials at all (no connection, none in the workers' environment) fails at once, naming
the URI, what is missing and the fix, on moto with real requests: botocore's NoCredentialsError said only "Unable to
locate credentials". (Azure's counterpart, a URI naming no account: tests/hooks/test_azure_accounts.py.)"""

from __future__ import annotations

import pytest

from lightly_airflow.datasource import list_table


def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """A worker with no AWS credentials anywhere (keys, profile files, instance metadata), reaching ``endpoint``;
    s3fs' instance cache is the test's own (an instance made with other credentials is reused otherwise, and one made
    without any served later tests of the session: a triggerer test read "no AWS credentials" from its bucket)."""
    import s3fs

    monkeypatch.setattr(s3fs.S3FileSystem, "_cache", {})
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)


@pytest.mark.emulator
def test_no_aws_credentials_anywhere_is_named_with_the_fix(s3_bucket, monkeypatch) -> None:  # noqa: ANN001
    """The listing raised NoCredentialsError("Unable to locate credentials") as it was; now a PermissionError naming
    the URI, that no credentials were found and the ways to give them."""
    no_aws_credentials(monkeypatch, s3_bucket.credentials.endpoint_url)
    with pytest.raises(PermissionError) as caught:
        list_table(f"{s3_bucket.uri}/ds")
    assert str(caught.value).startswith(
        f"{s3_bucket.uri}/ds cannot be listed: no AWS credentials were found (no connection is given, and the workers' "
        "environment has none) (Unable to locate credentials): Unable to locate credentials. Fix: give it an 'aws' "
        "connection, or the workers credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role)")
