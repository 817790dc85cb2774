"""Canonical surface of a fitted field: density grid, surface level from the fitted opacity, marching cubes, cleanup.

The surface level is not a constant density: volume rendering shows the surface where the transmittance along a
ray falls to 1/2, so the level is the density found at that crossing on rays through the density grid (all six
axis directions, a low quantile over rays). Only what renders at frame 0 counts: the density is zero where the
occupancy grid culls samples. A constant level sits in the soft halo of a fitted field and thickens the
mesh. Cleanup drops floaters (connected components much smaller than the largest), optionally smooths (Taubin:
no shrinkage) and decimates to a face budget (fast-simplification, quadric error), and orients faces outwards.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    import trimesh

    from .field import DynamicNeRF

# Progress(done, total) after each unit of work; raising from it (an interrupt) aborts the export.
Progress = Callable[[int, int], None]
QUERY_CHUNK = 16384  # points per field query: well under a second on one CPU core, so interrupts stay prompt
# Density below which a coarse grid point and its neighbourhood count as empty space (optical depth 0.01 over a
# 1 %-of-the-cube step: far below any surface level, which needs about ln 2 over a grid cell).
EMPTY_DENSITY = 1.0
# Share of rays whose half-opacity crossing may lie below the surface level. The median (0.5) left holes in the
# lower body of the real dev scene's mesh (GLB 5 dB below the field's render); 0.1 keeps it whole (bench_export.md).
LEVEL_QUANTILE = 0.1


def progress_steps(progress: Progress | None, total: int) -> Callable[[], None]:
    """A `step()` that reports `progress(done, total)` with one more done at each call (nothing without `progress`)."""
    counter = itertools.count(1)

    def step() -> None:
        done = next(counter)
        if progress is not None:
            progress(done, total)

    return step


@dataclass
class SurfaceSettings:
    """How the canonical surface is extracted and cleaned."""

    resolution: int = 128  # marching-cubes grid per axis (192 with 40k faces measured no better: bench_export.md)
    level: float | None = None  # density of the surface; None: from the fitted opacity (`surface_level`)
    min_component: float = 0.05  # drop components with less area than this fraction of the largest one
    smoothing_iterations: int = 5  # Taubin smoothing passes (0: off)
    face_budget: int = 20000  # decimate to at most this many triangles (0: keep all)


@dataclass
class SurfaceReport:
    """What extraction and cleanup did (for logs, the node's summary and the benchmark)."""

    level: float
    components_found: int
    components_dropped: int
    faces_extracted: int
    faces: int


@torch.no_grad()
def _query_density(field: DynamicNeRF, points: torch.Tensor, progress: Progress | None, done: int, total: int
                   ) -> torch.Tensor:
    sigma = []
    for start in range(0, points.shape[0], QUERY_CHUNK):
        sigma.append(field.surface_density(points[start:start + QUERY_CHUNK]).float().cpu())
        done += 1
        if progress is not None:
            progress(min(done, total), total)
    return torch.cat(sigma) if sigma else torch.zeros(0)


def density_grid(field: DynamicNeRF, resolution: int, progress: Progress | None = None) -> torch.Tensor:
    """Canonical density σ (R, R, R) float32 on the cpu, at `resolution` points per axis over [−bound, bound]³.

    Coarse to fine: every second point per axis is queried first; the rest only near coarse points whose density
    reaches `EMPTY_DENSITY` (one coarse cell of margin), and count as empty elsewhere. On a fitted object that
    skips most of the cube (about 4× fewer queries at 128³).
    """
    from scipy import ndimage

    if resolution < 8:
        raise ValueError(f"mesh resolution must be at least 8, got {resolution}")
    axis = torch.linspace(-field.bound, field.bound, resolution, device=field.device)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    coarse_points = points[::2, ::2, ::2]
    estimate = -(-coarse_points[..., 0].numel() // QUERY_CHUNK) + -(-points[..., 0].numel() // QUERY_CHUNK) // 4
    coarse = _query_density(field, coarse_points.reshape(-1, 3), progress, 0, estimate).reshape(
        coarse_points.shape[:3])
    near = ndimage.binary_dilation(coarse.numpy() >= EMPTY_DENSITY, np.ones((3, 3, 3), bool))
    fine = np.repeat(np.repeat(np.repeat(near, 2, 0), 2, 1), 2, 2)[:resolution, :resolution, :resolution]
    fine[::2, ::2, ::2] = False  # queried already
    grid = torch.zeros((resolution,) * 3)
    grid[::2, ::2, ::2] = coarse
    todo = torch.from_numpy(fine)
    total = -(-coarse.numel() // QUERY_CHUNK) + -(-int(todo.sum()) // QUERY_CHUNK)
    grid[todo] = _query_density(field, points[todo.to(points.device)], progress,
                                -(-coarse.numel() // QUERY_CHUNK), total)
    if not torch.isfinite(grid).all():
        raise ValueError("the field's density has NaN/inf values; the fit diverged, refit it")
    return grid


def surface_level(sigma: torch.Tensor, spacing: float) -> float:
    """Density below which `LEVEL_QUANTILE` of the axis-aligned rays through the grid reach transmittance 1/2.

    `sigma` (R, R, R) is sampled every `spacing` world units. Rays enter from all six faces of the cube; on each
    ray, the crossing of the optical depth ln 2 is located inside its grid cell and the density interpolated there.
    One level serves the whole mesh, and parts that render opaque at a lower density (thin or softly fitted ones)
    must stay inside it, so a low quantile of those crossings is taken rather than their median.
    """
    levels = []
    for axis in range(3):
        for flip in (False, True):
            rays = sigma.movedim(axis, -1).reshape(-1, sigma.shape[axis]).double()
            if flip:
                rays = rays.flip(-1)
            depth = torch.cumsum(rays * spacing, dim=-1)  # optical depth after each sample
            crossed = depth >= math.log(2.0)
            hit = crossed.any(dim=-1)
            if not hit.any():
                continue
            rays, depth, crossed = rays[hit], depth[hit], crossed[hit]
            first = crossed.float().argmax(dim=-1)
            before = torch.where(first > 0, depth.gather(1, (first - 1).clamp(min=0)[:, None])[:, 0], 0.0)
            after = depth.gather(1, first[:, None])[:, 0]
            fraction = (math.log(2.0) - before) / (after - before).clamp(min=1e-12)
            sigma_before = rays.gather(1, (first - 1).clamp(min=0)[:, None])[:, 0]
            sigma_after = rays.gather(1, first[:, None])[:, 0]
            levels.append(sigma_before + fraction * (sigma_after - sigma_before))
    if not levels:
        raise ValueError(
            "the field has no surface: no ray through the scene cube becomes half opaque; fit longer or check the "
            "masks/background of the training videos"
        )
    return float(torch.cat(levels).quantile(LEVEL_QUANTILE))


def marching_cubes(sigma: torch.Tensor, bound: float, level: float) -> trimesh.Trimesh:
    """Triangle mesh of {σ = level} in world units, faces wound outwards (scikit-image, `ascent` for a density)."""
    import skimage.measure
    import trimesh

    grid = sigma.numpy()
    if not grid.max() > level:
        raise ValueError(
            f"the field has no surface: its density never exceeds the level {level:.4g} (max {grid.max():.4g}); "
            "fit longer or lower the density level"
        )
    spacing = 2 * bound / (grid.shape[0] - 1)
    vertices, faces, _, _ = skimage.measure.marching_cubes(grid, level=level, spacing=(spacing,) * 3,
                                                           gradient_direction="ascent")
    mesh = trimesh.Trimesh(vertices - bound, faces, process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    return mesh


def drop_small_components(mesh: trimesh.Trimesh, min_component: float) -> tuple[trimesh.Trimesh, int, int]:
    """Keep connected components with at least `min_component` × the largest one's area; (mesh, found, dropped)."""
    import trimesh

    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    areas = np.bincount(labels, weights=mesh.area_faces)
    keep = areas >= min_component * areas.max()
    kept = mesh.submesh([np.flatnonzero(keep[labels])], append=True, repair=False)
    return kept, len(areas), int((~keep).sum())


def decimate(mesh: trimesh.Trimesh, face_budget: int) -> trimesh.Trimesh:
    """Quadric-error decimation (fast-simplification) to at most `face_budget` triangles."""
    import fast_simplification
    import trimesh

    if face_budget <= 0 or len(mesh.faces) <= face_budget:
        return mesh
    vertices, faces = fast_simplification.simplify(np.asarray(mesh.vertices, np.float64),
                                                   np.asarray(mesh.faces, np.int32), target_count=face_budget)
    out = trimesh.Trimesh(vertices, faces, process=True)
    out.update_faces(out.nondegenerate_faces())
    out.remove_unreferenced_vertices()
    return out


def extract_surface(
    field: DynamicNeRF, settings: SurfaceSettings | None = None, progress: Progress | None = None
) -> tuple[trimesh.Trimesh, SurfaceReport]:
    """The cleaned canonical surface (faces wound outwards, float vertices in world units) and a report."""
    import trimesh

    settings = settings or SurfaceSettings()
    if not 0.0 <= settings.min_component <= 1.0:
        raise ValueError(f"min_component is a fraction of the largest component's area in [0, 1], got "
                         f"{settings.min_component}")
    if settings.face_budget < 0 or settings.smoothing_iterations < 0:
        raise ValueError("face_budget and smoothing_iterations must be >= 0 (0 switches them off)")
    sigma = density_grid(field, settings.resolution, progress)
    spacing = 2 * field.bound / (settings.resolution - 1)
    done = (lambda: progress(1, 1)) if progress is not None else (lambda: None)  # interrupt points between steps
    level = settings.level if settings.level is not None else surface_level(sigma, spacing)
    done()
    mesh = marching_cubes(sigma, field.bound, level)
    extracted = len(mesh.faces)
    done()
    mesh, found, dropped = drop_small_components(mesh, settings.min_component)
    done()
    if settings.smoothing_iterations:
        trimesh.smoothing.filter_taubin(mesh, iterations=settings.smoothing_iterations)
        done()
    mesh = decimate(mesh, settings.face_budget)
    if mesh.volume < 0:  # decimation keeps the winding, but a surface seen from inside would come out inverted
        mesh.invert()
    if not np.isfinite(mesh.vertices).all() or len(mesh.faces) == 0:
        raise ValueError("surface extraction produced an empty or non-finite mesh; fit longer or lower the level")
    return mesh, SurfaceReport(level, found, dropped, extracted, len(mesh.faces))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (N, 3) float32 (trimesh); a vertex without area gets +y."""
    import trimesh

    normals = np.asarray(trimesh.Trimesh(vertices, faces, process=False).vertex_normals, dtype=np.float32)
    bad = ~np.isfinite(normals).all(axis=1) | (np.linalg.norm(normals, axis=1) < 0.5)
    normals[bad] = (0.0, 1.0, 0.0)
    return normals


def move_along_normals(positions: np.ndarray, faces: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Positions (N, 3) moved by `offset` (N,) along their own vertex normals."""
    return positions + (offset[:, None] * vertex_normals(positions, faces)).astype(np.float32)


def resample_in_time(values: np.ndarray, count: int) -> np.ndarray:
    """Per-frame values (F, …) at the views' frames → (count, …) at `count` frames spread over the same clip
    (linear in time, the first and last frames kept)."""
    series = torch.from_numpy(values).reshape(values.shape[0], -1).T[None]  # (1, ·, F)
    resampled = F.interpolate(series, size=count, mode="linear", align_corners=True)[0].T
    return resampled.reshape(count, *values.shape[1:]).numpy()


def move_with_frames(vertices: np.ndarray, frames: list[np.ndarray], faces: np.ndarray, offset: np.ndarray
                     ) -> np.ndarray:
    """Canonical vertices (N, 3) moved by `offset` (N,) along their normals, returned; every frame of each array in
    `frames` ((K, N, 3) each) moved in place the same way, along its own normals."""
    for positions in frames:
        for k in range(positions.shape[0]):
            positions[k] = move_along_normals(positions[k], faces, offset)
    return move_along_normals(vertices, faces, offset)


def neighbour_mean(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each vertex's row of `values` (N, ...) averaged with its neighbours' (graph `edges` (E, 2))."""
    total, count = values.copy(), np.ones(len(values))
    for a, b in ((0, 1), (1, 0)):
        np.add.at(total, edges[:, a], values[edges[:, b]])
        np.add.at(count, edges[:, a], 1.0)
    return total / count.reshape(-1, *([1] * (values.ndim - 1)))
