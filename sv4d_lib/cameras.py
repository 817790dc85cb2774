"""Orbit cameras shared by the diffusion conditioning and the 4D fitter.

Convention (used everywhere in the pack):
* world: y up; the object sits at the origin;
* a camera at elevation e, azimuth a (degrees) and radius r sits at r·(cos e·sin a, sin e, cos e·cos a) and looks
  at the origin; azimuth 0 is the input view, azimuths grow counter-clockwise seen from above (+y);
* camera axes are OpenGL's: x right, y up, the camera looks along −z; `c2w` maps camera to world coordinates;
* angle lists follow the official SV4D 2.0 script: entry 0 is the input view, entries 1..V the novel views.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Official novel-view layouts of `scripts/sampling/simple_video_sample_4d2.py` (input view first).
AZIMUTHS_4V: tuple[float, ...] = (0.0, 60.0, 120.0, 180.0, 240.0)
AZIMUTHS_8V: tuple[float, ...] = (0.0, 30.0, 75.0, 120.0, 165.0, 210.0, 255.0, 300.0, 330.0)

DEFAULT_RADIUS = 2.0
# SV3D/SV4D train on Objaverse orbits rendered with a 33.8° field of view at camera distance 2
# (SV3D paper, §4 "Data"; SV4D and SV4D 2.0 reuse that render setup).
DEFAULT_FOV_DEG = 33.8


@dataclass(frozen=True)
class OrbitCameras:
    """The input view plus V novel views on one orbit (degrees, entry 0 = input view)."""

    elevations_deg: tuple[float, ...]
    azimuths_deg: tuple[float, ...]
    radius: float = DEFAULT_RADIUS
    fov_deg: float = DEFAULT_FOV_DEG

    def __post_init__(self) -> None:
        if len(self.elevations_deg) != len(self.azimuths_deg):
            raise ValueError(
                f"cameras need one elevation per azimuth: got {len(self.elevations_deg)} elevations and "
                f"{len(self.azimuths_deg)} azimuths (both lists include the input view first)"
            )
        if len(self.azimuths_deg) < 2:
            raise ValueError("cameras need the input view plus at least one novel view")
        bad = [e for e in self.elevations_deg if not -90.0 < e < 90.0]
        if bad:
            raise ValueError(f"elevations must lie strictly between -90 and 90 degrees, got {bad}")
        if self.radius <= 0 or not 0 < self.fov_deg < 180:
            raise ValueError(f"radius must be > 0 and fov in (0, 180) degrees, got {self.radius}, {self.fov_deg}")

    @property
    def num_views(self) -> int:
        """Number of novel views V (the input view is not counted)."""
        return len(self.azimuths_deg) - 1

    @classmethod
    def preset(cls, name: str, elevation_deg: float = 0.0) -> "OrbitCameras":
        """Official layouts: "4v" (SV4D 2.0, 4 novel views) or "8v" (SV4D 2.0 8-view model)."""
        azimuths = {"4v": AZIMUTHS_4V, "8v": AZIMUTHS_8V}.get(name)
        if azimuths is None:
            raise ValueError(f"unknown camera preset {name!r}; use '4v' or '8v'")
        return cls((float(elevation_deg),) * len(azimuths), azimuths)


def orbit_camera(
    elevation_deg: float, azimuth_deg: float, radius: float, fov_deg: float, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-to-world 4×4 and pinhole intrinsics 3×3 (float32) of one orbit camera.

    `fov_deg` is the vertical field of view; pixels are square and the principal point is the image centre.
    """
    if not -90.0 < elevation_deg < 90.0:
        raise ValueError(f"elevation must lie strictly between -90 and 90 degrees, got {elevation_deg}")
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    eye = torch.tensor(
        [math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)], dtype=torch.float64
    ) * radius
    z_axis = eye / eye.norm()  # the camera looks along −z, i.e. towards the origin
    x_axis = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), z_axis)
    x_axis = x_axis / x_axis.norm()
    y_axis = torch.linalg.cross(z_axis, x_axis)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x_axis, y_axis, z_axis, eye
    focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    intrinsics = torch.tensor(
        [[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    return c2w.float(), intrinsics.float()
