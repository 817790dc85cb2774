"""Volume rendering of a dynamic field: stratified samples in the scene cube, occupancy culling, compositing.

Plain torch on dense `[R, S]` buffers (nerfacc's samplers are CUDA-only, nerf4d.md §2): only samples in occupied
cells (per-frame visual hull ∩ density grid, `occupancy.py`) reach the network, the rest keep σ = 0, so empty space
costs one grid lookup. Rays come from `OrbitCameras`.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..cameras import OrbitCameras
from .field import DynamicNeRF

DEFAULT_SAMPLES = 64


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


def _occupied_field(
    field: DynamicNeRF, points: torch.Tensor, times: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Density (N,) and colour (N, 3) of points (N, 3) at times (N,); zero where culled or not a candidate."""
    occupied = candidates & field.occupancy.occupied(points, times)
    if points.is_cuda:  # dense evaluation: compaction would cost a host sync, the GPU has throughput to spare
        sigma, rgb = field(points, times)
        return sigma * occupied, rgb
    keep = occupied.nonzero().squeeze(1)  # CPU: evaluate occupied samples only, the main saving of the grid
    sigma_kept, rgb_kept = field(points[keep], times[keep])
    return (sigma_kept.new_zeros(points.shape[0]).index_put((keep,), sigma_kept),
            rgb_kept.new_zeros(points.shape[0], 3).index_put((keep,), rgb_kept))


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
    sample_times = times[:, None].expand(-1, num_samples).reshape(-1)
    sigma, rgb = _occupied_field(field, points, sample_times, hit[:, None].expand(-1, num_samples).reshape(-1))
    return composite(
        sigma.view(-1, num_samples), rgb.view(-1, num_samples, 3), depths, delta[:, None].expand_as(depths)
    )


@torch.no_grad()
def march_rays(
    field: DynamicNeRF,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    times: torch.Tensor,
    num_samples: int = DEFAULT_SAMPLES,
    segment: int = 8,
    min_transmittance: float = 1e-3,
    background: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Evaluation twin of `render_rays` (bin centres) with early ray termination: samples are taken `segment` at a
    time front to back and a ray stops once less than `min_transmittance` of its light is left, so an opaque
    surface costs a few samples instead of the whole ray. Returns `rgb` (R, 3) on white and `acc` (R,)."""
    near, far = aabb_intersect(origins, dirs, field.bound)
    delta = (far - near).clamp(min=0) / num_samples
    transmittance = torch.ones_like(near)
    colour = torch.zeros_like(origins)
    active = (far > near).nonzero().squeeze(1)
    for start in range(0, num_samples, segment):
        if active.numel() == 0:
            break
        count = min(segment, num_samples - start)
        bins = torch.arange(start, start + count, device=origins.device, dtype=origins.dtype) + 0.5
        depths = near[active, None] + bins * delta[active, None]  # (A, count)
        points = origins[active, None] + dirs[active, None] * depths[..., None]
        sample_times = times[active, None].expand(-1, count).reshape(-1)
        sigma, rgb = _occupied_field(field, points.reshape(-1, 3), sample_times,
                                     torch.ones_like(sample_times, dtype=torch.bool))
        alpha = 1.0 - torch.exp(-sigma.view(-1, count) * delta[active, None])
        through = torch.cumprod(1.0 - alpha, dim=1)
        before = transmittance[active, None] * torch.cat((torch.ones_like(alpha[:, :1]), through[:, :-1]), dim=1)
        colour[active] += ((alpha * before)[..., None] * rgb.view(-1, count, 3)).sum(dim=1)
        transmittance[active] = transmittance[active] * through[:, -1]
        active = active[transmittance[active] > min_transmittance]
    return {"rgb": colour + transmittance[:, None] * background, "acc": 1.0 - transmittance}


def surface_normals(field: DynamicNeRF, points: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Unit outward normals `−∇σ/‖∇σ‖` (N, 3) at observation-space points, detached (they only weight losses).

    The gradient flows through the deformation, so it is the normal of the deformed surface at that time.
    """
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(field.density(x, times).sum(), x)
    return -F.normalize(grad, dim=-1)


def _check_time(t: float) -> None:
    if not (0.0 <= t <= 1.0) or math.isnan(t):
        raise ValueError(f"t must lie in [0, 1] (frame / (num_frames − 1)), got {t}")


@torch.no_grad()
def render_views(
    field: DynamicNeRF,
    cameras: OrbitCameras,
    t: float,
    width: int,
    height: int,
    num_samples: int = DEFAULT_SAMPLES,
    chunk: int = 32768,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB (N, H, W, 3) on white and alpha (N, H, W) of every camera at time `t` ∈ [0, 1]."""
    _check_time(t)
    origins, dirs = (r.flatten(0, 1) for r in cameras.rays(width, height, field.device))
    times = torch.full((origins.shape[0],), float(t), device=field.device)
    rgb, acc = [], []
    for start in range(0, origins.shape[0], chunk):
        out = march_rays(field, origins[start:start + chunk], dirs[start:start + chunk], times[start:start + chunk],
                         num_samples)
        rgb.append(out["rgb"])
        acc.append(out["acc"])
    shape = (cameras.num_views_total, height, width)
    return torch.cat(rgb).view(*shape, 3).clamp(0, 1), torch.cat(acc).view(shape).clamp(0, 1)


def render_videos(
    field: DynamicNeRF,
    cameras: OrbitCameras,
    num_frames: int,
    width: int,
    height: int,
    callback: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-view video (N, F, H, W, 3) and alpha (N, F, H, W) at t = f / (num_frames − 1); `callback` per frame."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rgb, alpha = [], []
    for f in range(num_frames):
        image, opacity = render_views(field, cameras, f / max(num_frames - 1, 1), width, height)
        rgb.append(image)
        alpha.append(opacity)
        if callback is not None:
            callback()
    return torch.stack(rgb, dim=1), torch.stack(alpha, dim=1)
