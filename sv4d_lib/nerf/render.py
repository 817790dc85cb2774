"""Rays of orbit cameras, stratified sampling inside the scene box, occupancy culling and alpha compositing.

Plain torch on dense `[R, S]` buffers (nerfacc's samplers are CUDA-only, nerf4d.md §2): only samples in occupied
cells reach the network, the rest keep σ = 0, so empty space costs one grid lookup.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..cameras import OrbitCameras

if TYPE_CHECKING:
    from .field import DynamicNeRF

DEFAULT_SAMPLES = 64


def camera_rays(
    elevation_deg: float, azimuth_deg: float, radius: float, fov_deg: float, width: int, height: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions (H·W, 3) through pixel centres, row-major from the top-left pixel."""
    origins, dirs = OrbitCameras((elevation_deg,), (azimuth_deg,), radius, fov_deg).rays(width, height, device)
    return origins[0], dirs[0]


def project(points: torch.Tensor, elevation_deg: float, azimuth_deg: float, radius: float, fov_deg: float,
            width: int, height: int) -> torch.Tensor:
    """Pixel coordinates (N, 2) as (column, row) of world points (N, 3) in an orbit view (pixel centres at +0.5)."""
    return OrbitCameras((elevation_deg,), (azimuth_deg,), radius, fov_deg).project(points, width, height)[0][0]


def aabb_intersect(origins: torch.Tensor, dirs: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test against `[−bound, bound]³`: near/far distances (R,); a ray misses where far <= near."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-bound - origins) * inv, (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    return near, far


def composite(
    sigma: torch.Tensor, rgb: torch.Tensor, depths: torch.Tensor, delta: torch.Tensor, background: float = 1.0
) -> dict[str, torch.Tensor]:
    """Volume rendering of `[R, S]` samples: T = Π(1 − α), w = α·T, colour over a constant background."""
    alpha = 1.0 - torch.exp(-sigma * delta)
    transmittance = torch.cumprod(torch.cat((torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10), dim=1), dim=1)
    weights = alpha * transmittance[:, :-1]
    acc = weights.sum(dim=1)
    return {
        "rgb": (weights[..., None] * rgb).sum(dim=1) + (1.0 - acc[:, None]) * background,
        "acc": acc,
        "depth": (weights * depths).sum(dim=1) / acc.clamp(min=1e-6),
    }


def render_rays(
    field: DynamicNeRF,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    times: torch.Tensor,
    num_samples: int = DEFAULT_SAMPLES,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Render rays (R, 3) at times (R,): `rgb` (R, 3) on white, `acc` (R,), `depth` (R,, expected hit distance).

    With a generator the samples are jittered inside their bins (training); without, bin centres (evaluation).
    """
    near, far = aabb_intersect(origins, dirs, field.bound)
    hit = far > near
    far = torch.where(hit, far, near)
    delta = (far - near) / num_samples
    bins = torch.arange(num_samples, device=origins.device, dtype=origins.dtype)
    if generator is not None:
        bins = bins + torch.rand(origins.shape[0], num_samples, generator=generator).to(origins.device)
    else:
        bins = (bins + 0.5).expand(origins.shape[0], -1)
    depths = near[:, None] + bins * delta[:, None]
    points = (origins[:, None] + dirs[:, None] * depths[..., None]).reshape(-1, 3)
    occupied = hit[:, None].expand(-1, num_samples).reshape(-1) & field.occupancy.occupied(points)
    sample_times = times[:, None].expand(-1, num_samples).reshape(-1)
    if points.is_cuda:  # dense evaluation: compaction would cost a host sync, the GPU has throughput to spare
        sigma, rgb = field(points, sample_times)
        sigma = sigma * occupied
    else:  # CPU: evaluate occupied samples only, the main saving of the occupancy grid
        keep = occupied.nonzero().squeeze(1)
        sigma_kept, rgb_kept = field(points[keep], sample_times[keep])
        sigma = sigma_kept.new_zeros(points.shape[0]).index_put((keep,), sigma_kept)
        rgb = rgb_kept.new_zeros(points.shape[0], 3).index_put((keep,), rgb_kept)
    return composite(
        sigma.view(-1, num_samples), rgb.view(-1, num_samples, 3), depths, delta[:, None].expand_as(depths)
    )


def surface_normals(field: DynamicNeRF, points: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Unit outward normals `−∇σ/‖∇σ‖` (N, 3) at observation-space points, detached (they only weight losses).

    The gradient flows through the deformation, so it is the normal of the deformed surface at that time.
    """
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(field.density(x, times).sum(), x)
    return -F.normalize(grad, dim=-1)


@torch.no_grad()
def render_view(
    field: DynamicNeRF,
    elevation_deg: float,
    azimuth_deg: float,
    t: float,
    width: int,
    height: int,
    num_samples: int = DEFAULT_SAMPLES,
    chunk: int = 16384,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB (H, W, 3) on white and alpha (H, W) of one orbit view at time `t` ∈ [0, 1]."""
    if width < 1 or height < 1:
        raise ValueError(f"render size must be positive, got {width}×{height}")
    if not (0.0 <= t <= 1.0) or math.isnan(t):
        raise ValueError(f"t must lie in [0, 1] (frame / (num_frames − 1)), got {t}")
    origins, dirs = camera_rays(elevation_deg, azimuth_deg, field.radius, field.fov_deg, width, height, field.device)
    times = torch.full((origins.shape[0],), float(t), device=field.device)
    rgb, acc = [], []
    for start in range(0, origins.shape[0], chunk):
        out = render_rays(field, origins[start:start + chunk], dirs[start:start + chunk], times[start:start + chunk],
                          num_samples)
        rgb.append(out["rgb"])
        acc.append(out["acc"])
    return torch.cat(rgb).view(height, width, 3).clamp(0, 1), torch.cat(acc).view(height, width).clamp(0, 1)


def render_videos(
    field: DynamicNeRF,
    elevations_deg: list[float],
    azimuths_deg: list[float],
    num_frames: int,
    width: int,
    height: int,
    callback: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-view video (V, F, H, W, 3) and alpha (V, F, H, W) at t = f / (num_frames − 1); `callback` after each."""
    if len(elevations_deg) != len(azimuths_deg):
        raise ValueError(f"got {len(elevations_deg)} elevations but {len(azimuths_deg)} azimuths; pass one per view")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rgb, alpha = [], []
    for elevation, azimuth in zip(elevations_deg, azimuths_deg):
        for f in range(num_frames):
            image, opacity = render_view(field, elevation, azimuth, f / max(num_frames - 1, 1), width, height)
            rgb.append(image)
            alpha.append(opacity)
            if callback is not None:
                callback()
    shape = (len(azimuths_deg), num_frames)
    return torch.stack(rgb).view(*shape, height, width, 3), torch.stack(alpha).view(*shape, height, width)
