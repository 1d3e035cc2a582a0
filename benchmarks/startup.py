"""Whole-process time of the shard commands (``lightly-airflow metadata``, ``predictions``, ``embed``) on small real
shards, and the heavy libraries each process imports.

Each mapped shard task is a fresh ``lightly-airflow <step>`` process, so its fixed cost (imports, kernels loaded)
is paid once per shard. Data (made here, in a temp folder): the demo datasource's first batch
(:mod:`lightly_airflow.demo`: digit scans and photos, a ``.lightly/`` with classification predictions and a custom
metadata field), listed into shards of 128 files (the last one is timed: digits and photos), and 24 photos with
object-detection predictions of pasted shapes (:mod:`lightly_airflow.objects.demo_data`) whose embed task also
crops and embeds 49 objects, and 8 of those photos with a file that is not an image and a task whose schema.json is not
JSON (``metadata+bad``, ``predictions+bad``: the shard tasks' problem rows, with their fix, ``fixes.split_fix``).

Each tree (``--tree NAME=PATH``: a checkout of this repository; default: this one) runs every command once to warm
up (bytecode, the numba cache), then ``--rounds`` rounds, each running every command of every tree in turn
(interleaved: a busy neighbour slows both alike). Per command and tree: the median wall time of the process
(``python -m lightly_airflow.cli ...``, from start to exit) and its CPU time (user + system of all its threads: less
sensitive to a shared machine's load), with their ranges, then one run under ``-X importtime``: the
heavy top-level packages it imported and their import time (of a package: all its modules, whoever imported them;
``pyarrow.compute``, ``pyarrow.dataset`` and ``lightly_airflow.report``: cumulative).

    python benchmarks/startup.py --rounds 5 --tree before=/tmp/head --tree after=.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: packages: the import time of all their modules (whoever imported them); modules: cumulative, as imported
HEAVY_PACKAGES = ("pandas", "numba", "llvmlite", "scipy", "torch", "torchvision", "deltalake")
HEAVY_MODULES = ("pyarrow.compute", "pyarrow.dataset", "lightly_airflow.report")
HERE = Path(__file__).resolve().parents[1]


def _make_data(root: Path, tree: Path) -> dict[str, list[str]]:
    """The commands' arguments (made with ``tree``'s code: the data, not the timing, depends on it)."""
    script = f"""
import json, sys
from pathlib import Path
import pyarrow as pa
from lightly_airflow import demo, pipeline, staging
from lightly_airflow.datasource import NewFilesQuery, list_files, write_manifests
from lightly_airflow.objects.demo_data import add_images
from lightly_airflow.objects.spec import ObjectsSpec, write_spec
root = Path({str(root)!r})
demo.build(root / "src", batches=1)
listed = pipeline.list_new(NewFilesQuery.build(datasource_uri=str(root / "src"), datapool_uri=str(root / "pool")),
                           run_id="r1", min_shard_size=128)
source, pool = root / "obj", root / "objpool"
add_images(source, 0, 24, seed=1)
listing = pa.Table.from_batches(list(list_files(f"file://{{source}}")))
(objects,) = write_manifests(listing, f"file://{{pool}}", "run-1", datasource_uri=f"file://{{source}}",
                             lightly_uri=f"file://{{source}}")
write_spec(ObjectsSpec(tasks=("shapes",)), staging.run_dir(f"file://{{pool}}", "run-1"))
bad = root / "bad"  # (a file that is not an image; a task whose schema.json is not JSON)
add_images(bad, 0, 8, seed=2)
(bad / "broken.png").write_bytes(b"not an image")
tasks = bad / ".lightly" / "predictions" / "tasks.json"
tasks.write_text(json.dumps([*json.loads(tasks.read_text()), "broken"]))
(tasks.parent / "broken").mkdir()
(tasks.parent / "broken" / "schema.json").write_text('{{"task_type": ')
listing = pa.Table.from_batches(list(list_files(f"file://{{bad}}")))
(problems,) = write_manifests(listing, f"file://{{root / 'badpool'}}", "run-1", datasource_uri=f"file://{{bad}}",
                              lightly_uri=f"file://{{bad}}")
