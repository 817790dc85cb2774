"""Views that disagree: the defects of generated novel views that SV4D 2.0's 4D stage must tolerate (issue 23 part 4),
applied to clean multi-view videos so that their effect on the fit can be measured against the clean views.

Each novel view (never the input view, which is real footage) gets, drawn per view from one seed:

* a colour and exposure shift of the object: an exposure gain of ±`exposure_stops` and a per-channel gain of
  ±`colour_gain` (white balance), the white background kept;
* a blur: a Gaussian of σ in `blur_sigma_px` (training pixels of the video as given);
* a pose misalignment: the image moved as a camera rotated by `pose_error_deg` (about a random axis) would see it,
  the homography K·R·K⁻¹ about the image centre, while the view keeps its nominal camera (white fills the border);
* one view, `timing_view`, shows another moment: frame f shows frame f + `timing_offset` (clamped to the clip).

Masks go through the same warp and timing change (a generated view's silhouette moves with its pixels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.nerf.alignment import rotation_homography, rotation_matrix, warp_views


@dataclass(frozen=True)
class Degradation:
    """Strength of each defect (0 or an empty range switches it off) and the seed that draws them per view."""

    exposure_stops: float = 0.25
    colour_gain: float = 0.06
    blur_sigma_px: tuple[float, float] = (0.5, 1.2)
    pose_error_deg: tuple[float, float] = (2.0, 3.0)
    timing_view: int | None = -1  # index of the view from another moment (negative: from the end); None: none
    timing_offset: int = 2
    seed: int = 0


@dataclass(frozen=True)
class ViewDefects:
    """What one view received (for reports)."""

    exposure: float
    gains: tuple[float, float, float]
    blur_sigma_px: float
    rotation_deg: float
    axis: tuple[float, float, float]
    timing_offset: int


def draw_defects(num_views: int, config: Degradation) -> list[ViewDefects | None]:
    """Per view, the defects it gets (None for the input view, view 0)."""
    generator = torch.Generator().manual_seed(config.seed)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    timing = None if config.timing_view is None else config.timing_view % num_views
    if timing == 0:
        raise ValueError("the input view (view 0) is real footage: give timing_view a novel view")
    defects: list[ViewDefects | None] = [None]
    for view in range(1, num_views):
        exposure = 2.0 ** uniform(-config.exposure_stops, config.exposure_stops)
        gains = tuple(1.0 + uniform(-config.colour_gain, config.colour_gain) for _ in range(3))
        sigma = uniform(*config.blur_sigma_px) if config.blur_sigma_px else 0.0
        angle = uniform(*config.pose_error_deg) if config.pose_error_deg else 0.0
        axis = torch.nn.functional.normalize(torch.randn(3, generator=generator), dim=0)
        defects.append(ViewDefects(exposure, gains, sigma, angle, tuple(axis.tolist()),
                                   config.timing_offset if view == timing else 0))
    return defects


def misalignment_homography(cameras: OrbitCameras, width: int, height: int, angle_deg: float,
                            axis: tuple[float, float, float]) -> torch.Tensor:
    """(3, 3) pixel homography K·R·K⁻¹ of a camera rotated by `angle_deg` about `axis` (camera coordinates) around
    its own centre: how the image of the scene moves under that pose error (a pure rotation, so exact)."""
    rotation = rotation_matrix(torch.tensor(axis)[None] * angle_deg)[0]
    return rotation_homography(cameras, width, height, rotation).float()


def degrade(videos: torch.Tensor, masks: torch.Tensor, cameras: OrbitCameras,
            config: Degradation = Degradation()) -> tuple[torch.Tensor, torch.Tensor, list[ViewDefects | None]]:
    """Degraded copies of `videos` `(V, F, H, W, 3)` and `masks` `(V, F, H, W)` in [0, 1] (white background) seen from
    `cameras`, and what each view received; view 0 is returned unchanged."""
    num_views, num_frames, height, width = masks.shape
    cameras.check_count(num_views, "videos")
    defects = draw_defects(num_views, config)
    out_rgb, out_mask = [videos[0]], [masks[0]]
    for view in range(1, num_views):
        d = defects[view]
        frames = (torch.arange(num_frames) + d.timing_offset).clamp(max=num_frames - 1)
        rgb, alpha = videos[view, frames].permute(0, 3, 1, 2), masks[view, frames][:, None]
        shifted = (rgb * d.exposure * torch.tensor(d.gains)[:, None, None]).clamp(0, 1)
        rgb = alpha * shifted + (1 - alpha) * rgb  # the object's colours move, the white background stays
        if d.blur_sigma_px > 0:
            side = 2 * math.ceil(3 * d.blur_sigma_px) + 1
            stack = kornia.filters.gaussian_blur2d(torch.cat([rgb, alpha], 1), (side, side),
                                                   (d.blur_sigma_px, d.blur_sigma_px), border_type="replicate")
            rgb, alpha = stack[:, :3], stack[:, 3:]
        rgb, alpha = rgb.permute(0, 2, 3, 1), alpha[:, 0]
        if d.rotation_deg > 0:
            rgb, alpha = warp_views(rgb, alpha, misalignment_homography(cameras, width, height, d.rotation_deg, d.axis))
        out_rgb.append(rgb.clamp(0, 1))
        out_mask.append(alpha.clamp(0, 1))
    return torch.stack(out_rgb), torch.stack(out_mask), defects
