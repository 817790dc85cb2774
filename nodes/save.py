"""SV4D2 Save Views: a multi-view video → one mp4 per view in the output folder, as the official script writes."""
from __future__ import annotations

import math
import os

import folder_paths
from comfy_api.latest import io, ui

from sv4d_lib.atomic import atomic_files
from sv4d_lib.multiview import split_views
from sv4d_lib.video import check_finite, check_video, write_video

from .common import check_filename_prefix, interruptible_progress
from .types import Cameras


FPS_RANGE = (0.1, 120.0)


def check_fps(fps) -> str | None:
    """Why `fps` cannot be a video frame rate, or None if it can."""
    low, high = FPS_RANGE
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not low <= fps <= high:
        return f"fps must be a positive finite number of frames per second from {low} to {high} (e.g. 10), got {fps!r}"
    return None


class SV4D2SaveViews(io.ComfyNode):
    """Writes `<prefix>_<counter>_v000.mp4` (input view) … `_vNNN.mp4` (novel views) and previews them."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2SaveViews",
            display_name="SV4D2 Save Views",
            category="SV4D2/video",
            description="Saves a multi-view video (view-major, input view first) as one H.264 mp4 per view, named "
            "like the official script's outputs (_v000 is the input view).",
            is_output_node=True,
            inputs=[
                io.Image.Input(
                    "images",
                    tooltip="Multi-view video: all frames of view 0 (input view), then view 1, … Odd widths or "
                    "heights are padded by one edge pixel (H.264 needs even sides).",
                ),
                Cameras.Input("cameras", tooltip="The cameras of the views (they give the number of views)."),
                io.String.Input("filename_prefix", default="sv4d2/views",
                                tooltip="Output sub-folder and file name prefix."),
                io.Float.Input("fps", default=10.0, min=FPS_RANGE[0], max=FPS_RANGE[1], step=0.1,
                               tooltip="Frame rate of the videos (official: 10)."),
            ],
            outputs=[],
        )

    @classmethod
    def validate_inputs(cls, filename_prefix: str | None = None, fps: float | None = None) -> bool | str:
        # declaring an input here turns off ComfyUI's own checks of it (NaN passes those anyway), so both are
        # checked in full; linked values arrive as None and are checked when the node runs
        problem = (filename_prefix is not None and check_filename_prefix(filename_prefix)) or (
            fps is not None and check_fps(fps))
        return problem or True

    @classmethod
    def execute(cls, images, cameras, filename_prefix: str, fps: float) -> io.NodeOutput:
        problem = check_filename_prefix(filename_prefix) or check_fps(fps)
        if problem:
            raise ValueError(problem)
        check_finite(images, "images")
        videos = split_views(images, cameras)
        output_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, output_dir, images.shape[2], images.shape[1]
        )
        filenames = [f"{name}_{counter:05}_v{view:03d}.mp4" for view in range(videos.shape[0])]
        on_frame = interruptible_progress(videos.shape[0] * videos.shape[1])
        # all views are written and read back before any is renamed: a failure leaves no file behind
        paths = [os.path.join(folder, filename) for filename in filenames]
        with atomic_files(paths, check=lambda path: check_video(path, videos.shape[1])) as temporaries:
            for frames, temporary in zip(videos, temporaries):
                write_video(frames[..., :3], temporary, fps, on_frame)
        results = [ui.SavedResult(filename, subfolder, io.FolderType.output) for filename in filenames]
        return io.NodeOutput(ui=ui.PreviewVideo(results))


NODES = [SV4D2SaveViews]
