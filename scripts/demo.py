"""Run the example DAG end to end on a local demo datasource: two incremental runs, then a backfill, the Live
Photos' clips, and a run a reviewer commits (``LIGHTLY_REVIEW``); then the video walk-through (scripts/demo_video.py) and object-level selection (scripts/demo_objects.py).

Everything lands inside the repo: the datasource and datapool under ``.demo/``, Airflow (SQLite) under
``.airflow/``. Each run is a real ``airflow dags test lightly_datapool`` in its own process; its full log
is kept in ``.demo/logs/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
DATASOURCE = DEMO / "datasource"
DATAPOOL = DEMO / "datapool"
LOGS = DEMO / "logs"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CLI = str(Path(sys.executable).with_name("lightly-airflow"))


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(ROOT / ".airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        LIGHTLY_DATASOURCE_URI=f"file://{DATASOURCE}",
        LIGHTLY_DATAPOOL_URI=f"file://{DATAPOOL}",
        PYTHONUNBUFFERED="1",
        # The sensor waits (deferred) this long for new files before a run skips; hours in production.
        LIGHTLY_WAIT_FOR_NEW_FILES_S="10",
        LIGHTLY_POKE_INTERVAL_S="2",
    )
    return env


def run_dag(name: str, conf: dict, env: dict[str, str]) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [AIRFLOW, "dags", "test", "lightly_datapool", "-c", json.dumps(conf)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
    text = log_path.read_text(errors="replace")
    failed = proc.returncode != 0 or "state=failed" in text or "DagRunState.FAILED" in text
    print(f"   {name}: airflow dags test finished in {time.monotonic() - started:.0f} s (log: {log_path.relative_to(ROOT)})")
    if failed:
        print("\n".join(text.splitlines()[-60:]))
        raise SystemExit(f"The {name} run failed; see {log_path}.")


def review_run(name: str, conf: dict, env: dict[str, str]) -> None:
    """A run of the DAG with ``LIGHTLY_REVIEW=true``: an api-server beside it, through whose Human-in-the-loop API the
    demo answers as the reviewer (user admin) once the proposal waits: Commit."""
    import socket
    import threading
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server_log = open(LOGS / f"{name}-api-server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)

    def call(method: str, path: str, token: str | None = None, payload: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        req = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=None if payload is None else json.dumps(payload).encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return dict(json.loads(r.read()))

    def reviewer() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                password = json.loads((ROOT / ".airflow" / "simple_auth_manager_passwords.json.generated").read_text())
                token = call("POST", "/auth/token", payload={"username": "admin", "password": password["admin"]})[
                    "access_token"]
                pending = call("GET", "/api/v2/dags/lightly_datapool/dagRuns/~/hitlDetails?response_received=false",
                               token)["hitl_details"]
            except (OSError, ValueError, KeyError):  # (the api-server is still starting)
                pending = []
            if pending:
                ti = pending[0]["task_instance"]
                print(f"   {ti['task_id']} waits for a reviewer; it shows: {pending[0]['body'].splitlines()[0]}")
                call("PATCH", f"/api/v2/dags/lightly_datapool/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
                     f"{ti['task_id']}/-1/hitlDetails", token, {"chosen_options": ["Commit"], "params_input": {}})
                print("   the reviewer (admin) answered Commit through the Human-in-the-loop API (the Required Actions "
                      "page's button does the same)")
                return
            time.sleep(1)

    answering = threading.Thread(target=reviewer, daemon=True)
    answering.start()
    try:
        run_dag(name, conf, {**env, "LIGHTLY_REVIEW": "true"})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        server_log.close()


def pool_version() -> int | None:
    from lightly_airflow.datapool import Datapool

    pool = Datapool(f"file://{DATAPOOL}")
    return pool.version() if pool.exists() else None


def heic(keys: list[str]) -> int:
    return sum(k.lower().endswith(".heic") for k in keys)


def live_photo_note(name: str) -> None:
    """Print what the run's list task said about Live Photo clips (the report has it too)."""
    import re

    text = (LOGS / f"{name}.log").read_text(errors="replace")
    found = re.search(r"(\d[\d,]* Live Photo motion clips? .*?: the photo is the sample)", text)
    if found:
        print(f"   list task: {found.group(1)} (live_photo_videos=True curates their frames too)")


