"""The exported mesh's silhouettes moved onto the views' masks (rim refinement).

A volume-rendered field shows its outline as a soft opacity ramp; the mesh is one surface of it and lands a fraction
of a pixel to a pixel off the true outline, which costs more held-out PSNR than any colour error (on the real dev
scene, the pixels where the field's opacity is between 0.05 and 0.95 held 60 % of the GLB's extra error). The views
the field was fitted to give the outline directly: their masks. Each round, at every frame and in every view:

* the deformed mesh is ray-cast (Embree) to find its own silhouette in that view;
* rim vertices are those on it: within `edge_px` of the mesh's silhouette edge and seen nearly edge-on
  (|cos| between the normal and the direction to the camera below `rim_cosine`);
* each rim vertex is asked to move along its normal by the pixels between the mesh's edge and the mask's edge at
  its projection (signed distance transforms of both), at most `max_move_px`, converted to world units at its depth.

The requests are averaged per vertex over views and frames, spread to the vertices no view asked (their
neighbours' mean) and smoothed over the mesh; `step` of them is applied along the canonical normal and along each
frame's normal (the warp is locally rigid at this scale, so the frames need no new solve). Then `frame_rounds` more
rounds let each frame follow its own views' masks: where the warp misplaces a limb at one frame (a striding leg), no
shared offset can. A silhouette constrains only where views see the object edge-on; the inside of the texture is
untouched.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .mesh import (move_along_normals, move_with_frames, neighbour_mean, progress_steps, resample_in_time,
                   vertex_normals)
from .projection import ViewSet, sample_pixels
from .vertex_solve import neighbour_fill


@dataclass
class SilhouetteSettings:
    """How far and how often the rim vertices follow the masks (measured on the real dev scene,
    docs/nerf4d_analysis.md)."""

    rounds: int = 2  # 0: off (no frame rounds either)
    frame_rounds: int = 1  # then rounds with an offset per frame (9 views: +0.19 dB held-out on the GLB, 5 views +0.05)
    step: float = 0.5  # share of the averaged request applied per round (1 overshoots: views ask in both directions)
    rim_cosine: float = 0.3
    edge_px: float = 1.0
    max_move_px: float = 2.0
    smoothing: int = 2  # neighbour-averaging passes over the requested moves


@dataclass
class SilhouetteReport:
    """What the refinement did (the export's summary and bench_export)."""

    rounds: int
    frame_rounds: int
    rim_vertices: int  # vertices that some view saw on the mesh's silhouette in the last round
    mean_move: float  # mean |move| of the last shared round, world units


def _signed_distance(inside: np.ndarray) -> np.ndarray:
    """Pixels (H, W) to the edge of a binary region: positive outside it, negative inside."""
    from scipy.ndimage import distance_transform_edt  # exact distances; torch has none

    return distance_transform_edt(~inside) - distance_transform_edt(inside)


def _requests(positions: np.ndarray, faces: np.ndarray, normals: np.ndarray, views: ViewSet, frame: int,
              mask_distance: torch.Tensor, settings: SilhouetteSettings, step: Callable[[], None]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Summed outward moves (N,) in world units requested by the views at one frame, and how many views asked;
    `step()` after each view."""
    cameras = views.cameras
    num_views, _, height, width, _ = views.videos.shape
    focal = cameras.focal(height)
    centres = cameras.c2w()[:, :3, 3].numpy()
    moves, asked = np.zeros(len(positions)), np.zeros(len(positions))
    coverage = torch.isfinite(views.depth_maps(positions, faces))  # (V, H, W)
    for v in range(num_views):
        seen = views.seen_by(v, torch.from_numpy(positions))
        covered = coverage[v]
        mesh_distance = torch.from_numpy(_signed_distance(covered.numpy())).float()
        pixels, depth = (x[0] for x in cameras.select([v]).project(seen, width, height))
        to_camera = centres[v] - seen.numpy()
        cosine = (normals * to_camera).sum(1) / np.linalg.norm(to_camera, axis=1)
        at_mesh_edge = sample_pixels(mesh_distance[None, None], pixels[None])[0, :, 0].numpy()
        at_mask_edge = sample_pixels(mask_distance[v, frame][None, None], pixels[None])[0, :, 0].numpy()
        rim = (np.abs(at_mesh_edge) < settings.edge_px) & (np.abs(cosine) < settings.rim_cosine)
        # the mesh's edge moves by (its distance − the mask's) pixels; a normal seen at an angle moves it less
        pixels_out = np.clip(at_mesh_edge - at_mask_edge, -settings.max_move_px, settings.max_move_px)
        lateral = np.sqrt(np.clip(1.0 - cosine**2, 0.1, 1.0))
        move = pixels_out * depth.numpy() / focal / lateral
        moves[rim] += move[rim]
        asked[rim] += 1
        step()
    return moves, asked


def _offset(moves: np.ndarray, asked: np.ndarray, edges: np.ndarray, settings: SilhouetteSettings) -> np.ndarray:
    """Per-vertex move (N,) along the normal: `step` of the mean request, spread to the vertices no view asked and
    smoothed over the mesh."""
    offset = neighbour_fill((moves / np.maximum(asked, 1))[:, None], asked == 0, edges)[:, 0] * settings.step
    for _ in range(settings.smoothing):
        offset = neighbour_mean(offset, edges)
    return offset


def refine_silhouettes(
    vertices: np.ndarray,
    faces: np.ndarray,
    edges: np.ndarray,
    frames: list[np.ndarray],
    views: ViewSet,
    settings: SilhouetteSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], SilhouetteReport]:
    """Canonical vertices (N, 3) and each array of per-frame positions in `frames` ((K, N, 3) each) with the rim
    moved onto the masks. `frames[0]` holds the positions at the views' frames (V, F… of `views`); any further
    arrays (the animation's frames) move with the same offsets. `progress(done, total)` after each view of each
    frame of each round (raise from it to interrupt)."""
    settings = settings or SilhouetteSettings()
    views.check_frames(frames[0].shape[0])
    masks = views.object_masks()
    mask_distance = torch.from_numpy(np.stack([[_signed_distance(m) for m in view] for view in
                                               (masks > 0.5).cpu().numpy()])).float()
    vertices, frames = vertices.copy(), [f.copy() for f in frames]
    report = SilhouetteReport(0, 0, 0, 0.0)
    total = (settings.rounds + settings.frame_rounds) * views.num_frames * views.videos.shape[0]
    step = progress_steps(progress, total)

    for round_ in range(settings.rounds):
        moves, asked = np.zeros(len(vertices)), np.zeros(len(vertices))
        for f in range(views.num_frames):
            m, a = _requests(frames[0][f], faces, vertex_normals(frames[0][f], faces), views, f, mask_distance,
                             settings, step)
            moves += m
            asked += a
        if not asked.any():
            break
        offset = _offset(moves, asked, edges, settings)
        vertices = move_with_frames(vertices, frames, faces, offset)
        report = SilhouetteReport(round_ + 1, 0, int((asked > 0).sum()), float(np.abs(offset).mean()))
    settled = settings.rounds > 0 and report.rounds == settings.rounds  # every shared round found rims
    for frame_round in range(settings.frame_rounds if settled else 0):
        offsets = np.zeros((views.num_frames, len(vertices)))
        for f in range(views.num_frames):
            moves, asked = _requests(frames[0][f], faces, vertex_normals(frames[0][f], faces), views, f,
                                     mask_distance, settings, step)
            offsets[f] = _offset(moves, asked, edges, settings)  # zero where no view saw a rim
        for positions in frames:  # the animation's frames take the offsets of the views' frames around them
            for k, offset in enumerate(resample_in_time(offsets, positions.shape[0])):
                positions[k] = move_along_normals(positions[k], faces, offset)
        report.frame_rounds = frame_round + 1
    return vertices, frames, report
