"""Location, symlink and tag problems fail the first task in seconds (issue 14.4-14.6)."""

from __future__ import annotations

import json
import os
import time

import pytest
from datapool.conftest import DIM, MODEL, commit_run, run_rows

from lightly_airflow.datapool import Datapool
from lightly_airflow.datasource.listing import list_table
from lightly_airflow.pipeline import ParamError, check_pool_location, check_run_tag


def test_a_datapool_inside_equal_to_or_around_the_datasource_is_refused(tmp_path) -> None:
    src = tmp_path / "images"
    src.mkdir()
    for pool, words in ((src, "is the datasource itself"), (src / "pool", "inside the datasource"),
                        (tmp_path, "lies inside the datapool")):
        with pytest.raises(ParamError, match=words) as err:
            check_pool_location(str(src), str(pool))
        assert err.value.param == "datapool_uri"
    # A link to the datasource is the datasource.
    os.symlink(src, tmp_path / "alias")
    with pytest.raises(ParamError, match="inside the datasource"):
        check_pool_location(str(tmp_path / "alias"), f"file://{src}/_pool")
    with pytest.raises(ParamError, match="inside the datasource"):
        check_pool_location("s3://bucket/data", "s3://bucket/data/../data/pool")
    # Siblings, other buckets and name prefixes are fine.
    check_pool_location(str(src), str(tmp_path / "images-pool"))
    check_pool_location("s3://bucket/data", "s3://bucket/pool")
    check_pool_location("s3://bucket/data", "s3://other/data/pool")
    check_pool_location("s3://bucket/data", "gs://bucket/data/pool")


