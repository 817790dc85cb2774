"""Orbit cameras: the one camera type of the pack (diffusion conditioning, CFG grids, 4D fitter, renderer, exports).

Convention (used everywhere in the pack):
* world: y up; the object sits at the origin;
* a camera at elevation e, azimuth a (degrees) and radius r sits at r·(cos e·sin a, sin e, cos e·cos a) and looks
  at the origin; azimuth 0 is the input view, azimuths grow counter-clockwise seen from above (+y);
* camera axes are OpenGL's: x right, y up, the camera looks along −z; `c2w` maps camera to world coordinates;
* pinhole intrinsics with square pixels, `fov_deg` vertical, principal point at the image centre; pixel (row i,
  column j) has its centre at (j + 0.5, i + 0.5);
* for sampling, angle lists follow the official SV4D 2.0 script: entry 0 is the input view, entries 1.. the novel
  views (`num_novel_views` counts those; `num_views_total` counts every camera).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Official novel-view layouts of `scripts/sampling/simple_video_sample_4d2.py` (input view first).
AZIMUTHS_4V: tuple[float, ...] = (0.0, 60.0, 120.0, 180.0, 240.0)
AZIMUTHS_8V: tuple[float, ...] = (0.0, 30.0, 75.0, 120.0, 165.0, 210.0, 255.0, 300.0, 330.0)

# Camera planning layouts (SV4D2 Cameras presets, the camera editor's buttons): per camera (elevation above the input
# view's, azimuth), input view first. "dense" is what SV4D2 Merge Views makes of a 4-view and an 8-view pass (120° is
# in both); "ortho_elevated" is one 8-view pass: the side and back views on the input's ring (the near-orthogonal
# views the 4D fit samples together) and five views 30° higher, every 72°, for the top of the shape.
LAYOUTS: dict[str, tuple[tuple[float, float], ...]] = {
    "4v": tuple((0.0, a) for a in AZIMUTHS_4V),
    "8v": tuple((0.0, a) for a in AZIMUTHS_8V),
    "dense": tuple((0.0, a) for a in sorted(set(AZIMUTHS_4V) | set(AZIMUTHS_8V))),
    "ortho_elevated": ((0.0, 0.0), (0.0, 90.0), (0.0, 180.0), (0.0, 270.0),
                       *((30.0, 36.0 + 72.0 * k) for k in range(5))),
}
LAYOUT_LABELS = {"4v": "4-view official", "8v": "8-view official", "dense": "dense (both)",
                 "ortho_elevated": "orthogonal + elevated"}
# The model variants whose sampling passes make each layout (several: sample each, then SV4D2 Merge Views).
LAYOUT_PASSES = {"4v": ("4v",), "8v": ("8v",), "dense": ("4v", "8v"), "ortho_elevated": ("8v",)}

DEFAULT_RADIUS = 2.0
# SV3D/SV4D train on Objaverse orbits rendered with a 33.8° field of view at camera distance 2
# (SV3D paper, §4 "Data"; SV4D and SV4D 2.0 reuse that render setup).
DEFAULT_FOV_DEG = 33.8


@dataclass(frozen=True)
class OrbitCameras:
    """Cameras on an orbit around the origin (degrees); entry 0 is the input view where the order matters."""

    elevations_deg: tuple[float, ...]
    azimuths_deg: tuple[float, ...]
    radius: float = DEFAULT_RADIUS
    fov_deg: float = DEFAULT_FOV_DEG

    def __post_init__(self) -> None:
        # accept any sequence of numbers; store float tuples so instances hash and compare by value
        object.__setattr__(self, "elevations_deg", tuple(float(e) for e in self.elevations_deg))
        object.__setattr__(self, "azimuths_deg", tuple(float(a) for a in self.azimuths_deg))
        object.__setattr__(self, "radius", float(self.radius))
        object.__setattr__(self, "fov_deg", float(self.fov_deg))
        if len(self.elevations_deg) != len(self.azimuths_deg):
            raise ValueError(
                f"cameras need one elevation per azimuth: got {len(self.elevations_deg)} elevations and "
                f"{len(self.azimuths_deg)} azimuths (both lists include the input view first)"
            )
        if not self.azimuths_deg:
            raise ValueError("cameras need at least one view (elevation and azimuth lists are empty)")
        angles = self.elevations_deg + self.azimuths_deg
        if not all(math.isfinite(x) for x in angles):
            raise ValueError(f"camera angles must be finite numbers, got elevations {list(self.elevations_deg)} "
                             f"and azimuths {list(self.azimuths_deg)}")
        bad = [e for e in self.elevations_deg if not -90.0 < e < 90.0]
        if bad:
            raise ValueError(f"elevations must lie strictly between -90 and 90 degrees, got {bad}")
        if not (math.isfinite(self.radius) and self.radius > 0) or not 0 < self.fov_deg < 180:
            raise ValueError(f"radius must be > 0 and fov in (0, 180) degrees, got {self.radius}, {self.fov_deg}")

    # ---- counts and subsets -------------------------------------------------------------------------------------
    @property
    def num_views_total(self) -> int:
        """Number of cameras, the input view included."""
        return len(self.azimuths_deg)

    @property
    def num_novel_views(self) -> int:
        """Number of novel views V (every camera but the input view, entry 0)."""
        return len(self.azimuths_deg) - 1

    def require_novel_views(self) -> "OrbitCameras":
        """These cameras, checked to hold the input view plus at least one novel view (what sampling needs)."""
        if self.num_novel_views < 1:
            raise ValueError("cameras need the input view plus at least one novel view")
        return self

    def select(self, indices: Sequence[int]) -> "OrbitCameras":
        """The cameras at `indices`, in that order (same radius and fov)."""
        return OrbitCameras(tuple(self.elevations_deg[i] for i in indices),
                            tuple(self.azimuths_deg[i] for i in indices), self.radius, self.fov_deg)

    def check_count(self, count: int, what: str) -> None:
        """Raise unless there is one camera per view of `what` (e.g. "videos" with `count` views)."""
        if count != self.num_views_total:
            raise ValueError(
                f"cameras/views mismatch: {what} has {count} views but the cameras have {self.num_views_total} "
                "(input view included); pass one camera per view, input view first"
            )

    @classmethod
    def preset(cls, name: str, elevation_deg: float = 0.0) -> "OrbitCameras":
        """A layout of `LAYOUTS` with the input view at `elevation_deg`: "4v" / "8v" (the official 4-view / 8-view
        orbits, every view at that elevation), "dense" (both merged) or "ortho_elevated" (views 30° higher too)."""
        layout = LAYOUTS.get(name)
        if layout is None:
            raise ValueError(f"unknown camera preset {name!r}; use one of {', '.join(map(repr, LAYOUTS))}")
        highest = max(offset for offset, _ in layout)
        if highest and elevation_deg + highest >= 90.0:
            raise ValueError(f"the {name} preset puts views {highest:g}° above the input view: its elevation must "
                             f"stay below {90.0 - highest:g}°, got {elevation_deg:g}°")
        return cls(tuple(elevation_deg + offset for offset, _ in layout), tuple(a for _, a in layout))

    @staticmethod
    def preset_passes(name: str) -> tuple[tuple[str, ...], ...]:
        """Per camera of preset `name`, input view first, the model variants ("4v", "8v") whose passes sample it: a
        one-pass layout's model for every camera; for merged layouts, the passes whose own layout holds it."""
        passes = LAYOUT_PASSES[name]
        return tuple(tuple(v for v in passes if len(passes) == 1 or view in LAYOUTS[v]) for view in LAYOUTS[name])

    # ---- geometry -----------------------------------------------------------------------------------------------
    def view_directions(self) -> torch.Tensor:
        """Unit vectors (N, 3) float64 from the origin towards each camera."""
        e = torch.tensor(self.elevations_deg, dtype=torch.float64).deg2rad()
        a = torch.tensor(self.azimuths_deg, dtype=torch.float64).deg2rad()
        return torch.stack((e.cos() * a.sin(), e.sin(), e.cos() * a.cos()), dim=-1)

    def c2w(self) -> torch.Tensor:
        """Camera-to-world matrices (N, 4, 4) float32 (OpenGL axes: the camera looks along −z, at the origin)."""
        z_axis = self.view_directions()  # −(viewing direction)
        up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand_as(z_axis)
        x_axis = F.normalize(torch.linalg.cross(up, z_axis), dim=-1)
        y_axis = torch.linalg.cross(z_axis, x_axis)
        c2w = torch.eye(4, dtype=torch.float64).repeat(self.num_views_total, 1, 1)
        c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = x_axis, y_axis, z_axis, z_axis * self.radius
        return c2w.float()

    def focal(self, height: int) -> float:
        """Focal length in pixels for images `height` pixels high (the fov is vertical)."""
        return 0.5 * height / math.tan(math.radians(self.fov_deg) / 2)

    def intrinsics(self, width: int, height: int) -> torch.Tensor:
        """Pinhole matrix (3, 3) float32 shared by every camera: square pixels, principal point at the centre."""
        focal = self.focal(height)
        return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])

    def rays(self, width: int, height: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Origins and unit directions (N, H·W, 3) through pixel centres, row-major from the top-left pixel."""
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}×{height}")
        c2w, focal = self.c2w(), self.focal(height)
        v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        # OpenGL camera: x right, y up, looking along −z; image rows grow downwards
        dirs_cam = torch.stack(((u - width / 2) / focal, -(v - height / 2) / focal, -torch.ones_like(u)), dim=-1)
        dirs = F.normalize(dirs_cam.reshape(1, -1, 3) @ c2w[:, :3, :3].transpose(1, 2), dim=-1)
        origins = c2w[:, None, :3, 3].expand_as(dirs)
        return origins.to(device).contiguous(), dirs.to(device).contiguous()

    def project(self, points: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel coordinates (N, P, 2) as (column, row) of world points (P, 3) in every view, and depths (N, P).

        Depth is the distance along the viewing axis; points behind a camera get depth ≤ 0.
        """
        c2w = self.c2w().to(points.device, points.dtype)
        cam = (points[None] - c2w[:, None, :3, 3]) @ c2w[:, :3, :3]  # world → camera (rotation transposed)
        depth = -cam[..., 2]
        focal, safe = self.focal(height), depth.clamp(min=1e-6)
        pixels = torch.stack((focal * cam[..., 0] / safe + width / 2, -focal * cam[..., 1] / safe + height / 2), -1)
        return pixels, depth
