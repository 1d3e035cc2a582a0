"""Location, symlink and tag problems fail the first task in seconds (issue 14.4-14.6)."""

from __future__ import annotations

import os

import pytest
from datapool.conftest import commit_run, run_rows

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
