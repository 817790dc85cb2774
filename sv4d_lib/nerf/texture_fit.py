"""The view-projected texture corrected by least squares through the mesh's own rendering of the views.

Projection (`projection.py`) averages what the views show where each texel's surface point lands. That average is
not yet what makes the GLB look like the views: a mesh a little off the object shows a texel in neighbouring
pixels, and a renderer samples the texture bilinearly at sub-pixel rays. Here the texture is corrected so that the
mesh, ray-cast as the GLB is rendered (`raycast.render_mesh`: `supersample`² rays per pixel, bilinear texels,
white where a ray misses), reproduces every view at every frame in the least-squares sense.

The correction is a colour offset per mesh vertex, interpolated over each triangle: continuous across UV seams,
at the mesh's resolution (about a pixel of the views on the dev scene). For each view pixel that the mesh covers,
the render is R·T₀ + B·d (T₀ the projected texture, B the sub-rays' barycentric weights over the vertices), and d
solves

    (BᵀB + λ·s·L + μ·s·I) d = Bᵀ(y − R·T₀),

with L the mesh's graph Laplacian (a smooth correction: the views disagree by a pixel where the mesh is off), s the
mean diagonal of BᵀB (λ, μ do not depend on how many views or pixels there are) and μ keeping vertices that no
pixel sees at the projected colour. The normal equations are summed one view and frame at a time, so memory stays
at one view's rays. Measured on the dev scene (docs/nerf4d_analysis.md): a per-texel correction with a texel
Laplacian scored within 0.06 dB of this one at 30× its time, so per vertex it is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
import torch

from .projection import ViewSet
from .raycast import bilinear_taps, surface_hits
from .texture import UVMesh, dilate, texel_samples


@dataclass
class TextureFitSettings:
    """The least-squares correction (measured on the real dev scene, docs/nerf4d_analysis.md)."""

    enabled: bool = True
    smoothness: float = 0.1  # λ: 0.03–1 scored within 0.05 dB of each other on the dev scene
    damping: float = 1e-3  # μ
    supersample: int = 2  # rays per pixel per axis: as `render_mesh` renders the GLB


@dataclass
class TextureFit:
    """How well the mesh reproduces the views it was textured from, over the view pixels it covers."""

    pixels: int  # view pixels (over all views and frames) that some ray of the mesh hits
    psnr_before: float  # dB, projected texture
    psnr_after: float  # dB, corrected texture (the linear model, before 8-bit rounding)


def _laplacian(mesh: UVMesh, num_vertices: int) -> sparse.csr_matrix:
    """Graph Laplacian (N, N) of the uncut mesh (its vertices are `mesh.source`'s targets)."""
    corners = mesh.source[mesh.faces.astype(np.int64)]
    pairs = np.concatenate([corners[:, [0, 1]], corners[:, [1, 2]], corners[:, [2, 0]]])
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    rows, cols = np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]]
    adjacency = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices))
    return (sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency).tocsr()