def test_symlinks_leaving_a_local_datasource_are_skipped_and_reported(tmp_path, caplog) -> None:
    src, outside = tmp_path / "images", tmp_path / "secret"
    (src / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd.png").write_bytes(b"root:x:0:0")
    (src / "a.png").write_bytes(b"a")
    (src / "sub" / "b.png").write_bytes(b"b")
    os.symlink(outside / "passwd.png", src / "leak.png")           # a file outside
    os.symlink("../secret/passwd.png", src / "relative-leak.png")  # relative, outside
    os.symlink(outside, src / "leaked-folder")                       # a folder outside
    os.symlink(src / "sub", src / "loop")                            # a folder inside (never followed)
    os.symlink(src / "sub" / "b.png", src / "inside-link.png")       # a file inside: listed
    os.symlink(tmp_path / "nothing.png", src / "broken.png")
    skipped: list[tuple[str, str]] = []
    caplog.set_level("WARNING")
    table = list_table(str(src), skipped=skipped)
    assert sorted(table.column("key").to_pylist()) == ["a.png", "inside-link.png", "sub/b.png"]
    reasons = dict(skipped)
    assert set(reasons) == {"leak.png", "relative-leak.png", "leaked-folder", "loop", "broken.png"}
    assert "outside the datasource" in reasons["leak.png"] and "outside" in reasons["relative-leak.png"]
    assert "outside" in reasons["leaked-folder"] and "folder" in reasons["loop"]
    assert "5 entries" in caplog.text and "leak.png" in caplog.text
    etags = dict(zip(table.column("key").to_pylist(), table.column("etag").to_pylist()))
    assert etags["inside-link.png"] == etags["sub/b.png"]  # read through its in-root target


def test_tag_problems_fail_the_first_task(tmp_path, digits) -> None:
    uri = str(tmp_path / "pool")
    assert check_run_tag(uri, None, "manual__1") == "manual__1"  # no pool yet
    pool = Datapool(uri)
    commit_run(pool, run_rows(digits, range(0, 10), picks=[1]), "r1", tag="week-1")
    for tag, words in (("week-1", "already exists"), ("initial-tag", "root tag"), ("../x", "Invalid tag"),
                       ("<b>x</b>", "Invalid tag"), ("a" * 200, "Invalid tag")):
        with pytest.raises(ParamError, match=words) as err:
            check_run_tag(uri, tag, "r2")
        assert err.value.param == "tag_name"
    # The run that owns the tag may retry; a derived tag that collides says how to fix it.
    assert check_run_tag(uri, "week-1", "r1") == "week-1"
    commit_run(pool, run_rows(digits, range(10, 20), picks=[1]), "r3", tag="r4")
    with pytest.raises(ParamError, match="derived from the run id"):
        check_run_tag(uri, None, "r4")


SELECTION = {"n_samples": 1, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
CANARY = "canary-7f3e1d"


@pytest.mark.parametrize("uri", [
    f"s3://AKIAEXAMPLE:{CANARY}@bucket/images",
    f"az://container/images?sv=2024-01-01&sig={CANARY}",
    f"s3://bucket/images?X-Amz-Credential=a&X-Amz-Signature={CANARY}",
    f"https://user:{CANARY}@example.com/images",  # an unsupported scheme: the secret is not echoed either
])
def test_credentials_in_a_uri_are_refused_without_echoing_them(uri, tmp_path) -> None:
    """A credential in a URI would reach every log, XCom, rendered field, manifest, commit and report that
    names the URI: the first task (and the sensor's query) refuse it and never print it (issue 14.6)."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.pipeline import validate_params
    from lightly_airflow.storage import secret_in_uri

    src = tmp_path / "images"
    src.mkdir()
    for param in ("datasource_uri", "datapool_uri", "lightly_uri"):
        uris = {"datasource_uri": str(src), "datapool_uri": str(tmp_path / "pool"), "lightly_uri": None, param: uri}
        with pytest.raises(ParamError) as err:
            validate_params(**uris, selection_config=SELECTION)
        message = str(err.value)
        assert err.value.param == param and CANARY not in message and "***" in message and "connection" in message
        with pytest.raises(ValueError) as query_err:
            NewFilesQuery.build(**uris)
        assert CANARY not in str(query_err.value) and "***" in str(query_err.value)
    # A user part without a password (Azure's container@account) and a plain query are no credentials.
    assert secret_in_uri("abfs://container@account.dfs.core.windows.net/images") is None
    assert secret_in_uri("s3://bucket/images?versionId=3") is None


def test_lightly_files_linking_out_of_the_lightly_folder_are_never_read(tmp_path) -> None:
    """A ``.lightly/`` file that is a symbolic link out of ``.lightly/`` (``/proc/self/environ`` in the issue's
    attack) is refused by name, never read, and its content appears in no message (issue 14.1, 14.5)."""
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.lightly_dir import LightlyDir, LightlyFileError
    from lightly_airflow.pipeline import list_new

    src, outside = tmp_path / "images", tmp_path / "secret.txt"
    (src / ".lightly" / "metadata").mkdir(parents=True)
    (src / "a.png").write_bytes(b"a")
    outside.write_text(f"{CANARY}=1\n../{CANARY}\n")
    os.symlink(outside, src / ".lightly" / "relevant.txt")
    os.symlink(outside, src / ".lightly" / "metadata" / "a.json")
    (src / ".lightly" / "inside.txt").write_text("a.png\n")
    os.symlink(src / ".lightly" / "inside.txt", src / ".lightly" / "alias.txt")  # a link inside: read
    folder = LightlyDir(str(src))
    with pytest.raises(LightlyFileError, match="leaves the .lightly/ folder") as err:
        folder.read_bytes("relevant.txt")
    assert CANARY not in str(err.value)
    got = folder.read_many(["metadata/a.json", "alias.txt", "missing.json"])
    assert isinstance(got["metadata/a.json"], LightlyFileError) and got["alias.txt"] == b"a.png\n"
    assert got["missing.json"] is None
    query = NewFilesQuery.build(datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"),
                                worker_config={"relevant_filenames_file": "relevant.txt"})
    with pytest.raises(ParamError) as run_err:  # the first task fails for good, in seconds
        list_new(query, run_id="r1")
    assert run_err.value.param == "worker_config.relevant_filenames_file"
    assert "relevant.txt" in str(run_err.value) and CANARY not in str(run_err.value)


def test_an_endpoint_url_with_a_password_is_masked_in_the_credentials_printed_form() -> None:
    """A connection's ``endpoint_url`` may carry ``user:password@`` (a proxy, MinIO behind basic auth): the
    credentials' printed form, which logs and errors may show, masks it; the value used stays intact."""
    from lightly_airflow.storage import StorageCredentials

    creds = StorageCredentials(access_key_id="AKIAEXAMPLE", secret_access_key=CANARY,
                               endpoint_url=f"http://minio:{CANARY}@127.0.0.1:9000/?token={CANARY}")
    shown = repr(creds)
    assert CANARY not in shown and CANARY not in str(creds) and CANARY not in f"{creds}"
    assert "http://minio:***@127.0.0.1:9000/?***" in shown and "AKIAEXAMPLE" in shown
    assert creds.endpoint_url is not None and CANARY in creds.endpoint_url
    assert repr(StorageCredentials(endpoint_url="http://127.0.0.1:5000")) == (
        "StorageCredentials(endpoint_url='http://127.0.0.1:5000')")


def _aws_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, bucket) -> str:
    creds = bucket.credentials
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "aws", "login": creds.access_key_id, "password": creds.secret_access_key,
        "extra": {"endpoint_url": creds.endpoint_url, "region_name": creds.region}}))
    return conn_id


