#!/usr/bin/env bash
# Set everything up from a fresh clone and run the example DAG end to end on local demo images.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
