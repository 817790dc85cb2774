"""SV4D2 Encode Video: prepared frames + cameras → SV4D 2.0 positive/negative CONDITIONING and an empty LATENT.

Conditioning contract (consumed by the model adapter, nodes/comfy_model.py): `[[cross_attn, extra]]` with every
tensor per latent, N = T·V rows in (t, v) order — cross_attn `(N, 1, D)`, extra `concat_latent_image`,
`sv4d2_vector`, `sv4d2_cond_view` and the ints `sv4d2_num_frames`, `sv4d2_num_views`.
"""
from __future__ import annotations

from comfy_api.latest import io

from .common import encode_video
from .types import Cameras


class SV4D2EncodeVideo(io.ComfyNode):
    """Encodes the input frames and cameras into SV4D 2.0 conditioning for one window of T frames."""

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
