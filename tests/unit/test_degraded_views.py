"""The degradations of the views-that-disagree benchmark (bench/degraded_views.py) do what they claim, one at a time,
and the benchmark harness runs end to end in its smoke configuration."""
from __future__ import annotations

import math

import pytest
import torch

from bench.degraded_views import Degradation, degrade, draw_defects, misalignment_homography
from sv4d_lib.cameras import OrbitCameras

OFF = dict(exposure_stops=0.0, colour_gain=0.0, blur_sigma_px=(), pose_error_deg=(), timing_view=None)
CAMERAS = OrbitCameras((5.0, 5.0, 5.0), (0.0, 120.0, 240.0))
SIZE, FRAMES = 48, 6


def blob_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A grey disc moving right frame by frame on white, in every view: (V, F, H, W, 3) and (V, F, H, W)."""
    rows, cols = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    masks = torch.stack([((rows - 24) ** 2 + (cols - 16 - 2 * f) ** 2 <= 36).float() for f in range(FRAMES)])
    masks = masks.expand(3, -1, -1, -1).clone()
    colour = torch.tensor([0.6, 0.3, 0.2])
    rgb = masks[..., None] * colour + (1 - masks[..., None])
    return rgb, masks


def centroid(mask: torch.Tensor) -> torch.Tensor:
    """(column, row) centre of mass in the pack's pixel coordinates (centres at +0.5)."""
    rows, cols = torch.meshgrid(torch.arange(mask.shape[0]) + 0.5, torch.arange(mask.shape[1]) + 0.5, indexing="ij")
    return torch.stack(((mask * cols).sum(), (mask * rows).sum())) / mask.sum()


def test_input_view_is_untouched_and_defects_are_drawn_per_view_from_the_seed():
    rgb, masks = blob_scene()
    out_rgb, out_mask, defects = degrade(rgb, masks, CAMERAS, Degradation())
    assert torch.equal(out_rgb[0], rgb[0]) and torch.equal(out_mask[0], masks[0]) and defects[0] is None
    assert not torch.equal(out_rgb[1], rgb[1]) and not torch.equal(out_rgb[2], rgb[2])
    assert draw_defects(3, Degradation(seed=4)) == draw_defects(3, Degradation(seed=4))
    assert draw_defects(3, Degradation(seed=4)) != draw_defects(3, Degradation(seed=5))
    for d in draw_defects(9, Degradation())[1:]:
        assert 2.0 <= d.rotation_deg <= 3.0 and 0.5 <= d.blur_sigma_px <= 1.2
        assert 2 ** -0.25 <= d.exposure <= 2 ** 0.25 and all(abs(g - 1) <= 0.06 for g in d.gains)
    assert [d.timing_offset for d in draw_defects(9, Degradation())[1:]] == [0] * 7 + [2]  # the last view
    with pytest.raises(ValueError, match="input view"):
        draw_defects(3, Degradation(timing_view=0))


def test_colour_shift_moves_the_object_colour_and_keeps_the_white_background():
    rgb, masks = blob_scene()
    out, out_mask, defects = degrade(rgb, masks, CAMERAS, Degradation(**{**OFF, "exposure_stops": 0.3,
                                                                           "colour_gain": 0.05}))
    d = defects[1]
    inside, outside = masks[1] > 0.5, masks[1] < 0.5
    expected = (torch.tensor([0.6, 0.3, 0.2]) * d.exposure * torch.tensor(d.gains)).clamp(0, 1)
    torch.testing.assert_close(out[1][inside], expected.expand(int(inside.sum()), 3))
    assert torch.equal(out[1][outside], rgb[1][outside]) and torch.equal(out_mask, masks)


def test_blur_spreads_the_object_and_keeps_its_coverage():
    rgb, masks = blob_scene()
    out, out_mask, defects = degrade(rgb, masks, CAMERAS, Degradation(**{**OFF, "blur_sigma_px": (1.0, 1.0)}))
    assert defects[1].blur_sigma_px == 1.0
    torch.testing.assert_close(out_mask[1].sum(), masks[1].sum(), rtol=1e-4, atol=0)  # the disc is inside the image
    assert ((out_mask[1] > 0) & (out_mask[1] < 1)).sum() > ((masks[1] > 0) & (masks[1] < 1)).sum() + 50  # soft edge
    torch.testing.assert_close(centroid(out_mask[1, 0]), centroid(masks[1, 0]), atol=1e-3, rtol=0)


