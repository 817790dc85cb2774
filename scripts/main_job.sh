#!/usr/bin/env bash
# Installs the host (cached) and runs the main job: the full pipeline on the sample video, headless.
# Outputs: outputs/main_job/ (per-view mp4s, refined views, the animated GLB).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/bootstrap_host.sh
exec .venv/bin/python scripts/main_job.py "$@"
