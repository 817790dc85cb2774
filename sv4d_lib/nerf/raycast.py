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


def _sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup (P, 3) float in [0, 1] of uv (P, 2) (v down the image, texel centres at +0.5)."""
    size_v, size_u = texture.shape[:2]
    x = np.clip(uv[:, 0] * size_u - 0.5, 0, size_u - 1)
    y = np.clip(uv[:, 1] * size_v - 0.5, 0, size_v - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, size_u - 1), np.minimum(y0 + 1, size_v - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    image = texture.astype(np.float32) / 255.0
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def render_mesh(mesh: AnimatedMesh, frame: int, cameras: OrbitCameras, width: int, height: int,
                supersample: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB (N, H, W, 3) on white and coverage alpha (N, H, W) of `mesh` at `frame` from every camera."""
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    positions = np.asarray(mesh.frames[frame], np.float64)
    shape = trimesh.Trimesh(positions, mesh.faces, process=False)
    intersector = RayMeshIntersector(shape)
    fine_w, fine_h = width * supersample, height * supersample
    origins, dirs = (r.reshape(-1, 3).numpy().astype(np.float64) for r in cameras.rays(fine_w, fine_h))
    rgb = np.ones((len(origins), 3), np.float32)
    alpha = np.zeros(len(origins), np.float32)
    tri, ray, hits = intersector.intersects_id(origins, dirs, multiple_hits=False, return_locations=True)
    if len(ray):
        corners = positions[mesh.faces[tri]]
        weights = trimesh.triangles.points_to_barycentric(corners, hits)
        if mesh.texture is not None:
            uv = np.einsum("pk,pkd->pd", weights, mesh.uv[mesh.faces[tri]])
            rgb[ray] = _sample_texture(mesh.texture, uv)
        else:
            rgb[ray] = np.einsum("pk,pkd->pd", weights, mesh.colours[mesh.faces[tri]])
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
