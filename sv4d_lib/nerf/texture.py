"""UV atlas (xatlas) and a baseColor texture baked from the field's canonical colour at the surface.

Baking: every UV triangle is rasterised into a triangle-id image at `samples_per_axis`× the texture size (Pillow's
polygon fill; adjacent triangles share their edge pixels, so no texel between them is missed), each covered sample
is mapped to its 3D surface point by barycentric interpolation and takes the field's canonical colour there.
Samples are averaged per texel; empty texels take the colour of the nearest covered texel (dilated seams, no dark
bleeding under mipmapping). Compositing a few samples along the normal instead was measured on the dev scene: 0.1 dB
worse on held-out views at 4× the cost (docs/bench_export.md), so the surface point it is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .field import DynamicNeRF

QUERY_POINTS = 32768  # field points per query (interrupts stay prompt)


@dataclass
class UVMesh:
    """A mesh cut along UV seams: vertices (N, 3) float32, faces (M, 3) uint32, uv (N, 2) float32 in [0, 1]
    with v pointing down the image (glTF's convention), `source` (N,) int64: the uncut mesh's vertex index."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    source: np.ndarray


@dataclass
class BakeSettings:
    """Texture size and sampling of the bake."""

    size: int = 1024  # texels per side (square baseColor texture)
    samples_per_axis: int = 2  # sub-samples per texel per axis (2: four samples per texel)
    padding: int = 2  # atlas texels between charts (xatlas), so bilinear filtering does not mix charts


def _atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, faces)
    charts = xatlas.ChartOptions()
    charts.max_iterations = 0  # one chart-growing pass: 8× faster than the default at the same texel utilisation
    pack = xatlas.PackOptions()
    pack.resolution = size
    pack.padding = padding
    pack.bilinear = True
    atlas.generate(charts, pack)
    return atlas[0]


def _atlas_child(conn, vertices: np.ndarray, faces: np.ndarray, size: int, padding: int) -> None:
    conn.send(_atlas(vertices, faces, size, padding))
    conn.close()


def uv_atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int,
             wait: Callable[[], None] | None = None) -> UVMesh:
    """xatlas charts packed into a `size`² texture with `padding` texels between charts.

    xatlas holds the GIL for seconds on a 40k-face mesh, so where processes can fork it runs in a child process
    and `wait()` is called every 0.1 s meanwhile: raising from it (an interrupt) kills the child at once.
    """
    import multiprocessing

    vertices = np.ascontiguousarray(vertices, np.float32)
    faces = np.ascontiguousarray(faces, np.uint32)
    if wait is None or "fork" not in multiprocessing.get_all_start_methods():
        source, cut_faces, uv = _atlas(vertices, faces, size, padding)
    else:
        context = multiprocessing.get_context("fork")  # no re-import of the host's main module, unlike spawn
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_atlas_child, args=(send, vertices, faces, size, padding), daemon=True)
        child.start()
        send.close()
        try:
            while not receive.poll(0.1):
                if not child.is_alive():
                    raise RuntimeError(f"the UV atlas process (xatlas) died with exit code {child.exitcode}")
                wait()
            source, cut_faces, uv = receive.recv()
        finally:
            child.kill()
            child.join()
            receive.close()
    return UVMesh(vertices[source], cut_faces.astype(np.uint32), uv.astype(np.float32), source.astype(np.int64))


def rasterise_uv(uv: np.ndarray, faces: np.ndarray, size: int, check: Callable[[], None] | None = None
                 ) -> np.ndarray:
    """Triangle index (size, size) int64 covering each pixel centre of the UV layout, −1 where none does.
    `check()` runs every few thousand triangles (interrupts)."""
    from PIL import Image, ImageDraw

    image = Image.new("I", (size, size), 0)
    draw = ImageDraw.Draw(image)
    corners = uv[faces] * size  # pixel units, (column, row)
    for index, triangle in enumerate(corners.tolist()):
        draw.polygon([tuple(p) for p in triangle], fill=index + 1, outline=index + 1)
        if check is not None and index % 4096 == 4095:
            check()
    return np.asarray(image, dtype=np.int64) - 1


