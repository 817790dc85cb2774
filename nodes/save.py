"""SV4D2 Save Views: a multi-view video → one mp4 per view in the output folder, as the official script writes."""
from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io, ui

from sv4d_lib.multiview import split_views
from sv4d_lib.video import write_video

from .types import Cameras


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
                io.Image.Input("images", tooltip="Multi-view video: all frames of view 0 (input view), then view 1, …"),
                Cameras.Input("cameras", tooltip="The cameras of the views (they give the number of views)."),
                io.String.Input("filename_prefix", default="sv4d2/views",
                                tooltip="Output sub-folder and file name prefix."),
                io.Float.Input("fps", default=10.0, min=0.1, max=120.0, step=0.1,
                               tooltip="Frame rate of the videos (official: 10)."),
            ],
            outputs=[],
        )

    @classmethod
    def execute(cls, images, cameras, filename_prefix: str, fps: float) -> io.NodeOutput:
        videos = split_views(images, cameras)
        output_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, output_dir, images.shape[2], images.shape[1]
        )
        results = []
        for view, frames in enumerate(videos):
            filename = f"{name}_{counter:05}_v{view:03d}.mp4"
            write_video(frames[..., :3], os.path.join(folder, filename), fps)
            results.append(ui.SavedResult(filename, subfolder, io.FolderType.output))
        return io.NodeOutput(ui=ui.PreviewVideo(results))


NODES = [SV4D2SaveViews]
