"""One multi-view video and one `OrbitCameras` from several sampling passes (4-view and 8-view model, other
trajectories, the input video itself): the views the 4D fit needs (issue 23, SV4D2 Merge Views).

A **pass** is a multi-view video `(V', F, H, W, ...)` with its cameras, input view first (`sv4d_lib.multiview`).
Merging follows these rules:

* **Input view**: camera 0 of every pass is the input view, so the passes must agree on it (and on radius and field
  of view: one fit has one orbit). It is kept once, as view 0, with the real input frames when they are given,
  else the view 0 of the pass with the most frames.
* **Timing** (frame count and frame rate): every pass shows the input frames as its view 0, so its frames are
  located on the input timeline by comparing view 0 with the input frames (`frame_timing`): pass frame i shows input
  frame `offset + stride·i`. SV4D2 Extend Video writes the input frames as view 0 and cuts its padding, so the
  4-view windows (21 frames: 0-11, 9-20) and the 8-view windows (0-4, 4-8, …, 16-20) line up frame by frame.
  Passes on another timing (a 5-frame Sample NVVS beside a 21-frame Extend Video, every 2nd frame) are refused with
  the fix, or, opt-in, merged on the input frames every pass shows ("common frames"). A pass whose view 0 is not
  the input video (Refine passes Render 4D's input view through) is placed by its frame count, noted in the report.
* **Duplicates**: cameras within `DUPLICATE_DEG` of an earlier one (the input view in every pass; 120° is in both
  official layouts) are dropped; the first pass that has a camera gives its video.
* **Size**: views are resized (bicubic, antialiased) to the input view's size; another aspect ratio is refused.
* **Order**: input view first, then counter-clockwise by azimuth from the input view, lower elevation first at the
  same azimuth: the order of the official layouts, so a merged set equals the same views fed directly, and the
  fitter's near-orthogonal view sets (`nerf.curriculum.orthogonal_views`) never meet a duplicate camera.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cameras import OrbitCameras

DUPLICATE_DEG = 0.5  # cameras closer than this (angle between their view directions) show the same view
# Largest mean absolute difference (RGB in [0, 1], compared at TIMING_SIZE²) between a pass's view 0 and the input
# frames it shows: above a VAE round trip of the input, below a different video. It only decides whether a pass
# belongs to the input video; where it sits on the input timeline is the closest placement.
TIMING_TOLERANCE = 0.03
TIMING_SIZE = 32
FRAME_MODES = ("must match", "common frames")


@dataclass(frozen=True)
class Pass:
    """One sampling pass: `videos` `(V', F, H, W, ...)` seen from `cameras` (one per view, input view first)."""

    videos: torch.Tensor
    cameras: OrbitCameras


@dataclass(frozen=True)
class Timing:
    """Where a pass's frames sit on the input timeline: frame i shows input frame `offset + stride·i`."""

    offset: int
    stride: int
    num_frames: int
    error: float  # mean absolute difference of view 0 against those input frames
    matched: bool = True  # False: view 0 is not the input video (a render), placed by its frame count alone

    @property
    def frames(self) -> range:
        return range(self.offset, self.offset + self.stride * self.num_frames, self.stride)

    def describe(self) -> str:
        last = self.offset + self.stride * (self.num_frames - 1)
        every = "every frame" if self.stride == 1 else f"one frame in {self.stride}"
        if not self.matched:
            return (f"no input frame (mean difference {self.error:.3f} > {TIMING_TOLERANCE}: a render of the input "
                    f"view, or another video?), so its {self.num_frames} frames are taken as input frames 0-{last}")
        return f"input frames {self.offset}-{last} ({every})"


