"""Multi-view videos of any length, window by window: autoregressive extension and noise-and-denoise refinement
(paper §3.2 and §4 stage 2; spec §5.3-§5.4).

The loop follows the official script: windows run in `sv4d_lib.windows` order; the first samples without reference
views, every later one is conditioned on the novel views of its first frame as they stand when it runs (decoded
pixels, re-encoded by the host, as the script does); each window's decoded frames are merged into the video
(overwrite, or cross-fade opt-in). One noise stream (a CPU generator seeded once, as the script and core ComfyUI
do) runs through all windows, so window 0 equals a single sampling run with the same seed. Only the decoded video
grows with the length: each window's latents are dropped once decoded.

The networks stay with the host: a `WindowHost` passes in how to encode a window's conditioning, sample it and
decode it, so ComfyUI (nodes/extend.py, nodes/refine.py) and the unit tests with stub networks run the same loop.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .multiview import views_to_frame_major
from .sampling import edm_sigmas
from .windows import Window, merge_window, pad_frames, window_report


@dataclass(frozen=True)
class WindowHost:
    """The host's networks, as the window loop calls them (shapes per window of T frames and V novel views).

    * `encode(frames, references)`: frames `(T, H, W, 3)` and the reference novel views `(V, H, W, 3)` of the
      window's first frame, or None (no reference views) → (conditioning, whatever `sample` needs; the empty
      latent `(T·V, C, h, w)` whose shape the noise takes);
    * `encode_latents(images)`: frame-major novel views `(T·V, H, W, 3)` → clean latents `(T·V, C, h, w)` (the
      start of a refinement pass);
    * `sample(conditioning, noise, latent, sigmas)`: unscaled standard-normal noise and the start latent (zeros
      or clean latents), both `(T·V, C, h, w)`, through the schedule `sigmas` → final latents `(T·V, C, h, w)`;
    * `decode(latents)`: frame-major latents `(T·V, C, h, w)` → novel-view videos `(V, T, H, W, 3)`;
    * `window_done(videos)`: optional, after each window, with its frames of every view `(V + 1, T, H, W, 3)`.
    """

    encode: Callable[[torch.Tensor, torch.Tensor | None], tuple[Any, torch.Tensor]]
    encode_latents: Callable[[torch.Tensor], torch.Tensor]
    sample: Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    decode: Callable[[torch.Tensor], torch.Tensor]
    window_done: Callable[[torch.Tensor], None] | None = None


def run_windows(
    host: WindowHost,
    frames: torch.Tensor,
    view0: torch.Tensor,
    num_novel_views: int,
    windows: list[Window],
    sigmas: torch.Tensor,
    seed: int,
    crossfade: bool,
    source: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Sample the windows in order into a multi-view video `(V + 1, n, H, W, 3)` on `device`.

    `frames` `(n, H, W, 3)` condition the windows; `view0` `(n, H, W, C)` becomes view 0 of the output. `source`
    `(V, n, H, W, 3)`: novel views to noise to `sigmas[0]` and denoise (refinement); None samples from pure noise.
    `n` must be the frames the windows cover (pad first, see `windows.plan_video`).
    """
    num_frames = windows[-1].start + windows[-1].window_len
    if frames.shape[0] != num_frames or view0.shape[0] != num_frames:
        raise ValueError(f"the windows cover {num_frames} frames but got {frames.shape[0]} conditioning frames and "
                         f"{view0.shape[0]} frames of view 0; pad the video to the planned length first")
    if source is not None and tuple(source.shape[:2]) != (num_novel_views, num_frames):
        raise ValueError(f"source views must be (V, n) = ({num_novel_views}, {num_frames}) videos, got shape "
                         f"{tuple(source.shape)}")
    videos = torch.zeros(num_novel_views + 1, *view0.shape[:3], 3, device=device)
    videos[0] = view0[..., :3]
    novel = videos[1:]
    generator = torch.Generator().manual_seed(seed)  # one stream for all windows (CPU, as comfy.sample)
    for window in windows:
        span = slice(window.start, window.start + window.window_len)
        references = novel[:, window.start] if window.cond_mv else None
        conditioning, latent = host.encode(frames[span], references)
        noise = torch.randn(latent.shape, generator=generator)
        if source is not None:
            latent = host.encode_latents(views_to_frame_major(source[:, span]))
        samples = host.sample(conditioning, noise, latent.to(noise), sigmas)
        merge_window(novel, host.decode(samples).to(novel), window, crossfade)
        if host.window_done is not None:
            host.window_done(videos[:, span])
    return videos


