#!/usr/bin/env bash
# Installs everything the tests need (cached after the first run) and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`. `-rs` lists every skip with its reason
# (with CI set, a missing prerequisite fails instead: tests/prerequisites.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SHARED="$(dirname "$ROOT")/shared/reference"
if [ -n "${CI:-}" ] && [ ! -f "$SHARED/golden/MANIFEST.md" ]; then
  echo "[test] ERROR: the shared references (golden fixtures, key manifests, real scenes) are missing: put or link" \
       "the folder 'shared/reference' beside the clone, at $SHARED" >&2
  exit 1
fi
bash scripts/bootstrap_host.sh
bash scripts/install_test_tools.sh
exec .venv/bin/python -m pytest -rs "$@"