def barycentric(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentric weights (P, 3) of 2D `points` (P, 2) in `triangles` (P, 3, 2), clamped into the triangle (pixel
    centres on a shared edge may lie just outside the triangle that was drawn last)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    denom = d00 * d11 - d01 * d01
    safe = np.where(np.abs(denom) < 1e-20, 1.0, denom)
    w1 = np.where(np.abs(denom) < 1e-20, 1 / 3, (d11 * d20 - d01 * d21) / safe)
    w2 = np.where(np.abs(denom) < 1e-20, 1 / 3, (d00 * d21 - d01 * d20) / safe)
    weights = np.clip(np.stack((1 - w1 - w2, w1, w2), axis=-1), 0.0, None)
    return weights / weights.sum(-1, keepdims=True).clip(min=1e-12)


def dilate(texture: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Every uncovered texel (covered (S, S) False) takes the colour of the nearest covered one."""
    from scipy import ndimage

    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return texture[rows, cols]


def texel_samples(mesh: UVMesh, size: int, samples_per_axis: int = 1,
                  check: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface samples of the atlas: for each covered sub-texel sample (`samples_per_axis`² per texel), its texel's
    flat index (P,) int64, its triangle (P, 3) vertex indices of `mesh` and barycentric weights (P, 3)."""
    fine = size * samples_per_axis
    ids = rasterise_uv(mesh.uv, mesh.faces, fine, check)
    index = np.flatnonzero(ids >= 0)
    if index.size == 0:
        raise ValueError("the UV atlas covers no texel; the mesh is empty or degenerate")
    rows, cols = np.divmod(index, fine)
    triangles = mesh.faces[ids.reshape(-1)[index]].astype(np.int64)
    centres = np.stack((cols + 0.5, rows + 0.5), axis=-1) / fine
    texel = (rows // samples_per_axis) * size + cols // samples_per_axis
    weights = np.empty((index.size, 3))
    for start in range(0, index.size, 16 * QUERY_POINTS):  # millions of samples at 2048²: interrupts stay prompt
        part = slice(start, start + 16 * QUERY_POINTS)
        weights[part] = barycentric(centres[part], mesh.uv[triangles[part]])
        if check is not None:
            check()
    return texel, triangles, weights


def field_colours(
    field: DynamicNeRF,
    mesh: UVMesh,
    settings: BakeSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The field's canonical colour averaged per texel: colours (S·S, 3) float64 in [0, 1] and covered (S·S,) bool
    (texels no UV triangle reaches hold 0)."""
    settings = settings or BakeSettings()
    if settings.size < 16 or settings.samples_per_axis < 1:
        raise ValueError(f"texture size must be >= 16 and sample counts >= 1, got {settings}")
    size = settings.size
    texel, triangles, weights = texel_samples(mesh, size, settings.samples_per_axis,
                                              (lambda: progress(0, 1)) if progress is not None else None)
    total = np.zeros((size * size, 3))
    count = np.zeros(size * size)
    starts = range(0, texel.size, QUERY_POINTS)
    for i, start in enumerate(starts):  # chunks: memory stays small and interrupts stay prompt
        chunk = slice(start, start + QUERY_POINTS)
        points = np.einsum("pk,pkd->pd", weights[chunk], mesh.vertices[triangles[chunk]])
        with torch.no_grad():
            colours = field.canonical(torch.from_numpy(points).float().to(field.device))[1].double().cpu().numpy()
        if not np.isfinite(colours).all():
            raise ValueError("the field's colour has NaN/inf values at the surface; the fit diverged, refit it")
        for channel in range(3):
            total[:, channel] += np.bincount(texel[chunk], colours[:, channel], size * size)
        count += np.bincount(texel[chunk], minlength=size * size)
        if progress is not None:
            progress(i + 1, len(starts))
    covered = count > 0
    total[covered] /= count[covered, None]
    return total, covered


def finish_texture(colours: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Texture (S, S, 3) uint8 sRGB from per-texel colours (S·S, 3) in [0, 1]: uncovered texels dilated."""
    size = int(round(np.sqrt(covered.size)))
    texture = dilate(colours.reshape(size, size, 3), covered.reshape(size, size))
    return np.clip(np.round(texture * 255), 0, 255).astype(np.uint8)


def bake_texture(
    field: DynamicNeRF,
    mesh: UVMesh,
    settings: BakeSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """baseColor texture (S, S, 3) uint8 sRGB of `mesh` from the field's canonical colour."""
    return finish_texture(*field_colours(field, mesh, settings, progress))
