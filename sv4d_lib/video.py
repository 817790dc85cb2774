"""Input-video preprocessing of the official pipeline (spec §5.2): find the object, crop a square around it, pad
it to `box / frame_ratio`, LANCZOS-resize to the model size and composite on white.

Frames are ComfyUI-style `(T, H, W, C)` floats in [0, 1] with C = 1 (grey), 3 (RGB) or 4 (RGBA). The object mask
comes from (in this order) an explicit mask, the alpha channel, or white-background detection
(mean(RGB) ≤ 250/255, as the official script does for RGB inputs). The official mp4 round trip is not
reproduced: frames stay lossless.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

logger = logging.getLogger(__name__)

WHITE_THRESHOLD = 250  # official `white_thresh`: pixels at or below it (uint8) belong to the object
MIN_FRAME_SIZE = 16
MODES = ("official", "recentre")


@dataclass(frozen=True)
class SquareCrop:
    """A square window of side 2·half centred on (cx, cy) (pixels; may extend past the frame)."""

    cx: int
    cy: int
    half: int


def to_rgba_u8(frames: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`(T, H, W, C)` floats → RGBA uint8 `(T, H, W, 4)` and the boolean object masks `(T, H, W)`.

    `mask` `(T or 1, H, W)` (1 = object, e.g. from a segmentation node) becomes the alpha channel; without it an
    RGBA input keeps its alpha, and RGB/grey frames are opaque with the object found by white detection.
    """
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"frames must be an IMAGE batch (T, H, W, C) with C = 1, 3 or 4 channels, got shape {tuple(frames.shape)}"
        )
    t, h, w, c = frames.shape
    if min(h, w) < MIN_FRAME_SIZE:
        raise ValueError(f"frames are {w}×{h} pixels; SV4D 2.0 needs at least {MIN_FRAME_SIZE} pixels per side")
    check_finite(frames, "frames")
    u8 = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    rgb = np.repeat(u8, 3, axis=-1) if c == 1 else u8[..., :3]
    if mask is not None:
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3 or tuple(mask.shape[1:]) != (h, w) or mask.shape[0] not in (1, t):
            raise ValueError(
                f"mask must be (1 or {t}, {h}, {w}) to match the frames, got {tuple(mask.shape)}; resize or batch it "
                "to the frames first"
            )
        check_finite(mask, "mask values")
        alpha = (mask.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        alpha = np.broadcast_to(alpha, (t, h, w))
        objects = alpha > 0
    elif c == 4:
        alpha = u8[..., 3]
        objects = alpha > 0
    else:
        if not rgb.any():
            raise ValueError(
                "frames are entirely black, so there is no object to find; the node that made them produced an empty "
                "video (e.g. a failed load or decode): check it, or connect a mask"
            )
        alpha = np.full((t, h, w), 255, dtype=np.uint8)
        objects = rgb.astype(np.float32).mean(axis=-1) <= WHITE_THRESHOLD
        if objects.all():
            logger.warning(
                "SV4D2 Prepare Video: no white background in any frame, so the whole frame is taken as the object; "
                "connect a foreground mask (1 = object) if the background is not white"
            )
    return np.concatenate([rgb, alpha[..., None]], axis=-1), objects


def bounding_box(objects: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) with exclusive ends of the True pixels of a 2-D mask (or the union over a stack)."""
    mask = objects.reshape(-1, *objects.shape[-2:]).any(axis=0)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def official_crops(objects: np.ndarray) -> list[SquareCrop]:
    """One square for all frames, centred on the image centre, reaching the union box (the official crop)."""
    box = bounding_box(objects)
    if box is None:
        raise ValueError(
            "no object found in any frame (empty mask, fully transparent alpha, or an all-white background); "
            "connect a foreground mask or check the input"
        )
    h, w = objects.shape[-2:]
    cx, cy = w // 2, h // 2
    x0, y0, x1, y1 = box
    half = max(cx - x0, cy - y0, x1 - cx, y1 - cy)
    return [SquareCrop(cx, cy, half)] * objects.shape[0]


def recentred_crops(objects: np.ndarray) -> list[SquareCrop]:
    """Per-frame squares centred on each frame's own box; one common side (the largest box) keeps the scale."""
    boxes = [bounding_box(frame) for frame in objects]
    empty = [i for i, box in enumerate(boxes) if box is None]
    if empty:
        raise ValueError(
            f"no object found in frame(s) {empty}; per-frame recentring needs the object in every frame "
            "(fix the mask, or use mode 'official')"
        )
    half = max((max(x1 - x0, y1 - y0) + 1) // 2 for x0, y0, x1, y1 in boxes)
    return [SquareCrop((x0 + x1) // 2, (y0 + y1) // 2, half) for x0, y0, x1, y1 in boxes]


def render_crop(rgba: np.ndarray, crop: SquareCrop, frame_ratio: float, size: int) -> np.ndarray:
    """Paste the crop centred on a transparent canvas of side int(2·half / frame_ratio), LANCZOS-resize it to
    `size` (Pillow premultiplies alpha) and composite on white with the official float64 maths and uint8
    truncation. Returns uint8 RGB `(size, size, 3)`."""
    side = int(2 * crop.half / frame_ratio)
    canvas = np.zeros((side, side, 4), dtype=np.uint8)
    h, w = rgba.shape[:2]
    # Frame pixel (r, c) lands on canvas (r + dy, c + dx); only the crop window is copied.
    dy, dx = side // 2 - crop.cy, side // 2 - crop.cx
    r0, r1 = max(0, crop.cy - crop.half, -dy), min(h, crop.cy + crop.half, side - dy)
    c0, c1 = max(0, crop.cx - crop.half, -dx), min(w, crop.cx + crop.half, side - dx)
    if r1 > r0 and c1 > c0:
        canvas[r0 + dy : r1 + dy, c0 + dx : c1 + dx] = rgba[r0:r1, c0:c1]
    resized = np.asarray(Image.fromarray(canvas, mode="RGBA").resize((size, size), Image.LANCZOS)) / 255.0
    rgb = resized[..., :3] * resized[..., 3:] + (1 - resized[..., 3:])
    return (rgb * 255).astype(np.uint8)


def prepare_frames(
    frames: torch.Tensor,
    mask: torch.Tensor | None = None,
    size: int = 576,
    frame_ratio: float = 0.9,
    mode: str = "official",
    on_frame: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Square model-ready frames `(T, size, size, 3)` in [0, 1] on white (spec §5.2).

    mode "official": one crop for the whole video, centred on the image centre (the official script, which
    assumes a centred object); "recentre": each frame's object box is centred (for objects that move across
    the frame), with one common scale. `on_frame()` runs after every output frame (progress, interruption).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    if size < 64 or size % 8:
        raise ValueError(f"size must be a multiple of 8 and at least 64 (the VAE works on 8×8 blocks), got {size}")
    if not 0.1 <= frame_ratio <= 1.0:
        raise ValueError(f"frame_ratio (object size / frame size) must lie in [0.1, 1], got {frame_ratio}")
    rgba, objects = to_rgba_u8(frames, mask)
    crops = official_crops(objects) if mode == "official" else recentred_crops(objects)
    out = []
    for frame, crop in zip(rgba, crops):
        out.append(render_crop(frame, crop, frame_ratio, size))
        if on_frame is not None:
            on_frame()
    out = np.stack(out)
    return torch.from_numpy(out).float() / 255.0


def tile_grid(videos: torch.Tensor) -> torch.Tensor:
    """`(V', F, H, W, C)` → one image `(1, V'·H, F·W, C)`: a row per view, a column per frame (for previews)."""
    views, frames, h, w, c = videos.shape
    return videos.permute(0, 2, 1, 3, 4).reshape(1, views * h, frames * w, c)


def fit_within(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """`(H, W, C)` image shrunk (area filter, aspect kept) so that its longer side is at most `max_side`."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale == 1.0:
        return image
    size = (max(1, int(image.shape[0] * scale)), max(1, int(image.shape[1] * scale)))
    return F.interpolate(image.movedim(-1, 0)[None], size, mode="area")[0].movedim(0, -1)


def check_finite(images: torch.Tensor, what: str) -> None:
    """Refuse NaN/inf pixels at a node boundary (they turn into black pixels, latents and videos downstream)."""
    bad = ~torch.isfinite(images)
    if bad.any():
        frames = bad.reshape(bad.shape[0], -1).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(
            f"{what} contain {int(bad.sum())} NaN or infinite values (in frame(s) {frames[:8]}"
            f"{' …' if len(frames) > 8 else ''}); the node that made them produced invalid pixels: fix or replace "
            "that node, or drop those frames"
        )


def even_size(frames: torch.Tensor) -> torch.Tensor:
    """`(F, H, W, C)` padded by one repeated edge row/column where H or W is odd (H.264 in yuv420p needs even
    sides); unchanged otherwise."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h:
        frames = torch.cat([frames, frames[:, -1:]], dim=1)
    if pad_w:
        frames = torch.cat([frames, frames[:, :, -1:]], dim=2)
    return frames


def write_video(frames: torch.Tensor, path: str | os.PathLike, fps: float, on_frame: Callable[[], None] | None = None
                ) -> None:
    """Write `(F, H, W, 3)` frames in [0, 1] as an H.264 mp4, pixels truncated to uint8 as the official
    `save_video` does. imageio-ffmpeg ships its own ffmpeg binary, so nothing else needs installing.

    Odd sides are padded by one edge row/column (`even_size`). `on_frame()` runs after every frame (progress,
    interruption). The encoder's failures raise (ffmpeg only logs some, e.g. odd sizes, and leaves an empty file),
    so callers should write to a temporary name and `check_video` it before renaming (`sv4d_lib.atomic`).
    """
    import imageio.v2 as imageio

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"write_video needs (frames, H, W, 3) RGB frames, got {tuple(frames.shape)}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps}")
    check_finite(frames, "video frames")
    pixels = (even_size(frames).clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    writer = imageio.get_writer(str(path), format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1)
    try:
        for frame in pixels:
            writer.append_data(frame)
            if on_frame is not None:
                on_frame()
    finally:
        writer.close()


def check_video(path: str | os.PathLike, num_frames: int) -> None:
    """Read a written video back: it must decode to exactly `num_frames` frames (raises OSError otherwise)."""
    import imageio_ffmpeg

    try:
        found, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError) as error:
        raise OSError(f"the written video {Path(path).name} cannot be read back ({error})") from None
    if found != num_frames:
        raise OSError(f"the written video {Path(path).name} has {found} frames instead of {num_frames}; the encoder "
                      "failed (see the ffmpeg messages in the log)")
