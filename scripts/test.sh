#!/usr/bin/env bash
# Set everything up from a fresh clone and run the whole test suite (what .ci/run calls).
# Starts moto (S3), fake-gcs-server (GCS) and Azurite (Azure Blob) on 127.0.0.1 and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
if [ ! -x .emulators/node_modules/.bin/azurite-blob ]; then
  echo "==> installing Azurite into .emulators/ (npm)"
  npm install --silent --no-fund --no-audit --prefix .emulators azurite@3.35.0 >/dev/null
fi

cleanup() { .venv/bin/python scripts/emulators.py stop || true; }
trap cleanup EXIT INT TERM
echo "==> starting storage emulators"
eval "$(.venv/bin/python scripts/emulators.py start s3 gcs azure)"

if ! command -v chromium >/dev/null 2>&1; then
  # The browser tests (tests/browser/) drive Debian's chromium; CI runs as root with Debian's registry.
  echo "==> installing chromium for the browser tests (apt)"
  if [ "$(id -u)" = 0 ]; then
    { apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }; } \
      || echo "    could not install chromium: the browser tests will be skipped"
  else
    echo "    not root: install chromium yourself, or the browser tests will be skipped"
  fi
fi

bash scripts/check.sh  # ruff + mypy; LIGHTLY_SKIP_MYPY=1 skips mypy
echo "==> running the test suite"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
