"""Fitted dynamic NeRF → textured, animated GLB and a turntable preview mp4 (nerf4d.md §4).

Pipeline (each stage reports progress; raising from the callback stops the export within a fraction of a second):
1. `surface`: canonical density grid, surface level from the fitted opacity, marching cubes, floaters dropped,
   Taubin smoothing, decimation to the face budget (`mesh.py`);
2. `deformation`: every vertex carried to every frame by inverting the backward warp (`vertex_solve.py`);
3. `consistency`: with the views given, the surface moved along its normals to where the views agree on its colour:
   the shape between their outlines (`photo_consistency.py`);
4. `silhouettes`: with the views given, the mesh's outline moved onto their masks at every frame (`silhouettes.py`);
5. `tracking`: with the views given, each frame's mesh slid along its surface to where that frame's views show
   the colours all frames agree on, so that the one texture is not a blur of slightly misplaced frames
   (`tracking.py`);
6. `baking`: UV atlas and baseColor texture projected from the views the field was fitted to, onto the deformed
   mesh of every frame (`projection.py`), the canonical colour of the field where no view sees the surface
   (`texture.py`), then corrected by least squares so that the mesh renders the views (`texture_fit.py`); or from
   the field alone; or vertex colours;
7. `writing`: one GLB, one morph target per frame, a looping animation named after the file (`gltf.py`);
8. `turntable`: the written GLB read back and ray-cast around the orbit, playing its animation (`raycast.py`).

One mesh is extracted in canonical space (= frame 0), so topology, UVs and texture stay fixed and each frame is a
morph target. Both files are written under temporary names and renamed only when both are complete and checked, so
an error or an interrupt leaves nothing behind.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field as dataclass_field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..atomic import atomic_files
from ..cameras import DEFAULT_FOV_DEG, DEFAULT_RADIUS, OrbitCameras
from .vertex_solve import FrameSolve, solve_frames
from .gltf import AnimatedMesh, animated_glb, read_glb
from .mesh import SurfaceReport, SurfaceSettings, extract_surface, vertex_normals
from .projection import ProjectionSettings, ViewSet, blend_with_field, projected_colours
from .photo_consistency import PhotoConsistencyReport, PhotoConsistencySettings, refine_photo_consistency
from .silhouettes import SilhouetteReport, SilhouetteSettings, refine_silhouettes
from .raycast import render_mesh
from .tracking import TrackingReport, TrackingSettings, track_frames
from .texture import BakeSettings, field_colours, finish_texture, uv_atlas
from .texture_fit import TextureFit, TextureFitSettings, fit_texture

if TYPE_CHECKING:
    from .field import DynamicNeRF

# Progress(stage, done, total): stage is one of STAGES, in that order.
ExportProgress = Callable[[str, int, int], None]
STAGES = ("surface", "deformation", "consistency", "silhouettes", "tracking", "baking", "writing", "turntable")
# Morph normals are written when some frame turns more than this share of the normals by over 10°: without them a
# lit viewer shades moving limbs with their rest-pose normals.
MORPH_NORMAL_SHARE = 0.01


@dataclass
class ExportSettings:
    """Everything that shapes the export besides the field, the frame rate and the file name."""

    surface: SurfaceSettings = dataclass_field(default_factory=SurfaceSettings)
    photo_consistency: PhotoConsistencySettings = dataclass_field(default_factory=PhotoConsistencySettings)
    silhouettes: SilhouetteSettings = dataclass_field(default_factory=SilhouetteSettings)  # with the views given
    tracking: TrackingSettings = dataclass_field(default_factory=TrackingSettings)  # with the views given
    bake: BakeSettings = dataclass_field(default_factory=BakeSettings)
    colour: str = "texture"  # "texture" (UV atlas + baseColor image) or "vertex" (COLOR_0)
    texture_source: str = "views"  # "views": projected from the views when given (else the field); "field"
    projection: ProjectionSettings = dataclass_field(default_factory=ProjectionSettings)
    texture_fit: TextureFitSettings = dataclass_field(default_factory=TextureFitSettings)  # after the projection
    image_format: str = "png"  # "png" or "jpeg"
    morph_normals: bool | None = None  # None: when the motion turns normals (MORPH_NORMAL_SHARE)
    num_frames: int | None = None  # morph targets spread over the clip; None: the field's frame count
    turntable: bool = True
    turntable_size: int = 256
    turntable_elevation_deg: float = 10.0


@dataclass
class Export4D:
    """What `export_4d` wrote and measured."""

    glb: Path
    turntable: Path | None
    file_bytes: int
    fps: float
    num_frames: int
    vertices: int
    faces: int
    morph_normals: bool
    closes_loop: bool
    surface: SurfaceReport
    solves: list[FrameSolve]
    consistency: PhotoConsistencyReport | None  # None: no views were given
    silhouettes: SilhouetteReport | None  # None: no views were given
    tracking: TrackingReport | None  # None: no views were given
    texture_source: str  # what coloured the mesh: "views", "field" or "vertex colours from the field"
    view_coverage: float  # share of the texture's surface texels that at least one view sees (0 without views)
    texture_fit: TextureFit | None  # None: the texture was not projected from the views or not corrected
    seconds: dict[str, float] = dataclass_field(default_factory=dict)

    @property
    def max_residual(self) -> float:
        """Worst residual ‖x + Δ(x, t) − v‖ of the per-frame vertex solve (world units)."""
        return max(s.max_residual for s in self.solves)

    @property
    def unconverged_share(self) -> float:
        """Share of vertex-frames without a valid root of the solve (moved with their neighbours instead)."""
        return sum(s.unconverged for s in self.solves) / sum(s.vertices for s in self.solves)

    def summary(self) -> str:
        loop = "seamless loop" if self.closes_loop else "loops through a blend back to frame 0"
        colour = self.texture_source
        if self.texture_source == "views":
            colour = f"texture from the views ({100 * self.view_coverage:.1f} % of texels seen, the rest from the field)"
            if self.texture_fit is not None:
                colour += (f", fitted to them by least squares ({self.texture_fit.psnr_before:.2f} → "
                           f"{self.texture_fit.psnr_after:.2f} dB over the {self.texture_fit.pixels} view pixels the "
                           "mesh covers)")
        shape = "" if self.consistency is None else (
            f"; surface moved to where the views agree on its colour ({self.consistency.moved_vertices} vertices "
            f"decided by their views, mean move {self.consistency.mean_move:.2e})")
        outline = "" if self.silhouettes is None else (
            f"; outline moved onto the views' masks ({self.silhouettes.rim_vertices} rim vertices, mean move "
            f"{self.silhouettes.mean_move:.2e} in the last of {self.silhouettes.rounds} rounds, then "
            f"{self.silhouettes.frame_rounds} per frame)")
        if self.tracking is not None:
            outline += (f"; each frame slid along its surface to where its views show the clip's colours (mean slide "
                        f"{self.tracking.mean_move:.2e}, {100 * self.tracking.decided_share:.0f} % of "
                        "vertex-frames decided by their views)")
        return (f"{self.glb.name}: {self.file_bytes / 1e6:.2f} MB, {self.faces} faces, {self.vertices} vertices, "
                f"{self.num_frames} frames at {self.fps:g} fps ({loop}); colour: {colour}; surface level "
                f"σ={self.surface.level:.3g}, "
                f"{self.surface.components_dropped} floaters dropped; deformation residual max "
                f"{self.max_residual:.2e}, {100 * self.unconverged_share:.2f} % of vertex-frames had no valid root "
                f"and follow their neighbours{shape}{outline}")


def safe_stem(name: str) -> str:
    """File-name stem without path separators or odd characters (letters, digits, `._-` kept)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".")
    if not stem.strip("_-"):
        raise ValueError(f"file name {name!r} has no usable characters; use letters, digits, '-' or '_'")
    return stem


