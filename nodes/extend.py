"""SV4D2 Extend Video: novel-view videos of any length, sampled window by window (paper §3.2; spec §5.3-§5.4).

The windows follow the official schedule (`sv4d_lib.windows`) and the loop is `sv4d_lib.extend`: the first window
samples without reference views, every later one is conditioned on the decoded novel views of its first frame,
re-encoded with the VAE, as the script does; overlapping frames are overwritten by the later window (or
cross-faded, opt-in). One noise stream runs through all windows (the script seeds once), so the first window equals
SV4D2 Sample NVVS with the same seed.
"""
from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from sv4d_lib import extend, multiview, windows

from .common import validate_grid
from .common import model_inputs, plan_video, window_host, window_inputs, windows_output
from .types import Cameras


class SV4D2ExtendVideo(io.ComfyNode):
    """Novel-view videos for any number of frames ≥ one window (12 for 4 views, 5 for 8 views)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2ExtendVideo",
            display_name="SV4D2 Extend Video",
            category="SV4D2/sampling",
            description="Samples a multi-view video of any length window by window, each window conditioned on the "
            "novel views of its first frame from the previous one (official autoregressive extension).",
            inputs=[
                *model_inputs(),
                io.Image.Input("frames", tooltip="All prepared input frames (SV4D2 Prepare Video), any length ≥ T."),
                Cameras.Input("cameras", tooltip="Input view + V novel views (SV4D2 Cameras), V = the model's views."),
                *window_inputs("Euler steps per window (official: 50).",
                               "Seed of the noise stream shared by all windows (window 0 equals Sample NVVS)."),
            ],
            outputs=[
                io.Image.Output(
                    display_name="multiview",
                    tooltip="Multi-view video, view-major: (V + 1)·n frames, view 0 = the input frames, then the "
                    "novel views in camera order.",
                ),
                windows_output(),
            ],
        )

    @classmethod
    def validate_inputs(cls, grid: str) -> bool | str:
        return validate_grid(grid)

    @classmethod
    def execute(
        cls, model, clip_vision, vae, frames, cameras, steps: int, seed: int, grid: str, decoding_t: int,
        crossfade: bool, pad_frames: bool,
    ) -> io.NodeOutput:
        plan, _, notes = plan_video(model, cameras, frames.shape[0], pad_frames)
        host = window_host(model, clip_vision, vae, cameras, grid, plan, steps, decoding_t)
        videos = extend.extend_video(host, frames, cameras.num_novel_views, plan, steps, seed, crossfade,
                                     mm.intermediate_device())
        return io.NodeOutput(multiview.join_views(videos), windows.window_report(plan, notes))


NODES = [SV4D2ExtendVideo]
