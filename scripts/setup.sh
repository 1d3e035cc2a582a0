#!/usr/bin/env bash
# Create .venv/ in the repo root and install the project from the committed lock (no resolver runs).
#
# torch is locked to its CPU build (torch==2.13.0+cpu): where that wheel is not in a local wheel folder
# (PIP_FIND_LINKS, /opt/wheels), set UV_EXTRA_INDEX_URL to PyTorch's CPU wheel index.
# Regenerate the lock after changing dependencies in pyproject.toml with:
#   .venv/bin/uv pip compile pyproject.toml --extra demo --extra test --python-version 3.11 \
#       --find-links /opt/wheels -o requirements/lock.txt
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
fi

find_links=()
for dir in ${PIP_FIND_LINKS:-} /opt/wheels; do
  [ -d "$dir" ] && find_links+=(--find-links "$dir")
done

echo "==> installing the locked dependencies (requirements/lock.txt)"
# Bytecode is compiled at install (uv does not by default): where PYTHONDONTWRITEBYTECODE is set, as in many
# containers and CI machines, Python would otherwise compile Airflow, pandas, torch, ... from source in every
# process. Measured on a 2-core machine with it set: importing what a task imports 9.4 -> 4.1 s per process,
# tests/test_cli.py + tests/dags/test_dag_import.py 23.9 -> 9.7 s, each demo DAG run 38-46 -> 24-29 s (the
# demo on a fresh clone 460 -> ~340 s); the fresh install takes ~50 s longer, the test suite is unchanged.
.venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python "${find_links[@]}" -r requirements/lock.txt
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
# The editable build leaves lightly_airflow.egg-info in the repo; run from here, Python would then see the
# package twice and Airflow would load its plugin twice. The installed metadata lives in .venv.
rm -rf lightly_airflow.egg-info
echo "==> .venv ready: $(.venv/bin/python -c 'import airflow, torch; print("airflow", airflow.__version__, "torch", torch.__version__)' 2>/dev/null)"