def _first_task(**kwargs):
    from airflow.sdk.exceptions import AirflowFailException

    from lightly_airflow.operators.list_files import ListNewFilesOperator

    class _Ti:
        def xcom_push(self, key, value) -> None:
            pass

    op = ListNewFilesOperator(task_id="list_new_files", selection_config=SELECTION, **kwargs)
    started = time.monotonic()
    with pytest.raises(AirflowFailException) as err:
        op.execute({"run_id": "r1", "ti": _Ti(), "dag_run": None})
    assert time.monotonic() - started < 10
    return str(err.value)


def test_a_connection_of_another_cloud_is_named_not_taken_for_a_missing_folder(s3_bucket, tmp_path,
                                                                                  monkeypatch) -> None:
    """An aws connection given for a gs:// datasource (one connection param set for every store) was dropped
    silently: gcsfs went ambient and the first task said "'gs://…' does not exist or is not a folder". Now the
    connection, both stores and the fix are named, for the datasource and the datapool."""
    conn = _aws_connection(monkeypatch, "lake_s3", s3_bucket)
    message = _first_task(datasource_uri="gs://images-bucket/photos", datasource_conn_id=conn,
                          datapool_uri=f"{s3_bucket.uri}/pool", datapool_conn_id=conn)
    assert message.startswith("Parameter 'datasource_uri': gs://images-bucket/photos is on Google Cloud Storage")
    assert "connection 'lake_s3' is for S3 (s3://)" in message and "of type 'google_cloud_platform'" in message
    (tmp_path / "a.jpg").write_bytes(b"")  # a local datasource: the connection is not used for it
    message = _first_task(datasource_uri=str(tmp_path), datasource_conn_id=conn,
                          datapool_uri="az://pool-container/pool", datapool_conn_id=conn)
    assert message.startswith("Parameter 'datapool_uri': az://pool-container/pool is on Azure Blob Storage")
    assert "of type 'wasb'" in message

    from lightly_airflow.hooks.storage import credentials_for
    from lightly_airflow.storage import StorageCredentials, filesystem

    creds = credentials_for(conn)
    assert (creds.store, creds.conn_id) == ("s3", "lake_s3")
    assert StorageCredentials.from_dict(creds.to_dict()) == creds  # what a pod or a child process gets
    with pytest.raises(ValueError, match="is for S3"):  # every other path refuses too (shard tasks, the UI)
        filesystem("gs://images-bucket/photos", creds)
    with pytest.raises(ValueError, match="is for S3"):
        creds.delta_options("az")
    assert filesystem(f"{s3_bucket.uri}/x", creds)[1].endswith("/x") and creds.store_problem("/tmp/x") is None


