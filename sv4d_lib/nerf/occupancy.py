"""Where matter may be: per-frame visual hulls of the training masks ∩ an EMA density grid (Instant-NGP style).

Both live in observation space over the scene cube `[−bound, bound]³`, so the renderer skips empty space and the
fit cannot put density where a frame's silhouettes say there is none: that is what keeps ghost limbs, floaters and
over-thick bodies out of a fit from few views. The density grid keeps, per cell, an EMA-max of the optical
thickness σ·δ at a jittered point queried at a random time, so it converges to the maximum over time and one grid
serves every frame.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..cameras import OrbitCameras


class OccupancyGrid(nn.Module):
    """Dense `G³` grids over the cube (x fastest): `hulls` (frames, G³) bool, `density` EMA and its `mask`."""

    def __init__(self, resolution: int, bound: float, num_frames: int) -> None:
        super().__init__()
        self.resolution, self.bound, self.num_frames = resolution, float(bound), num_frames
        self.register_buffer("density", torch.zeros(resolution**3))
        self.register_buffer("mask", torch.ones(resolution**3, dtype=torch.bool))
        # cells each frame's silhouettes allow; everything until `set_hulls`
        self.register_buffer("hulls", torch.ones(num_frames, resolution**3, dtype=torch.bool))

    def set_hulls(self, hulls: torch.Tensor) -> None:
        """Limit frame f to the cells `hulls[f]` (frames, G³) bool, e.g. from `visual_hulls`."""
        if tuple(hulls.shape) != tuple(self.hulls.shape):
            raise ValueError(f"hulls must be {tuple(self.hulls.shape)}, got {tuple(hulls.shape)}")
        self.hulls.copy_(hulls)

    def cell_points(self, generator: torch.Generator | None = None, cells: torch.Tensor | None = None) -> torch.Tensor:
        """One point per cell (all G³ cells, or the flat indices `cells` (N,)), (N, 3); jittered uniformly inside the
        cell when a generator is given, else the cell centre."""
        g = self.resolution
        idx = torch.arange(g**3, device=self.density.device) if cells is None else cells
        ijk = torch.stack((idx % g, (idx // g) % g, idx // (g * g)), dim=-1).float()
        offset = (
            torch.rand(ijk.shape, generator=generator).to(ijk.device)
            if generator is not None
            else torch.full_like(ijk, 0.5)
        )
        return ((ijk + offset) / g * 2 - 1) * self.bound

    def frames_of(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames around times `t` (N,) ∈ [0, 1]: (previous, next) indices (N,) long (equal on a frame)."""
        position = t.clamp(0, 1) * (self.num_frames - 1)
        return position.floor().long(), position.ceil().long()

    def cell_index(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat cell index (N,) of points (N, 3) and whether they lie inside the cube."""
        g = self.resolution
        ijk = ((x / self.bound + 1) * 0.5 * g).floor().long()
        inside = ((ijk >= 0) & (ijk < g)).all(dim=-1)
        ijk = ijk.clamp(0, g - 1)
        return ijk[:, 0] + g * ijk[:, 1] + g * g * ijk[:, 2], inside

    def occupied(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Boolean (N,): point x (N, 3) at time t (N,) is in the cube, in a dense cell and in its frames' hulls."""
        cell, inside = self.cell_index(x)
        before, after = self.frames_of(t)
        cells = self.resolution**3
        in_hull = self.hulls.view(-1)[before * cells + cell] | self.hulls.view(-1)[after * cells + cell]
        return inside & self.mask[cell] & in_hull

    def any_hull(self) -> torch.Tensor:
        """Cells (G³ bool) inside the hull of at least one frame."""
        return self.hulls.any(dim=0)

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        step_size: float,
        num_open_frames: int,
        generator: torch.Generator,
        decay: float = 0.95,
        threshold: float = 0.01,
    ) -> None:
        """Refresh from `density_fn(x, t)` at one random open frame per cell (frames 0..num_open_frames − 1).

        Cells outside every hull are never evaluated; mask = EMA > min(mean over hull cells, threshold).
        """
        candidates = self.any_hull().nonzero().squeeze(1)
        points = self.cell_points(generator)[candidates]
        frames = torch.randint(num_open_frames, (candidates.numel(),), generator=generator).to(points.device)
        times = frames.float() / max(self.num_frames - 1, 1)
        in_hull = self.hulls[frames, candidates]  # density outside that frame's hull is never rendered
        thickness = torch.zeros_like(self.density)
        thickness[candidates] = density_fn(points, times) * step_size * in_hull
        self.density.copy_(torch.maximum(self.density * decay, thickness))
        reference = self.density[candidates].mean() if candidates.numel() else self.density.new_zeros(())
        self.mask.copy_(self.density > torch.clamp(reference, max=threshold))


@torch.no_grad()
def visual_hulls(
    cameras: OrbitCameras, masks: torch.Tensor, resolution: int, bound: float, margin_px: float = 0.5,
    tolerance: int = 0, turns: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-frame visual hulls (F, G³) bool over `[−bound, bound]³` from masks (V, F, H, W) in [0, 1].

    A cell belongs to frame f's hull when, in every view but `tolerance` of them, its centre projects within the
    cell's own projected half-diagonal plus `margin_px` of the silhouette (exact distances from a Euclidean distance
    transform, so the hull is as tight as the grid allows, yet thin parts and small misalignments between
    generated views survive). Cells outside a view's image do not count against it. `turns` (V, 3, 3): rotations of
    each view's rays about its camera centre (world axes, `alignment.ViewRotations`); None: the nominal cameras.
    """
    from scipy.ndimage import distance_transform_edt  # exact distances; torch has no distance transform

    num_views, num_frames, height, width = masks.shape
    cameras.check_count(num_views, "masks")
    grid = OccupancyGrid(resolution, bound, 1)
    points = grid.cell_points()
    if turns is None:
        pixels, depth = cameras.project(points, width, height)
    else:  # a camera turned by M sees x where the nominal one sees its centre + Mᵀ·(x − centre)
        centres = cameras.c2w()[:, :3, 3].to(turns.device)
        projected = [cameras.select([v]).project(centres[v] + (points - centres[v]) @ turns[v].to(points.dtype),
                                                 width, height) for v in range(num_views)]
        pixels, depth = (torch.cat(p) for p in zip(*projected))
    half_diagonal = math.sqrt(3) * bound / resolution
    reach = cameras.focal(height) * half_diagonal / depth.clamp(min=1e-6) + margin_px  # (V, G³) pixels
    inside_count = torch.zeros(num_frames, points.shape[0], dtype=torch.int16)
    for v in range(num_views):
        outside = (masks[v] <= 0.5).cpu().numpy()
        distance = torch.from_numpy(  # pixels to the nearest object pixel, per frame
            np.stack([distance_transform_edt(o) for o in outside])).float()
        col, row = pixels[v, :, 0].floor().long(), pixels[v, :, 1].floor().long()
        seen = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (depth[v] > 0)
        pixel = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)
        inside_count += ((distance.flatten(1)[:, pixel] <= reach[v]) | ~seen).to(torch.int16)
    return (inside_count >= num_views - tolerance).to(masks.device)
