"""Each frame's mesh slid along its surface until the views of that frame show the colours the other frames agree on
(per-frame tracking by colour).

The mesh follows the object through the clip by inverting the field's warp (`vertex_solve.py`). That warp is only as
good as the fit: where the colour is flat the fit cannot tell a point from its neighbour, and a point of the surface
lands a pixel or so beside where the views of a frame show it. The texture is one for the clip, projected from every
frame (`projection.py`), so such slips average into a blur: on the real dev scene a texture projected from the views
of one frame alone is sharper at that frame than the one projected from all 21 (docs/nerf4d_analysis.md).

This stage measures the slip and undoes it, as tracking by colour does: each vertex's reference colour is what all
views of all frames show at it; at every frame, candidate positions on a grid in the vertex's tangent plane (`step_px`
pixels at the orbit centre, up to `range_px`) are scored by how far the colours the frame's views show there lie
from the reference (a candidate counts only where it and its mirror image through the vertex land on the object),
the cost pooled over each vertex's neighbourhood, and the vertex takes the centre of the candidates as good as the
best (`candidate_search.chosen_moves`: where colour is flat they all tie and the centre is no slide); slides are
shared by neighbours, smoothed, and a share of each is applied. The reference is measured again each round. Slides
are along the surface (the tangent plane), so the shape stays what the outlines and the photo-consistency made it.
The gain on the dev scene is small (+0.1 dB held-out with 9 views, none with 5; docs/nerf4d_analysis.md).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .candidate_search import candidate_colours, chosen_moves
from .mesh import progress_steps, resample_in_time, vertex_normals
from .projection import ViewSet, inside_distance


@dataclass
class TrackingSettings:
    """Search range and smoothing of the per-frame slide (measured on the real dev scene, docs/nerf4d_analysis.md)."""

    rounds: int = 2  # 0: off
    range_px: float = 1.0  # largest slide searched along each tangent axis, pixels at the orbit centre
    step_px: float = 0.25
    move_share: float = 0.5  # share of the chosen slide applied per round: each vertex's minimum is noisy
    min_cosine: float = 0.3  # views that see the surface more edge-on than this do not vote
    edge_px: float = 1.5  # nor do pixels closer than this to the mask's edge (background bleeds in)
    cost_smoothing: int = 2  # neighbour-averaging passes over each candidate's cost (a patch of about a pixel)
    move_smoothing: int = 2  # neighbour-averaging passes over the chosen slides
    min_contrast: float = 0.1  # the cost's minimum must lie this far below its mean (relative) to count
    tie: float = 0.1  # costs within this share of a vertex's cost range of its minimum are as good as it
    centroid: bool = True  # the centre of the candidates as good as the best, not the smallest of them
    noise: float = 0.01  # colour differences (RMS over RGB) below this are noise, not a reason to slide


@dataclass
class TrackingReport:
    """What the tracking did (the export's summary and bench_export)."""

    rounds: int
    decided_share: float  # share of vertex-frames whose own views decided the slide in the last round
    mean_move: float  # mean |slide| per vertex-frame over all rounds together, world units


def tangent_axes(normals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit tangents (N, 3) each, perpendicular to the unit `normals` (N, 3) and to each other: the first
    horizontal (⊥ +y), so that neighbours' axes agree; near ±y, where that is undefined, the first is ⊥ +x."""
    up = torch.tensor([0.0, 1.0, 0.0]).expand_as(normals)
    side = torch.tensor([1.0, 0.0, 0.0]).expand_as(normals)
    first = torch.linalg.cross(up, normals)
    polar = first.norm(dim=-1, keepdim=True) < 0.2
    first = F.normalize(torch.where(polar, torch.linalg.cross(side, normals), first), dim=-1)
    return first, torch.linalg.cross(normals, first)


def track_frames(
    faces: np.ndarray,
    edges: np.ndarray,
    frames: list[np.ndarray],
    views: ViewSet,
    settings: TrackingSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[np.ndarray], TrackingReport]:
    """Each array of per-frame positions in `frames` ((K, N, 3) each) with every frame slid along its surface to the
    views' colours. `frames[0]` holds the positions at the views' frames; further arrays (other frame counts over the
    same clip) move by the slides interpolated in time. `progress(done, total)` after each view of each frame."""
    settings = settings or TrackingSettings()
    views.check_frames(frames[0].shape[0])
    num_views, num_frames, height = views.videos.shape[:3]
    pixel = views.cameras.radius / views.cameras.focal(height)  # at the orbit centre, world units
    half = int(round(settings.range_px / settings.step_px))
    axis = np.arange(-half, half + 1) * settings.step_px * pixel
    offsets = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # (K, 2) along the two tangents
    masks = views.object_masks()
    inside = [inside_distance(masks[:, f]) for f in range(num_frames)]
    positions = frames[0].copy()
    count = positions.shape[1]
    total_moves = np.zeros_like(positions)
    decided_share = 0.0
    total_steps = settings.rounds * num_frames * num_views * 2
    step = progress_steps(progress, total_steps)

    def votes(f: int, normals: torch.Tensor, candidates: torch.Tensor):
        at = torch.from_numpy(positions[f].astype(np.float32))
        yield from candidate_colours(views, f, at, normals, surfaces[f], masks[:, f], inside[f], candidates,
                                     settings.min_cosine, settings.edge_px)

    grid = torch.from_numpy(offsets).float()

    for _ in range(settings.rounds):
        surfaces = [views.depth_maps(positions[f].astype(np.float32), faces) for f in range(num_frames)]
        colour_sum = torch.zeros(count, 3, dtype=torch.float64)
        weight_sum = torch.zeros(count, dtype=torch.float64)
        normals = [torch.from_numpy(vertex_normals(positions[f], faces)) for f in range(num_frames)]
        for f in range(num_frames):
            for _, use, weight, colour, _ in votes(f, normals[f], torch.zeros(count, 1, 3)):
                colour_sum[use] += weight.double()[:, None] * colour[:, 0].double()
                weight_sum[use] += weight.double()
                step()
        reference = (colour_sum / weight_sum.clamp(min=1e-12)[:, None]).float()
        decided_count = 0
        for f in range(num_frames):
            first, second = tangent_axes(normals[f])
            candidates = grid[None, :, :1] * first[:, None] + grid[None, :, 1:] * second[:, None]  # (N, K, 3)
            cost = torch.zeros(count, len(offsets), dtype=torch.float64)
            total = torch.zeros(count, len(offsets), dtype=torch.float64)
            for _, use, weight, colour, coverage in votes(f, normals[f], candidates):
                # a candidate counts where it and its mirror image through the vertex land on the object: a
                # one-sided choice at the outline would slide even flat colour away from the background
                valid = ((coverage >= 0.99) & (coverage.flip(1) >= 0.99)).double() * weight.double()[:, None]
                error = ((colour - reference[use, None]) ** 2).sum(-1)  # (U, K)
                cost[use] += valid * error.double()
                total[use] += valid
                step()
            cost = torch.where(total > 0, cost / total.clamp(min=1e-12), torch.nan).numpy()
            enough = ((total > 0).any(1) & (weight_sum > 0)).numpy()
            worst = np.nanmax(np.where(enough[:, None], cost, 0.0), axis=1, keepdims=True)
            cost = np.where(np.isnan(cost), worst, cost)  # candidates no view could score count as the worst
            slide, decided = chosen_moves(cost, offsets, enough, edges, settings.cost_smoothing, settings.tie,
                                          settings.min_contrast, settings.move_smoothing, settings.centroid,
                                          3 * settings.noise**2)
            slide = settings.move_share * torch.from_numpy(slide).float()
            move = (slide[:, :1] * first + slide[:, 1:] * second).numpy()
            positions[f] += move
            total_moves[f] += move
            decided_count += int(decided.sum())
        decided_share = decided_count / (num_frames * count)
    moved = [positions] + [array + resample_in_time(total_moves, array.shape[0]) for array in frames[1:]]
    mean_move = float(np.linalg.norm(total_moves, axis=-1).mean())
    return moved, TrackingReport(settings.rounds, decided_share, mean_move)
