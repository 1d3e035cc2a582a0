"""Our datapool UI against LightlyStudio (``lightly-studio``, the peer) in a real browser, on the same images.

    python benchmarks/ui_peer.py --studio-python /tmp/studio/bin/python            # 10,000 and 100,000 images
    python benchmarks/ui_peer.py --studio-python /tmp/studio/bin/python --n 10000  # quick

LightlyStudio is a benchmark-only peer: it pins its own web stack (and torch, open-clip and CUDA for its
embeddings), so it lives in its own virtual environment, never in ours. Its embedding model is not needed to
browse, so a CPU-only install works::

    uv venv /tmp/studio && uv pip compile - <<< $'lightly-studio\\ntorch==2.13.0' | grep -v -E \\
      '^(torch|torchvision|triton|timm|open-clip-torch|cuda-|nvidia-)' > /tmp/studio.txt && \\
      uv pip install --python /tmp/studio/bin/python -r /tmp/studio.txt && \\
      uv pip install --python /tmp/studio/bin/python --no-deps lightly-studio

Both UIs show the same ``n`` JPEG files (128 x 96, made once under ``--dir``): ours from a datapool committed
like a run commits it (``benchmarks/ui.py:build`` with these keys, and the run's 256-pixel thumbnails of these
images), LightlyStudio from its DuckDB after ``add_images_from_path(embed=False)``. Each UI runs in its own
server process on 127.0.0.1 (ours: the plugin's FastAPI app under uvicorn with Airflow's auth checks overridden,
as in ``benchmarks/ui.py``; LightlyStudio: its ``start_gui``). Debian's chromium (Playwright) opens, in a fresh
browser context per page (empty cache) at 1280 x 800:

* **grid**: the datapool's (collection's) image grid, until every grid image in the first screen has loaded;
* **sample**: one sample's page (the 101st in the default order), until its image has loaded;

and, as HTTP requests to each UI's own JSON API (LightlyStudio keeps its filters in page state, not in URLs):

* **API: page at offset 5,000**: 32 samples in the default order from offset 5,000 (``n / 2`` when smaller);
* **API: width-range filter + total**: the first 32 samples whose width lies in a range, and how many match
  (LightlyStudio: its width filter, ``total_count``; ours: ``lo./hi.metadata.lightly.width``, ``total``).

Times are medians of ``--rounds`` interleaved rounds (ours, then LightlyStudio, per page) after one warm-up round
per server; the ingest (LightlyStudio's ``add_images_from_path``, our commit + thumbnails) is reported once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
# The width-range filter: every image is 128 px wide (LightlyStudio reads that), the datapool's widths are
# synthetic (gamma, mean 20): each range matches most samples of its UI (the totals are printed)
WIDTH_RANGE = {"ours": (10.0, 60.0), "studio": (100.0, 130.0)}
API_PAGE = 32  # LightlyStudio's grid page

# JS: whether the page shows at least `min` images of at least 60 px in the first screen, all loaded
FIRST_SCREEN_LOADED = """(min) => {
  const vh = window.innerHeight, vw = window.innerWidth;
  const imgs = [...document.images].filter(i => {
    const r = i.getBoundingClientRect();
    return r.width >= 60 && r.height >= 40 && r.bottom > 0 && r.top < vh && r.right > 0 && r.left < vw;
  });
  return imgs.length >= min && imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.length : 0;
}"""


def make_images(root: Path, n: int) -> None:
    """``root/images/<i // 1000:04d>/<i:08d>.jpg``: a flat colour with one box (ours and the peer read the same)."""
    from PIL import Image

    marker = root / f".made-{n}"
    if marker.exists():
        return
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / "images" / f"{i // 1000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.integers(0, 255, 3)
        a = np.empty((96, 128, 3), np.uint8)
        a[:] = colour
        y, x = rng.integers(0, 80), rng.integers(0, 100)
        a[y : y + 16, x : x + 28] = 255 - colour
        Image.fromarray(a).save(folder / f"{i:08d}.jpg", quality=85)
    marker.touch()


def build_ours(root: Path, n: int) -> tuple[str, float]:
    """The datapool over ``root``'s images and the thumbnails a run writes; (uri, seconds)."""
    sys.path.insert(0, str(HERE))
    import ui  # benchmarks/ui.py
    from PIL import Image

    from lightly_airflow import columns as C
    from lightly_airflow.datapool import Datapool
    from lightly_airflow.thumbnails import ThumbnailWriter, thumbnails_uri

    path = root / "pool"
    done = path / "_thumbnails.done"
    if done.exists():
        return f"file://{path}", float(done.read_text())
    t = time.perf_counter()
    uri = ui.build(path, n, datasource_uri=f"file://{root}")
    rows = Datapool(uri).read(columns=[C.KEY, C.SAMPLE_ID])
    writer = ThumbnailWriter(thumbnails_uri(uri))
    for key, sid in zip(rows.column(C.KEY).to_pylist(), rows.column(C.SAMPLE_ID).to_pylist(), strict=True):
        with Image.open(root / key) as img:
            writer.add(sid, img.convert("RGB"))
    writer.close()
    seconds = time.perf_counter() - t
    done.write_text(f"{seconds:.2f}")
    return uri, seconds


