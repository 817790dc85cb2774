"""SV4D2 Sample NVVS: one window of T frames × V novel views, sampled through ComfyUI's own sampler stack.

GridGuider (per-latent CFG) + `comfy.samplers` euler + the official EDM sigmas = the official Euler-EDM loop
(pinned to the golden fixture by tests/host/test_sampling_host.py). Output images are view-major with the input
view as view 0 (sv4d_lib.multiview): the given prepared frames, or else the VAE reconstruction of the
conditioning latents, so the layout always matches the cameras.
"""
from __future__ import annotations

import comfy.model_management as mm
import comfy.sample
import latent_preview
import torch
from comfy_api.latest import io

from sv4d_lib import guidance, multiview, sampling, video

from .common import (
    check_layout,
    decode_views,
    decoding_t_input,
    grid_input,
    parse_bounded_spec,
    run_guider,
    seed_input,
    validate_grid,
)
from .types import Cameras


def conditioning_layout(positive: list, negative: list) -> tuple[int, int]:
    """(T, V) of SV4D2 Encode Video conditioning; clear error for anything else."""
    try:
        layouts = [(c[0][1]["sv4d2_num_frames"], c[0][1]["sv4d2_num_views"]) for c in (positive, negative)]
    except (IndexError, KeyError, TypeError):
        raise ValueError("positive and negative must come from SV4D2 Encode Video") from None
    if layouts[0] != layouts[1]:
        raise ValueError(f"positive is for (T, V) = {layouts[0]} but negative for {layouts[1]}; encode them together")
    return layouts[0]


def sample_latents(model, positive: list, negative: list, scales: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """Seeded noise (as core RandomNoise) through `run_guider`; a latent preview and an interruption check per step."""
    concat = positive[0][1]["concat_latent_image"]
    latent = torch.zeros(concat.shape[0], concat.shape[1], *concat.shape[2:])
    preview = latent_preview.prepare_callback(model, steps)

    def callback(step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        preview(step, x0, x, total_steps)

    noise = comfy.sample.prepare_noise(latent, seed)
    return run_guider(model, positive, negative, scales, noise, latent, sampling.edm_sigmas(steps), callback)


class SV4D2SampleNVVS(io.ComfyNode):
    """Samples and decodes one window of novel-view videos (T frames × V views)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2SampleNVVS",
            display_name="SV4D2 Sample NVVS",
            category="SV4D2/sampling",
            description="Novel-view video sampling (official Euler-EDM, per-latent CFG grid) and decoding.",
            inputs=[
                io.Model.Input("model", tooltip="The SV4D 2.0 model (SV4D2 Load Model)."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning from SV4D2 Encode Video."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning from SV4D2 Encode Video."),
                Cameras.Input("cameras", tooltip="The cameras used for encoding (SV4D2 Cameras)."),
                io.Vae.Input("vae", tooltip="The SV4D 2.0 VAE, used to decode the views."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Euler steps (official: 50)."),
                seed_input("Seed of the initial noise."),
                grid_input(),
                decoding_t_input(),
                io.Image.Input(
                    "frames", optional=True,
                    tooltip="The prepared input frames, used as view 0 of the output. Without them view 0 is the "
                    "VAE reconstruction of the encoded input frames.",
                ),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="Sampled latents, T·V in (frame, view) order."),
                io.Image.Output(
                    display_name="multiview",
                    tooltip="Multi-view video, view-major: (V + 1)·T frames, view 0 = input view, then the novel "
                    "views in camera order.",
                ),
                io.Image.Output(display_name="grid", tooltip="One image: a row per view, a column per frame."),
            ],
        )

    @classmethod
    def validate_inputs(cls, grid: str) -> bool | str:
        return validate_grid(grid)

    @classmethod
    def execute(
        cls, model, positive, negative, cameras, vae, steps: int, seed: int, grid: str, decoding_t: int, frames=None
    ) -> io.NodeOutput:
        num_frames, num_views = conditioning_layout(positive, negative)
        check_layout(model, cameras, num_frames, num_views)
        scales = guidance.grid_from_spec(parse_bounded_spec(grid), num_frames, num_views, cameras)
        concat = positive[0][1]["concat_latent_image"]
        size = concat.shape[-1] * 8
        if frames is not None and tuple(frames.shape[:3]) != (num_frames, size, size):
            raise ValueError(
                f"frames must be the {num_frames} prepared {size}×{size} input frames that were encoded, got "
                f"{frames.shape[0]} of {frames.shape[2]}×{frames.shape[1]}"
            )
        latents = sample_latents(model, positive, negative, scales, steps, seed)
        novel = decode_views(vae, latents, num_views, decoding_t)
        if frames is None:
            view0 = decode_views(vae, concat[::num_views], 1, decoding_t)
        else:
            view0 = frames[None, ..., :3].to(novel)
        videos = torch.cat([view0, novel])
        return io.NodeOutput({"samples": latents}, multiview.join_views(videos), video.tile_grid(videos))


NODES = [SV4D2SampleNVVS]
