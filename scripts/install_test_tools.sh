#!/usr/bin/env bash
# Tools that some tests drive from outside Python: Debian's Chromium (browser tests) and the Khronos glTF
# validator (npm). Best effort: a test whose tool is missing skips and says why.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "[tools] installing Debian chromium (browser tests)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[tools] chromium could not be installed; browser tests will skip"
fi
if command -v npm >/dev/null 2>&1 && [ ! -d "$ROOT/.cache/npm/node_modules/gltf-validator" ]; then
  echo "[tools] installing gltf-validator (npm) into .cache/npm"
  mkdir -p "$ROOT/.cache/npm"
  npm install --silent --prefix "$ROOT/.cache/npm" gltf-validator@2.0.0-dev.3.10 >/dev/null 2>&1 \
    || echo "[tools] gltf-validator could not be installed; the GLB validation test will skip"
fi
exit 0