@dataclass(frozen=True)
class MergePlan:
    """What the merged set holds: output view k is view `sources[k][1]` of pass `sources[k][0]` (pass −1: the input
    frames), output frame j is frame `frames[p][j]` of pass p (`frames[-1]` for the input frames)."""

    sources: tuple[tuple[int, int], ...]
    frames: dict[int, tuple[int, ...]]
    cameras: OrbitCameras
    size: tuple[int, int]  # (height, width)
    report: str


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles (degrees) between unit directions a (N, 3) and b (M, 3) → (N, M)."""
    return torch.rad2deg(torch.arccos((a @ b.T).clamp(-1.0, 1.0)))


def view_order(cameras: OrbitCameras) -> list[int]:
    """Indices of `cameras` in merged order: entry 0 (the input view) first, then counter-clockwise by azimuth from
    it, lower elevation first at the same azimuth."""
    base = cameras.azimuths_deg[0]

    def key(i: int) -> tuple[float, float]:
        return round((cameras.azimuths_deg[i] - base) % 360.0, 6) % 360.0, cameras.elevations_deg[i]

    return [0, *sorted(range(1, cameras.num_views_total), key=key)]


def _thumbnails(frames: torch.Tensor) -> torch.Tensor:
    """RGB frames `(F, H, W, C≥3)` → `(F, 3·TIMING_SIZE²)` area-averaged, for comparing frames of any size."""
    rgb = frames[..., :3].float().movedim(-1, 1)
    return F.adaptive_avg_pool2d(rgb, TIMING_SIZE).flatten(1)


def frame_timing(view0: torch.Tensor, input_frames: torch.Tensor) -> Timing:
    """Locate a pass's input view `(n, H, W, C)` on the input frames `(N, H', W', C')`: the best offset + stride·i
    match, preferring the identity (n = N, offset 0, stride 1) whenever it is within `TIMING_TOLERANCE` (a looping
    clip shows the same pose at both ends). A view 0 that matches no run of the input frames is placed by its frame
    count when it has all N frames (Refine passes the rendered input view through: a render, not the input), and
    refused otherwise."""
    n, total = view0.shape[0], input_frames.shape[0]
    if n > total:
        raise ValueError(f"a pass has {n} frames but the input video only {total}; connect the input frames the pass "
                         "was sampled from")
    distance = torch.cdist(_thumbnails(view0), _thumbnails(input_frames), p=1) / (3 * TIMING_SIZE**2)  # (n, N)
    rows = torch.arange(n)

    def placed(offset: int, stride: int) -> Timing:
        return Timing(offset, stride, n, float(distance[rows, offset + stride * rows].mean()))

    if n == total and (identity := placed(0, 1)).error <= TIMING_TOLERANCE:
        return identity
    max_stride = (total - 1) // (n - 1) if n > 1 else 1
    candidates = [placed(offset, stride) for stride in range(1, max_stride + 1)
                  for offset in range(total - stride * (n - 1))]
    best = min(candidates, key=lambda t: (t.error, t.stride, t.offset))
    if best.error > TIMING_TOLERANCE and n == total:
        return Timing(0, 1, n, best.error, matched=False)
    if best.error > TIMING_TOLERANCE:
        raise ValueError(
            f"a pass's input view (view 0, {n} frames) matches no run of the {total} input frames (mean difference "
            f"{best.error:.3f}, tolerance {TIMING_TOLERANCE}), so its frames cannot be placed on the input video. "
            "Connect the prepared input frames to Sample NVVS's `frames` input (its view 0 is then the real input, "
            "not a VAE reconstruction) and merge passes sampled from the same frames"
        )
    return best


def _check_orbits(passes: Sequence[Pass]) -> None:
    first = passes[0].cameras
    for p, item in enumerate(passes[1:], start=2):
        cameras = item.cameras
        if not (math.isclose(cameras.radius, first.radius, rel_tol=1e-6)
                and math.isclose(cameras.fov_deg, first.fov_deg, rel_tol=1e-6)):
            raise ValueError(
                f"pass {p}'s cameras have radius {cameras.radius:g} and fov {cameras.fov_deg:g}° but pass 1's "
                f"{first.radius:g} and {first.fov_deg:g}°; one 4D fit needs one orbit: make every pass with the "
                "same camera radius and field of view"
            )
        angle = float(_angle_deg(cameras.view_directions()[:1], first.view_directions()[:1]))
        if angle > DUPLICATE_DEG:
            raise ValueError(
                f"pass {p}'s input view (camera 0) is at elevation {cameras.elevations_deg[0]:g}°, azimuth "
                f"{cameras.azimuths_deg[0]:g}° but pass 1's at {first.elevations_deg[0]:g}°, "
                f"{first.azimuths_deg[0]:g}°; every pass starts from the same input view: give every Cameras node "
                "the same input-view elevation and azimuth"
            )


def _check_sizes(passes: Sequence[Pass], size: tuple[int, int]) -> list[str]:
    notes = []
    for p, item in enumerate(passes, start=1):
        h, w = item.videos.shape[2:4]
        if (h, w) == size:
            continue
        if abs(w / h - size[1] / size[0]) > 0.01:
            raise ValueError(
                f"pass {p}'s frames are {w}×{h} but the input view is {size[1]}×{size[0]}: another aspect ratio "
                "cannot be resized without moving the object off its camera; prepare every video with the same "
                "SV4D2 Prepare Video settings"
            )
        notes.append(f"pass {p}: resized from {w}×{h} to {size[1]}×{size[0]} (bicubic)")
    return notes


def plan_merge(passes: Sequence[Pass], input_frames: torch.Tensor | None = None,
               frame_mode: str = "must match") -> MergePlan:
    """Which view and frame of which pass goes where in the merged set (rules in the module docstring).

    `input_frames` `(N, H, W, ...)`: the real input video; without it the longest pass's view 0 stands for it.
    `frame_mode`: "must match" refuses passes on another timing, "common frames" keeps the input frames every pass
    shows.
    """
    if len(passes) < 1:
        raise ValueError("merge needs at least one pass (a multi-view video with its cameras)")
    if frame_mode not in FRAME_MODES:
        raise ValueError(f"unknown frame mode {frame_mode!r}; use one of {list(FRAME_MODES)}")
    for p, item in enumerate(passes, start=1):
        if item.videos.ndim < 4:
            raise ValueError(f"pass {p} must be videos (views, frames, height, width, ...), got shape "
                             f"{tuple(item.videos.shape)}")
        item.cameras.check_count(item.videos.shape[0], f"pass {p}")
    _check_orbits(passes)

    # the input timeline: the real input frames, else the first pass with the most frames
    longest = max(range(len(passes)), key=lambda p: (passes[p].videos.shape[1], -p))
    reference = input_frames if input_frames is not None else passes[longest].videos[0]
    input_source = -1 if input_frames is not None else longest
    size = tuple(reference.shape[1:3])
    notes = _check_sizes(passes, size)
    if input_frames is not None and tuple(input_frames.shape[3:]) != tuple(passes[0].videos.shape[4:]):
        raise ValueError(f"input frames have {tuple(input_frames.shape[3:])} channels per pixel but the passes "
                         f"{tuple(passes[0].videos.shape[4:])}; connect RGB frames to both")
    timings = [frame_timing(item.videos[0], reference) for item in passes]
    total = reference.shape[0]
    lines = [f"pass {p}: {item.cameras.num_views_total} views × {item.videos.shape[1]} frames "
             f"({item.videos.shape[3]}×{item.videos.shape[2]}), view 0 shows {timing.describe()}"
             for p, (item, timing) in enumerate(zip(passes, timings), start=1)]

    common = set(range(total)).intersection(*(t.frames for t in timings))
    if len(common) < total:
        if frame_mode == "must match":
            short = next(p for p, t in enumerate(timings, start=1) if len(t.frames) < total or t.stride != 1)
            raise ValueError(
                f"pass {short} covers {timings[short - 1].describe()}, but the input has {total} frames: the "
                "passes do not line up frame by frame. Sample every pass over the same frames (SV4D2 Extend Video "
                "on the whole prepared video; enable pad_frames for the 8-view model), or set frames to "
                f"'common frames' to keep the {len(common)} input frames every pass shows"
            )
        if not common:
            raise ValueError("the passes show no input frame in common; sample them from the same frames")
        notes.append(f"frames: kept the {len(common)} of {total} input frames every pass shows "
                     f"({', '.join(str(f) for f in sorted(common))})")
    kept = sorted(common)
    frames = {p: tuple((f - t.offset) // t.stride for f in kept) for p, t in enumerate(timings)}
    frames[-1] = tuple(kept)

    # every camera once, the first pass that has it wins; the input view comes from the reference
    directions, sources, elevations, azimuths, dropped = [], [], [], [], []
    for p, item in enumerate(passes):
        cams = item.cameras
        for v, direction in enumerate(cams.view_directions()):
            angles = _angle_deg(direction[None], torch.stack(directions))[0] if directions else None
            if angles is not None and angles.min() <= DUPLICATE_DEG:
                if v:  # the input view is in every pass by construction; other repeats are worth a line
                    dropped.append((p, v, int(angles.argmin())))
                continue
            directions.append(direction)
            sources.append((p, v))
            elevations.append(cams.elevations_deg[v])
            azimuths.append(cams.azimuths_deg[v])
    sources[0] = (input_source, 0)
    unordered = OrbitCameras(elevations, azimuths, passes[0].cameras.radius, passes[0].cameras.fov_deg)
    order = view_order(unordered)
    cameras = unordered.select(order)
    lines.append("input view: " + ("the input frames" if input_source < 0 else f"view 0 of pass {input_source + 1}"))
    if dropped:
        rank = {old: new for new, old in enumerate(order)}
        lines.append("duplicate cameras dropped: " + "; ".join(
            f"pass {p + 1} view {v} ({passes[p].cameras.elevations_deg[v]:g}°, {passes[p].cameras.azimuths_deg[v]:g}°)"
            f" = merged view {rank[k]}" for p, v, k in dropped))
    lines.extend(notes)
    gaps = _azimuth_gaps(cameras)
    lines.append(f"merged: {cameras.num_views_total} views × {len(kept)} frames ({size[1]}×{size[0]}), azimuths "
                 f"{', '.join(f'{a:g}' for a in cameras.azimuths_deg)}°; largest azimuth gap {max(gaps):g}°")
    return MergePlan(tuple(sources[k] for k in order), frames, cameras, size, "\n".join(lines))


def _azimuth_gaps(cameras: OrbitCameras) -> list[float]:
    """Angles (degrees) between neighbouring distinct azimuths around the orbit."""
    azimuths = sorted({round(a % 360.0, 6) for a in cameras.azimuths_deg})
    return [((azimuths[(i + 1) % len(azimuths)] - a) % 360.0) or 360.0 for i, a in enumerate(azimuths)]


def _resize(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One view `(F, H, W, ...)` → `(F, size, ...)`, bicubic with antialiasing, clamped to [0, 1]."""
    if tuple(video.shape[1:3]) == size:
        return video
    rest = video.shape[3:]
    flat = video.reshape(*video.shape[:3], -1).movedim(-1, 1).float()
    out = F.interpolate(flat, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return out.movedim(1, -1).reshape(video.shape[0], *size, *rest).to(video.dtype)


def apply_merge(plan: MergePlan, videos: Sequence[torch.Tensor],
                input_frames: torch.Tensor | None = None) -> torch.Tensor:
    """The merged multi-view video `(V', F, H, W, ...)` of the passes' `videos` (or masks, same layout) by `plan`."""
    out = []
    for p, v in plan.sources:
        source = input_frames if p < 0 else videos[p][v]
        if source is None:
            raise ValueError("the merge plan takes the input view from the input frames: pass them")
        index = torch.tensor(plan.frames[p], device=source.device)
        out.append(_resize(source.index_select(0, index), plan.size))
    return torch.stack(out)


def merge_views(passes: Sequence[Pass], input_frames: torch.Tensor | None = None,
                frame_mode: str = "must match") -> tuple[torch.Tensor, OrbitCameras, str]:
    """Merged videos `(V', F, H, W, ...)`, their cameras and a report (`plan_merge` + `apply_merge`)."""
    plan = plan_merge(passes, input_frames, frame_mode)
    return apply_merge(plan, [p.videos for p in passes], input_frames), plan.cameras, plan.report