def test_a_datapool_bucket_that_does_not_exist_fails_the_first_task_naming_it(s3_bucket, digits, tmp_path,
                                                                                monkeypatch) -> None:
    """delta-rs said "OSError: Generic S3 error" (the bucket's name only in a nested XML body), attributed to
    nothing; a pool's table is created by its first commit but its bucket must exist."""
    from lightly_airflow.demo import Batch, add_batch

    source = tmp_path / "images"
    add_batch(source, Batch("few", (0, 2), ()))
    conn = _aws_connection(monkeypatch, "pool_s3", s3_bucket)
    missing = f"{s3_bucket.name}-missing"
    message = _first_task(datasource_uri=str(source), datapool_uri=f"s3://{missing}/pool", datapool_conn_id=conn)
    assert message == (f"Parameter 'datapool_uri': the datapool s3://{missing}/pool cannot be reached: its bucket "
                       "(or container) does not exist (NoSuchBucket). Fix: create the bucket, or correct the URI (a "
                       "datapool's table is created by its first commit; its bucket is not).")


def test_a_missing_container_is_named_and_a_transient_error_is_left_as_it_is(azure_container) -> None:
    import socket
    from dataclasses import replace

    from lightly_airflow.datapool import Datapool, DatapoolError, DatapoolUnreachableError

    missing = Datapool(f"{azure_container.uri}-gone/pool", credentials=azure_container.credentials)
    for call in (missing.exists, missing.version):
        with pytest.raises(DatapoolUnreachableError, match=r"container\) does not exist \(ContainerNotFound\)"):
            call()
    # Nothing listens on port 9 (discard): the endpoint is named at once with the fix (was the store's own
    # "connection refused" after its retries: tests/test_storage_endpoints.py).
    closed = replace(azure_container.credentials, endpoint_url="http://127.0.0.1:9/devstoreaccount1")
    with pytest.raises(DatapoolError, match=r"at the endpoint http://127\.0\.0\.1:9/devstoreaccount1, where nothing "
                                            r"listens on 127\.0\.0\.1:9 \(connection refused\)\. Fix: correct the "
                                            r"endpoint of the wasb connection"):
        Datapool(f"{azure_container.uri}/pool", credentials=closed)
    # An endpoint that answered and is gone now (a restart): the store's own error stays (a retry may pass).
    with socket.create_server(("127.0.0.1", 0)) as server:
        gone = replace(azure_container.credentials,
                       endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}/devstoreaccount1")
        pool = Datapool(f"{azure_container.uri}/pool", credentials=gone)
    with pytest.raises(OSError) as err:
        pool.exists()
    assert not isinstance(err.value, DatapoolError)


def test_a_run_of_another_datasource_says_which_keys_replace_earlier_samples(tmp_path, digits) -> None:
    """A pool keeps the latest row per key, keys relative to each run's datasource: a second datasource fed into
    the pool (two camera buckets, each with DSC_0001.JPG) replaces the first one's samples of the same key. That
    is now said in the log, the listing's notes and the run summary (was silent); the same datasource is not."""
    from lightly_airflow import staging
    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.datasource.query import ListingSkips
    from lightly_airflow.pipeline import _listing_notes, list_new

    rows = run_rows(digits, range(0, 6), picks=[1])
    source = tmp_path / "camera-b"
    for i, key in enumerate(rows.column("key").to_pylist()[:4]):  # four of its keys, other pictures
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(b"other picture %d" % i)
    (source / "digits" / "new.png").write_bytes(b"a file the pool never saw")

    def commit(pool_uri: str, rows, run_id: str, datasource_uri: str) -> None:
        pool = Datapool(pool_uri)
        pool.commit(rows, run_id=run_id, dag_id="curate", tag=None, config={}, counts={}, embedding_model=MODEL,
                    embedding_dim=DIM, read_version=pool.version(), datasource_uri=datasource_uri)

    def notes(pool_uri: str, datasource: str, run_id: str) -> list[str]:
        list_new(NewFilesQuery(datasource_uri=datasource, datapool_uri=pool_uri), run_id=run_id)
        return _listing_notes(ListingSkips.from_dict(staging.read_listing_skips(pool_uri, run_id, None)))

    two = str(tmp_path / "two-sources")
    commit(two, rows, "r1", "s3://camera-a/dumps")
    (said,) = notes(two, str(source), "r2")
    assert said.startswith(f"earlier runs of this pool read another datasource (s3://camera-a/dumps) than this run "
                           f"({source})") and "4 files of this run have the key of an earlier sample" in said
    commit(two, run_rows(digits, range(6, 8)), "r3", f"file://{source}/")  # this datasource, written otherwise
    (again,) = notes(two, str(source), "r4")
    assert again.startswith("earlier runs of this pool read another datasource (s3://camera-a/dumps) than")
    one = str(tmp_path / "one-source")
    commit(one, rows, "r1", str(source))
    assert notes(one, f"file://{source}", "r2") == []  # one datasource: nothing to say