def watcher_note(checks: int = 3) -> None:
    """What the event-driven schedule's watcher (``LIGHTLY_SCHEDULE=new-files``: ``NewFilesEventTrigger``, run
    here in-process for a few checks, its state store a dict) makes of the datasource now: the first check
    announces the new files (the scheduler would start a run), the next ones do not announce them again."""
    import asyncio
    import contextlib
    import io
    import logging

    from lightly_airflow.datasource import NewFilesQuery
    from lightly_airflow.triggers import NewFilesEventTrigger

    class Store:  # (the triggerer's asset_state_store, in memory)
        def __init__(self) -> None:
            self.values: dict[str, object] = {}

        async def aget(self, key: str, default: object = None) -> object:
            return self.values.get(key, default)

        async def aset(self, key: str, value: object) -> None:
            self.values[key] = value

    trigger = NewFilesEventTrigger(query=NewFilesQuery(datasource_uri=f"file://{DATASOURCE}",
                                                       datapool_uri=f"file://{DATAPOOL}"),
                                   poke_interval=0.2, isolate=False)
    trigger.asset_state_store = Store()
    events: list[dict] = []
    logged = io.StringIO()

    async def watch() -> None:
        async def collect() -> None:
            async for event in trigger.run():
                events.append(event.payload)

        with contextlib.redirect_stdout(logged):  # (Airflow's structlog logger writes to stdout)
            task = asyncio.create_task(collect())
            deadline = time.monotonic() + 60
            while logged.getvalue().count("new files in") < checks and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    quiet = logging.getLogger("lightly_airflow.datasource")  # (each check's listing lines: the runs print them)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        asyncio.run(watch())
    finally:
        quiet.setLevel(level)
    again = logged.getvalue().count("announced already")
    if events:
        e = events[0]
        print(f"   event-driven schedule (LIGHTLY_SCHEDULE=new-files): the watcher announced {e['new']} new files "
              f"({len(events)} event; digest {e['digest'][:12]}…, the scheduler starts a run for it); "
              f"{again} later checks: announced already, no second run")
    else:
        print("   event-driven schedule: the watcher announced nothing; its log:\n" + logged.getvalue()[-2000:])


def reorganise(n: int) -> dict[str, str]:
    """Move ``n`` selected PNG images of the datasource into ``reorganised/`` (same bytes): ``{new key: old key}``."""
    from lightly_airflow.datapool import Datapool

    selected = Datapool(f"file://{DATAPOOL}").selected(["key"]).column("key").to_pylist()
    moved = {}
    for key in sorted(k for k in selected if k.endswith(".png") and (DATASOURCE / k).is_file())[:n]:
        target = DATASOURCE / "reorganised" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(DATASOURCE / key, target)
        moved[f"reorganised/{key}"] = key
    print(f"   moved {', '.join(f'{o} -> {k}' for k, o in moved.items())}")
    return moved


def moved_note(name: str, moved: dict[str, str]) -> None:
    """What the run's commit did with the moved files: their new keys in initial-tag, the old keys ended."""
    from lightly_airflow.datapool import Datapool

    pool = Datapool(f"file://{DATAPOOL}")
    live = set(pool.selected(["key"]).column("key").to_pylist())
    taken = [k for k in moved if k in live]
    left = [o for o in moved.values() if o in live]
    print(f"   {name}: moved {(pool.history()[-1].get('counts') or {}).get('moved', 0)}: {len(taken)} of "
          f"{len(moved)} new keys hold their old key's selection in initial-tag, {len(left)} old keys left there "
          "(earlier versions still show them; `datapool show --tag initial-tag`)")


def summarize(name: str, before: int | None) -> None:
    from lightly_airflow.datapool import Datapool

    pool = Datapool(f"file://{DATAPOOL}")
    files = sum(1 for p in DATASOURCE.rglob("*") if p.is_file() and ".lightly" not in p.parts)
    if pool.version() == before:
        print(f"   {name}: files in datasource {files} | nothing new: skipped, datapool stays at version {before}")
        return
    last = pool.history()[-1]
    counts = last.get("counts") or {}
    selected_total = next((t["count"] for t in pool.tags() if t["name"] == "initial-tag"), 0)
    print(
        f"   {name}: files in datasource {files} | processed {counts.get('processed')} | "
        f"corrupt {counts.get('corrupt')} | duplicate {counts.get('duplicate')} | selected {counts.get('selected')} "
        f"(all runs: {selected_total}) | tag {last.get('tag')!r} | datapool version {last.get('version')}"
    )
    if (last.get("started_by") or {}).get("text"):
        print(f"   {name}: started by {last['started_by']['text']} (in the commit, the report and `datapool history`)")
    if (last.get("review") or {}).get("text"):
        print(f"   {name}: review: {last['review']['text']}")