def _turned_share(base: np.ndarray, frame_normals: np.ndarray) -> float:
    """Largest share over frames of normals (K, N, 3) that turn more than 10° from `base` (N, 3)."""
    cosine = np.einsum("knd,nd->kn", frame_normals, base)
    return float((cosine < math.cos(math.radians(10.0))).mean(axis=1).max())


def _closes_loop(frames: np.ndarray) -> bool:
    """The clip ends where it starts: last-frame offset from frame 0 under 5 % of the clip's largest mean motion."""
    motion = np.linalg.norm(frames - frames[:1], axis=-1).mean(axis=1)
    return frames.shape[0] > 2 and motion[-1] <= 0.05 * motion.max()


def turntable_frames(mesh: AnimatedMesh, size: int, elevation_deg: float,
                     step: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Frames (T, size, size, 3) on white: the camera circles once while the animation plays (whole loops, at
    least 36 frames), rendered from the mesh as written."""
    num_frames = mesh.frames.shape[0]
    total = num_frames * max(1, math.ceil(36 / num_frames))
    images = []
    for i in range(total):
        camera = OrbitCameras((elevation_deg,), (360.0 * i / total,), DEFAULT_RADIUS, DEFAULT_FOV_DEG)
        images.append(render_mesh(mesh, i % num_frames, camera, size, size)[0][0])
        if step is not None:
            step(i + 1, total)
    return torch.stack(images)


def export_4d(
    field: DynamicNeRF,
    directory: str | Path,
    stem: str,
    fps: float,
    settings: ExportSettings | None = None,
    progress: ExportProgress | None = None,
    views: ViewSet | None = None,
) -> Export4D:
    """Write `<stem>.glb` (textured, animated at `fps`) and `<stem>_turntable.mp4` (a trailing `_` of the stem
    dropped) into `directory`.

    Frames are sampled at t = k / (num_frames − 1). `views`: the videos the field was fitted to, with their cameras;
    with `texture_source` "views" the texture is projected from them. Nothing is written unless the whole export
    succeeds.
    """
    from ..video import check_video, write_video

    settings = settings or ExportSettings()
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number (the source video's frame rate), got {fps}")
    if settings.colour not in ("texture", "vertex"):
        raise ValueError(f"colour must be 'texture' or 'vertex', got {settings.colour!r}")
    if settings.texture_source not in ("views", "field"):
        raise ValueError(f"texture_source must be 'views' or 'field', got {settings.texture_source!r}")
    num_frames = settings.num_frames or field.num_frames
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    stem = safe_stem(stem)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    glb_path = directory / f"{stem}.glb"
    video_path = directory / f"{stem.rstrip('_')}_turntable.mp4"  # ComfyUI stems end in "_<counter>_"

    def stage(name: str) -> Callable[[int, int], None]:
        return lambda done, total: progress(name, done, total) if progress is not None else None

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()

    surface, report = extract_surface(field, settings.surface, stage("surface"))
    vertices = np.asarray(surface.vertices, np.float32)
    faces = np.asarray(surface.faces, np.int64)
    lap("surface")
    times = [k / max(num_frames - 1, 1) for k in range(num_frames)]
    if views is not None and field.view_turns is not None:
        if len(field.view_turns) != views.videos.shape[0]:
            raise ValueError(f"the field was fitted to {len(field.view_turns)} views, some of them turned, but "
                             f"{views.videos.shape[0]} views are given; connect the views it was fitted to (same "
                             "order), or leave them out (disconnect images and cameras)")
        views = replace(views, turns=field.view_turns)
    project = settings.colour == "texture" and settings.texture_source == "views" and views is not None
    view_times = [f / max(views.num_frames - 1, 1) for f in range(views.num_frames)] if views is not None else times
    edges = np.asarray(surface.edges_unique)
    deformation = stage("deformation")
    frames, solves = solve_frames(field, vertices, edges, times, progress=deformation)
    # the views' frames, where the animation samples the clip at other times (the bar stays full meanwhile)
    view_frames = frames if view_times == times else solve_frames(
        field, vertices, edges, view_times, progress=lambda done, total: deformation(total, total))[0]
    lap("deformation")
    agreement = stage("consistency")
    consistency = None
    if views is not None and settings.photo_consistency.rounds > 0:
        moved = [view_frames] if view_frames is frames else [view_frames, frames]
        vertices, moved, consistency = refine_photo_consistency(vertices, faces, edges, moved, views,
                                                                settings.photo_consistency, agreement)
        view_frames, frames = moved[0], moved[-1]
    agreement(1, 1)
    lap("consistency")
    outline = stage("silhouettes")
    silhouettes = None
    if views is not None and settings.silhouettes.rounds > 0:
        moved = [view_frames] if view_frames is frames else [view_frames, frames]
        vertices, moved, silhouettes = refine_silhouettes(vertices, faces, edges, moved, views, settings.silhouettes,
                                                          outline)
        view_frames, frames = moved[0], moved[-1]
    outline(1, 1)
    lap("silhouettes")
    slide = stage("tracking")
    tracking = None
    if views is not None and settings.tracking.rounds > 0:
        moved = [view_frames] if view_frames is frames else [view_frames, frames]
        moved, tracking = track_frames(faces, edges, moved, views, settings.tracking, slide)
        view_frames, frames = moved[0], moved[-1]
    slide(1, 1)
    lap("tracking")
    normals = vertex_normals(vertices, faces)
    frame_normals = np.stack([vertex_normals(f, faces) for f in frames])
    morph_normals = settings.morph_normals
    if morph_normals is None:
        morph_normals = num_frames > 1 and _turned_share(normals, frame_normals) > MORPH_NORMAL_SHARE
    bake = stage("baking")
    texture_fit = None
    if settings.colour == "texture":
        cut = uv_atlas(vertices, faces, settings.bake.size, settings.bake.padding, wait=lambda: bake(0, 1))
        colours, covered = field_colours(field, cut, settings.bake, lambda done, total: bake(done, 3 * total))
        source, coverage = "field", 0.0
        if project:
            projected, weight = projected_colours(cut, view_frames, views, settings.bake.size, settings.projection,
                                                  lambda done, total: bake(total + done, 3 * total))
            colours = blend_with_field(projected, weight, colours, settings.projection.field_weight)
            source, coverage = "views", float((weight[covered] > 0).mean())
            if settings.texture_fit.enabled:
                colours, texture_fit = fit_texture(colours, covered, cut, view_frames, views, settings.texture_fit,
                                                   settings.bake.samples_per_axis,
                                                   lambda done, total: bake(2 * total + done, 3 * total))
        texture = finish_texture(colours, covered)
        mesh = AnimatedMesh(cut.vertices, normals[cut.source], cut.faces, frames[:, cut.source], uv=cut.uv,
                            texture=texture, frame_normals=frame_normals[:, cut.source] if morph_normals else None)
    else:
        with torch.no_grad():
            colours = field.canonical(torch.from_numpy(vertices).to(field.device))[1]
        mesh = AnimatedMesh(vertices, normals, faces.astype(np.uint32), frames, colours=colours.float().cpu().numpy(),
                            frame_normals=frame_normals if morph_normals else None)
        source, coverage = "vertex colours from the field", 0.0
        bake(1, 1)
    lap("baking")
    closes_loop = _closes_loop(frames)
    targets = [glb_path] + ([video_path] if settings.turntable else [])
    with atomic_files(targets) as temporaries:
        write = stage("writing")
        write(0, 1)
        data = animated_glb(mesh, fps, name=stem, closes_loop=closes_loop, image_format=settings.image_format)
        write(1, 3)
        temporaries[0].write_bytes(data)
        write(2, 3)
        written = read_glb(temporaries[0].read_bytes())  # what a viewer will load, not what we meant to write
        write(3, 3)
        lap("writing")
        if settings.turntable:
            turn = stage("turntable")
            images = turntable_frames(written, settings.turntable_size, settings.turntable_elevation_deg, turn)
            write_video(images, temporaries[1], fps)
            check_video(temporaries[1], images.shape[0])
            lap("turntable")
    return Export4D(glb_path, video_path if settings.turntable else None, len(data), float(fps), num_frames,
                    len(mesh.vertices), len(mesh.faces), bool(morph_normals), closes_loop, report, solves, consistency,
                    silhouettes, tracking, source, coverage, texture_fit, seconds)
