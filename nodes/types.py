"""Custom socket types of the pack (values are plain Python objects passed in-process)."""
from comfy_api.latest import io

# sv4d_lib.cameras.OrbitCameras: input view + V novel views (shared by sampling and the 4D fitter).
Cameras = io.Custom("SV4D2_CAMERAS")
# sv4d_lib.nerf field object returned by Fit 4D (canonical hash-grid NeRF + deformation MLP).
Field4D = io.Custom("SV4D2_FIELD")