def extend_video(
    host: WindowHost,
    frames: torch.Tensor,
    num_novel_views: int,
    windows: list[Window],
    steps: int,
    seed: int,
    crossfade: bool,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Novel-view videos of the `n` input frames `(n, H, W, C)` → multi-view video `(V + 1, n, H, W, 3)`, view 0
    = the input frames, sampled with `steps` Euler-EDM steps per window (padding added for the windows is cut)."""
    num_frames = frames.shape[0]
    frames = pad_frames(frames, windows[-1].start + windows[-1].window_len)
    videos = run_windows(host, frames, frames, num_novel_views, windows, edm_sigmas(steps), seed, crossfade,
                         device=device)
    return videos[:, :num_frames]


def check_source_videos(videos: torch.Tensor, frames: torch.Tensor) -> None:
    """Multi-view videos `(V + 1, n, H, W, C)` to refine must match the input frames `(n, H, W, C)` they belong to."""
    if videos.shape[1] != frames.shape[0] or videos.shape[2:4] != frames.shape[1:3]:
        raise ValueError(
            f"the multi-view video has {videos.shape[1]} frames of {videos.shape[3]}×{videos.shape[2]} per view "
            f"({videos.shape[0] - 1} novel views + the input view, from the cameras) but there are {frames.shape[0]} "
            f"input frames of {frames.shape[2]}×{frames.shape[1]}; connect the frames and cameras the video was made "
            "with"
        )


def refine_start_step(strength: float, steps: int) -> int:
    """Index of the first sigma of a noise-and-denoise pass in a `steps`-step schedule (sigmas has steps + 1).

    `strength` is the fraction of the steps that run, rounded to the nearest step: 0 → start = steps (σ = 0,
    no step: the input comes back unchanged), 1 → start = 0 (σ_max: all steps, sampling from pure noise).
    The pass noises the clean latent to σ_start and runs the remaining steps of the same schedule.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must lie in [0, 1] (0 = keep the input, 1 = sample from noise), got {strength}")
    return steps - math.floor(strength * steps + 0.5)


def refine_sigmas(sigmas: torch.Tensor, strength: float) -> torch.Tensor:
    """The tail `sigmas[start:]` of a schedule (`(steps + 1,)`, last 0) that a pass at `strength` runs."""
    if sigmas.ndim != 1 or sigmas.shape[0] < 2:
        raise ValueError(f"sigmas must be a 1-D schedule with at least 2 entries, got shape {tuple(sigmas.shape)}")
    return sigmas[refine_start_step(strength, sigmas.shape[0] - 1):]


def refine_videos(
    host: WindowHost,
    frames: torch.Tensor,
    videos: torch.Tensor,
    windows: list[Window],
    strength: float,
    steps: int,
    seed: int,
    crossfade: bool,
    notes: list[str],
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, str]:
    """Noise-and-denoise of multi-view videos `(V + 1, n, H, W, 3)` at `strength` → (refined videos, report).

    The novel views are encoded, noised to the start step of `strength` in the `steps`-step EDM schedule and
    denoised window by window with the conditioning of the input `frames` `(n, H, W, C)`; view 0 passes through.
    Strength 0 runs no step (the VAE round trip of the input, whole videos at once); strength 1 starts from pure
    noise and ignores the input, i.e. equals `extend_video`. The report lists the windows, the pass and `notes`.
    """
    check_source_videos(videos, frames)
    num_frames, num_novel_views = frames.shape[0], videos.shape[0] - 1
    start = refine_start_step(strength, steps)
    if start == steps:
        novel = host.decode(host.encode_latents(views_to_frame_major(videos[1:])))
        out = torch.cat([videos[:1].to(novel), novel])
        return out, f"strength {strength}: no denoising step, the VAE round trip of the input"
    length = windows[-1].start + windows[-1].window_len
    padded = pad_frames(videos.transpose(0, 1), length).transpose(0, 1)
    sigmas = refine_sigmas(edm_sigmas(steps), strength)
    out = run_windows(host, pad_frames(frames, length), padded[0], num_novel_views, windows, sigmas, seed, crossfade,
                      None if start == 0 else padded[1:], device)
    summary = f"strength {strength}: the last {steps - start} of {steps} steps, from sigma {sigmas[0].item():.4g}"
    return out[:, :num_frames], window_report(windows, [summary, *notes])