@pytest.mark.parametrize(("pool_type", "value_type", "refused"), [
    ("int64", "CATEGORICAL_STRING", True),   # 'sunny' cannot be an int64: the commit failed after the whole run
    ("double", "NUMERIC_INT", False),        # integers fit a float column
    ("int64", "NUMERIC_FLOAT", True),
    ("string", "NUMERIC_INT", False),        # a text column takes any value
    ("bool", "CATEGORICAL_STRING", True),
])
def test_a_custom_metadata_type_changed_against_the_pool_fails_the_first_task(
        tmp_path, digits, pool_type, value_type, refused) -> None:
    import pyarrow as pa

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.pipeline import list_new

    pool_uri = str(tmp_path / "pool")
    rows = run_rows(digits, range(0, 4), picks=[1])
    values = {"int64": [3, 1, 2, 0], "double": [0.5, 1.0, 2.0, 3.0], "string": ["a", "b", "c", "d"],
              "bool": [True, False, True, True]}[pool_type]
    commit_run(Datapool(pool_uri), rows.append_column("metadata.weather", pa.array(values, pa.type_for_alias(pool_type))),
               "r1")
    source = tmp_path / "images"
    (source / ".lightly" / "metadata").mkdir(parents=True)
    (source / ".lightly" / "metadata" / "schema.json").write_text(json.dumps(
        [{"name": "Weather", "path": "weather", "defaultValue": None, "valueDataType": value_type}]))
    (source / "new.png").write_bytes(b"a new file")
    query = NewFilesQuery(datasource_uri=str(source), datapool_uri=pool_uri)
    if not refused:
        assert list_new(query, run_id="r2").new == 1
        return
    with pytest.raises(ParamError) as err:
        list_new(query, run_id="r2")
    assert err.value.param == "lightly_uri"
    assert (f".lightly/metadata/schema.json gives 'Weather' (metadata.weather) valueDataType {value_type}" in str(err.value)
            and f"stored metadata.weather as {pool_type}" in str(err.value) and "give the field a new path" in str(err.value))


def test_an_embed_task_with_another_model_than_the_pool_fails_before_reading_an_image(tmp_path, digits) -> None:
    """The commit refuses a run embedded with another model than the pool's (EmbeddingMismatchError): with
    collate.input_size or the embed tasks' model changed, every shard was embedded (hours on a GPU) for a run the
    last task then refused. The list task records the pool's model in the manifests; each embed task compares
    its encoder's before reading anything, and fails without a retry."""
    from pathlib import Path

    import numpy as np
    from airflow.sdk.exceptions import AirflowFailException
    from PIL import Image

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.embedding.encoders import get_encoder
    from lightly_airflow.operators.embed import EmbedShardOperator
    from lightly_airflow.pipeline import list_new

    source, pool_uri = tmp_path / "images", str(tmp_path / "pool")
    pool_model = get_encoder(dim=64).model_id  # the pool's: 64-d (a projection), as run_rows' vectors
    Datapool(pool_uri).commit(run_rows(digits, range(3), picks=[0]), run_id="r1", dag_id="d", tag=None, config={},
                              counts={}, embedding_model=pool_model, embedding_dim=64, read_version=None)
    source.mkdir()
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(source / "new.png")
    (manifest,) = list_new(NewFilesQuery(datasource_uri=str(source), datapool_uri=pool_uri), run_id="r2").manifests
    other = EmbedShardOperator(task_id="e", manifest_uri=manifest, datapool_uri=pool_uri, device="cpu")
    with pytest.raises(AirflowFailException) as err:
        other.execute({})
    assert str(err.value).startswith(f"The datapool of {manifest} holds embeddings of model {pool_model!r} (dim 64) "
                                     "but this task embeds with ")
    assert "/in64/d1280' (dim 1280)" in str(err.value) and "or commit to a new datapool" in str(err.value)
    assert not Path(manifest.replace("/manifest/", "/embeddings/")).exists()  # nothing embedded, nothing written
    same = EmbedShardOperator(task_id="e2", manifest_uri=manifest, datapool_uri=pool_uri, device="cpu",
                              dim=64).execute({})
    assert same["embedded"] == 1 and same["model"] == pool_model


