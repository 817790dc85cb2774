"""Windows for videos longer than one chunk, and the noise-and-denoise start step (paper §3.2, §4; spec §5.3-§5.4).

The model samples T frames at a time (4-view: T = 12, 8-view: T = 5). The official script covers n ≥ T frames
with windows ("chunks") that start at

* 4-view ("4v"): `range(0, n, T − 1)`, each start clamped to n − T (upstream PR #459; before it the script crashed
  for n ≥ 24). Windows overlap by at least one frame; the clamp makes the last one overlap more, and repeats a
  start when n − T is a multiple of T − 1 (n = 12 runs frames 0-11 twice).
* 8-view ("8v"): `range(0, n − T + 1, T − 1)`: windows overlap by exactly one frame; frames after the last full
  window are never generated (`uncovered_frames`).

A window with start 0 samples without reference views (masked, as official); every later window is conditioned
on the novel views of its first frame, as they stand when it runs, i.e. as written by the latest earlier window
that covered that frame. Each window writes all its frames, overwriting what earlier windows wrote (official
rule, including its own conditioning frame); `crossfade_weights` offers a linear blend over the overlap instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MODELS = ("4v", "8v")


def _check_model(num_frames: int, model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; use '4v' (4-view SV4D 2.0) or '8v' (8-view)")
    if num_frames < 2:
        raise ValueError(f"windows need at least 2 frames (num_frames), got {num_frames}")


def _check(n_frames: int, num_frames: int, model: str) -> None:
    _check_model(num_frames, model)
    if n_frames < num_frames:
        raise ValueError(
            f"the {model} model generates {num_frames} frames per window, but the video has {n_frames}; give it at "
            f"least {num_frames} frames, or pad it (pad_frames repeats the last frame {num_frames - n_frames} times)"
        )


def chunk_starts(n_frames: int, num_frames: int, model: str) -> list[int]:
    """Window starts of the official script (with the PR #459 fix) for a video of `n_frames` ≥ T frames."""
    _check(n_frames, num_frames, model)
    stop = n_frames if model == "4v" else n_frames - num_frames + 1
    return [min(t0, n_frames - num_frames) for t0 in range(0, stop, num_frames - 1)]


def covered_frames(n_frames: int, num_frames: int, model: str) -> int:
    """Number of leading frames the windows generate (all n for 4v; up to the last full window for 8v)."""
    return chunk_starts(n_frames, num_frames, model)[-1] + num_frames


def uncovered_frames(n_frames: int, num_frames: int, model: str) -> list[int]:
    """Frames no window generates (official: left out of the output); only the 8-view schedule has them."""
    return list(range(covered_frames(n_frames, num_frames, model), n_frames))


def padded_length(n_frames: int, num_frames: int, model: str) -> int:
    """Smallest length ≥ `n_frames` whose every frame a window generates (≥ T; 8v: T + k·(T − 1))."""
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {n_frames}")
    _check_model(num_frames, model)
    if model == "4v" or n_frames <= num_frames:
        return max(n_frames, num_frames)
    return num_frames + math.ceil((n_frames - num_frames) / (num_frames - 1)) * (num_frames - 1)


def pad_frames(frames: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat the last frame (dim 0) up to `length` frames.

    Opt-in for videos shorter than a window, or for 8-view videos whose tail no full window reaches: the model
    then sees the object hold still at the end; callers drop the generated padding frames afterwards.
    """
    if frames.shape[0] < 1:
        raise ValueError("cannot pad an empty video")
    if length < frames.shape[0]:
        raise ValueError(f"cannot pad {frames.shape[0]} frames down to {length}")
    if length == frames.shape[0]:
        return frames  # no copy: callers pass whole videos
    return torch.cat([frames, frames[-1:].expand(length - frames.shape[0], *frames.shape[1:])])


@dataclass(frozen=True)
class Window:
    """One window of T frames in a long video."""

    index: int
    start: int
    num_frames: int
    # Conditioned on the novel views of frame `start` (official: start != 0); else reference views are masked.
    cond_mv: bool
    # The earlier window whose output holds frame `start` when this window runs (None when not conditioned).
    cond_window: int | None
    # Frames [start, overlap_end) were already written by earlier windows.
    overlap_end: int

    @property
    def frames(self) -> range:
        return range(self.start, self.start + self.num_frames)

    @property
    def overlap(self) -> range:
        return range(self.start, self.overlap_end)

    def describe(self) -> str:
        """One line for the node's info output."""
        last = self.start + self.num_frames - 1
        if self.cond_mv:
            source = f"conditioned on the views of frame {self.start} from window {self.cond_window}"
        else:
            source = "no reference views"
        overlap = {0: "no overlap", 1: f"overlaps frame {self.start}"}.get(
            len(self.overlap), f"overlaps frames {self.start}-{self.overlap_end - 1}"
        )
        return f"window {self.index}: frames {self.start}-{last}, {source}, {overlap}"


def plan_windows(n_frames: int, num_frames: int, model: str) -> list[Window]:
    """The official windows with their conditioning source and overlap (see the module docstring)."""
    windows: list[Window] = []
    written_end = 0  # windows always write a prefix [0, written_end) of the video
    for index, start in enumerate(chunk_starts(n_frames, num_frames, model)):
        cond_mv = start != 0
        # With the fixed schedules every later start lies inside an earlier window (the unfixed 4-view script
        # crashed exactly where it did not).
        cond_window = [w.index for w in windows if start in w.frames][-1] if cond_mv else None
        overlap_end = min(max(start, written_end), start + num_frames)
        windows.append(Window(index, start, num_frames, cond_mv, cond_window, overlap_end))
        written_end = max(written_end, start + num_frames)
    return windows


def crossfade_weights(window: Window) -> torch.Tensor:
    """Weight `(T,)` of the window's own output per frame when cross-fading (opt-in; the official rule is 1).

    Over the L overlapping frames the weight ramps (j + 1)/(L + 1), j = 0..L − 1, from the earlier output to this
    window's; frames past the overlap are this window's alone. A one-frame overlap (8-view) blends 50/50.
    """
    weights = torch.ones(window.num_frames)
    length = len(window.overlap)
    weights[:length] = torch.arange(1, length + 1, dtype=torch.float32) / (length + 1)
    return weights


def merge_window(video: torch.Tensor, window_frames: torch.Tensor, window: Window, crossfade: bool) -> None:
    """Write a window's frames into `video` (frames on dim 1, e.g. `(V', n, H, W, C)`) in place.

    Official: overwrite. `crossfade`: blend the overlap with `crossfade_weights`.
    """
    frames = slice(window.start, window.start + window.num_frames)
    if not crossfade or not window.overlap:
        video[:, frames] = window_frames
        return
    shape = (1, window.num_frames) + (1,) * (video.ndim - 2)
    w = crossfade_weights(window).to(video).reshape(shape)
    video[:, frames] = w * window_frames.to(video) + (1 - w) * video[:, frames]


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
