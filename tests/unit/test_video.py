"""sv4d_lib.video: official crop geometry, recentring, alpha/mask/white handling and input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sv4d_lib import video


def white_frames(t: int = 3, h: int = 100, w: int = 100) -> torch.Tensor:
    return torch.ones(t, h, w, 3)


def dark_box(frames: torch.Tensor, x0: int, y0: int, x1: int, y1: int, frame: int | None = None) -> torch.Tensor:
    out = frames.clone()
    target = slice(None) if frame is None else slice(frame, frame + 1)
    out[target, y0:y1, x0:x1, :3] = 0.2
    return out


def dark_extent(image: torch.Tensor) -> tuple[int, int, int, int]:
    """Box of clearly dark pixels (x0, y0, x1, y1) of one (H, W, 3) output frame."""
    ys, xs = np.nonzero(image.mean(-1).numpy() < 0.5)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_official_crop_scales_the_centred_object_to_frame_ratio():
    frames = dark_box(white_frames(), 30, 30, 70, 70)
    out = video.prepare_frames(frames, size=128, frame_ratio=0.8)
    assert out.shape == (3, 128, 128, 3) and out.dtype == torch.float32
    x0, y0, x1, y1 = dark_extent(out[0])
    # the 40-px object fills 0.8 of the frame, centred
    assert abs((x1 - x0) - 0.8 * 128) <= 2 and abs((y1 - y0) - 0.8 * 128) <= 2
    assert abs((x0 + x1) / 2 - 64) <= 1 and abs((y0 + y1) / 2 - 64) <= 1
    assert out[0, 0, 0].tolist() == [1.0, 1.0, 1.0]  # padding is white


def test_official_crop_is_one_window_for_the_whole_video():
    # the object moves; the union box sets one crop, so a static marker stays put in every output frame
    frames = white_frames()
    for i, x in enumerate((20, 40, 60)):
        frames = dark_box(frames, x, 45, x + 10, 55, frame=i)
    frames[:, 10:14, 48:52] = 0.0  # static marker above the object
    out = video.prepare_frames(frames, size=96)
    marker = [out[i, :30].mean(-1).argmin().item() for i in range(3)]
    assert marker[0] == marker[1] == marker[2]


def test_official_crop_keeps_an_off_centre_object_off_centre_and_recentre_centres_it():
    frames = dark_box(white_frames(), 60, 60, 80, 80)
    official = dark_extent(video.prepare_frames(frames, size=128)[0])
    recentred = dark_extent(video.prepare_frames(frames, size=128, mode="recentre")[0])
    assert (official[0] + official[2]) / 2 > 64 + 10
    assert abs((recentred[0] + recentred[2]) / 2 - 64) <= 1 and abs((recentred[1] + recentred[3]) / 2 - 64) <= 1


def test_recentre_keeps_one_scale_across_frames():
    frames = white_frames(2)
    frames = dark_box(frames, 10, 10, 30, 30, frame=0)
    frames = dark_box(frames, 50, 50, 90, 90, frame=1)
    out = video.prepare_frames(frames, size=128, mode="recentre", frame_ratio=0.9)
    small, big = dark_extent(out[0]), dark_extent(out[1])
    assert abs((big[2] - big[0]) - 0.9 * 128) <= 2
    assert abs((small[2] - small[0]) - 0.45 * 128) <= 2


def test_rgba_alpha_defines_the_object_and_composites_on_white():
    frames = torch.zeros(2, 64, 64, 4)
    frames[..., :3] = 0.3  # dark colour everywhere, but only the alpha square is the object
    frames[:, 16:48, 16:48, 3] = 1.0
    out = video.prepare_frames(frames, size=64, frame_ratio=0.5)
    assert torch.allclose(out[:, 0, 0], torch.ones(2, 3))
    assert torch.allclose(out[:, 32, 32], torch.full((2, 3), round(0.3 * 255) / 255))


def test_mask_overrides_white_detection():
    frames = torch.full((2, 64, 64, 3), 0.4)  # no white background at all
    mask = torch.zeros(1, 64, 64)
    mask[:, 24:40, 24:40] = 1.0
    out = video.prepare_frames(frames, mask, size=64, frame_ratio=0.5)
    x0, y0, x1, y1 = dark_extent(out[0])
    assert abs((x1 - x0) - 32) <= 2 and out[0, 0, 0].tolist() == [1.0, 1.0, 1.0]


def test_grey_frames_equal_their_rgb_copy():
    grey = dark_box(white_frames(1), 40, 30, 60, 70)[..., :1]
    assert torch.equal(video.prepare_frames(grey, size=64), video.prepare_frames(grey.expand(-1, -1, -1, 3), size=64))


def test_white_threshold_is_mean_at_most_250():
    frames = white_frames(1, 64, 64)
    frames[0, 10, 10] = 250 / 255  # object pixel (mean <= 250)
    frames[0, 50, 50] = 251 / 255  # background pixel
    _, objects = video.to_rgba_u8(frames)
    assert objects[0, 10, 10] and not objects[0, 50, 50] and objects.sum() == 1


def test_tile_grid_rows_are_views_columns_are_frames():
    videos = torch.arange(2 * 3, dtype=torch.float32).view(2, 3, 1, 1, 1).expand(2, 3, 4, 5, 3)
    grid = video.tile_grid(videos)
    assert grid.shape == (1, 8, 15, 3)
    assert grid[0, 4, 10, 0] == 5  # view 1, frame 2


@pytest.mark.parametrize(
    "frames, mask, kwargs, message",
    [
        (torch.ones(2, 64, 64, 3), None, {}, "no object"),
        (torch.ones(2, 64, 64, 3), torch.zeros(2, 64, 64), {}, "no object"),
        (torch.ones(2, 8, 8, 3), None, {}, "at least"),
        (torch.ones(2, 64, 64, 2), None, {}, "C = 1, 3 or 4"),
        (torch.zeros(2, 64, 64, 3), torch.ones(2, 32, 32), {}, "mask must be"),
        (torch.zeros(2, 64, 64, 3), None, {"mode": "zoom"}, "unknown mode"),
        (torch.zeros(2, 64, 64, 3), None, {"size": 100}, "multiple of 8"),
        (torch.zeros(2, 64, 64, 3), None, {"frame_ratio": 1.5}, "frame_ratio"),
    ],
)
def test_bad_inputs_raise_clear_errors(frames, mask, kwargs, message):
    with pytest.raises(ValueError, match=message):
        video.prepare_frames(frames, mask, **kwargs)


def test_recentre_names_frames_without_object():
    frames = dark_box(white_frames(3), 40, 40, 60, 60, frame=1)
    with pytest.raises(ValueError, match=r"frame\(s\) \[0, 2\]"):
        video.prepare_frames(frames, mode="recentre")


def test_fit_within_shrinks_the_longer_side_and_keeps_small_images():
    image = torch.rand(40, 100, 3)
    assert video.fit_within(image, 100) is image
    small = video.fit_within(image, 50)
    assert small.shape == (20, 50, 3)
    # area filter: each output pixel is the mean of a 2×2 block
    torch.testing.assert_close(small[0, 0], image[:2, :2].mean(dim=(0, 1)))