def test_a_lightly_config_asking_for_another_input_size_than_the_pool_fails_the_first_task(tmp_path, digits) -> None:
    """``lightly_config``'s ``collate.input_size`` / ``model.num_ftrs`` against a pool of other embeddings: the
    first task knows both, so it refuses the run before mapping any embed task (each of which would refuse it)."""
    from datapool.conftest import run_rows

    pool_uri = str(tmp_path / "pool")
    Datapool(pool_uri).commit(run_rows(digits, range(3), picks=[0]), run_id="r0", dag_id="d", tag=None, config={},
                              counts={}, embedding_model="efficientnet-lite0@579344248a93e230/in64/d64",
                              embedding_dim=64, read_version=None)
    source = tmp_path / "images"
    source.mkdir()
    (source / "new.png").write_bytes(b"new")
    message = _first_task(datasource_uri=str(source), datapool_uri=pool_uri,
                          lightly_config={"collate": {"input_size": 96}, "model": {"num_ftrs": 64}})
    assert message == (
        "Parameter 'lightly_config': asks to embed with input_size 96 (the pool's: 64), but the datapool holds "
        "embeddings of 'efficientnet-lite0@579344248a93e230/in64/d64' (dim 64): every embed task would refuse the "
        "run. Fix: remove these keys (or give the pool's values), or commit to a new datapool.")
    both = _first_task(datasource_uri=str(source), datapool_uri=pool_uri,
                       lightly_config={"collate": {"input_size": 96}, "model": {"num_ftrs": 32}})
    assert "input_size 96 (the pool's: 64), dim 32 (the pool's: 64)" in both


def test_a_crops_task_that_is_no_object_task_fails_the_first_check(tmp_path) -> None:
    """``crops.enable_upload_for_tasks`` naming a task ``.lightly/predictions`` lacks (Lightly's ``lightly_pretagging``
    pasted from its docs) is refused by ``validate_params``, which the sensor that waits for new files runs too: it
    was checked by the list task alone, after the wait."""
    from lightly_airflow.pipeline import validate_params

    src = tmp_path / "images"
    (src / ".lightly" / "predictions").mkdir(parents=True)
    (src / ".lightly" / "predictions" / "tasks.json").write_text("[]")
    uris = {"datasource_uri": str(src), "datapool_uri": str(tmp_path / "pool"), "lightly_uri": None}
    validate_params(**uris, selection_config=SELECTION, worker_config={"crops": {"enable_upload": True}})
    with pytest.raises(ParamError) as err:
        validate_params(**uris, selection_config=SELECTION,
                        worker_config={"crops": {"enable_upload_for_tasks": ["lightly_pretagging"]}})
    assert err.value.param == "worker_config.crops.enable_upload_for_tasks"
    assert "['lightly_pretagging'] are not object tasks" in str(err.value)


@pytest.mark.parametrize("uri", ["data/pool", "s3//bucket/pool", "file:/data/pool", "./pool"])
def test_a_relative_or_mistyped_uri_fails_the_first_task_in_any_dag(uri, tmp_path) -> None:
    """Operators in a user's own DAG get the example DAG form's rule (an absolute path or ``<scheme>://``): a
    relative path, or a typo that reads as one, named a folder under each worker's working directory."""
    from lightly_airflow.pipeline import validate_params

    src = tmp_path / "images"
    src.mkdir()
    with pytest.raises(ParamError) as err:
        validate_params(datasource_uri=str(src), datapool_uri=uri, lightly_uri=None, selection_config=SELECTION)
    assert err.value.param == "datapool_uri" and "neither an absolute path nor a <scheme>:// URI" in str(err.value)
    validate_params(datasource_uri=str(src), datapool_uri=str(tmp_path / "pool"), lightly_uri=None,
                    selection_config=SELECTION)
