"""SV4D2 Export 4D Mesh: fitted field → textured, animated GLB + turntable mp4 in ComfyUI's output folder."""
from __future__ import annotations

import logging
import os
from io import BytesIO

import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy_api.latest import io, ui

from sv4d_lib.multiview import split_views
from sv4d_lib.nerf.export import STAGES, ExportProgress, ExportSettings, export_4d
from sv4d_lib.nerf.mesh import SurfaceSettings
from sv4d_lib.nerf.projection import ViewSet
from sv4d_lib.nerf.texture import BakeSettings
from sv4d_lib.video import check_finite

from .common import check_filename_prefix
from .types import Cameras, Field4D

log = logging.getLogger(__name__)

# ComfyUI ≥ 0.12 has a typed 3D-file socket (File3D); 0.3.75 only takes a STRING path in Preview3D.
HAS_FILE3D = hasattr(io, "File3DGLB")
# Share of the progress bar per export stage (measured proportions of a CPU export at the defaults).
STAGE_SPAN = dict(zip(STAGES, (0.05, 0.3, 0.03, 0.15, 0.12, 0.3, 0.01, 0.04)))
_DEFAULTS = ExportSettings()


def resolve_fps(fps: float, video) -> float:
    """The animation's frame rate: `fps` when > 0, else the connected source video's; never a silent default."""
    if fps > 0:
        return float(fps)
    if video is not None:
        rate = float(video.get_frame_rate())
        if rate > 0:
            return rate
        raise ValueError(f"the connected video reports no usable frame rate ({rate}); set fps by hand")
    raise ValueError("fps is 0 (= take it from the source video) but no video is connected: connect the source "
                     "VIDEO (e.g. Load Video) to `video`, or set fps to the source video's frame rate")


