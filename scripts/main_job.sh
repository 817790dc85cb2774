#!/usr/bin/env bash
# Installs the host (cached) and runs the main job headless: the 4D fit of the real scene shipped in assets/
# (animated GLB + preview video + held-out score: real results), then the SV4D 2.0 diffusion pipeline on the
# sample video (a labelled smoke run with a tiny random checkpoint unless the real one is installed).
# Outputs: outputs/main_job/real_scene/ and outputs/main_job/smoke_run/ (or pipeline/); a summary ends the log.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/bootstrap_host.sh
exec .venv/bin/python scripts/main_job.py "$@"
