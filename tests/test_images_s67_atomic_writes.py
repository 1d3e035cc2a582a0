"""Local writes that a killed process leaves behind (session 67, helper 3).

A process the kernel kills in the middle of a write (here: by ``SIGXFSZ``, the file-size limit's signal, which kills it
at a known byte of the write every time; an OOM kill or a SIGKILLed task does the same at a random one) must leave
neither a half file under the target's name (a reader, e.g. the UI's thumbnail route, would serve it) nor a temporary
file that no later write ever removes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lightly_airflow.storage import write_bytes
from lightly_airflow.thumbnails import ThumbnailWriter, read_thumbnail_typed, thumbnails_uri

#: The child: the file-size limit set just before the write (its imports wrote nothing), SIGXFSZ's default action
#: (Python ignores the signal, and the write would then raise instead of the process dying).
KILLED_MID_WRITE = """
import resource, signal, sys
{setup}
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
{write}
"""


def _killed_child(setup: str, write: str, limit: int, *args: str) -> None:
    code = KILLED_MID_WRITE.format(setup=setup, write=write, limit=limit)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGXFSZ, (done.returncode, done.stderr[-2000:])


def test_a_write_killed_mid_way_leaves_no_file_that_outlives_the_retry(tmp_path: Path) -> None:
    folder = tmp_path / "crops"
    target = folder / "img-0001.png"
    data = os.urandom(64 * 1024)
    for _ in range(3):  # three killed attempts (a task retried while its store or its memory ran out)
        _killed_child(
            "from lightly_airflow.storage import write_bytes",
            "write_bytes(b'x' * 65536, sys.argv[1])",
            4096,
            str(target),
        )
        assert not target.exists()  # nothing half-written under the file's own name
    write_bytes(data, str(target))  # the retry that gets through
    assert target.read_bytes() == data
    # the killed attempts' temporary files are gone with it (each attempt's random name stayed forever)
    assert sorted(p.name for p in folder.iterdir()) == ["img-0001.png"]


def test_writers_of_one_file_at_once_each_leave_it_whole(tmp_path: Path) -> None:
    """Two attempts of a task running at once (a retry started while the first still runs) write the same files:
    a reader sees one writer's whole file at any moment, and no temporary file is left."""
    target = tmp_path / "staging" / "shard-00000.parquet"
    payloads = [bytes([i]) * (256 * 1024 + i) for i in range(6)]
    seen: set[int] = set()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(data: bytes) -> None:
        try:
            for _ in range(25):
                write_bytes(data, str(target))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                got = target.read_bytes()
            except FileNotFoundError:
                continue
            seen.add(len(got))
            if got not in payloads:
                errors.append(AssertionError(f"a reader saw {len(got)} bytes, no whole file"))

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    watch = threading.Thread(target=reader)
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watch.join()
    assert not errors, errors[:3]
    assert target.read_bytes() in payloads
    assert sorted(p.name for p in target.parent.iterdir()) == ["shard-00000.parquet"]


def _noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (300, 400, 3), dtype=np.uint8))


def test_a_thumbnail_write_killed_mid_way_is_no_thumbnail_the_ui_serves(tmp_path: Path) -> None:
    pool = str(tmp_path / "pool")
    sid = "0123456789abcdef0123456789abcdef"
    setup = (
        "import numpy as np; from PIL import Image; from lightly_airflow.thumbnails import ThumbnailWriter\n"
        "img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8))\n"
        "writer = ThumbnailWriter(sys.argv[1])"
    )
    _killed_child(setup, f"writer.add({sid!r}, img); writer.close()", 2000, thumbnails_uri(pool))
    # the UI's thumbnail route reads this: a cut JPEG (2,000 of its ~40,000 bytes) was served as the sample's picture
    assert read_thumbnail_typed(pool, sid) is None
    writer = ThumbnailWriter(thumbnails_uri(pool))  # the task's retry
    writer.add(sid, _noise(1))
    assert writer.close() == {"thumbnails": 1, "thumbnails_failed": 0}
    found = read_thumbnail_typed(pool, sid)
    assert found is not None
    with Image.open(__import__("io").BytesIO(found[0])) as thumb:
        thumb.load()
        assert thumb.size == (256, 192)
    assert sorted(p.name for p in Path(thumbnails_uri(pool)).iterdir()) == [f"{sid}.jpg"]


def test_a_file_system_without_locks_still_gets_whole_files(tmp_path: Path, monkeypatch: Any) -> None:
    """Where ``flock`` is refused (a network or FUSE mount without locks), each write goes through a name of its own:
    the file is written whole and nothing is left beside it."""
    import errno
    import fcntl

    def refused(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refused)
    target = tmp_path / "copies" / "IMG_1.HEIC.jpg"
    for size in (5000, 3000):
        write_bytes(b"y" * size, str(target))
        assert target.read_bytes() == b"y" * size
    assert sorted(p.name for p in target.parent.iterdir()) == ["IMG_1.HEIC.jpg"]


def test_a_sigkilled_writer_leaves_the_file_whole_and_its_retry_leaves_nothing_else(tmp_path: Path) -> None:
    """The same with SIGKILL at whatever point a real writer has reached (it rewrites a 16 MiB file in a loop; the
    kill mostly lands inside a write): the file under its name is always whole, and one retry leaves it alone."""
    import time

    target = tmp_path / "export" / "IMG_2.HEIC.jpg"
    code = (
        "import sys\nfrom lightly_airflow.storage import write_bytes\n"
        "data = bytes(range(256)) * (1 << 16)\nwhile True:\n    write_bytes(data, sys.argv[1])\n"
    )
    whole = bytes(range(256)) * (1 << 16)
    for delay in (0.05, 0.13, 0.21):
        child = subprocess.Popen([sys.executable, "-c", code, str(target)])
        try:
            deadline = time.monotonic() + 60
            while not target.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(delay)
        finally:
            child.kill()
            child.wait()
        assert target.read_bytes() == whole
    write_bytes(b"retried", str(target))
    assert sorted(p.name for p in target.parent.iterdir()) == ["IMG_2.HEIC.jpg"]
