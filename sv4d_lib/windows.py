"""Windows over videos longer than the model's T frames (paper §3.2; spec §5.3-§5.4).

The model samples `window_len` = T frames at a time (4-view: T = 12, 8-view: T = 5). The official script covers a
video of `num_frames` ≥ T frames with windows (its "chunks") that start at

* 4-view ("4v"): `range(0, num_frames, T − 1)`, each start clamped to num_frames − T (upstream PR #459; before it
  the script crashed for num_frames ≥ 24). Windows overlap by at least one frame; the clamp makes the last one
  overlap more, and repeats a start when num_frames − T is a multiple of T − 1 (12 frames run frames 0-11 twice).
* 8-view ("8v"): `range(0, num_frames − T + 1, T − 1)`: windows overlap by exactly one frame; frames after the last
  full window are never generated (`uncovered_frames`).

A window with start 0 samples without reference views (masked, as official); every later window is conditioned
on the novel views of its first frame, as they stand when it runs, i.e. as written by the latest earlier window
that covered that frame. Each window writes all its frames, overwriting what earlier windows wrote (official
rule, including its own conditioning frame); `crossfade_weights` offers a linear blend over the overlap instead.
The loop that samples the windows is `sv4d_lib.extend`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

VARIANTS = ("4v", "8v")


def _check_variant(window_len: int, variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; use '4v' (4-view SV4D 2.0) or '8v' (8-view)")
    if window_len < 2:
        raise ValueError(f"windows need at least 2 frames (window_len), got {window_len}")


def _check(num_frames: int, window_len: int, variant: str) -> None:
    _check_variant(window_len, variant)
    if num_frames < window_len:
        raise ValueError(
            f"the {variant} model generates {window_len} frames per window, but the video has {num_frames}; give it "
            f"at least {window_len} frames, or pad it (pad_frames repeats the last frame {window_len - num_frames} "
            "times)"
        )


def window_starts(num_frames: int, window_len: int, variant: str) -> list[int]:
    """Window starts of the official script (with the PR #459 fix) for a video of `num_frames` ≥ T frames."""
    _check(num_frames, window_len, variant)
    stop = num_frames if variant == "4v" else num_frames - window_len + 1
    return [min(t0, num_frames - window_len) for t0 in range(0, stop, window_len - 1)]


def covered_frames(num_frames: int, window_len: int, variant: str) -> int:
    """Number of leading frames the windows generate (all of them for 4v; up to the last full window for 8v)."""
    return window_starts(num_frames, window_len, variant)[-1] + window_len


def uncovered_frames(num_frames: int, window_len: int, variant: str) -> list[int]:
    """Frames no window generates (official: left out of the output); only the 8-view schedule has them."""
    return list(range(covered_frames(num_frames, window_len, variant), num_frames))


def padded_length(num_frames: int, window_len: int, variant: str) -> int:
    """Smallest length ≥ `num_frames` whose every frame a window generates (≥ T; 8v: T + k·(T − 1))."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    _check_variant(window_len, variant)
    if variant == "4v" or num_frames <= window_len:
        return max(num_frames, window_len)
    return window_len + math.ceil((num_frames - window_len) / (window_len - 1)) * (window_len - 1)


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
    window_len: int
    # Conditioned on the novel views of frame `start` (official: start != 0); else reference views are masked.
    cond_mv: bool
    # The earlier window whose output holds frame `start` when this window runs (None when not conditioned).
    cond_window: int | None
    # Frames [start, overlap_end) were already written by earlier windows.
    overlap_end: int

    @property
    def frames(self) -> range:
        return range(self.start, self.start + self.window_len)

    @property
    def overlap(self) -> range:
        return range(self.start, self.overlap_end)

    def describe(self) -> str:
        """One line for the node's info output."""
        last = self.start + self.window_len - 1
        if self.cond_mv:
            source = f"conditioned on the views of frame {self.start} from window {self.cond_window}"
        else:
            source = "no reference views"
        overlap = {0: "no overlap", 1: f"overlaps frame {self.start}"}.get(
            len(self.overlap), f"overlaps frames {self.start}-{self.overlap_end - 1}"
        )
        return f"window {self.index}: frames {self.start}-{last}, {source}, {overlap}"


def plan_windows(num_frames: int, window_len: int, variant: str) -> list[Window]:
    """The official windows with their conditioning source and overlap (see the module docstring)."""
    windows: list[Window] = []
    written_end = 0  # windows always write a prefix [0, written_end) of the video
    for index, start in enumerate(window_starts(num_frames, window_len, variant)):
        cond_mv = start != 0
        # With the fixed schedules every later start lies inside an earlier window (the unfixed 4-view script
        # crashed exactly where it did not).
        cond_window = [w.index for w in windows if start in w.frames][-1] if cond_mv else None
        overlap_end = min(max(start, written_end), start + window_len)
        windows.append(Window(index, start, window_len, cond_mv, cond_window, overlap_end))
        written_end = max(written_end, start + window_len)
    return windows


def plan_video(num_frames: int, window_len: int, variant: str, pad: bool) -> tuple[list[Window], int, list[str]]:
    """Windows over a video of `num_frames` frames (padded when `pad`), its padded length and notes for reports.

    Without `pad`, a video shorter than a window or an 8-view tail that no full window reaches is an error that
    names both fixes (trim, or pad); with it the caller pads the video to the returned length (`pad_frames`) and
    drops the extra output frames.
    """
    notes = []
    length = num_frames
    if pad:
        length = padded_length(num_frames, window_len, variant)
        if length > num_frames:
            notes.append(f"padded {num_frames} → {length} frames by repeating the last frame; the extra output "
                         "frames are dropped")
    else:
        tail = uncovered_frames(num_frames, window_len, variant)  # also rejects num_frames < T
        if tail:
            covered = covered_frames(num_frames, window_len, variant)
            raise ValueError(
                f"the {variant} model's windows of {window_len} frames overlap by one frame and cover {covered} of "
                f"the {num_frames} frames; frames {tail[0]}-{tail[-1]} would never be generated (the official script "
                f"drops them): trim the video to {covered} frames, or enable pad_frames (repeats the last frame up to "
                f"{padded_length(num_frames, window_len, variant)} frames and drops the extra output)"
            )
    return plan_windows(length, window_len, variant), length, notes


def window_report(windows: list[Window], notes: list[str]) -> str:
    """One line per window (`Window.describe`), then the notes."""
    return "\n".join([w.describe() for w in windows] + notes)


def crossfade_weights(window: Window) -> torch.Tensor:
    """Weight `(T,)` of the window's own output per frame when cross-fading (opt-in; the official rule is 1).

    Over the L overlapping frames the weight ramps (j + 1)/(L + 1), j = 0..L − 1, from the earlier output to this
    window's; frames past the overlap are this window's alone. A one-frame overlap (8-view) blends 50/50.
    """
    weights = torch.ones(window.window_len)
    length = len(window.overlap)
    weights[:length] = torch.arange(1, length + 1, dtype=torch.float32) / (length + 1)
    return weights


def merge_window(video: torch.Tensor, window_frames: torch.Tensor, window: Window, crossfade: bool) -> None:
    """Write a window's frames into `video` (frames on dim 1, e.g. `(V', n, H, W, C)`) in place.

    Official: overwrite. `crossfade`: blend the overlap with `crossfade_weights`.
    """
    frames = slice(window.start, window.start + window.window_len)
    if not crossfade or not window.overlap:
        video[:, frames] = window_frames
        return
    shape = (1, window.window_len) + (1,) * (video.ndim - 2)
    w = crossfade_weights(window).to(video).reshape(shape)
    video[:, frames] = w * window_frames.to(video) + (1 - w) * video[:, frames]
