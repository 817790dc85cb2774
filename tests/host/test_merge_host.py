"""SV4D2 Merge Views inside real ComfyUI: a 4-view and an 8-view pass of the synthetic scene merge into the scene
seen from the 12 cameras of both layouts, and the merged set feeds Fit 4D."""
from __future__ import annotations

import pytest
import torch

from sv4d_lib.cameras import AZIMUTHS_4V, AZIMUTHS_8V

from .inprocess import NodeFailed

FRAMES, SIZE = 3, 24
DENSE = sorted(set(AZIMUTHS_4V) | set(AZIMUTHS_8V))


def cameras_node(preset: str) -> dict:
    return {"class_type": "SV4D2Cameras", "inputs": {"preset": preset, "elevation_deg": 10.0,
                                                     "cameras": '{"elevations_deg": [0, 0], "azimuths_deg": [0, 90]}'}}


def scene_node(cameras: str) -> dict:
    return {"class_type": "SV4D2SyntheticScene",
            "inputs": {"cameras": [cameras, 0], "frames": FRAMES, "width": SIZE, "height": SIZE}}


def merge_prompt() -> dict:
    return {
        "cams4": cameras_node("4v"), "cams8": cameras_node("8v"),
        "scene4": scene_node("cams4"), "scene8": scene_node("cams8"),
        "merge": {"class_type": "SV4D2MergeViews",
                  "inputs": {"multiview_1": ["scene4", 0], "cameras_1": ["cams4", 0], "multiview_2": ["scene8", 0],
                             "cameras_2": ["cams8", 0], "frames": "must match"}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["merge", 2]}},
    }


def test_4_view_and_8_view_passes_merge_into_the_12_dense_views(comfy_host):
    prompt = merge_prompt()
    prompt["direct"] = scene_node("merge")
    prompt["direct"]["inputs"]["cameras"] = ["merge", 1]
    prompt["preview"] = {"class_type": "PreviewImage", "inputs": {"images": ["direct", 0]}}
    result = comfy_host.run(prompt)
    images, cameras, report = result.outputs["merge"]
    assert cameras.azimuths_deg == tuple(DENSE) and cameras.elevations_deg == (10.0,) * 12
    assert tuple(images.shape) == (12 * FRAMES, SIZE, SIZE, 3)
    # the scene rendered from the merged cameras directly: the same images, view for view
    torch.testing.assert_close(images, result.outputs["direct"][0], rtol=0, atol=1e-5)
    assert "duplicate cameras dropped: pass 2 view 3 (10°, 120°)" in report
    assert result.ui["show"]["text"][0] == report


def test_the_merged_views_feed_fit_4d(comfy_host):
    prompt = merge_prompt()
    prompt["fit"] = {"class_type": "SV4D2Fit4D",
                     "inputs": {"images": ["merge", 0], "cameras": ["merge", 1], "stage": 1, "preset": "draft",
                                "iterations": 5, "resolution": SIZE, "seed": 0}}
    prompt["render"] = {"class_type": "SV4D2Render4D", "inputs": {"field": ["fit", 0], "cameras": ["merge", 1],
                                                                  "frames": 0, "width": SIZE, "height": SIZE}}
    prompt["preview"] = {"class_type": "PreviewImage", "inputs": {"images": ["render", 0]}}
    images, _ = comfy_host.run(prompt).outputs["render"]
    assert tuple(images.shape) == (12 * FRAMES, SIZE, SIZE, 3)


def test_a_pass_without_its_cameras_is_a_clear_error(comfy_host):
    prompt = merge_prompt()
    prompt["merge"]["inputs"]["multiview_3"] = ["scene8", 0]
    with pytest.raises(NodeFailed, match="pass 3 has no cameras_3"):
        comfy_host.run(prompt)


def test_schema(comfy_host):
    info = comfy_host.nodes.NODE_CLASS_MAPPINGS["SV4D2MergeViews"].GET_NODE_INFO_V1()
    assert info["display_name"] == "SV4D2 Merge Views" and info["category"] == "SV4D2/4d"
    assert set(info["input"]["required"]) == {"multiview_1", "cameras_1", "multiview_2", "cameras_2", "frames"}
    assert set(info["input"]["optional"]) == {"multiview_3", "cameras_3", "multiview_4", "cameras_4", "input_frames"}
    assert info["output"] == ["IMAGE", "SV4D2_CAMERAS", "STRING"]
    for name, value in {**info["input"]["required"], **info["input"]["optional"]}.items():
        assert value[1].get("tooltip"), f"input {name} has no tooltip"
