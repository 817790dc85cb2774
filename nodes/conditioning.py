"""SV4D2 Encode Video: prepared frames + cameras → SV4D 2.0 positive/negative CONDITIONING and an empty LATENT.

Conditioning contract (consumed by the model adapter, nodes/comfy_model.py): `[[cross_attn, extra]]` with every
tensor per latent, N = T·V rows in (t, v) order — cross_attn `(N, 1, D)`, extra `concat_latent_image`,
`sv4d2_vector`, `sv4d2_cond_view` and the ints `sv4d2_num_frames`, `sv4d2_num_views`.
"""
from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from sv4d_lib import conditioning
from sv4d_lib.cameras import OrbitCameras

from .types import Cameras

LATENT_CHANNELS = 4


def check_square_frames(images: torch.Tensor, what: str) -> None:
    """Model frames must be square IMAGE batches with a side that is a multiple of 8 and at least 64."""
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise ValueError(f"{what} must be an IMAGE batch (N, H, W, 3), got shape {tuple(images.shape)}")
    h, w = images.shape[1:3]
    if h != w or h < 64 or h % 8:
        raise ValueError(
            f"{what} are {w}×{h}; SV4D 2.0 needs square frames with a side that is a multiple of 8 and at least 64 "
            "(576 for the released models): run them through SV4D2 Prepare Video"
        )


def clip_image_embeds(clip_vision, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings `(N, D)` of IMAGE frames with the official preprocessing (not ComfyUI's, which
    centre-crops with torch's antialias and rounds to 8 bits)."""
    mm.load_model_gpu(clip_vision.patcher)
    pixels = images[..., :3].movedim(-1, 1).to(clip_vision.load_device, torch.float32) * 2.0 - 1.0
    out = clip_vision.model(pixel_values=conditioning.clip_preprocess(pixels), intermediate_output=-2)
    return out[2].to(mm.intermediate_device(), torch.float32)


def vae_means(vae, images: torch.Tensor) -> torch.Tensor:
    """Unscaled VAE means `(N, 4, h, w)` of IMAGE frames (ComfyUI VAEs return the mean, unscaled)."""
    return vae.encode(images[..., :3]).float()


def to_comfy_conditioning(rows: dict[str, torch.Tensor], num_frames: int, num_views: int) -> list:
    """Per-latent rows → ComfyUI CONDITIONING per the pack's contract."""
    return [[
        rows["crossattn"],
        {
            "concat_latent_image": rows["concat"],
            "sv4d2_vector": rows["vector"],
            "sv4d2_cond_view": rows["cond_view"],
            "sv4d2_num_frames": num_frames,
            "sv4d2_num_views": num_views,
        },
    ]]


def encode_video(
    clip_vision, vae, frames: torch.Tensor, cameras: OrbitCameras, reference_views: torch.Tensor | None = None
) -> tuple[list, list, dict]:
    """Positive/negative conditioning and the empty latent `(T·V, 4, H/8, W/8)` of one chunk."""
    check_square_frames(frames, "frames")
    num_frames, num_views = frames.shape[0], cameras.num_novel_views
    if reference_views is not None:
        check_square_frames(reference_views, "reference views")
        if reference_views.shape[0] != num_views or reference_views.shape[1:3] != frames.shape[1:3]:
            raise ValueError(
                f"reference views must be {num_views} images (one per novel view of the cameras) of "
                f"{frames.shape[2]}×{frames.shape[1]}, got {reference_views.shape[0]} of "
                f"{reference_views.shape[2]}×{reference_views.shape[1]}"
            )
    embeds = clip_image_embeds(clip_vision, frames)
    dims = conditioning.vector_dims(embeds.shape[1])
    latents = vae_means(vae, frames)
    references = None if reference_views is None else vae_means(vae, reference_views)
    vector = conditioning.camera_vector(cameras, num_frames, dims).to(latents.device)
    cond, uncond = conditioning.latent_rows(embeds, latents, vector, references, num_views, sigma_dim=dims[0])
    empty = torch.zeros(num_frames * num_views, LATENT_CHANNELS, *latents.shape[2:])
    return (
        to_comfy_conditioning(cond, num_frames, num_views),
        to_comfy_conditioning(uncond, num_frames, num_views),
        {"samples": empty},
    )


class SV4D2EncodeVideo(io.ComfyNode):
    """Encodes the input frames and cameras into SV4D 2.0 conditioning for one chunk of T frames."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2EncodeVideo",
            display_name="SV4D2 Encode Video",
            category="SV4D2/conditioning",
            description="CLIP + VAE conditioning of T input frames for T frames × V novel views.",
            inputs=[
                io.ClipVision.Input("clip_vision", tooltip="The SV4D 2.0 CLIP image encoder (from SV4D2 Load Model)."),
                io.Vae.Input("vae", tooltip="The SV4D 2.0 VAE (from SV4D2 Load Model)."),
                io.Image.Input(
                    "frames",
                    tooltip="T prepared input frames (SV4D2 Prepare Video): 12 for the 4-view model, 5 for the "
                    "8-view model.",
                ),
                Cameras.Input("cameras", tooltip="Input view + V novel views (SV4D2 Cameras)."),
                io.Image.Input(
                    "reference_views", optional=True,
                    tooltip="Optional V novel views of the first frame (e.g. the last frame of a previous chunk), in "
                    "camera order. Without them the model samples without reference views, as the official "
                    "first chunk does.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="SV4D 2.0 conditional conditioning."),
                io.Conditioning.Output(
                    display_name="negative",
                    tooltip="Unconditional conditioning: zeros except the camera part of the vector (official).",
                ),
                io.Latent.Output(display_name="latent", tooltip="Empty latent, T·V latents in (frame, view) order."),
            ],
        )

    @classmethod
    def execute(cls, clip_vision, vae, frames, cameras, reference_views=None) -> io.NodeOutput:
        return io.NodeOutput(*encode_video(clip_vision, vae, frames, cameras, reference_views))


NODES = [SV4D2EncodeVideo]
