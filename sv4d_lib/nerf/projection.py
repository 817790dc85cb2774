"""baseColor texture projected from the input views onto the deformed mesh of every frame (multi-view texturing).

The field's colour is a smooth function fitted to every view at once, so fine texture comes out soft. The views
themselves are crisp, so once the mesh and its per-frame positions are known, each texel takes the colour that the
views show where its surface point lands, at every frame (production multi-view texturing):

* visibility: the point must be the first surface seen through its pixel (a depth test against the deformed mesh,
  ray-cast with Embree), at most `depth_tolerance_px` pixel footprints behind it;
* weight: cos(θ)^`angle_power` between the surface normal and the direction to the camera (grazing views smear
  texels across pixels), times a ramp from 0 at the view's silhouette edge to 1 at `edge_px` pixels inside it
  (edge pixels mix object and background, and there a slightly wrong mesh takes background colour);
* a point that lands on background in a view is not seen by that view (the mesh is a little off there).

Views that the fit found turned (`ViewSet.turns`, from `DynamicNeRF.view_turns`) are projected through their turned
cameras. Every frame of every view contributes into the one canonical UV atlas (colour is constant over time in canonical
space); texels that no view sees keep the field's colour, blended in with `field_weight` so the transition is
continuous; seams are dilated afterwards (`texture.finish_texture`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import OrbitCameras
from .raycast import depth_maps
from .texture import UVMesh, texel_samples


@dataclass
class ViewSet:
    """The views a field was fitted to: videos (V, F, H, W, 3) in [0, 1], masks (V, F, H, W) in [0, 1] or None
    (derived from the white background), cameras (one per view)."""

    videos: torch.Tensor
    masks: torch.Tensor | None
    cameras: OrbitCameras
    turns: torch.Tensor | None = None  # (V, 3, 3) world rotations of each view's rays (the fit's view corrections)

    def __post_init__(self) -> None:
        if self.videos.ndim != 5 or self.videos.shape[-1] != 3:
            raise ValueError(f"views must be (views, frames, height, width, 3), got {tuple(self.videos.shape)}")
        self.cameras.check_count(self.videos.shape[0], "the views for the texture")
        if self.masks is not None and tuple(self.masks.shape) != tuple(self.videos.shape[:-1]):
            raise ValueError(f"masks must be (views, frames, height, width) = {tuple(self.videos.shape[:-1])}, got "
                             f"{tuple(self.masks.shape)}")

    @property
    def num_frames(self) -> int:
        return self.videos.shape[1]

    def check_frames(self, count: int) -> None:
        """Refuse a mesh solved at `count` frames for these views (one position per video frame is needed)."""
        if count != self.num_frames:
            raise ValueError(f"the mesh has {count} frames but the views have {self.num_frames}")

    def depth_maps(self, positions: np.ndarray, faces: np.ndarray) -> torch.Tensor:
        """Depth maps (V, H, W) of a mesh (vertices (P, 3) float32, faces (M, 3)) from every view, +inf where it
        misses (`raycast.depth_maps`); a turned view's camera sees its own moved copy of the mesh."""
        cameras, (height, width) = self.cameras, self.videos.shape[2:4]
        if self.turns is None:
            return depth_maps(positions, faces, cameras, width, height)
        return torch.cat([depth_maps(self.seen_by(v, torch.from_numpy(positions)).numpy(), faces, cameras.select([v]),
                                     width, height) for v in range(self.videos.shape[0])])

    def object_masks(self) -> torch.Tensor:
        """Masks (V, F, H, W) in [0, 1]: the given ones, or derived from the white background as the fit does."""
        if self.masks is not None:
            return self.masks
        from .fit import derive_masks  # fit imports the renderer; this keeps the module graph one-way

        return derive_masks(self.videos)

    def seen_by(self, view: int, points: torch.Tensor) -> torch.Tensor:
        """Points (P, 3) moved so that the view's nominal camera sees them where its turned camera saw the
        originals: centre + (x − centre)·M (identity without turns)."""
        if self.turns is None:
            return points
        centre = self.cameras.c2w()[view, :3, 3].to(points.dtype)
        return centre + (points - centre) @ self.turns[view].to(points.dtype)


@dataclass
class ProjectionSettings:
    """How the views are weighted into the texture (measured on the real dev scene, docs/bench_export.md)."""

    angle_power: float = 4.0
    edge_px: float = 2.0
    depth_tolerance_px: float = 2.0
    field_weight: float = 1e-3  # the field's colour as a faint extra view: where no view sees a texel


