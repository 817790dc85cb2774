"""What each optimisation step looks at: near-orthogonal view sets and progressive frame windows.

SV4D 2.0 §4 fits the 4D asset static-to-dynamic with progressive frame sampling. Seeing a frame from views ~90°
apart in one step constrains depth best (one batch sees the object from front and side), and growing the set of
frames slowly lets the deformation field follow the motion from frame 0 instead of averaging distant frames.
"""
from __future__ import annotations

import math

import torch


def view_directions(elevations_deg: list[float], azimuths_deg: list[float]) -> torch.Tensor:
    """Unit vectors (V, 3) from the object towards each orbit camera (cameras.py convention)."""
    e = torch.tensor(elevations_deg, dtype=torch.float64).deg2rad()
    a = torch.tensor(azimuths_deg, dtype=torch.float64).deg2rad()
    return torch.stack((e.cos() * a.sin(), e.sin(), e.cos() * a.cos()), dim=-1)


def orthogonal_views(elevations_deg: list[float], azimuths_deg: list[float], anchor: int, count: int) -> list[int]:
    """`count` distinct views closest to the azimuths anchor + k·360°/count (k = 0..count−1), anchor first.

    With count = 4 this picks front/side/back/side sets as close to orthogonal as the available cameras allow.
    """
    num_views = len(azimuths_deg)
    count = min(count, num_views)
    directions = view_directions(elevations_deg, azimuths_deg)
    chosen = [anchor]
    for k in range(1, count):
        azimuth = math.radians(azimuths_deg[anchor] + 360.0 * k / count)
        target = torch.tensor([math.sin(azimuth), 0.0, math.cos(azimuth)], dtype=torch.float64)
        similarity = directions @ target
        similarity[chosen] = -math.inf
        chosen.append(int(similarity.argmax()))
    return chosen


def frame_window(progress: float, num_frames: int, ramp: float) -> int:
    """Number of leading frames open to sampling after `progress` ∈ [0, 1] of the dynamic stage.

    Grows linearly from 1 (frame 0) to all frames when `progress` reaches `ramp`; `ramp` = 0 opens all at once.
    """
    if ramp <= 0:
        return num_frames
    return min(num_frames, 1 + int(progress / ramp * (num_frames - 1)))
