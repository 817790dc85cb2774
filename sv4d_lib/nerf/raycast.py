"""CPU renderer for exported meshes: Embree ray casting (trimesh + embreex), unlit baseColor on white.

Used for the turntable preview and to compare an export with the field's own renders: unlit, because the field's
colour already contains the lighting of the generated views. Rays come from `OrbitCameras.rays` (the pack's one
camera convention); `supersample`² rays per pixel give anti-aliased edges and a coverage alpha like a NeRF's.
A ray caster rather than OpenGL (pyrender/OSMesa) because it needs no system library and runs headless anywhere.
"""
from __future__ import annotations

import numpy as np
import torch

from ..cameras import OrbitCameras
from .gltf import AnimatedMesh


def bilinear_taps(uv: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The 4 texels (P, 4) as flat indices (row · width + column) and their bilinear weights (P, 4) that a lookup
    of uv (P, 2) reads (v down the image, texel centres at +0.5, clamped at the border)."""
    x = np.clip(uv[:, 0] * width - 0.5, 0, width - 1)
    y = np.clip(uv[:, 1] * height - 0.5, 0, height - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    index = np.stack((y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1), axis=-1)
    weight = np.stack(((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy), axis=-1)
    return index, weight


def _sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup (P, 3) float in [0, 1] of uv (P, 2) (v down the image, texel centres at +0.5)."""
    height, width = texture.shape[:2]
    index, weight = bilinear_taps(uv, height, width)
    image = texture.reshape(height * width, -1).astype(np.float32) / 255.0
    return np.einsum("pk,pkc->pc", weight.astype(np.float32), image[index])


def surface_hits(positions: np.ndarray, faces: np.ndarray, cameras: OrbitCameras, width: int, height: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hits of the rays through every pixel centre of every camera (`OrbitCameras.rays` order) on a mesh
    (vertices (P, 3), faces (M, 3)): the rays that hit (K,) int64, their triangles (K,) and barycentric weights
    (K, 3) float64."""
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    positions = np.asarray(positions, np.float64)
    shape = trimesh.Trimesh(positions, faces, process=False)
    origins, dirs = (r.reshape(-1, 3).numpy().astype(np.float64) for r in cameras.rays(width, height))
    triangle, ray, hits = RayMeshIntersector(shape).intersects_id(origins, dirs, multiple_hits=False,
                                                                   return_locations=True)
    weights = trimesh.triangles.points_to_barycentric(positions[faces[triangle]], hits) if len(ray) else (
        np.zeros((0, 3)))
    return ray.astype(np.int64), triangle.astype(np.int64), weights


def render_mesh(mesh: AnimatedMesh, frame: int, cameras: OrbitCameras, width: int, height: int,
                supersample: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB (N, H, W, 3) on white and coverage alpha (N, H, W) of `mesh` at `frame` from every camera."""
    fine_w, fine_h = width * supersample, height * supersample
    ray, triangle, weights = surface_hits(mesh.frames[frame], mesh.faces, cameras, fine_w, fine_h)
    rgb = np.ones((cameras.num_views_total * fine_w * fine_h, 3), np.float32)
    alpha = np.zeros(len(rgb), np.float32)
    if len(ray):
        corners = mesh.faces[triangle]
        if mesh.texture is not None:
            rgb[ray] = _sample_texture(mesh.texture, np.einsum("pk,pkd->pd", weights, mesh.uv[corners]))
        else:
            rgb[ray] = np.einsum("pk,pkd->pd", weights, mesh.colours[corners])
        alpha[ray] = 1.0
    n = cameras.num_views_total
    rgb = rgb.reshape(n, height, supersample, width, supersample, 3).mean(axis=(2, 4))
    alpha = alpha.reshape(n, height, supersample, width, supersample).mean(axis=(2, 4))
    return torch.from_numpy(np.clip(rgb, 0, 1)), torch.from_numpy(alpha)


def depth_maps(positions: np.ndarray, faces: np.ndarray, cameras: OrbitCameras, width: int, height: int
               ) -> torch.Tensor:
    """Depth along each camera's viewing axis (N, H, W) float32 of the first surface hit through every pixel
    centre of a mesh (vertices (P, 3), faces (M, 3)); +inf where the ray misses (visibility tests)."""
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    shape = trimesh.Trimesh(np.asarray(positions, np.float64), faces, process=False)
    origins, dirs = (r.reshape(-1, 3).numpy().astype(np.float64) for r in cameras.rays(width, height))
    _, ray, hits = RayMeshIntersector(shape).intersects_id(origins, dirs, multiple_hits=False, return_locations=True)
    depth = np.full(len(origins), np.inf, np.float32)
    if len(ray):
        # the hit's distance along the ray times the cosine to the viewing axis (−z of the camera)
        forward = -cameras.c2w()[:, :3, 2].numpy().astype(np.float64)
        view = ray // (width * height)
        depth[ray] = np.einsum("pd,pd->p", hits - origins[ray], forward[view])
    return torch.from_numpy(depth.reshape(cameras.num_views_total, height, width))