def inside_distance(masks: torch.Tensor) -> torch.Tensor:
    """Pixels (N, H, W) from each object pixel to the nearest background pixel (0 on background)."""
    from scipy.ndimage import distance_transform_edt  # exact distances; torch has none

    inside = (masks > 0.5).cpu().numpy()
    return torch.from_numpy(np.stack([distance_transform_edt(m) for m in inside])).float()


def sample_pixels(images: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (N, P, C) of images (N, C, H, W) at pixel coordinates (N, P, 2) (column, row; centres at
    +0.5); outside the image the border value."""
    height, width = images.shape[-2:]
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=pixels.dtype)
    grid = (pixels * scale - 1.0)[:, None]  # align_corners=False: −1 is the image's outer edge
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0].transpose(1, 2)


def nearest_depth(depth: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Smallest depth (N, P) among the 2×2 pixels around each projected point: a point just behind an occluding
    edge is not taken for visible."""
    num_views, height, width = depth.shape
    low = (pixels - 0.5).floor().long()
    best = torch.full(pixels.shape[:2], float("inf"))
    flat = depth.reshape(num_views, -1)
    for dc in (0, 1):
        for dr in (0, 1):
            col = (low[..., 0] + dc).clamp(0, width - 1)
            row = (low[..., 1] + dr).clamp(0, height - 1)
            best = torch.minimum(best, flat.gather(1, row * width + col))
    return best


def projected_colours(
    mesh: UVMesh,
    frames: np.ndarray,
    views: ViewSet,
    size: int,
    settings: ProjectionSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sums of view colours per texel: (S·S, 3) float64 and the weights (S·S,) float64.

    `frames` (F, N, 3): positions of the uncut mesh's vertices (`mesh.source` indexes them) at each video frame.
    """
    settings = settings or ProjectionSettings()
    if frames.shape[0] != views.num_frames:
        raise ValueError(f"the mesh has {frames.shape[0]} frames but the views have {views.num_frames}; solve the "
                         "vertices at the views' frame times")
    cameras = views.cameras
    num_views, num_frames, height, width, _ = views.videos.shape
    total_steps = num_frames * num_views
    # rasterising the atlas takes seconds at 1024²: its checks keep interrupts prompt (the bar stays at 0)
    texel, triangles, weights = texel_samples(mesh, size, 1, (lambda: progress(0, total_steps)) if progress else None)
    weights = torch.from_numpy(weights).float()
    centres = cameras.c2w()[:, :3, 3]  # (V, 3)
    focal = cameras.focal(height)
    masks = views.object_masks()
    total = torch.zeros(size * size, 3, dtype=torch.float64)
    weight_sum = torch.zeros(size * size, dtype=torch.float64)
    texel = torch.from_numpy(texel)
    faces = mesh.faces.astype(np.int64)
    for f in range(num_frames):
        positions = frames[f][mesh.source].astype(np.float32)  # cut-mesh vertices at this frame
        corners = torch.from_numpy(positions[triangles])  # (P, 3, 3)
        points = torch.einsum("pk,pkd->pd", weights, corners)
        normals = F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), dim=-1)
        surface = views.depth_maps(positions, faces)  # (V, H, W)
        edges = inside_distance(masks[:, f])
        for v in range(num_views):  # one view at a time: memory stays at a few P-sized buffers, progress prompt
            pixels, depth = (x[0] for x in cameras.select([v]).project(views.seen_by(v, points), width, height))
            visible = depth <= nearest_depth(surface[v:v + 1], pixels[None])[0] + (
                settings.depth_tolerance_px * depth / focal)
            cosine = (F.normalize(centres[v] - points, dim=-1) * normals).sum(-1).clamp(min=0)
            edge = sample_pixels(edges[v:v + 1, None], pixels[None])[0, :, 0]
            weight = cosine.pow(settings.angle_power) * (edge / settings.edge_px).clamp(max=1) * visible
            colour = sample_pixels(views.videos[v, f].permute(2, 0, 1)[None].float().cpu(), pixels[None])[0]
            total.index_add_(0, texel, (weight[:, None] * colour).double())
            weight_sum.index_add_(0, texel, weight.double())
            if progress is not None:
                progress(f * num_views + v + 1, total_steps)
    return total.numpy(), weight_sum.numpy()


def blend_with_field(projected: np.ndarray, weight: np.ndarray, field: np.ndarray, field_weight: float
                     ) -> np.ndarray:
    """Per-texel colours (S·S, 3): the views' weighted mean, the field's colour as a faint extra view."""
    return (projected + field_weight * field) / (weight + field_weight)[:, None]
