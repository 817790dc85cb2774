"""Occupancy grid over the scene box: lets the renderer skip empty space (Instant-NGP style, union over time).

Each cell keeps an EMA-max of the optical thickness σ·δ seen at a jittered point inside it. For a dynamic field the
point is queried at a random time per cell, so the grid converges to the maximum over time (what nerfacc's dynamic
examples do); one grid then serves every frame.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class OccupancyGrid(nn.Module):
    """Dense `G³` grid over `[−bound, bound]³` (buffers: `density` EMA, boolean `mask` and `allowed`)."""

    def __init__(self, resolution: int, bound: float) -> None:
        super().__init__()
        self.resolution, self.bound = resolution, float(bound)
        self.register_buffer("density", torch.zeros(resolution**3))
        self.register_buffer("mask", torch.ones(resolution**3, dtype=torch.bool))
        # cells that may ever be occupied (the visual hull of the training masks); everything by default
        self.register_buffer("allowed", torch.ones(resolution**3, dtype=torch.bool))

    def restrict(self, allowed: torch.Tensor) -> None:
        """Limit occupancy to `allowed` cells (G³ bool), e.g. a visual hull; resets the mask to those cells."""
        self.allowed.copy_(allowed)
        self.mask.copy_(allowed)

    def cell_points(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One point per cell (x fastest), jittered uniformly inside the cell when a generator is given."""
        g = self.resolution
        idx = torch.arange(g**3, device=self.density.device)
        ijk = torch.stack((idx % g, (idx // g) % g, idx // (g * g)), dim=-1).float()
        offset = (
            torch.rand(ijk.shape, generator=generator, device="cpu").to(ijk.device)
            if generator is not None
            else torch.full_like(ijk, 0.5)
        )
        return ((ijk + offset) / g * 2 - 1) * self.bound

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        step_size: float,
        time_range: float,
        generator: torch.Generator,
        decay: float = 0.95,
        threshold: float = 0.01,
    ) -> None:
        """Refresh from `density_fn(x, t)`: times drawn per cell in `[0, time_range]`; mask = EMA > min(mean, thr)."""
        points = self.cell_points(generator)
        times = (torch.rand(points.shape[0], generator=generator) * time_range).to(points.device)
        thickness = density_fn(points, times) * step_size
        self.density.copy_(torch.maximum(self.density * decay, thickness))
        self.mask.copy_(self.allowed & (self.density > torch.clamp(self.density.mean(), max=threshold)))

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean (N,) for points (N, 3): inside the box and in an occupied cell."""
        g = self.resolution
        ijk = ((x / self.bound + 1) * 0.5 * g).floor().long()
        inside = ((ijk >= 0) & (ijk < g)).all(dim=-1)
        ijk = ijk.clamp(0, g - 1)
        return inside & self.mask[ijk[:, 0] + g * ijk[:, 1] + g * g * ijk[:, 2]]


@torch.no_grad()
def visual_hull(
    grid: OccupancyGrid, masks: torch.Tensor, elevations_deg: list[float], azimuths_deg: list[float], radius: float,
    fov_deg: float,
) -> torch.Tensor:
    """Cells (G³ bool) inside the silhouettes of (almost) every view in at least one frame; masks (V, F, H, W).

    Masks are dilated by a projected cell size so thin parts and 1–2 px view misalignments survive; with 4+ views
    one view may disagree (generated views are not perfectly consistent).
    """
    from .render import project

    num_views, num_frames, height, width = masks.shape
    points = grid.cell_points()
    masks = masks.to(points.device)
    cell = 2 * grid.bound / grid.resolution
    focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    reach = math.ceil(focal * cell * math.sqrt(3) / 2 / max(radius - math.sqrt(3) * grid.bound, 1e-3 * radius))
    kernel = 2 * min(reach, height // 4) + 1
    inside_count = torch.zeros(num_frames, points.shape[0], device=points.device)
    for v in range(num_views):
        dilated = F.max_pool2d((masks[v] > 0.5).float()[:, None], kernel, stride=1, padding=kernel // 2)[:, 0]
        pixel = project(points, elevations_deg[v], azimuths_deg[v], radius, fov_deg, width, height).floor().long()
        visible = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
        col, row = pixel[:, 0].clamp(0, width - 1), pixel[:, 1].clamp(0, height - 1)
        inside_count += (dilated[:, row, col] > 0) & visible
    needed = num_views - 1 if num_views >= 4 else num_views
    return (inside_count >= needed).any(dim=0)