def rotated_projection(cameras: OrbitCameras, view: int, rotation: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Pixel (column, row) of a world point in camera `view` turned by `rotation` (camera axes) about its centre."""
    c2w = cameras.c2w()[view].double()
    axes = c2w[:3, :3] @ rotation
    cam = (point - c2w[:3, 3]) @ axes
    focal = cameras.focal(SIZE)
    return torch.stack((focal * cam[0] / -cam[2] + SIZE / 2, -focal * cam[1] / -cam[2] + SIZE / 2))


@pytest.mark.parametrize("axis", [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.6, -0.48, 0.64)])
def test_misalignment_homography_is_where_a_turned_camera_sees_each_point(axis):
    import kornia

    angle = 2.5
    rotation = kornia.geometry.conversions.axis_angle_to_rotation_matrix(
        torch.tensor(axis, dtype=torch.float64)[None] * math.radians(angle))[0]
    h = misalignment_homography(CAMERAS, SIZE, SIZE, angle, axis).double()
    points = torch.tensor([[0.0, 0.0, 0.0], [0.2, -0.1, 0.3], [-0.3, 0.25, -0.1]], dtype=torch.float64)
    pixels, _ = CAMERAS.project(points.float(), SIZE, SIZE)
    for p, point in enumerate(points):
        moved = h @ torch.cat((pixels[1, p].double(), torch.ones(1, dtype=torch.float64)))
        expected = rotated_projection(CAMERAS, 1, rotation, point)
        torch.testing.assert_close(moved[:2] / moved[2], expected, atol=1e-3, rtol=0)


def test_pose_error_moves_the_image_by_the_homography_and_fills_white():
    rgb, masks = blob_scene()
    out, out_mask, defects = degrade(rgb, masks, CAMERAS, Degradation(**{**OFF, "pose_error_deg": (3.0, 3.0)}))
    d = defects[1]
    h = misalignment_homography(CAMERAS, SIZE, SIZE, d.rotation_deg, d.axis)
    before = centroid(masks[1, 0])
    moved = h @ torch.cat((before, torch.ones(1)))
    torch.testing.assert_close(centroid(out_mask[1, 0]), moved[:2] / moved[2], atol=0.1, rtol=0)
    assert (centroid(out_mask[1, 0]) - before).norm() > 1.0  # 3° at this focal length is several pixels
    assert (out[1][out_mask[1] < 1e-3] > 0.999).all()  # background and the uncovered border stay white


def test_one_view_shows_a_later_moment():
    rgb, masks = blob_scene()
    out, out_mask, defects = degrade(rgb, masks, CAMERAS, Degradation(**{**OFF, "timing_view": 2,
                                                                           "timing_offset": 2}))
    assert [d.timing_offset for d in defects[1:]] == [0, 2]
    assert torch.equal(out[1], rgb[1]) and torch.equal(out_mask[1], masks[1])
    later = [min(f + 2, FRAMES - 1) for f in range(FRAMES)]  # clamped at the end of the clip
    assert torch.equal(out[2], rgb[2, later]) and torch.equal(out_mask[2], masks[2, later])


def test_the_harness_runs_a_degraded_merged_fit_and_reports_it(tmp_path):
    from bench import bench_degraded_views as bench
    from tests.prerequisites import shared_reference

    shared_reference("real_scenes_9v", "maidroid_128.safetensors")
    shared_reference("real_scenes", "maidroid_128.safetensors")
    merged = bench.RUNS.index((bench.VIEW_SETS[2], True, "default"))
    rows = bench.run([merged], "draft", bench.QUICK_CHANGES, 128, 20, Degradation())
    assert rows[0]["views"].startswith("12 views") and 5 < rows[0]["psnr"] < 100 and len(rows[0]["defects"]) == 12
    text = bench.report(rows, "draft", 128, 20, Degradation(), (0.0, 0.0, 0.0))
    assert "| 12 views (4-view + 8-view merged) | degraded | default |" in text and "| 11 | ×" in text


def test_runs_of_separate_invocations_accumulate_under_the_same_settings(tmp_path):
    from bench.bench_degraded_views import keep_rows

    store, key = tmp_path / "runs.json", {"preset": "default", "size": 128, "stride": 2, "seed": 0}
    assert [r["psnr"] for r in keep_rows(store, key, [{"run": 1, "psnr": 20.0}])] == [20.0]
    rows = keep_rows(store, key, [{"run": 0, "psnr": 25.0}, {"run": 1, "psnr": 21.0}])  # run 1 again: replaced
    assert [(r["run"], r["psnr"]) for r in rows] == [(0, 25.0), (1, 21.0)]
    assert [r["run"] for r in keep_rows(store, key, [{"run": 3, "psnr": 22.0}])] == [0, 1, 3]
    other = keep_rows(store, {**key, "preset": "draft"}, [{"run": 2, "psnr": 19.0}])  # not comparable: dropped
    assert [r["run"] for r in other] == [2]
    assert not list(tmp_path.glob(".*"))  # written atomically, no temporaries left


def test_rows_of_an_earlier_default_are_not_shown_as_the_default(tmp_path):
    from bench.bench_degraded_views import keep_rows, resolved_settings, stored_rows

    out = tmp_path / "report.md"
    key = {"preset": "default", "size": 128, "stride": 2, "seed": 0, "fitter": resolved_settings("default")}
    keep_rows(out.with_suffix(".json"), key, [{"run": 0, "psnr": 25.0}])
    assert [r["psnr"] for r in stored_rows(out)] == [25.0]
    earlier = {**key, "fitter": {**key["fitter"], "iterations": key["fitter"]["iterations"] - 1500}}
    keep_rows(out.with_suffix(".json"), earlier, [{"run": 0, "psnr": 24.0}])
    assert stored_rows(out) == []  # measured with another fitter: the bench_nerf4d section leaves them out
