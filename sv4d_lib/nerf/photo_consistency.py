"""The exported mesh's surface moved along its normals to where the views agree on its colour (photo-consistency).

The mesh is one level set of the field, and where the training views leave the shape open (between their azimuths)
that level sits a few pixels off the object: the front and back of a body bulge toward the visual hull. A texel on
such a surface is where different views show different points of the object, so the texture projected from them is
a blur of a few pixels and the held-out outline is too fat. Classic multi-view stereo decides depth by colour
agreement: at the right depth every view that sees a surface point shows the same colour.

For each vertex, at every frame, the candidate positions p + s·n along the frame's vertex normal (s on a grid of
`step_px` pixels at the orbit centre, up to `range_px`) are projected into every view that sees the vertex (depth
test against the mesh, not grazing, away from the mask's edge); the cost of each candidate is the weighted variance
of the views' colours there, pooled over frames (the texture is one for the clip) and aggregated over each vertex's
neighbourhood (single texels are noise in flat colour). The vertex takes the smallest move whose cost is as good as
the cheapest candidate's (within `tie` of its cost range), where at least two views see it and the cost curve has a
clear minimum; elsewhere the move is spread from its neighbours; the moves are smoothed over the mesh and half of
each is applied. The smallest-move rule matters: in flat colour every depth inside the object agrees, while a
candidate outside it shows background in oblique views, so taking the cheapest candidate would shrink any flat
surface (measured on the dev scene: a quarter of a dB of its held-out gain came from that shrinking alone, which is a
bias, not a measurement, docs/nerf4d_analysis.md). Rims (which the masks decide, `silhouettes.py`) are moved
after this, so what the photo-consistency decides in the end is the shape between the views' outlines.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .candidate_search import candidate_colours, chosen_moves
from .mesh import move_with_frames, progress_steps, vertex_normals
from .projection import ViewSet, inside_distance


@dataclass
class PhotoConsistencySettings:
    """Search range and smoothing of the per-vertex move (measured on the real dev scene, docs/nerf4d_analysis.md)."""

    rounds: int = 1  # 0: off (a second round measured worse: the shrunken moves compound)
    range_px: float = 4.0  # largest move searched, in pixels at the orbit centre
    step_px: float = 0.5
    move_share: float = 0.5  # share of the chosen move applied: each vertex's minimum is noisy, a full move overshoots
    min_cosine: float = 0.3  # views that see the surface more edge-on than this do not vote
    edge_px: float = 1.5  # nor do pixels closer than this to the mask's edge (background bleeds in)
    cost_smoothing: int = 10  # neighbour-averaging passes over each candidate's cost (a patch of a few pixels)
    move_smoothing: int = 2  # neighbour-averaging passes over the chosen moves
    min_contrast: float = 0.1  # the cost's minimum must lie this far below its mean (relative) to count
    tie: float = 0.1  # costs within this share of a vertex's cost range of its minimum are as good as it


@dataclass
class PhotoConsistencyReport:
    """What the refinement did (the export's summary and bench_export)."""

    rounds: int
    moved_vertices: int  # vertices whose own views decided the move (the rest follow their neighbours)
    mean_move: float  # mean |move|, world units


def _costs(frames: np.ndarray, faces: np.ndarray, views: ViewSet, offsets: np.ndarray,
           settings: PhotoConsistencySettings, step: Callable[[], None]) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex and candidate move `offsets` (K,) along the normal (world units), the weighted colour variance
    (N, K) over the views and frames that see the vertex, and how many distinct views saw it (N,)."""
    num_views, num_frames = views.videos.shape[:2]
    masks = views.object_masks()
    count = frames.shape[1]
    k = len(offsets)
    first = torch.zeros(count, k, 3, dtype=torch.float64)
    second = torch.zeros(count, k, dtype=torch.float64)
    total = torch.zeros(count, dtype=torch.float64)
    seen = torch.zeros(num_views, count, dtype=torch.bool)
    steps = torch.from_numpy(offsets).float()
    for f in range(num_frames):
        positions = torch.from_numpy(frames[f].astype(np.float32))
        normals = torch.from_numpy(vertex_normals(frames[f], faces).astype(np.float32))
        surface = views.depth_maps(frames[f].astype(np.float32), faces)  # (V, H, W)
        along = steps[None, :, None] * normals[:, None]  # (N, K, 3)
        for v, use, weight, colour, _ in candidate_colours(views, f, positions, normals, surface, masks[:, f],
                                                           inside_distance(masks[:, f]), along, settings.min_cosine,
                                                           settings.edge_px):
            w = weight.double()
            first[use] += w[:, None, None] * colour.double()
            second[use] += w[:, None] * (colour.double() ** 2).sum(-1)
            total[use] += w
            seen[v] |= use
            step()
    mean = first / total.clamp(min=1e-12)[:, None, None]
    variance = second / total.clamp(min=1e-12)[:, None] - (mean**2).sum(-1)
    return variance.clamp(min=0).numpy(), seen.sum(0).numpy()


def refine_photo_consistency(
    vertices: np.ndarray,
    faces: np.ndarray,
    edges: np.ndarray,
    frames: list[np.ndarray],
    views: ViewSet,
    settings: PhotoConsistencySettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], PhotoConsistencyReport]:
    """Canonical vertices (N, 3) and each array of per-frame positions in `frames` ((K, N, 3) each) moved along
    their normals to the views' colour agreement. `frames[0]` holds the positions at the views' frames; further
    arrays move by the same per-vertex offsets. `progress(done, total)` after each view of each frame."""
    settings = settings or PhotoConsistencySettings()
    views.check_frames(frames[0].shape[0])
    half = int(round(settings.range_px / settings.step_px))
    pixel = views.cameras.radius / views.cameras.focal(views.videos.shape[2])  # at the orbit centre, world units
    offsets = np.arange(-half, half + 1) * settings.step_px * pixel
    vertices, frames = vertices.copy(), [f.copy() for f in frames]
    report = PhotoConsistencyReport(0, 0, 0.0)
    total = settings.rounds * views.num_frames * views.videos.shape[0]
    step = progress_steps(progress, total)

    for round_ in range(settings.rounds):
        cost, views_seen = _costs(frames[0], faces, views, offsets, settings, step)
        move, decided = chosen_moves(cost, offsets[:, None], views_seen >= 2, edges, settings.cost_smoothing,
                                     settings.tie, settings.min_contrast, settings.move_smoothing)
        move = move[:, 0]
        offset = settings.move_share * move
        vertices = move_with_frames(vertices, frames, faces, offset)
        report = PhotoConsistencyReport(round_ + 1, int(decided.sum()), float(np.abs(offset).mean()))
    return vertices, frames, report
