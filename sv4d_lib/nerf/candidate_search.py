"""Per-vertex search over candidate moves, scored by the colours the views show there (multi-view stereo's plane
sweep, on a mesh).

Shared by the export's colour-driven refiners (`photo_consistency.py` along the normal, `tracking.py` along the
surface): which views vote for a vertex at a frame (`candidate_colours`), and which candidate each vertex takes from
its cost curve (`chosen_moves`).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .mesh import neighbour_mean
from .projection import ViewSet, nearest_depth, sample_pixels
from .vertex_solve import neighbour_fill


def candidate_colours(
    views: ViewSet,
    frame: int,
    positions: torch.Tensor,
    normals: torch.Tensor,
    surface: torch.Tensor,
    masks: torch.Tensor,
    inside: torch.Tensor,
    candidates: torch.Tensor,
    min_cosine: float,
    edge_px: float,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """For each view of the video `frame`: (view, which vertices it sees (N,) bool, their vote weights (U,), the
    view's colours (U, K, 3) and object masks `masks` (V, H, W) (U, K) at their candidate positions `positions`
    (N, 3) + `candidates` (N, K, 3)).

    A view votes for a vertex that it sees first (depth test against the mesh's depth maps `surface` (V, H, W)),
    not more edge-on than `min_cosine`, and at least `edge_px` inside the object's mask (`inside` (V, H, W): pixels to
    the background); its weight is cos² of the angle between the vertex normal and the view direction.
    """
    cameras = views.cameras
    num_views, _, height, width, _ = views.videos.shape
    focal = cameras.focal(height)
    centres = cameras.c2w()[:, :3, 3]
    count, k = candidates.shape[:2]
    for v in range(num_views):
        camera = cameras.select([v])
        pixels, depth = (x[0] for x in camera.project(views.seen_by(v, positions), width, height))
        visible = depth <= nearest_depth(surface[v:v + 1], pixels[None])[0] + depth / focal
        cosine = (F.normalize(centres[v] - positions, dim=-1) * normals).sum(-1)
        edge = sample_pixels(inside[v:v + 1, None], pixels[None])[0, :, 0]
        weight = cosine.clamp(min=0) ** 2 * visible * (cosine > min_cosine) * (edge >= edge_px)
        use = weight > 0
        sampled = torch.zeros(0, k, 4)
        if use.any():
            points = (positions[use, None] + candidates[use]).reshape(-1, 3)
            where, _ = camera.project(views.seen_by(v, points), width, height)
            image = torch.cat((views.videos[v, frame].permute(2, 0, 1).float(), masks[v:v + 1].float()))
            sampled = sample_pixels(image[None], where)[0].view(-1, k, 4)
        yield v, use, weight[use], sampled[..., :3], sampled[..., 3]


def chosen_moves(
    cost: np.ndarray,
    offsets: np.ndarray,
    enough: np.ndarray,
    edges: np.ndarray,
    cost_smoothing: int,
    tie: float,
    min_contrast: float,
    move_smoothing: int,
    centroid: bool = False,
    floor: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex moves (N, D) from the cost (N, K) of each candidate move `offsets` (K, D) (offset 0 among them),
    and which vertices decided their own (N,).

    The cost is aggregated over each vertex's neighbourhood (`cost_smoothing` passes: single vertices are noise in
    flat colour); a vertex takes the smallest move whose cost is within `tie` of its cost range of the cheapest
    (where colours agree over several candidates nothing decides between them and the vertex stays), or with
    `centroid` the centre of all candidates that good (sub-step precision; symmetric ties cancel); it decides when
    `enough` (N,) holds, its cost has a clear minimum (`min_contrast` below the mean, relative to it or to `floor`,
    the cost of noise, whichever is larger) and the move is not the largest searched (the minimum may lie beyond). The rest take their neighbours' moves; the moves are then
    smoothed over the mesh (`move_smoothing` passes).
    """
    for _ in range(cost_smoothing):
        cost = neighbour_mean(cost, edges)
    distance = np.linalg.norm(offsets, axis=1)
    low, high = cost.min(1, keepdims=True), cost.max(1, keepdims=True)
    acceptable = cost <= low + tie * (high - low)
    best = np.where(acceptable, distance[None], np.inf).argmin(1)
    chosen = offsets[best]
    if centroid:
        chosen = acceptable @ offsets / acceptable.sum(1, keepdims=True)
    contrast = (cost.mean(1) - low[:, 0]) / np.maximum(cost.mean(1), floor)
    decided = enough & (contrast >= min_contrast) & (distance[best] < distance.max())
    move = neighbour_fill(np.where(decided[:, None], chosen, 0.0), ~decided, edges)
    for _ in range(move_smoothing):
        move = neighbour_mean(move, edges)
    return move, decided
