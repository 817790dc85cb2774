"""Procedural dynamic scene with exact ground truth: textured ellipsoids that move and deform, seen by orbit cameras.

Ray casting is analytic (each ellipsoid is the unit sphere under an affine map A(t)·u + c(t)), so multi-view videos,
masks and depth are exact and cheap (8 views × 12 frames at 64² well under a second on CPU). Texture and shading
live in each ellipsoid's local frame (light fixed to the object), so a surface point keeps its colour over time:
the scene is exactly a canonical field plus a deformation, which lets tests check a fitted field and its mesh
motion against the truth. It also makes the pack's sample input video.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .cameras import OrbitCameras


@dataclass(frozen=True)
class Ellipsoid:
    """Unit sphere mapped by scale → rotation about y → translation, each varying sinusoidally over t ∈ [0, 1].

    Texture: a `checks`-square checkerboard in local longitude/latitude between two colours.
    """

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)  # amplitude of c(t) − c(0)
    squash: float = 0.0  # relative amplitude of the y radius (x/z radii compensate)
    spin_deg: float = 0.0  # rotation about y at t = 1
    checks: int = 6

    def transform(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """A(t) (3, 3) and c(t) (3,) in float64: world = A·local + c."""
        wave = math.sin(2 * math.pi * t)
        stretch = 1.0 + self.squash * wave
        scale = torch.diag(torch.tensor(self.radii, dtype=torch.float64) * torch.tensor(
            [stretch**-0.5, stretch, stretch**-0.5], dtype=torch.float64))
        angle = math.radians(self.spin_deg * t)
        rotation = torch.tensor(
            [[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]],
            dtype=torch.float64,
        )
        centre = torch.tensor(self.centre, dtype=torch.float64) + torch.tensor(self.translation, dtype=torch.float64) * wave
        return rotation @ scale, centre

    def albedo(self, local: torch.Tensor) -> torch.Tensor:
        """Checker colour (N, 3) of unit-sphere points (N, 3)."""
        longitude = torch.atan2(local[:, 0], local[:, 2])
        latitude = torch.asin(local[:, 1].clamp(-1, 1))
        cell = torch.floor(longitude / math.pi * self.checks / 2) + torch.floor(latitude / math.pi * self.checks)
        odd = torch.remainder(cell, 2)[:, None]
        a, b = (torch.tensor(c, dtype=local.dtype) for c in self.colours)
        return a * (1 - odd) + b * odd


# Light direction in each object's local frame (baked shading: ambient + Lambert).
_LIGHT = F.normalize(torch.tensor([0.4, 0.8, 0.45], dtype=torch.float64), dim=0)


def default_scene() -> tuple[Ellipsoid, ...]:
    """A squashing, spinning body and a smaller ball bobbing sideways, inside a 0.5-radius ball."""
    return (
        Ellipsoid((0.0, -0.06, 0.0), (0.26, 0.22, 0.2), ((0.95, 0.55, 0.15), (0.15, 0.35, 0.8)),
                  translation=(0.0, 0.04, 0.0), squash=0.12, spin_deg=40.0),
        Ellipsoid((0.12, 0.26, 0.02), (0.12, 0.12, 0.12), ((0.2, 0.75, 0.3), (0.95, 0.95, 0.85)),
                  translation=(-0.14, 0.02, 0.05), checks=4),
    )


RAY_BATCH = 1 << 16  # rays cast at once: bounds memory and the time between callbacks


@dataclass
class SceneRender:
    """Multi-view video of a scene: `rgb` (V, F, H, W, 3) on white, `mask` and `depth` (V, F, H, W)."""

    rgb: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor


def _cast(scene: tuple[Ellipsoid, ...], origins: torch.Tensor, dirs: torch.Tensor, t: float):
    """Closest hit of rays (N, 3) float64: distance (inf on miss) and colour (N, 3)."""
    best = torch.full((origins.shape[0],), math.inf, dtype=torch.float64)
    colour = torch.ones(origins.shape[0], 3, dtype=torch.float64)
    for shape in scene:
        matrix, centre = shape.transform(t)
        inverse = torch.linalg.inv(matrix)
        o, d = (origins - centre) @ inverse.T, dirs @ inverse.T  # ray in the unit-sphere frame, same parameter
        a, b, c = (d * d).sum(-1), 2 * (o * d).sum(-1), (o * o).sum(-1) - 1
        disc = b * b - 4 * a * c
        dist = (-b - disc.clamp(min=0).sqrt()) / (2 * a)
        hit = (disc > 0) & (dist > 0) & (dist < best)
        local = F.normalize(o + d * dist[:, None], dim=-1)
        shade = 0.35 + 0.65 * (local @ _LIGHT).clamp(min=0)
        colour = torch.where(hit[:, None], shape.albedo(local) * shade[:, None], colour)
        best = torch.where(hit, dist, best)
    return best, colour


def render_scene(
    cameras: OrbitCameras,
    num_frames: int,
    width: int,
    height: int,
    scene: tuple[Ellipsoid, ...] | None = None,
    supersample: int = 2,
    callback: Callable[[int, int], None] | None = None,
) -> SceneRender:
    """Render every (camera, frame) with `t = frame / (num_frames − 1)`; edges antialiased by supersampling.

    Rays are cast in batches of `RAY_BATCH`; `callback(done, total)` runs after each batch (progress and
    interruption, well under a second apart even for large images).
    """
    scene = scene or default_scene()
    s = supersample
    rgb = torch.empty(cameras.num_views_total, num_frames, height, width, 3)
    mask, depth = torch.empty(rgb.shape[:-1]), torch.empty(rgb.shape[:-1])
    all_origins, all_dirs = cameras.rays(width * s, height * s)
    batches = -(-all_origins.shape[1] // RAY_BATCH)
    total, done = cameras.num_views_total * num_frames * batches, 0
    for v in range(cameras.num_views_total):
        origins, dirs = all_origins[v].double(), all_dirs[v].double()
        for f in range(num_frames):
            parts = []
            for o, d in zip(origins.split(RAY_BATCH), dirs.split(RAY_BATCH)):
                parts.append(_cast(scene, o, d, f / max(num_frames - 1, 1)))
                done += 1
                if callback is not None:
                    callback(done, total)
            dist, colour = (torch.cat(part) for part in zip(*parts))
            hit = torch.isfinite(dist)

            def pool(x: torch.Tensor) -> torch.Tensor:  # (H·s·W·s, C) → (H, W, C) box filter
                x = x.reshape(1, height * s, width * s, -1).permute(0, 3, 1, 2)
                return F.avg_pool2d(x, s)[0].permute(1, 2, 0)

            rgb[v, f] = pool(colour).float()
            mask[v, f] = pool(hit[:, None].double())[..., 0].float()
            depth[v, f] = pool(torch.where(hit, dist, 0.0)[:, None])[..., 0].float() / mask[v, f].clamp(min=1e-6)
    return SceneRender(rgb, mask, depth)


def move_points(points: torch.Tensor, t: float, scene: tuple[Ellipsoid, ...] | None = None) -> torch.Tensor:
    """Ground-truth motion of surface points given at t = 0 (N, 3) to time `t`, per their nearest ellipsoid."""
    scene = scene or default_scene()
    x = points.double()
    locals_, moved = [], []
    for shape in scene:
        matrix0, centre0 = shape.transform(0.0)
        matrix, centre = shape.transform(t)
        local = (x - centre0) @ torch.linalg.inv(matrix0).T
        locals_.append((local.norm(dim=-1) - 1).abs())
        moved.append(local @ matrix.T + centre)
    owner = torch.stack(locals_).argmin(dim=0)
    return torch.stack(moved)[owner, torch.arange(x.shape[0])].to(points.dtype)


def perturb_views(
    videos: torch.Tensor, colour_shift: float, shift_px: float, seed: int = 0, keep_first: bool = True
) -> torch.Tensor:
    """Make views slightly inconsistent like generated ones: a per-view colour gain and a sub-pixel shift.

    Each view v gets gains 1 ± `colour_shift` per channel and a translation of `shift_px` pixels in a random
    direction (bilinear, white fill). View 0 (the real input) stays exact when `keep_first`.
    """
    generator = torch.Generator().manual_seed(seed)
    out = videos.clone()
    num_views, num_frames, height, width, _ = videos.shape
    for v in range(1 if keep_first else 0, num_views):
        gain = 1 + colour_shift * (torch.rand(3, generator=generator) * 2 - 1)
        angle = float(torch.rand((), generator=generator)) * 2 * math.pi
        dx, dy = shift_px * math.cos(angle) * 2 / width, shift_px * math.sin(angle) * 2 / height
        theta = torch.tensor([[1.0, 0.0, -dx], [0.0, 1.0, -dy]]).expand(num_frames, 2, 3)
        frames = videos[v].permute(0, 3, 1, 2) - 1  # shift (image − white) so the fill is white
        grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
        shifted = F.grid_sample(frames, grid, align_corners=False, padding_mode="zeros") + 1
        out[v] = (shifted.permute(0, 2, 3, 1) * gain).clamp(0, 1)
    return out
