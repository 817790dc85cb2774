#!/usr/bin/env bash
# Runs tests against a named test host (scripts/bootstrap_host.sh builds it): its own Python and ComfyUI.
#
#   bash scripts/test_host.sh 0.8.0 tests/browser -x      # extra arguments go to pytest
#
# README's test command (scripts/test.sh) is the default host, 0.3.75; CI's matrix (.ci/run) uses this for 0.8.0.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NAME=${1:?usage: scripts/test_host.sh HOST [pytest arguments]  (HOST: 0.3.75 or 0.8.0)}
shift
bash scripts/bootstrap_host.sh "$NAME"
bash scripts/install_test_tools.sh
case "$NAME" in
  0.3.75) PYTHON=.venv/bin/python COMFY=.host/ComfyUI ;;
  *) PYTHON=.host/$NAME/venv/bin/python COMFY=.host/$NAME/ComfyUI ;;
esac
export COMFYUI_DIR="$ROOT/$COMFY"
exec "$PYTHON" -m pytest -rs "$@"
