"""SV4D2 Cameras inside real ComfyUI: presets, custom JSON, 3D-Pack orbit poses, schema and validation errors."""
from __future__ import annotations

import json

import pytest

from sv4d_lib.cameras import AZIMUTHS_4V, AZIMUTHS_8V, OrbitCameras

from .inprocess import NodeFailed


def cameras_prompt(preset: str, cameras: str | None = None, elevation: float = 0.0) -> dict:
    inputs = {"preset": preset, "elevation_deg": elevation}
    if cameras is not None:
        inputs["cameras"] = cameras
    else:
        inputs["cameras"] = json.dumps({"elevations_deg": [0.0, 0.0], "azimuths_deg": [0.0, 90.0]})
    return {
        "1": {"class_type": "SV4D2Cameras", "inputs": inputs},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    }


@pytest.mark.parametrize("preset, azimuths", [("4v", AZIMUTHS_4V), ("8v", AZIMUTHS_8V)])
def test_presets_are_the_official_orbits(comfy_host, preset, azimuths):
    result = comfy_host.run(cameras_prompt(preset, elevation=10.0))
    cameras, poses = result.outputs["1"]
    assert cameras == OrbitCameras((10.0,) * len(azimuths), azimuths)
    assert poses == [[cameras.radius, 10.0, a, 0.0, 0.0, 0.0] for a in azimuths]


def test_custom_cameras_follow_the_json(comfy_host):
    text = json.dumps({"elevations_deg": [5, 0, 20], "azimuths_deg": [0, 120, 240]})
    cameras, poses = comfy_host.run(cameras_prompt("custom", text)).outputs["1"]
    assert cameras.elevations_deg == (5.0, 0.0, 20.0) and cameras.azimuths_deg == (0.0, 120.0, 240.0)
    assert cameras.num_novel_views == 2 and len(poses) == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"elevations_deg": [0, 0], "azimuths_deg": [0, 60, 120]}', "one elevation per azimuth"),
        ('{"elevations_deg": [0, 0]}', "exactly 'elevations_deg' and 'azimuths_deg'"),
        ("not json", "not valid JSON"),
        ('{"elevations_deg": [0, "x"], "azimuths_deg": [0, 60]}', "list of numbers"),
    ],
)
def test_bad_custom_cameras_fail_validation(comfy_host, text, message):
    ok, _, node_errors = comfy_host.validate(cameras_prompt("custom", text))
    assert not ok and message in json.dumps(node_errors)
    with pytest.raises(NodeFailed, match="prompt rejected"):
        comfy_host.run(cameras_prompt("custom", text))


def test_unknown_preset_fails_validation(comfy_host):
    ok, _, node_errors = comfy_host.validate(cameras_prompt("5v"))
    assert not ok and "unknown camera preset" in json.dumps(node_errors)


def test_schema_exposes_the_camera_editor_widget(comfy_host):
    info = comfy_host.nodes.NODE_CLASS_MAPPINGS["SV4D2Cameras"].GET_NODE_INFO_V1()
    spec = info["input"]["required"]["cameras"]
    assert spec[0] == "STRING" and spec[1]["widgetType"] == "SV4D2_CAMERAS_EDITOR" and spec[1]["socketless"] is True
    assert info["output"] == ["SV4D2_CAMERAS", "ORBIT_CAMPOSES"]
    assert info["display_name"] == "SV4D2 Cameras" and info["category"].startswith("SV4D2/")
    for name, value in {**info["input"]["required"], **info["input"].get("optional", {})}.items():
        assert value[1].get("tooltip"), f"input {name} has no tooltip"


def test_the_editor_route_serves_every_preset_layout_with_its_passes(comfy_server):
    presets = comfy_server.get("/sv4d2/camera_presets")
    assert list(presets) == ["4v", "8v", "dense", "ortho_elevated"]
    for name, layout in presets.items():
        cameras = OrbitCameras.preset(name)  # served with the input view at elevation 0
        assert (layout["elevations_deg"], layout["azimuths_deg"]) == (list(cameras.elevations_deg),
                                                                      list(cameras.azimuths_deg))
        assert len(layout["sampled_by"]) == cameras.num_views_total
    assert [p["label"] for p in presets.values()] == ["4-view official", "8-view official", "dense (both)",
                                                      "orthogonal + elevated"]
    dense = presets["dense"]
    assert dense["passes"] == ["4v", "8v"] and dense["sampled_by"][dense["azimuths_deg"].index(120.0)] == ["4v", "8v"]
    assert dense["sampled_by"][dense["azimuths_deg"].index(60.0)] == ["4v"]
