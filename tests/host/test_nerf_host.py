"""The 4D nodes inside real ComfyUI: synthetic scene → Fit 4D → Render 4D / Metrics 4D / Export 4D Mesh → Preview3D."""
from __future__ import annotations

import pygltflib
import pytest

from .inprocess import NodeFailed

FRAMES, SIZE = 3, 24


def graph(iterations: int = 30, stage: int = 1) -> dict:
    return {
        "cams": {"class_type": "SV4D2Cameras", "inputs": {"preset": "4v", "elevation_deg": 10.0,
                                                          "cameras": '{"elevations_deg": [0, 0], "azimuths_deg": [0, 90]}'}},
        "scene": {"class_type": "SV4D2SyntheticScene",
                  "inputs": {"cameras": ["cams", 0], "frames": FRAMES, "width": SIZE, "height": SIZE}},
        "fit": {"class_type": "SV4D2Fit4D",
                "inputs": {"images": ["scene", 0], "cameras": ["cams", 0], "masks": ["scene", 1], "stage": 1,
                           "preset": "draft", "iterations": iterations, "resolution": SIZE, "seed": 0}},
        "render": {"class_type": "SV4D2Render4D",
                   "inputs": {"field": ["fit", 0], "cameras": ["cams", 0], "frames": 0, "width": SIZE,
                              "height": SIZE}},
        "metrics": {"class_type": "SV4D2Metrics4D", "inputs": {"images": ["render", 0], "reference": ["scene", 0]}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["metrics", 0]}},
        "refit": {"class_type": "SV4D2Fit4D",
                  "inputs": {"images": ["render", 0], "cameras": ["cams", 0], "stage": stage, "preset": "draft",
                             "iterations": 5,
                             "resolution": SIZE, "seed": 1, "init_field": ["fit", 0]}},
        "export": {"class_type": "SV4D2Export4DMesh",
                   "inputs": {"field": ["refit", 0], "filename_prefix": "sv4d2/test 4d", "frames": 0,
                              "mesh_resolution": 32, "fps": 12.0, "density_level": 10.0}},
        "view": {"class_type": "Preview3D", "inputs": {"model_file": ["export", 0]}},
    }


def test_fit_render_metrics_export_graph(comfy_host):
    result = comfy_host.run(graph())
    images, alpha = result.outputs["render"]
    assert tuple(images.shape) == (5 * FRAMES, SIZE, SIZE, 3) and tuple(alpha.shape) == (5 * FRAMES, SIZE, SIZE)
    report, psnr, ssim = result.outputs["metrics"]
    assert "PSNR" in report and psnr > 10.0 and 0.0 < ssim <= 1.0
    model_file = result.outputs["export"][0]
    assert model_file.startswith("sv4d2/") and model_file.endswith(".glb")
    path = comfy_host.output_dir / model_file
    gltf = pygltflib.GLTF2().load(str(path))
    assert len(gltf.meshes[0].primitives[0].targets) == FRAMES and gltf.animations
    assert (path.parent / f"{path.stem.rstrip('_')}_turntable.mp4").stat().st_size > 0  # exported mesh preview
    assert "MB" in result.outputs["export"][1]  # the report gives the file size
    assert result.ui["view"]["result"][0] == model_file  # core Preview3D loads it from the output folder


def test_fit_rejects_mismatched_cameras(comfy_host):
    prompt = graph()
    prompt["cams2"] = {"class_type": "SV4D2Cameras", "inputs": {"preset": "8v", "elevation_deg": 0.0,
                                                               "cameras": prompt["cams"]["inputs"]["cameras"]}}
    prompt["fit"]["inputs"]["cameras"] = ["cams2", 0]
    with pytest.raises(NodeFailed, match="multiple of"):
        comfy_host.run({k: prompt[k] for k in ("cams", "cams2", "scene", "fit", "render", "metrics", "show")})


def test_stage_two_without_field_is_a_clear_error(comfy_host):
    prompt = graph(stage=2)
    del prompt["refit"]["inputs"]["init_field"]
    with pytest.raises(NodeFailed, match="stage 2 refits a fitted field: connect .* to `init_field`"):
        comfy_host.run(prompt)
