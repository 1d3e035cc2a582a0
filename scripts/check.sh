#!/usr/bin/env bash
# Static checks the test command runs before the suite: ruff on everything we ship and test,
# mypy (strict on the pure core, see [tool.mypy] in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> ruff"
.venv/bin/ruff check lightly_airflow tests dags benchmarks scripts
if [ "${LIGHTLY_SKIP_MYPY:-0}" != "1" ]; then
  echo "==> mypy"
  .venv/bin/mypy lightly_airflow
fi
