"""The Dockerfiles install from the lock, match its versions, and the worker runs the CLI the pods call.

No Docker engine runs here, so this reads the files: every COPY source exists, the lock is what pip
installs, torch/Airflow versions agree with the lock, the worker is non-root and its entrypoint is the
command the pod operator sets, whose arguments the CLI parser accepts.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "docker/worker/Dockerfile"
AIRFLOW = ROOT / "docker/airflow/Dockerfile"
LOCK = ROOT / "requirements/lock.txt"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _locked(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}==(\S+)$", LOCK.read_text(), re.M)
    assert match, f"{name} is not pinned in {LOCK}"
    return match.group(1)


def _arg_default(instructions: list[tuple[str, str]], name: str) -> str:
    return next(rest.split("=", 1)[1] for word, rest in instructions if word == "ARG" and rest.startswith(f"{name}="))


@pytest.mark.parametrize("dockerfile", [WORKER, AIRFLOW], ids=["worker", "airflow"])
def test_installs_from_the_lock_and_copies_existing_paths(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    copies = [rest for word, rest in instructions if word == "COPY"]
    for copy in copies:
        sources = [s for s in shlex.split(copy)[:-1] if not s.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY source {source} does not exist"
    assert any("requirements/lock.txt" in c for c in copies)
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert re.search(r"pip install [^&]*-r \S*lock", runs), "pip must install the locked requirements"
    assert re.search(r"pip install --no-cache-dir --no-deps|pip install --no-deps", runs), "the project: no extra resolution"


def test_worker_uses_the_locked_torch_version_as_cuda_build_and_runs_as_non_root() -> None:
    instructions = _instructions(WORKER)
    assert _arg_default(instructions, "TORCH_VERSION") == _locked("torch").split("+")[0]
    assert "download.pytorch.org/whl/cu" in _arg_default(instructions, "TORCH_INDEX")
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "get_encoder()" in runs  # the bundled weights load at build time: baked in and verified


def test_airflow_image_matches_the_locked_airflow_and_ships_the_dags() -> None:
    instructions = _instructions(AIRFLOW)
    assert _arg_default(instructions, "AIRFLOW_VERSION") == _locked("apache-airflow")
    assert instructions[next(i for i, (w, _) in enumerate(instructions) if w == "FROM")][1].startswith("apache/airflow:")
    assert any(word == "COPY" and rest.split()[-2].rstrip("/") == "dags" for word, rest in instructions)


def test_pod_command_is_the_worker_entrypoint_and_parses_with_the_cli() -> None:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from lightly_airflow.cli import build_parser
    from lightly_airflow.operators.embed import EmbedPodOperator

    entrypoint = json.loads(next(rest for word, rest in _instructions(WORKER) if word == "ENTRYPOINT"))
    op = EmbedPodOperator(task_id="embed", manifest_uri="s3://p/_staging/r/manifest/shard-00000.parquet",
                          reuse_uri="s3://p/reuse.parquet", num_workers=7)
    with mock.patch.object(KubernetesHook, "_get_default_client"):
        container = op.build_pod_request_obj().spec.containers[0]
    assert container.command == entrypoint == ["lightly-airflow"]
    args = build_parser(only="embed").parse_args(container.args)
    assert args.command == "embed" and args.num_workers == 7 and args.reuse_uri == "s3://p/reuse.parquet"
    assert args.device == "cuda" and args.xcom_return
