"""An object store has no folders: a bucket prefix with no objects yet is an empty folder (the run waits, or finds
nothing new), as an empty local folder is; it failed with "does not exist or is not a folder". A bucket that
does not exist, or a URI naming a file, still fails the first task at once with the reason."""

from __future__ import annotations

import json

import pytest

from lightly_airflow.pipeline import ParamError, check_uri_param


@pytest.mark.parametrize("store", ["s3_bucket", "gcs_bucket"])
def test_an_empty_prefix_is_an_empty_folder_and_a_missing_bucket_is_named(store, request, caplog) -> None:
    from lightly_airflow.storage import filesystem

    bucket = request.getfixturevalue(store)
    caplog.set_level("INFO", logger="lightly_airflow.pipeline")
    check_uri_param("datasource_uri", f"{bucket.uri}/nonexistent-prefix", bucket.credentials, must_exist=True)
    assert "holds no objects yet: an empty folder" in caplog.text
    check_uri_param("datasource_uri", bucket.uri, bucket.credentials, must_exist=True)  # the empty bucket itself

    fs, path = filesystem(f"{bucket.uri}/images/a.jpg", bucket.credentials)
    fs.pipe_file(path, b"jpeg")
    check_uri_param("datasource_uri", f"{bucket.uri}/images", bucket.credentials, must_exist=True)
    with pytest.raises(ParamError, match=r"Parameter 'datasource_uri': .*images/a.jpg' is a file, not a folder"):
        check_uri_param("datasource_uri", f"{bucket.uri}/images/a.jpg", bucket.credentials, must_exist=True)

    missing = f"{bucket.uri}-missing/images"
    with pytest.raises(ParamError) as err:
        check_uri_param("datasource_uri", missing, bucket.credentials, must_exist=True)
    message = str(err.value)
    assert message.startswith(f"Parameter 'datasource_uri': {missing!r} cannot be listed: its bucket (or container) "
                              "does not exist"), message
    assert "Fix: create the bucket" in message


def test_a_run_on_an_empty_s3_prefix_finds_nothing_new_and_skips(s3_bucket, tmp_path, monkeypatch) -> None:
    """The first task of a run on an empty prefix: nothing new, the run skips (it failed the run before)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from lightly_airflow.sensors import NewFilesSensor

    creds = s3_bucket.credentials
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY_S3", json.dumps({
        "conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
        "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region}}))
    selection = {"n_samples": 2, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}

    def sensor(uri: str) -> NewFilesSensor:
        return NewFilesSensor(task_id="wait_for_new_files", datasource_uri=uri, datasource_conn_id="empty_s3",
                              datapool_uri=(tmp_path / "pool").as_uri(), selection_config=selection, wait=False)

    with pytest.raises(AirflowSkipException, match="No new files"):
        sensor(f"{s3_bucket.uri}/nonexistent-prefix").execute({})
    with pytest.raises(AirflowFailException, match=r"cannot be listed: its bucket \(or container\) does not exist"):
        sensor(f"{s3_bucket.uri}-missing/images").execute({})
