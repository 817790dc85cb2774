"""Helpers shared by the SV4D2 nodes (this module defines no node): inputs several nodes declare, and the ComfyUI
side of the window loop (`sv4d_lib.extend`): encode, sample and decode through the loaded MODEL, CLIP_VISION and
VAE, with one progress bar and previews over all windows.
"""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import latent_preview
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from sv4d_lib import guidance, video, windows
from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.extend import WindowHost

from .conditioning import encode_video, vae_means
from .sampling import check_layout, decode_views, decoding_t_input, grid_input, run_guider, seed_input


def model_inputs() -> list:
    """MODEL, CLIP_VISION and VAE of SV4D2 Load Model: what every window needs to encode, sample and decode."""
    return [
        io.Model.Input("model", tooltip="The SV4D 2.0 model (SV4D2 Load Model)."),
        io.ClipVision.Input("clip_vision", tooltip="The SV4D 2.0 CLIP image encoder (SV4D2 Load Model)."),
        io.Vae.Input("vae", tooltip="The SV4D 2.0 VAE: encodes the conditioning, decodes every window."),
    ]


def window_inputs(steps_tooltip: str, seed_tooltip: str) -> list:
    """steps, seed, grid, decoding_t, crossfade and pad_frames: the window-loop settings."""
    return [
        io.Int.Input("steps", default=50, min=1, max=1000, tooltip=steps_tooltip),
        seed_input(seed_tooltip),
        grid_input(),
        decoding_t_input(),
        io.Boolean.Input(
            "crossfade", default=False,
            tooltip="Off (official): a later window overwrites the frames it shares with earlier ones. On: the "
            "shared frames blend linearly from the earlier window's output to the later one's.",
        ),
        io.Boolean.Input(
            "pad_frames", default=False,
            tooltip="Repeat the last frame so that full windows cover the video (videos shorter than a window; the "
            "8-view tail past the last full window); the extra output frames are dropped. Off: such videos are "
            "errors.",
        ),
    ]


def windows_output() -> io.String.Output:
    return io.String.Output(display_name="windows", tooltip="The windows: frames, reference source, overlap.")


def plan_video(model, cameras: OrbitCameras, num_frames: int, pad: bool) -> tuple[list[windows.Window], int, list[str]]:
    """`sv4d_lib.windows.plan_video` for this model's window length and variant, after checking the model and the
    cameras, before any compute."""
    window_len = getattr(model.model, "sv4d2_num_frames", None)
    check_layout(model, cameras, window_len, cameras.num_novel_views)
    return windows.plan_video(num_frames, window_len, model.model.sv4d2_variant, pad)


class WindowProgress:
    """One progress bar over all windows: sampling steps and decode batches, a latent preview per step and a
    decoded preview (views × frames grid) per window; checks for interruption at every update."""

    def __init__(self, model, num_windows: int, steps: int, decode_batches: int):
        self.per_window = steps + decode_batches
        self.bar = comfy.utils.ProgressBar(num_windows * self.per_window)
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        self.window = 0

    def step(self, step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        preview = self.previewer.decode_latent_to_preview_image("JPEG", x0) if self.previewer else None
        self.bar.update_absolute(self.window * self.per_window + step + 1, preview=preview)

    def decoded_batch(self) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.bar.update(1)

    def window_done(self, videos: torch.Tensor) -> None:
        """`videos` `(V', T, H, W, 3)`: the window's frames of every view."""
        grid = video.tile_grid(videos)[0]
        scale = min(1.0, latent_preview.MAX_PREVIEW_RESOLUTION / max(grid.shape[:2]))
        if scale < 1.0:  # the host's preview size limit
            size = (max(1, int(grid.shape[0] * scale)), max(1, int(grid.shape[1] * scale)))
            grid = F.interpolate(grid.movedim(-1, 0)[None], size, mode="area")[0].movedim(0, -1)
        image = latent_preview.preview_to_image(grid, do_scale=False)
        self.window += 1
        preview = ("JPEG", image, latent_preview.MAX_PREVIEW_RESOLUTION)
        self.bar.update_absolute(self.window * self.per_window, preview=preview)


def window_host(
    model, clip_vision, vae, cameras: OrbitCameras, grid: str, plan: list[windows.Window], num_steps: int,
    decoding_t: int,
) -> WindowHost:
    """The loaded networks as `sv4d_lib.extend` calls them: SV4D2 Encode Video, GridGuider + euler (the CFG grid
    of `grid`), per-view decoding; `num_steps` sampling steps per window for the progress bar."""
    num_novel_views, window_len = cameras.num_novel_views, plan[0].window_len
    scales = guidance.grid_from_spec(guidance.parse_grid_spec(grid), window_len, num_novel_views, cameras)
    progress = WindowProgress(model, len(plan), num_steps, num_novel_views * -(-window_len // decoding_t))

    def encode(frames: torch.Tensor, references: torch.Tensor | None) -> tuple[tuple[list, list], torch.Tensor]:
        positive, negative, empty = encode_video(clip_vision, vae, frames, cameras, references)
        return (positive, negative), empty["samples"]

    def sample(conditioning: tuple[list, list], noise: torch.Tensor, latent: torch.Tensor,
               sigmas: torch.Tensor) -> torch.Tensor:
        return run_guider(model, *conditioning, scales, noise, latent, sigmas, progress.step)

    def decode(latents: torch.Tensor) -> torch.Tensor:
        return decode_views(vae, latents, num_novel_views, decoding_t, progress.decoded_batch)

    return WindowHost(encode, lambda images: vae_means(vae, images), sample, decode, progress.window_done)