print(json.dumps([listed.manifests[-1], objects, problems]))
"""
    import json

    out = subprocess.run([sys.executable, "-c", script], cwd=tree, env=_env(tree), capture_output=True, text=True,
                         check=True)
    manifest, objects, problems = json.loads(out.stdout.splitlines()[-1])
    src = str(root / "src")
    return {
        "metadata": ["metadata", "--manifest", manifest, "--output", str(root / "out" / "metadata.parquet")],
        "predictions": ["predictions", "--manifest", manifest, "--lightly-uri", src,
                        "--output", str(root / "out" / "predictions.parquet")],
        "embed": ["embed", "--manifest", manifest, "--device", "cpu", "--output", str(root / "out" / "embed.parquet")],
        "embed+objects": ["embed", "--manifest", objects, "--device", "cpu",
                          "--output", str(root / "out" / "embed-objects.parquet")],
        "metadata+bad": ["metadata", "--manifest", problems, "--output", str(root / "out" / "metadata-bad.parquet")],
        "predictions+bad": ["predictions", "--manifest", problems, "--lightly-uri", str(root / "bad"),
                            "--output", str(root / "out" / "predictions-bad.parquet")],
    }


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def _wall(tree: Path, args: list[str]) -> tuple[float, float]:
    """The process' wall time and CPU time (user + system, all its threads and children), in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lightly_airflow.cli", *args], cwd=tree, env=_env(tree),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _imports(tree: Path, args: list[str]) -> tuple[float, dict[str, float]]:
    """Total import time (s) and the import time of each heavy package or module imported."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "lightly_airflow.cli", *args], cwd=tree,
                         env=_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    total, heavy = 0, dict[str, float]()
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        total += int(m[1])
        package = m[4].split(".")[0]
        if package in HEAVY_PACKAGES:
            heavy[package] = heavy.get(package, 0.0) + int(m[1]) / 1e6
        elif m[4] in HEAVY_MODULES and m[4] not in heavy:
            heavy[m[4]] = int(m[2]) / 1e6
    return total / 1e6, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout (default: this one)")
    args = parser.parse_args()
    trees = {t.split("=", 1)[0]: Path(t.split("=", 1)[1]).resolve() for t in args.tree} or {"this": HERE}
    with tempfile.TemporaryDirectory() as tmp:
        commands = _make_data(Path(tmp), next(iter(trees.values())))
        for tree in trees.values():  # warm-up: bytecode and the numba cache of each tree
            for cmd in commands.values():
                _wall(tree, cmd)
        walls: dict[tuple[str, str], list[tuple[float, float]]] = {(t, c): [] for t in trees for c in commands}
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            for c, cmd in commands.items():
                for t, tree in trees.items():
                    walls[t, c].append(_wall(tree, cmd))
            loads.append(os.getloadavg()[0])
        print(f"{args.rounds} interleaved rounds; 1-min load average at the start and after each round: "
              + ", ".join(f"{x:.1f}" for x in loads) + f" ({os.cpu_count()} CPUs)")
        for c, cmd in commands.items():
            print(f"\n{c}: lightly-airflow {' '.join(a if '/' not in a else '…' for a in cmd)}")
            for t, tree in trees.items():
                w, cpu = [x[0] for x in walls[t, c]], [x[1] for x in walls[t, c]]
                total, heavy = _imports(tree, cmd)
                names = ", ".join(f"{k} {v:.2f}" for k, v in heavy.items()) or "none"
                print(f"  {t:>8}: wall median {statistics.median(w):.2f} s ({min(w):.2f}-{max(w):.2f}), CPU median "
                      f"{statistics.median(cpu):.2f} s ({min(cpu):.2f}-{max(cpu):.2f}); imports {total:.2f} s, heavy: "
                      f"{names}")


if __name__ == "__main__":
    main()
