"""A counting HTTP proxy in front of the S3 emulator: how many LISTs and GETs of the Delta log a call makes.

delta-rs talks to the store from Rust, so no Python filesystem sees its requests; pointing its endpoint at
this proxy counts the real requests on the wire. The proxy runs in its own process (delta-rs holds the GIL
in some calls, which would starve a proxy thread); ``GET /__counts__`` returns and resets the counts.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from lightly_airflow.storage import StorageCredentials


def kind_of(method: str, path: str) -> str:
    parts = urlsplit(path)
    query = parse_qs(parts.query)
    if method == "GET" and "list-type" in query:
        return "LIST log" if "_delta_log" in " ".join(query.get("prefix", [])) else "LIST"
    if "_delta_log" in parts.path:
        return f"{method} log"
    return method


def serve(upstream_url: str) -> None:
    upstream = urlsplit(upstream_url)
    lock = threading.Lock()
    counts: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response_only(status, reason)
            for k, v in headers:
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            # A HEAD reply has no body: it passes the upstream length (s3fs reads a file's size from it).
            length = next((v for k, v in headers if k.lower() == "content-length"), None) if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _forward(self) -> None:
            nonlocal counts
            body = self._body()
            if self.path == "/__counts__":
                with lock:
                    data, counts = json.dumps(dict(counts)).encode(), Counter()
                self._reply(200, "OK", [("Content-Type", "application/json")], data)
                return
            with lock:
                kind = kind_of(self.command, self.path)
                counts[kind] += 1
                if kind == "GET log" and urlsplit(self.path).path.endswith(".json"):
                    counts["GET log entry"] += 1  # a commit file (the rest: checkpoints and their pointer)
                if (self.headers.get("x-amz-request-payer") or "").lower() == "requester" or "userProject=" in self.path:
                    counts[f"{kind} requester pays"] += 1  # (a Requester Pays bucket's header; GCS: userProject)
            drop = ("connection", "host", "transfer-encoding", "content-length", "expect")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
            headers["Host"] = upstream.netloc
            headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=60)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            self._reply(resp.status, resp.reason, resp.getheaders(), resp.read())
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Requests:
    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> Counter[str]:
        """The requests since the last reset, by kind (``LIST log``, ``GET log``, ``PUT``, ...)."""
        with urllib.request.urlopen(self.url + "/__counts__", timeout=30) as resp:
            return Counter(json.loads(resp.read()))


@contextmanager
def counting_proxy(credentials: StorageCredentials) -> Iterator[tuple[StorageCredentials, Requests]]:
    """Credentials that reach the same emulator through a proxy, and the proxy's request counts."""
    proc = subprocess.Popen(
        [sys.executable, __file__, credentials.endpoint_url or ""], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        yield replace(credentials, endpoint_url=url), Requests(url)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    serve(sys.argv[1])