def fit_texture(
    colours: np.ndarray,
    covered: np.ndarray,
    mesh: UVMesh,
    frames: np.ndarray,
    views: ViewSet,
    settings: TextureFitSettings | None = None,
    samples_per_axis: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, TextureFit]:
    """Per-texel colours (S·S, 3) in [0, 1] corrected so that the mesh renders the views; covered (S·S,) bool.

    `frames` (F, N, 3): the uncut mesh's vertices at the views' frames; `samples_per_axis`: the bake's sub-texel
    samples (the correction is averaged over them, so it covers exactly the texels the bake covered).
    """
    from scipy.sparse.linalg import factorized

    settings = settings or TextureFitSettings()
    if settings.supersample < 1 or settings.smoothness < 0 or settings.damping <= 0:
        raise ValueError(f"texture fit needs supersample >= 1, smoothness >= 0 and damping > 0, got {settings}")
    views.check_frames(frames.shape[0])
    size = int(round(np.sqrt(covered.size)))
    base = dilate(colours.reshape(size, size, 3), covered.reshape(size, size)).reshape(-1, 3)  # what is written
    num_vertices = frames.shape[1]
    num_views, num_frames, height, width, _ = views.videos.shape
    ss = settings.supersample
    faces = mesh.faces.astype(np.int64)
    normal = sparse.csr_matrix((num_vertices, num_vertices))
    rhs = np.zeros((num_vertices, 3))
    squared, pixels = 0.0, 0
    steps = num_frames * num_views + 1  # one per view and frame, then the bake's samples
    for f in range(num_frames):
        positions = torch.from_numpy(frames[f][mesh.source].astype(np.float32))
        for v in range(num_views):
            moved = views.seen_by(v, positions).numpy()  # a turned view's camera sees the mesh moved
            ray, triangle, bary = surface_hits(moved, faces, views.cameras.select([v]), width * ss, height * ss)
            if len(ray):
                row, col = np.divmod(ray, width * ss)
                pixel, local = np.unique((row // ss) * width + col // ss, return_inverse=True)
                taps, tap_weights = bilinear_taps(np.einsum("pk,pkd->pd", bary, mesh.uv[faces[triangle]]), size, size)
                sampled = np.einsum("pk,pkc->pc", tap_weights, base[taps])
                hits = np.bincount(local, minlength=len(pixel))
                rendered = np.stack([np.bincount(local, sampled[:, c], len(pixel)) for c in range(3)], axis=-1)
                rendered = (rendered + (ss * ss - hits)[:, None]) / (ss * ss)  # missed sub-rays show white
                target = views.videos[v, f].reshape(-1, 3).cpu()[torch.from_numpy(pixel)].double().numpy()
                residual = target - rendered
                vertex = mesh.source[faces[triangle]]  # (K, 3) uncut vertices under each sub-ray
                design = sparse.csr_matrix((bary.ravel() / (ss * ss), (np.repeat(local, 3), vertex.ravel())),
                                           shape=(len(pixel), num_vertices))
                normal = normal + design.T @ design
                rhs += design.T @ residual
                squared += float(np.square(residual).sum())
                pixels += len(pixel)
            if progress is not None:
                progress(f * num_views + v + 1, steps)
    if pixels == 0:
        raise ValueError("the mesh covers no pixel of any view; nothing to fit the texture to")

    def check() -> None:  # the bar stays at the last view meanwhile; raising from it (an interrupt) stops the fit
        if progress is not None:
            progress(steps - 1, steps)

    scale = float(normal.diagonal().mean())
    system = (normal + scale * settings.smoothness * _laplacian(mesh, num_vertices)
              + scale * settings.damping * sparse.identity(num_vertices)).tocsc()
    solve = factorized(system)
    check()
    offset = np.stack([solve(rhs[:, c]) for c in range(3)], axis=-1)  # (N, 3)
    # ‖r − Bd‖² from the summed normal equations: no second pass over the rays
    after = squared - 2 * float((offset * rhs).sum()) + float((offset * (normal @ offset)).sum())
    texel, triangles, weights = texel_samples(mesh, size, samples_per_axis, check)
    check()
    correction = np.einsum("pk,pkc->pc", weights, offset[mesh.source[triangles]])
    count = np.bincount(texel, minlength=size * size)
    mean = np.stack([np.bincount(texel, correction[:, c], size * size) for c in range(3)], axis=-1)
    corrected = colours.copy()
    seen = count > 0
    corrected[seen] = np.clip(base[seen] + mean[seen] / count[seen, None], 0.0, 1.0)
    if progress is not None:
        progress(steps, steps)
    channels = 3 * pixels
    return corrected, TextureFit(pixels, float(-10 * np.log10(squared / channels)),
                                 float(-10 * np.log10(max(after, 1e-12) / channels)))