def main() -> int:
    env = environment()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from lightly_airflow import demo

    shutil.rmtree(DEMO, ignore_errors=True)
    print("==> preparing Airflow (SQLite in .airflow/)")
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    print(f"==> run 1: a first batch of real images in {DATASOURCE.relative_to(ROOT)}")
    keys = demo.add_batch(DATASOURCE, 0, live_photos=True)
    print(f"   wrote {len(keys)} images, {heic(keys)} of them iPhone HEIC photos with their Live Photo clips beside "
          "them (.MOV; + .lightly/ predictions and metadata)")
    before = pool_version()
    run_dag("run-1", {"selection_config": demo.SELECTION_CONFIG}, env)
    live_photo_note("run-1")
    summarize("run 1", before)

    print("==> run 2: more files arrive; only the new ones are processed")
    keys = demo.add_batch(DATASOURCE, 1, live_photos=True)
    print(f"   wrote {len(keys)} new images, {heic(keys)} of them iPhone HEIC photos with their Live Photo clips")
    watcher_note()
    before = pool_version()
    run_dag("run-2", {"selection_config": demo.SELECTION_CONFIG}, env)
    summarize("run 2", before)

    print("==> run 3: nothing new arrived; the sensor waits 10 s (deferred), then the run skips without a commit")
    before = pool_version()
    run_dag("run-3", {"selection_config": demo.SELECTION_CONFIG}, env)
    summarize("run 3", before)

    print("==> run 4: process_all reprocesses every file (a backfill), embeddings are reused")
    before = pool_version()
    run_dag("run-4", {"process_all": True, "tag_name": "backfill-all", "selection_config": demo.SELECTION_CONFIG}, env)
    summarize("run 4", before)

    print("==> run 5: live_photo_videos (a trigger-form param): the Live Photos' clips are processed as videos too")
    before = pool_version()
    run_dag("run-5", {"live_photo_videos": True, "tag_name": "live-photo-clips",
                      "selection_config": demo.SELECTION_CONFIG}, env)
    summarize("run 5", before)

    print("==> run 6: the bucket is re-organised: three selected images move to another folder; their new keys "
          "take over their selection and tags")
    moved = reorganise(3)
    before = pool_version()
    run_dag("run-6", {"selection_config": demo.SELECTION_CONFIG}, env)
    summarize("run 6", before)
    moved_note("run 6", moved)

    print("==> run 7: review before commit (LIGHTLY_REVIEW=true): the run proposes, a reviewer answers in Airflow's "
          "Required Actions")
    demo.add_batch(DATASOURCE, demo.Batch("batch-3", (900, 960), ()))
    before = pool_version()
    review_run("run-7", {"selection_config": demo.SELECTION_CONFIG}, env)
    summarize("run 7", before)

    sys.path.insert(0, str(ROOT / "scripts"))
    from demo_video import run_walkthrough

    run_walkthrough(DEMO, run_dag, env)  # videos: Lightly's datapool walk-through on generated clips
    from demo_objects import run_walkthrough as run_objects

    run_objects(DEMO, run_dag, env)  # objects: images selected by the crops of their detected objects

    reports = sorted((DATAPOOL / "_reports").glob("*/index.html"))
    print("\nWhere to look next:")
    print("  .venv/bin/lightly-airflow datapool history .demo/datapool")
    print("  .venv/bin/lightly-airflow datapool tags .demo/datapool")
    print("  .venv/bin/lightly-airflow datapool show .demo/datapool --tag initial-tag")
    print("  .venv/bin/lightly-airflow datapool export .demo/datapool --tag initial-tag --format label-studio")
    print("  .venv/bin/lightly-airflow datapool export .demo/video-datapool --tag initial-tag  (frames as PNG)")
    print("  .venv/bin/lightly-airflow datapool export .demo/objects-datapool --tag initial-tag --format coco  (boxes)")
    if reports:
        print(f"  the last run's report (plots of what was selected and why): {reports[-1].relative_to(ROOT)}")
    print("  the Airflow UI, with a Datapools page and a 'Curation report' tab on every run:")
    print(f"    AIRFLOW_HOME=.airflow LIGHTLY_DATAPOOL_URI=file://{DATAPOOL} .venv/bin/airflow api-server --port 8080")
    print("    then open http://localhost:8080/lightly/ (user admin; password in .airflow/simple_auth_manager_passwords.json.generated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
