"""SV4D2 Refine: noise-and-denoise of multi-view videos, e.g. renders of a fitted 4D field (paper §4, stage 2).

The novel views are VAE-encoded, noised to the level of `strength` (the start step in the sampler's own EDM
schedule, `sv4d_lib.schedule.refine_start_step`) and denoised with the same conditioning, grid and windows as
SV4D2 Extend Video. strength 0 returns the VAE round trip of the input; strength 1 starts from pure noise and
equals sampling (SV4D2 Sample NVVS with the same seed, for one window). In between, the noised latent is
`latent + σ_start·noise`, exactly what core AddNoise feeds SamplerCustomAdvanced (tests/host/test_refine_host.py
runs that core graph). View 0, the input view, is passed through.
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from sv4d_lib import sampling, schedule
from sv4d_lib.multiview import join_views, split_views, views_to_frame_major

from .conditioning import vae_means
from .extend import (
    model_inputs,
    plan_video,
    run_windows,
    window_inputs,
    window_report,
    windows_output,
)
from .sampling import decode_views, validate_grid
from .types import Cameras


def split_input_views(images: torch.Tensor, frames: torch.Tensor, num_views: int) -> torch.Tensor:
    """View-major multi-view IMAGE → `(V + 1, n, H, W, 3)`, checked against the cameras and the input frames."""
    videos = split_views(images, num_views + 1)
    if videos.shape[1] != frames.shape[0] or videos.shape[2:4] != frames.shape[1:3]:
        raise ValueError(
            f"the multi-view video has {videos.shape[1]} frames of {videos.shape[3]}×{videos.shape[2]} per view "
            f"({num_views} novel views + the input view, from the cameras) but there are {frames.shape[0]} input "
            f"frames of {frames.shape[2]}×{frames.shape[1]}; connect the frames and cameras the video was made with"
        )
    return videos[..., :3]


def vae_round_trip(vae, novel: torch.Tensor, decoding_t: int) -> torch.Tensor:
    """`(V, n, H, W, 3)` → decode(encode(·)), decoded by view in `decoding_t` chunks."""
    latents = vae_means(vae, views_to_frame_major(novel))
    return decode_views(vae, latents, novel.shape[0], decoding_t)


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
        n_frames = frames.shape[0]
        videos = split_input_views(multiview, frames, cameras.num_novel_views)
        windows, length, notes = plan_video(model, cameras, n_frames, pad_frames)
        start = schedule.refine_start_step(strength, steps)
        if start == steps:
            novel = vae_round_trip(vae, videos[1:], decoding_t)
            out = torch.cat([videos[:1].to(novel), novel])
            report = f"strength {strength}: no denoising step, the VAE round trip of the input"
        else:
            padded = schedule.pad_frames(videos.transpose(0, 1), length).transpose(0, 1)
            sigmas = schedule.refine_sigmas(sampling.edm_sigmas(steps), strength)
            out = run_windows(model, clip_vision, vae, schedule.pad_frames(frames, length), padded[0], cameras, grid,
                              windows, sigmas, seed, decoding_t, crossfade, None if start == 0 else padded[1:])
            summary = f"strength {strength}: the last {steps - start} of {steps} steps, from sigma {sigmas[0].item():.4g}"
            report = window_report(windows, [summary, *notes])
        return io.NodeOutput(join_views(out[:, :n_frames]), report)


NODES = [SV4D2Refine]
