"""A connection whose own endpoint (an emulator, MinIO, a private link) answers no connection fails the first check
at once, naming the URI, the store, the endpoint and the fix (:meth:`StorageCredentials.endpoint_problem`). With
nothing listening there, the clients said only "connection refused", after their retries: s3fs in 9 s, the datapool
(object_store) in 3 to 27 s, gcsfs in 35 s and adlfs in 87 s."""

from __future__ import annotations

import contextlib
import socket
import time

import emulators  # (scripts/ is on sys.path: tests/conftest.py)
import pytest

from lightly_airflow.datapool import Datapool, DatapoolError
from lightly_airflow.pipeline import ParamError, check_uri_param
from lightly_airflow.storage import StorageCredentials, filesystem

PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in PROXIES:
        monkeypatch.delenv(variable, raising=False)


def _credentials(store: str, endpoint: str) -> StorageCredentials:
    if store == "s3":
        return StorageCredentials(endpoint_url=endpoint, access_key_id="x", secret_access_key="x", region="us-east-1",
                                  store="s3", conn_id="minio")
    if store == "gs":
        return StorageCredentials(endpoint_url=endpoint, anonymous=True, store="gs", conn_id="minio")
    return StorageCredentials(connection_string=emulators.azure_connection_string(endpoint), store="az", conn_id="minio")


FIXES = {"s3": r"correct the endpoint_url extra \(host and port\) of the aws connection",
         "gs": r"correct the endpoint_url extra \(host and port\) of the google_cloud_platform connection",
         "az": r"correct the endpoint of the wasb connection \(host and port of its host, or of BlobEndpoint in its "
               r"connection string\)"}
STORES = {"s3": r"S3 \(s3://\)", "gs": r"Google Cloud Storage \(gs://\)", "az": r"Azure Blob Storage \(az://, abfs://\)"}


@pytest.mark.parametrize("store", ["s3", "gs", "az"])
def test_a_wrong_endpoint_fails_the_first_check_at_once(store: str) -> None:
    """The datasource's first check, the datapool and any file read name the endpoint (in a connection string: its
    BlobEndpoint) and the fix in a second, where the clients retried for 9 to 87 s and said "connection refused"."""
    port = emulators.free_port()  # (nothing listens there)
    endpoint = f"http://127.0.0.1:{port}" + ("/devstoreaccount1" if store == "az" else "")
    creds = _credentials(store, endpoint)
    said = (rf"cannot be reached: connection 'minio' points {STORES[store]} at the endpoint {endpoint}, where nothing "
            rf"listens on 127\.0\.0\.1:{port} \(connection refused\)\. Fix: {FIXES[store]}, or start the store there")
    started = time.monotonic()
    with pytest.raises(ParamError, match=rf"^Parameter 'datasource_uri': {store}://bucket/images {said}"):
        check_uri_param("datasource_uri", f"{store}://bucket/images", creds, must_exist=True)
    with pytest.raises(DatapoolError, match=rf"^datapool {store}://bucket/pool {said}"):
        Datapool(f"{store}://bucket/pool", creds)
    with pytest.raises(ValueError, match=rf"^{store}://bucket/images/a\.jpg {said}"):
        filesystem(f"{store}://bucket/images/a.jpg", creds)
    assert time.monotonic() - started < 3
    assert creds.delta_options(store)  # (building options makes no request)


def test_a_host_that_does_not_resolve_is_named() -> None:
    creds = StorageCredentials(endpoint_url="http://minio.invalid:9000", store="s3")
    with pytest.raises(ValueError, match=r"^s3://b/x cannot be reached: the credentials point S3 \(s3://\) at the "
                                         r"endpoint http://minio\.invalid:9000, where the host name 'minio\.invalid' "
                                         r"does not resolve"):
        filesystem("s3://b/x", creds)


def test_an_endpoint_that_answered_once_is_not_asked_again_and_a_proxy_is_left_to_the_clients(monkeypatch) -> None:  # noqa: ANN001
    """A reached endpoint is one connection per process (then gone: the clients' own error, a retry may pass); behind
    a proxy the clients do not connect to the endpoint themselves, so it is not checked (unless NO_PROXY names it)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        creds = _credentials("s3", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert creds.store_problem("s3://b/x") is None
    assert creds.store_problem("s3://b/x") is None
    closed = _credentials("s3", f"http://127.0.0.1:{emulators.free_port()}")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    assert closed.store_problem("s3://b/x") is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert "connection refused" in closed.store_problem("s3://b/x")[0]  # type: ignore[index]


def test_an_endpoint_that_never_answers_is_named_after_the_timeout(monkeypatch) -> None:  # noqa: ANN001
    """An endpoint that drops the connection attempts (here a listening socket whose accept queue is full: Linux
    drops the SYNs, as a firewall does) is named after :data:`~lightly_airflow.storage.ENDPOINT_TIMEOUT_S`, not
    after the clients' own connect timeouts and retries; the endpoint is not remembered as reached."""
    import lightly_airflow.storage as storage

    monkeypatch.setattr(storage, "ENDPOINT_TIMEOUT_S", 0.5)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        waiting = []
        for _ in range(4):  # (fill the accept queue: nobody accepts)
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", port))
            waiting.append(client)
        try:
            time.sleep(0.2)
            creds = _credentials("s3", f"http://127.0.0.1:{port}")
            started = time.monotonic()
            with pytest.raises(ValueError, match=rf"^s3://b/x cannot be reached: connection 'minio' points S3 \(s3://\) "
                                                 rf"at the endpoint http://127\.0\.0\.1:{port}, where 127\.0\.0\.1:{port} "
                                                 rf"did not answer within 0\.5 s\. Fix: {FIXES['s3']}"):
                filesystem("s3://b/x", creds)
            assert 0.4 < time.monotonic() - started < 3
            assert ("127.0.0.1", port) not in storage._REACHED
        finally:
            for client in waiting:
                client.close()