STUDIO_LOAD = """
import os, sys, time
os.environ["LIGHTLY_STUDIO_ANALYTICS_ENABLED"] = "false"
import lightly_studio as ls
from lightly_studio.database import db_manager
t = time.perf_counter()
db_manager.connect(db_file=sys.argv[2], cleanup_existing=True)
ls.ImageDataset.create(name="bench").add_images_from_path(path=sys.argv[1], embed=False)
print(time.perf_counter() - t)
"""

STUDIO_SERVE = """
import os, sys
os.environ["LIGHTLY_STUDIO_ANALYTICS_ENABLED"] = "false"
import lightly_studio as ls
from lightly_studio.database import db_manager
db_manager.connect(db_file=sys.argv[1], must_exist=True)
ls.start_gui(host="127.0.0.1", port=int(sys.argv[2]), open_browser=False)
"""


def build_studio(python: str, root: Path, n: int) -> tuple[str, float]:
    """LightlyStudio's DuckDB of ``root``'s images (no embeddings); (db path, seconds of its ingest)."""
    db = root / "studio.duckdb"
    seconds_file = root / "studio.seconds"
    if not db.exists() or not seconds_file.exists():
        out = subprocess.run([python, "-c", STUDIO_LOAD, str(root / "images"), str(db)], check=True,
                             capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        seconds_file.write_text(out.stdout.strip().splitlines()[-1])
    return str(db), float(seconds_file.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer in {timeout:.0f} s: {log.read_text()[-2000:]}")


def serve_ours(uri: str, port: int) -> None:
    """(subcommand) The plugin's app under /lightly on uvicorn, Airflow's auth checks overridden."""
    import uvicorn

    sys.path.insert(0, str(HERE))
    from ui import app_for  # benchmarks/ui.py

    uvicorn.run(app_for(uri), host="127.0.0.1", port=port, log_level="warning")


def first_screen(page: Any, url: str, min_images: int, timeout_ms: int = 120_000) -> tuple[float, int]:
    """Seconds from navigation until the first screen's images have loaded, and how many it shows."""
    t = time.perf_counter()
    page.goto(url, wait_until="commit")
    shown = page.wait_for_function(FIRST_SCREEN_LOADED, arg=min_images, timeout=timeout_ms, polling=20).json_value()
    return time.perf_counter() - t, int(shown)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "lightly-ui-peer"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--studio-python", required=True, help="python of a venv with lightly-studio")
    parser.add_argument("--screenshots", help="folder for one screenshot of each page (looked at, not timed)")
    args = parser.parse_args()
    if not shutil.which(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} not found (apt install chromium)")

    version = subprocess.run([args.studio_python, "-c", "import importlib.metadata as m; "
                              "print(m.version('lightly-studio'))"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; LightlyStudio {version}; "
          f"chromium {CHROMIUM}; median of {args.rounds} interleaved rounds after one warm-up round")
    results: list[tuple[int, str, float, float, int, int]] = []
    for n in args.n:
        root = Path(args.dir) / f"images-{n}"
        root.mkdir(parents=True, exist_ok=True)
        make_images(root, n)
        uri, ours_ingest = build_ours(root, n)
        db, studio_ingest = build_studio(args.studio_python, root, n)
        print(f"\n{n:,} images: LightlyStudio's ingest (add_images_from_path, embed=False) {studio_ingest:.1f} s; "
              f"ours: synthetic commit + thumbnails {ours_ingest:.1f} s (a run makes them while it embeds)")
        procs = []
        try:
            p_ours, p_studio = free_port(), free_port()
            for name, cmd in (("ours", [sys.executable, __file__, "serve-ours", uri, str(p_ours)]),
                              ("studio", [args.studio_python, "-c", STUDIO_SERVE, db, str(p_studio)])):
                log = root / f"{name}.log"
                with log.open("wb") as fh:
                    procs.append((subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT), log))
            wait_up(f"http://127.0.0.1:{p_ours}/lightly/pools/bench", *procs[0])
            wait_up(f"http://127.0.0.1:{p_studio}/api/collections", *procs[1])
            results += measure(n, p_ours, p_studio, args.rounds, args.screenshots)
        finally:
            for proc, _ in procs:
                proc.terminate()
                proc.wait(timeout=30)
    print("\n| images | page | ours | LightlyStudio | ours faster | images in the first screen, or samples matched "
          "(ours / LightlyStudio) |")
    print("|---|---|---|---|---|---|")
    for n, page, ours, studio, shown_o, shown_s in results:
        print(f"| {n:,} | {page} | {ours:.2f} s | {studio:.2f} s | {studio / ours:.1f}x | {shown_o} / {shown_s} |")
    return 0


def measure(n: int, p_ours: int, p_studio: int, rounds: int, shots: str | None
            ) -> list[tuple[int, str, float, float, int, int]]:
    from playwright.sync_api import sync_playwright

    ours_base, studio_base = f"http://127.0.0.1:{p_ours}/lightly/pools/bench", f"http://127.0.0.1:{p_studio}"
    lo, hi = WIDTH_RANGE["ours"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # LightlyStudio's page URLs carry its collection's id: found once through its own first page
        ctx = browser.new_context(viewport=VIEWPORT)
        page = ctx.new_page()
        first_screen(page, studio_base + "/", 12)
        studio_grid = page.url
        ctx.close()
        body = json.loads(urllib.request.urlopen(f"{ours_base.replace('/pools/', '/api/pools/')}/samples?limit=1"
                                                 "&offset=100").read())
        ours_sample = f"{ours_base}/samples/{body['items'][0]['sample_id']}"
        studio_sample = studio_sample_url(studio_base, studio_grid, 100)
        collection = studio_grid.rstrip("/").split("/")[-2]
        api = ours_base.replace("/pools/", "/api/pools/")
        mid = min(5_000, n // 2)
        pages: dict[str, tuple[Any, Any, int]] = {
            "grid": (f"{ours_base}/samples", studio_grid, 12),
            "sample": (ours_sample, studio_sample, 1),
            f"API: page at offset {mid:,}": (f"{api}/samples?limit={API_PAGE}&offset={mid}",
                                             studio_list(studio_base, collection, mid, None), 0),
            "API: width-range filter + total": (
                f"{api}/samples?limit={API_PAGE}&lo.metadata.lightly.width={lo}&hi.metadata.lightly.width={hi}",
                studio_list(studio_base, collection, 0, WIDTH_RANGE["studio"]), 0),
        }
        times: dict[tuple[str, str], list[float]] = {}
        shown: dict[tuple[str, str], int] = {}
        for r in range(rounds + 1):
            for name, (ours_url, studio_url, least) in pages.items():
                for who, target in (("ours", ours_url), ("studio", studio_url)):
                    if not least:  # a JSON request
                        seconds, count = timed_request(target)
                    else:
                        ctx = browser.new_context(viewport=VIEWPORT)
                        page = ctx.new_page()
                        seconds, count = first_screen(page, target, least)
                        if r == 0 and shots:
                            Path(shots).mkdir(parents=True, exist_ok=True)
                            page.screenshot(path=f"{shots}/{n}-{who}-{name}.png")
                        ctx.close()
                    if r:
                        times.setdefault((name, who), []).append(seconds)
                        shown[(name, who)] = count
        browser.close()
    out = []
    for name in pages:
        o, s = (statistics.median(times[(name, w)]) for w in ("ours", "studio"))
        print(f"  {name:30s} ours {o:.2f} s (rounds {', '.join(f'{x:.2f}' for x in times[(name, 'ours')])}); "
              f"LightlyStudio {s:.2f} s (rounds {', '.join(f'{x:.2f}' for x in times[(name, 'studio')])})")
        out.append((n, name, o, s, shown[(name, "ours")], shown[(name, "studio")]))
    return out


def studio_sample_url(base: str, grid_url: str, index: int) -> str:
    """The URL of LightlyStudio's page of the ``index``-th image (by file path, its default order)."""
    collection = grid_url.rstrip("/").split("/")[-2]
    body = json.dumps({"pagination": {"offset": index, "limit": 1}}).encode()
    req = urllib.request.Request(f"{base}/api/collections/{collection}/images/list", data=body,
                                 headers={"Content-Type": "application/json"})
    sample = json.loads(urllib.request.urlopen(req).read())
    sid = sample["data"][0]["sample_id"]
    return f"{grid_url.rstrip('/')}/{sid}"


def studio_list(base: str, collection: str, offset: int, width: tuple[float, float] | None
                ) -> urllib.request.Request:
    """LightlyStudio's grid request (as its page sends it): ``API_PAGE`` images by file path from ``offset``."""
    filters: dict[str, Any] = {"sample_filter": {"metadata_filters": []}}
    if width:
        filters["width"] = {"min": width[0], "max": width[1]}
    body = {"pagination": {"offset": offset, "limit": API_PAGE},
            "sort_by": [{"source": "image", "field_name": "file_path_abs", "direction": "asc"}], "filters": filters}
    return urllib.request.Request(f"{base}/api/collections/{collection}/images/list", data=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})


def timed_request(target: str | urllib.request.Request) -> tuple[float, int]:
    """Seconds of one JSON request and the number of samples it answered with."""
    t = time.perf_counter()
    body = json.loads(urllib.request.urlopen(target, timeout=300).read())
    seconds = time.perf_counter() - t
    return seconds, int(body["total"] if "total" in body else body["total_count"])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve-ours":
        serve_ours(sys.argv[2], int(sys.argv[3]))
        raise SystemExit(0)
    raise SystemExit(main())
