#!/usr/bin/env bash
# Tools that some tests drive from outside Python: Debian's Chromium (browser tests) and the Khronos glTF
# validator (npm). An install that is tried and fails stops this script with a message (exit 1). A tool that
# cannot be installed here (no root/apt, no npm) is an error when CI is set; otherwise a warning, and the tests
# that need it skip with the reason (pytest -rs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fail() { echo "[tools] ERROR: $*" >&2; exit 1; }
unavailable() {
  if [ -n "${CI:-}" ]; then fail "$* (CI is set: every test must run)"; fi
  echo "[tools] WARNING: $*; the tests that need it will skip" >&2
}

if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "[tools] installing Debian chromium (browser tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || fail "apt-get could not install chromium (browser tests); see the apt output above"
  else
    unavailable "chromium is not installed and cannot be installed here (needs root and apt-get): apt-get install chromium"
  fi
fi

if [ ! -d "$ROOT/.cache/npm/node_modules/gltf-validator" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "[tools] installing gltf-validator (npm) into .cache/npm"
    mkdir -p "$ROOT/.cache/npm"
    npm install --silent --no-audit --no-fund --prefix "$ROOT/.cache/npm" gltf-validator@2.0.0-dev.3.10 \
      || fail "npm could not install gltf-validator@2.0.0-dev.3.10 into .cache/npm (GLB validation tests)"
  else
    unavailable "npm is not installed, so the Khronos glTF validator cannot be: apt-get install nodejs npm"
  fi
fi
