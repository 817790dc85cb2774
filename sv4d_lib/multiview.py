"""Layouts of multi-view videos, in one place.

* A **multi-view video** in pixel space (ComfyUI IMAGE batches between nodes) is view-major:
  `(V'·F, H, W, C)` with index `v·F + f`, where V' = V + 1 covers the views of an `OrbitCameras` **including the
  input view as view 0**. Each view's frames are contiguous, so core nodes can cut one view out as a video.
* **Latents** and every per-latent conditioning tensor of the diffusion model are frame-major over the V novel
  views: `(T·V, C, h, w)` with index `t·V + v` (the official (b, t, v) order, v fastest).
"""
from __future__ import annotations

import torch

from .cameras import OrbitCameras


def split_views(images: torch.Tensor, cameras: OrbitCameras) -> torch.Tensor:
    """View-major batch `(V'·F, ...)` → `(V', F, ...)`, one video per camera (V' = `cameras.num_views_total`)."""
    num_views_total = cameras.num_views_total
    if images.shape[0] % num_views_total:
        raise ValueError(
            f"a multi-view video of {num_views_total} views (input view included) needs a batch that is a multiple "
            f"of {num_views_total}, got {images.shape[0]} images; check that the cameras match the video"
        )
    return images.reshape(num_views_total, images.shape[0] // num_views_total, *images.shape[1:])


def join_views(videos: torch.Tensor) -> torch.Tensor:
    """`(V', F, ...)` → view-major batch `(V'·F, ...)`."""
    return videos.reshape(videos.shape[0] * videos.shape[1], *videos.shape[2:])


def frame_major_to_views(latents: torch.Tensor, num_novel_views: int) -> torch.Tensor:
    """Frame-major `(T·V, ...)` (latent order) → `(V, T, ...)`; `num_novel_views` is V."""
    if num_novel_views < 1 or latents.shape[0] % num_novel_views:
        raise ValueError(f"{latents.shape[0]} latents do not split into {num_novel_views} views")
    frames = latents.shape[0] // num_novel_views
    return latents.reshape(frames, num_novel_views, *latents.shape[1:]).transpose(0, 1)


def views_to_frame_major(videos: torch.Tensor) -> torch.Tensor:
    """`(V, T, ...)` → frame-major `(T·V, ...)` (latent order)."""
    return videos.transpose(0, 1).reshape(videos.shape[0] * videos.shape[1], *videos.shape[2:])
