"""SV4D2 Cameras: the orbit of the input view plus the V novel views the model renders."""
from __future__ import annotations

import json

from comfy_api.latest import io

from sv4d_lib.cameras import LAYOUTS, OrbitCameras

from .common import with_widget_type
from .types import Cameras

CAMERA_WIDGET = "SV4D2_CAMERAS_EDITOR"
PRESETS = (*LAYOUTS, "custom")
DEFAULT_CAMERAS_JSON = json.dumps(
    {"elevations_deg": list(OrbitCameras.preset("4v").elevations_deg),
     "azimuths_deg": list(OrbitCameras.preset("4v").azimuths_deg)}
)
# ComfyUI-3D-Pack's orbit pose list: one [radius, elevation_deg, azimuth_deg, center_x, center_y, center_z] per view.
OrbitPoses = io.Custom("ORBIT_CAMPOSES")


def parse_cameras(text: str) -> OrbitCameras:
    """`{"elevations_deg": [...], "azimuths_deg": [...]}` (input view first) → OrbitCameras; clear errors."""
    try:
        raw = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"cameras is not valid JSON ({error}); expected e.g. {DEFAULT_CAMERAS_JSON}") from None
    if not isinstance(raw, dict) or set(raw) != {"elevations_deg", "azimuths_deg"}:
        raise ValueError(
            f"cameras must be a JSON object with exactly 'elevations_deg' and 'azimuths_deg' lists (input view "
            f"first), e.g. {DEFAULT_CAMERAS_JSON}"
        )
    lists = {}
    for key in ("elevations_deg", "azimuths_deg"):
        values = raw[key]
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise ValueError(f"cameras {key!r} must be a list of numbers (degrees), got {values!r}")
        lists[key] = tuple(float(v) for v in values)
    return OrbitCameras(lists["elevations_deg"], lists["azimuths_deg"]).require_novel_views()


def orbit_poses(cameras: OrbitCameras) -> list[list[float]]:
    """3D-Pack style poses of the input view and every novel view, orbit centre at the origin.

    Elevation is positive above the equator and azimuth grows from the input view as in `sv4d_lib.cameras`.
    """
    return [
        [cameras.radius, e, a, 0.0, 0.0, 0.0] for e, a in zip(cameras.elevations_deg, cameras.azimuths_deg)
    ]


class SV4D2Cameras(io.ComfyNode):
    """Picks the novel-view orbit: the official 4-view / 8-view layouts or a custom list."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2Cameras",
            display_name="SV4D2 Cameras",
            category="SV4D2/conditioning",
            description="Cameras of the input view and the novel views (degrees, input view first).",
            inputs=[
                io.Combo.Input(
                    "preset", options=list(PRESETS), default="4v",
                    tooltip="4v: official 4-view orbit (azimuths 60/120/180/240° from the input view), for the "
                    "4-view model. 8v: official 8-view orbit (30/75/…/330°), for the 8-view model. dense: both "
                    "merged (12 views; sample 4v and 8v separately and merge them with SV4D2 Merge Views; use it to "
                    "render or plan). ortho_elevated: 90/180/270° on the input's ring and five views 30° higher "
                    "every 72°, for the 8-view model. custom: the 'cameras' JSON below.",
                ),
                io.Float.Input(
                    "elevation_deg", default=0.0, min=-89.0, max=89.0, step=0.5,
                    tooltip="Elevation of the input view for the presets (degrees above the object's equator; "
                    "the official default is 0): every view of 4v/8v/dense, the ring of ortho_elevated (its upper "
                    "views sit 30° higher). Ignored for custom.",
                ),
                with_widget_type(io.String.Input(
                    "cameras", default=DEFAULT_CAMERAS_JSON, multiline=True, socketless=True,
                    tooltip='Custom cameras (preset "custom"): {"elevations_deg": [...], "azimuths_deg": [...]}, '
                    "V + 1 entries each, input view first; azimuths in degrees counter-clockwise seen from above.",
                ), CAMERA_WIDGET),
            ],
            outputs=[
                Cameras.Output(display_name="cameras", tooltip="Orbit cameras (input view + V novel views)."),
                OrbitPoses.Output(
                    display_name="orbit_poses",
                    tooltip="ComfyUI-3D-Pack style poses: one [radius, elevation_deg, azimuth_deg, 0, 0, 0] per view, "
                    "input view first.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, preset: str, cameras: str) -> bool | str:
        # declaring `preset` here turns off ComfyUI's own combo check for it, so it is checked here
        if preset is not None and preset not in PRESETS:
            return f"unknown camera preset {preset!r}; use one of {list(PRESETS)}"
        if preset == "custom" and cameras is not None:
            try:
                parse_cameras(cameras)
            except ValueError as error:
                return str(error)
        return True

    @classmethod
    def execute(cls, preset: str, elevation_deg: float, cameras: str) -> io.NodeOutput:
        orbit = parse_cameras(cameras) if preset == "custom" else OrbitCameras.preset(preset, elevation_deg)
        return io.NodeOutput(orbit, orbit_poses(orbit))


NODES = [SV4D2Cameras]
