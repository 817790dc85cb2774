"""SV4D2 Extend Video: novel-view videos of any length, sampled window by window (paper §3.2; spec §5.3-§5.4).

The windows follow the official schedule (`sv4d_lib.schedule`): the first samples without reference views, every
later one is conditioned on the decoded novel views of its first frame, re-encoded with the VAE, as the script
does; overlapping frames are overwritten by the later window (or cross-faded, opt-in). One noise stream runs
through all windows (the script seeds once), so the first window equals SV4D2 Sample NVVS with the same seed.
Only the decoded output video grows with the length: each window's latents are dropped once decoded.
"""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import latent_preview
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from sv4d_lib import guidance, multiview, sampling, schedule, video
from sv4d_lib.cameras import OrbitCameras

from .conditioning import encode_video, vae_means
from .sampling import (
    check_layout,
    decode_views,
    decoding_t_input,
    grid_input,
    run_guider,
    seed_input,
    validate_grid,
)
from .types import Cameras


def plan_video(model, cameras: OrbitCameras, n_frames: int, pad: bool) -> tuple[list[schedule.Window], int, list[str]]:
    """Windows over the video (padded when `pad`), its padded length and notes for the info output.

    Checks the model, the cameras and the length before any compute.
    """
    num_frames = getattr(model.model, "sv4d2_num_frames", None)
    check_layout(model, cameras, num_frames, cameras.num_novel_views)
    variant = model.model.sv4d2_variant
    notes = []
    length = n_frames
    if pad:
        length = schedule.padded_length(n_frames, num_frames, variant)
        if length > n_frames:
            notes.append(f"padded {n_frames} → {length} frames by repeating the last frame; the extra output frames "
                         "are dropped")
    else:
        tail = schedule.uncovered_frames(n_frames, num_frames, variant)  # also rejects n < T
        if tail:
            covered = schedule.covered_frames(n_frames, num_frames, variant)
            raise ValueError(
                f"the {variant} model's windows of {num_frames} frames overlap by one frame and cover {covered} of the "
                f"{n_frames} frames; frames {tail[0]}-{tail[-1]} would never be generated (the official script drops "
                f"them): trim the video to {covered} frames, or enable pad_frames (repeats the last frame up to "
                f"{schedule.padded_length(n_frames, num_frames, variant)} frames and drops the extra output)"
            )
    return schedule.plan_windows(length, num_frames, variant), length, notes


class WindowProgress:
    """One progress bar over all windows: sampling steps and decode chunks, a latent preview per step and a
    decoded preview (views × frames grid) per window; checks for interruption at every update."""

    def __init__(self, model, num_windows: int, steps: int, decode_chunks: int):
        self.per_window = steps + decode_chunks
        self.bar = comfy.utils.ProgressBar(num_windows * self.per_window)
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        self.window = 0

    def step(self, step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        preview = self.previewer.decode_latent_to_preview_image("JPEG", x0) if self.previewer else None
        self.bar.update_absolute(self.window * self.per_window + step + 1, preview=preview)

    def decoded_chunk(self) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.bar.update(1)

    def window_done(self, videos: torch.Tensor) -> None:
        """`videos` `(V', T, H, W, 3)`: the window's frames of every view."""
        grid = video.tile_grid(videos)[0]
        scale = min(1.0, latent_preview.MAX_PREVIEW_RESOLUTION / max(grid.shape[:2]))
        if scale < 1.0:
            size = (max(1, int(grid.shape[0] * scale)), max(1, int(grid.shape[1] * scale)))
            grid = F.interpolate(grid.movedim(-1, 0)[None], size, mode="area")[0].movedim(0, -1)
        image = latent_preview.preview_to_image(grid, do_scale=False)
        self.window += 1
        preview = ("JPEG", image, latent_preview.MAX_PREVIEW_RESOLUTION)
        self.bar.update_absolute(self.window * self.per_window, preview=preview)


def run_windows(
    model, clip_vision, vae, frames: torch.Tensor, view0: torch.Tensor, cameras: OrbitCameras, grid: str,
    windows: list[schedule.Window], sigmas: torch.Tensor, seed: int, decoding_t: int, crossfade: bool,
    source: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample the windows in order into a multi-view video `(V + 1, n, H, W, 3)` on the intermediate device.

    `frames` condition the windows; `view0` `(n, H, W, 3)` becomes view 0 of the output. `source`
    `(V, n, H, W, 3)`: novel views to noise to `sigmas[0]` and denoise (refinement); None samples from pure noise.
    A window's reference views are the novel views of its first frame as they stand when it runs.
    """
    num_views = cameras.num_novel_views
    num_frames = windows[0].num_frames
    scales = guidance.grid_from_spec(guidance.parse_grid_spec(grid), num_frames, num_views, cameras.azimuths_deg)
    videos = torch.zeros(num_views + 1, *view0.shape[:3], 3, device=mm.intermediate_device())
    videos[0] = view0[..., :3]
    novel = videos[1:]
    generator = torch.Generator().manual_seed(seed)  # one stream for all windows (CPU, as comfy.sample)
    progress = WindowProgress(model, len(windows), sigmas.shape[0] - 1, num_views * -(-num_frames // decoding_t))
    for window in windows:
        span = slice(window.start, window.start + num_frames)
        references = novel[:, window.start] if window.cond_mv else None
        positive, negative, empty = encode_video(clip_vision, vae, frames[span], cameras, references)
        latent = empty["samples"]
        noise = torch.randn(latent.shape, generator=generator)
        if source is not None:
            latent = vae_means(vae, multiview.views_to_frame_major(source[:, span]))
        samples = run_guider(model, positive, negative, scales, noise, latent.to(noise), sigmas, progress.step)
        decoded = decode_views(vae, samples, num_views, decoding_t, progress.decoded_chunk).to(novel)
        schedule.merge_window(novel, decoded, window, crossfade)
        progress.window_done(videos[:, span])
    return videos


def window_report(windows: list[schedule.Window], notes: list[str]) -> str:
    return "\n".join([w.describe() for w in windows] + notes)


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
        n_frames = frames.shape[0]
        windows, length, notes = plan_video(model, cameras, n_frames, pad_frames)
        frames = schedule.pad_frames(frames, length)
        videos = run_windows(model, clip_vision, vae, frames, frames, cameras, grid, windows,
                             sampling.edm_sigmas(steps), seed, decoding_t, crossfade)
        return io.NodeOutput(multiview.join_views(videos[:, :n_frames]), window_report(windows, notes))


NODES = [SV4D2ExtendVideo]
