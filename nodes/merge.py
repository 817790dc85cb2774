"""SV4D2 Merge Views: several sampling passes (4-view and 8-view model, other trajectories) → one multi-view video
and one OrbitCameras for Fit 4D (rules in `sv4d_lib.merge_views`)."""
from __future__ import annotations

from comfy_api.latest import io

from sv4d_lib.merge_views import FRAME_MODES, Pass, merge_views
from sv4d_lib.multiview import join_views, split_views
from sv4d_lib.video import check_finite

from .types import Cameras

MAX_PASSES = 4  # more passes: merge the merged set again (its view 0 is the input view, like any pass)


def pass_inputs(index: int, optional: bool) -> list:
    """The multi-view video and cameras sockets of pass `index` (1-based)."""
    return [
        io.Image.Input(f"multiview_{index}", optional=optional,
                       tooltip=f"Pass {index}: a multi-view video, view-major with the input view first (Sample "
                       "NVVS, Extend Video or Refine of either model, Render 4D, or your own views)."),
        Cameras.Input(f"cameras_{index}", optional=optional,
                      tooltip=f"The cameras of pass {index}, input view first (the Cameras node the pass was "
                      "sampled with)."),
    ]


class SV4D2MergeViews(io.ComfyNode):
    """Merges up to four multi-view passes on the same input video into one view set for Fit 4D."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2MergeViews",
            display_name="SV4D2 Merge Views",
            category="SV4D2/4d",
            description="Puts the views of several passes on the same input video (e.g. the 4-view and the 8-view "
            "model) into one multi-view video with one set of cameras: the input view once (the real input frames "
            "when connected), duplicate cameras dropped (the first pass wins), frames lined up through the input "
            "view, views resized to the input size and ordered around the orbit for Fit 4D.",
            inputs=[
                *(socket for index in range(1, MAX_PASSES + 1) for socket in pass_inputs(index, index > 2)),
                io.Combo.Input(
                    "frames", options=list(FRAME_MODES), default=FRAME_MODES[0],
                    tooltip="must match: every pass must cover the same input frames (Extend Video on the whole "
                    "video; pad_frames for the 8-view model), else a clear error. common frames: keep only the input "
                    "frames every pass shows (e.g. a 5-frame pass beside a 21-frame one keeps 5).",
                ),
                io.Image.Input("input_frames", optional=True,
                               tooltip="The prepared input video (SV4D2 Prepare Video): used as the input view, so "
                               "it is the real frames, not a pass's reconstruction."),
            ],
            outputs=[
                io.Image.Output(display_name="multiview",
                                tooltip="The merged multi-view video, view-major, input view first."),
                Cameras.Output(display_name="cameras", tooltip="One camera per merged view, input view first."),
                io.String.Output(display_name="report",
                                 tooltip="Where each pass sits on the input frames, dropped duplicates, resizes and "
                                 "the merged layout."),
            ],
        )

    @classmethod
    def execute(cls, frames: str, input_frames=None, **sockets) -> io.NodeOutput:
        passes = []
        for index in range(1, MAX_PASSES + 1):
            images, cameras = sockets.get(f"multiview_{index}"), sockets.get(f"cameras_{index}")
            if (images is None) != (cameras is None):
                missing = "cameras" if cameras is None else "multiview"
                raise ValueError(f"pass {index} has no {missing}_{index}: connect both its multi-view video and its "
                                 "cameras, or neither")
            if images is None:
                continue
            check_finite(images, f"multiview_{index}")
            passes.append(Pass(split_views(images[..., :3], cameras), cameras))
        if input_frames is not None:
            check_finite(input_frames, "input_frames")
            input_frames = input_frames[..., :3]
        videos, cameras, report = merge_views(passes, input_frames, frames)
        return io.NodeOutput(join_views(videos), cameras, report)


NODES = [SV4D2MergeViews]
