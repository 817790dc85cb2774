"""SV4D2 Refine: noise-and-denoise of multi-view videos, e.g. renders of a fitted 4D field (paper §4, stage 2).

The novel views are VAE-encoded, noised to the level of `strength` (the start step in the sampler's own EDM
schedule, `sv4d_lib.extend.refine_start_step`) and denoised with the same conditioning, grid and windows as
SV4D2 Extend Video (`sv4d_lib.extend.refine_videos`). strength 0 returns the VAE round trip of the input; strength 1
starts from pure noise and equals sampling (SV4D2 Sample NVVS with the same seed, for one window). In between, the
noised latent is `latent + σ_start·noise`, exactly what core AddNoise feeds SamplerCustomAdvanced
(tests/host/test_refine_host.py runs that core graph). View 0, the input view, is passed through.
"""
from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from sv4d_lib import extend
from sv4d_lib.multiview import join_views, split_views
from sv4d_lib.video import check_finite

from .common import validate_grid
from .common import model_inputs, plan_video, window_host, window_inputs, windows_output
from .types import Cameras


class SV4D2Refine(io.ComfyNode):
    """Noise-and-denoise refinement of multi-view videos with the SV4D 2.0 model."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2Refine",
            display_name="SV4D2 Refine",
            category="SV4D2/sampling",
            description="Re-noises multi-view videos (e.g. 4D renders) to a strength and denoises them with the "
            "input-video conditioning, window by window (stage-2 refinement).",
            inputs=[
                *model_inputs(),
                io.Image.Input("frames", tooltip="The prepared input frames the videos belong to (conditioning)."),
                Cameras.Input("cameras", tooltip="The cameras of the videos (input view + V novel views)."),
                io.Image.Input(
                    "multiview",
                    tooltip="Multi-view video to refine, view-major: (V + 1)·n frames, view 0 = input view (passed "
                    "through), then the novel views in camera order.",
                ),
                io.Float.Input(
                    "strength", default=0.5, min=0.0, max=1.0, step=0.01,
                    tooltip="Share of the denoising steps to re-run: 0 returns the VAE round trip of the input, 1 "
                    "samples from pure noise (ignores the input).",
                ),
                *window_inputs("Steps of the full schedule (official: 50); strength picks how many of them run.",
                               "Seed of the noise stream shared by all windows."),
            ],
            outputs=[
                io.Image.Output(display_name="multiview", tooltip="The refined multi-view video, same layout."),
                windows_output(),
            ],
        )

    @classmethod
    def validate_inputs(cls, grid: str) -> bool | str:
        return validate_grid(grid)

    @classmethod
    def execute(
        cls, model, clip_vision, vae, frames, cameras, multiview, strength: float, steps: int, seed: int, grid: str,
        decoding_t: int, crossfade: bool, pad_frames: bool,
    ) -> io.NodeOutput:
        check_finite(multiview, "multiview")
        videos = split_views(multiview, cameras)[..., :3]
        extend.check_source_videos(videos, frames)
        plan, _, notes = plan_video(model, cameras, frames.shape[0], pad_frames)
        num_steps = steps - extend.refine_start_step(strength, steps)  # the steps each window runs (progress bar)
        host = window_host(model, clip_vision, vae, cameras, grid, plan, num_steps, decoding_t)
        out, report = extend.refine_videos(host, frames, videos, plan, strength, steps, seed, crossfade, notes,
                                           mm.intermediate_device())
        return io.NodeOutput(join_views(out), report)


NODES = [SV4D2Refine]