def _progress_bar() -> ExportProgress:
    bar = comfy.utils.ProgressBar(1000)
    starts = dict(zip(STAGES, [sum(list(STAGE_SPAN.values())[:i]) for i in range(len(STAGES))]))

    def progress(stage: str, done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(int(1000 * (starts[stage] + STAGE_SPAN[stage] * done / max(total, 1))), 1000)

    return progress


def _views(images, cameras, masks) -> ViewSet | None:
    """The views the field was fitted to (outline and texture); None when neither `images` nor `cameras` is
    connected."""
    if images is None and cameras is None:
        return None
    if images is None or cameras is None:
        missing = "images" if images is None else "cameras"
        raise ValueError(f"the views need both `images` and `cameras`; `{missing}` is not connected: connect the "
                         "multi-view video and its cameras (those of SV4D2 Fit 4D), or disconnect both")
    check_finite(images, "images")
    videos = split_views(images[..., :3], cameras)
    mask_videos = None
    if masks is not None:
        check_finite(masks, "masks")
        mask_videos = split_views(masks, cameras)
        if mask_videos.shape[:2] != videos.shape[:2]:
            raise ValueError(f"got {masks.shape[0]} masks for {images.shape[0]} images; pass one mask per image")
    return ViewSet(videos, mask_videos, cameras)


class SV4D2Export4DMesh(io.ComfyNode):
    """One canonical mesh (cleaned, UV-textured), carried to every frame as morph targets; a turntable preview."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        outputs = [
            io.String.Output(display_name="model_file",
                             tooltip="GLB path relative to the output folder: connect to Preview 3D's model_file to "
                             "play the animation."),
            io.String.Output(display_name="report", tooltip="File size, mesh size, frame rate, surface level and "
                             "the residual of the per-frame vertex solve."),
        ]
        if HAS_FILE3D:
            outputs.append(io.File3DGLB.Output(display_name="glb", tooltip="The animated GLB as a 3D file."))
        surface, bake = _DEFAULTS.surface, _DEFAULTS.bake
        return io.Schema(
            node_id="SV4D2Export4DMesh",
            display_name="SV4D2 Export 4D Mesh",
            category="SV4D2/4d",
            description="Animated GLB (UV-textured mesh, one morph target per frame, a looping animation named "
            "after the file) and <name>_turntable.mp4 of the exported mesh. Nothing is written unless the whole "
            "export succeeds; interrupting stops it within a second.",
            is_output_node=True,
            # widgets of earlier versions first, in their order, so saved workflows keep their values; the newer
            # ones are optional (API prompts written for earlier versions still run, with the defaults)
            inputs=[
                Field4D.Input("field", tooltip="The fitted dynamic NeRF (SV4D2 Fit 4D)."),
                io.String.Input("filename_prefix", default="sv4d2/4d",
                                tooltip="Output sub-folder and file name prefix."),
                io.Int.Input("frames", default=0, min=0, max=4096,
                             tooltip="Frames (morph targets) spread over the clip (0: the field's frame count)."),
                io.Int.Input("mesh_resolution", default=surface.resolution, min=32, max=512, step=8,
                             tooltip="Marching-cubes grid per axis (CPU: 128 takes seconds, 256 about a minute)."),
                io.Float.Input("fps", default=0.0, min=0.0, max=120.0, step=0.1,
                               tooltip="Playback frame rate. 0: the frame rate of `video` (the source clip). If "
                               "you kept every n-th source frame, set the source rate / n here."),
                io.Video.Input("video", optional=True,
                               tooltip="The source video (Load Video): with fps 0 the animation plays at its frame "
                               "rate."),
                io.Float.Input("density_level", default=0.0, min=0.0, max=10000.0, step=0.5,
                               tooltip="Density of the surface. 0: where the fitted opacity reaches 1/2 along rays "
                               "(recommended); higher shrinks the mesh, lower grows it."),
                io.Int.Input("face_budget", default=surface.face_budget, min=0, max=2_000_000, step=1000,
                             optional=True, tooltip="Decimate to at most this many triangles (0: keep all)."),
                io.Int.Input("smoothing", default=surface.smoothing_iterations, min=0, max=100,
                             optional=True,
                             tooltip="Taubin smoothing passes (no shrinkage); 0 keeps the marching-cubes surface."),
                io.Combo.Input("colour", options=["texture", "vertex"], default=_DEFAULTS.colour,
                               optional=True,
                               tooltip="texture: UV atlas + baked baseColor image; vertex: per-vertex colours."),
                io.Int.Input("texture_size", default=bake.size, min=64, max=8192, step=64,
                             optional=True, tooltip="Texels per side of the baseColor texture."),
                io.Combo.Input("texture_format", options=["png", "jpeg"], default=_DEFAULTS.image_format,
                               optional=True, tooltip="png: lossless; jpeg: a smaller, lossy texture (the morph targets dominate the file size)."),
                io.Boolean.Input("turntable", default=True,
                                 optional=True,
                                 tooltip="Also write <name>_turntable.mp4: the exported mesh rendered around the "
                                 "orbit while it plays."),
                io.Combo.Input("texture_source", options=["views", "field"], default=_DEFAULTS.texture_source,
                               optional=True,
                               tooltip="views: project the connected multi-view video onto the animated mesh at "
                               "every frame, then correct it so that the mesh renders those views as closely as "
                               "it can (crisp; the field's colour only where no view sees the surface). field: the "
                               "fitted field's colour (softer). Without `images` and `cameras` connected, the field "
                               "is used and the report says so."),
                io.Image.Input("images", optional=True,
                               tooltip="The multi-view video the field was fitted to (the same input as SV4D2 Fit "
                               "4D's images, view-major): the mesh's surface is moved to where the views agree on "
                               "its colour, its outline onto their masks at every frame, each frame slid along its "
                               "surface to where its views show the clip's colours, and with texture_source "
                               "'views' the texture is projected from it."),
                Cameras.Input("cameras", optional=True, tooltip="The orbit of `images` (input view first)."),
                io.Mask.Input("masks", optional=True,
                              tooltip="Object masks of `images` (1 = object); without them non-white pixels count "
                              "as the object."),
            ],
            outputs=outputs,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix: str | None = None) -> bool | str:
        return (filename_prefix is not None and check_filename_prefix(filename_prefix)) or True

    @classmethod
    def execute(cls, field, filename_prefix: str, frames: int, mesh_resolution: int, fps: float,
                density_level: float, video=None, face_budget: int = _DEFAULTS.surface.face_budget,
                smoothing: int = _DEFAULTS.surface.smoothing_iterations, colour: str = _DEFAULTS.colour,
                texture_size: int = _DEFAULTS.bake.size, texture_format: str = _DEFAULTS.image_format,
                turntable: bool = _DEFAULTS.turntable, texture_source: str = _DEFAULTS.texture_source,
                images=None, cameras=None, masks=None) -> io.NodeOutput:
        problem = check_filename_prefix(filename_prefix)
        if problem:
            raise ValueError(problem)
        rate = resolve_fps(fps, video)
        views = _views(images, cameras, masks)
        settings = ExportSettings(
            surface=SurfaceSettings(resolution=mesh_resolution, level=density_level or None,
                                    smoothing_iterations=smoothing, face_budget=face_budget),
            bake=BakeSettings(size=texture_size), colour=colour, image_format=texture_format,
            num_frames=frames or None, turntable=turntable, texture_source=texture_source)
        output_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output_dir)
        result = export_4d(field, folder, f"{name}_{counter:05}_", rate, settings, _progress_bar(), views)
        log.info("SV4D2 Export 4D Mesh: %s", result.summary())
        relative = os.path.relpath(result.glb, output_dir).replace(os.sep, "/")
        values = [relative, result.summary()]
        if HAS_FILE3D:
            from comfy_api.latest import Types

            values.append(Types.File3D(BytesIO(result.glb.read_bytes()), file_format="glb"))
        preview = None
        if result.turntable is not None:
            preview = ui.PreviewVideo([ui.SavedResult(result.turntable.name, subfolder, io.FolderType.output)])
        return io.NodeOutput(*values, ui=preview)


NODES = [SV4D2Export4DMesh]
