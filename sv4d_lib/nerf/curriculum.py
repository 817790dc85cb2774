"""What each optimisation step looks at: near-orthogonal view sets and progressive frame windows.

SV4D 2.0 §4 fits the 4D asset static-to-dynamic with progressive frame sampling. Seeing a frame from views ~90°
apart in one step constrains depth best (one batch sees the object from front and side), and growing the set of
frames slowly lets the deformation field follow the motion from frame 0 instead of averaging distant frames.
"""
from __future__ import annotations

import math

import torch

from ..cameras import OrbitCameras


def orthogonal_views(cameras: OrbitCameras, anchor: int, count: int) -> list[int]:
    """`count` distinct views closest to the azimuths anchor + k·360°/count (k = 0..count−1), anchor first.

    With count = 4 this picks front/side/back/side sets as close to orthogonal as the available cameras allow.
    """
    count = min(count, cameras.num_views_total)
    directions = cameras.view_directions()
    chosen = [anchor]
    for k in range(1, count):
        azimuth = math.radians(cameras.azimuths_deg[anchor] + 360.0 * k / count)
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
