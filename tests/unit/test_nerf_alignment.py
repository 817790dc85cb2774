"""View alignment on the real dev scene (9 views): views turned by a few degrees are warped back to their nominal
cameras, perfect views are left untouched, and the whole object does not drift."""
from __future__ import annotations

import math

import pytest
import torch

from bench.degraded_views import Degradation, degrade, misalignment_homography
from bench.real_scene import SCENES, load_real_scene
from sv4d_lib.nerf.alignment import align_views, warp_views
from tests.prerequisites import shared_reference

POSE_ONLY = Degradation(exposure_stops=0.0, colour_gain=0.0, blur_sigma_px=(), timing_view=None)


@pytest.fixture(scope="module")
def scene():
    shared_reference("real_scenes_9v", "maidroid_128.safetensors")
    return load_real_scene(128, folder=SCENES.parent / "real_scenes_9v")


def bound(cameras) -> float:
    return cameras.radius * math.tan(math.radians(cameras.fov_deg) / 2)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a > 0.5) & (b > 0.5)).sum() / ((a > 0.5) | (b > 0.5)).sum())


def test_perfect_views_are_left_untouched(scene):
    videos, masks, report = align_views(scene.train_rgb, scene.train_mask, scene.train_cameras,
                                        bound(scene.train_cameras))
    assert not any(report.moved), report.summary()
    # measured ≤ 0.3° (1.1 px) on the novel views (view 0 is the reference and never moves)
    assert float(report.rotations_deg[1:].norm(dim=1).max()) < 0.5
    assert torch.equal(videos, scene.train_rgb) and torch.equal(masks, scene.train_mask)


def test_turned_views_are_warped_back_to_their_cameras(scene):
    cameras = scene.train_cameras
    rgb, masks, defects = degrade(scene.train_rgb, scene.train_mask, cameras, POSE_ONLY)  # 2–3° per novel view
    _, aligned, report = align_views(rgb, masks, cameras, bound(cameras))
    pan_tilt = [math.hypot(*(a * d.rotation_deg for a in d.axis[:2])) for d in defects[1:]]
    assert not report.moved[0]  # view 0 is the reference
    assert all(moved for moved, true in zip(report.moved[1:], pan_tilt) if true > 1.0), (report.summary(), pan_tilt)
    before = [iou(masks[v], scene.train_mask[v]) for v in range(1, 9)]
    after = [iou(aligned[v], scene.train_mask[v]) for v in range(1, 9)]
    # measured: mean IoU with the true silhouettes 0.76 → 0.84; what is left is the rolls (not estimated) and the
    # part of the errors that looks like a move of the whole object along view 0's axis (silhouettes cannot tell)
    assert sum(after) / 8 > sum(before) / 8 + 0.05
    assert sum(a < b - 0.01 for a, b in zip(after, before)) <= 2  # measured: 2 views a little worse, by ≤ 0.04


def test_a_single_turned_view_is_found_and_the_others_stay(scene):
    cameras = scene.train_cameras
    rgb, masks = scene.train_rgb.clone(), scene.train_mask.clone()
    turn = misalignment_homography(cameras, 128, 128, 2.5, (0.0, 1.0, 0.0))  # a pan: ~9 px sideways
    rgb[3], masks[3] = warp_views(rgb[3], masks[3], turn)
    _, aligned, report = align_views(rgb, masks, cameras, bound(cameras))
    assert [v for v, m in enumerate(report.moved) if m] == [3], report.summary()
    assert abs(report.rotations_deg[3, 1].abs() - 2.5) < 0.6  # measured 2.1° (7.8 of 9.2 px)
    assert iou(masks[3], scene.train_mask[3]) < 0.8 < 0.9 < iou(aligned[3], scene.train_mask[3])


@pytest.mark.parametrize("size", [128, 256])
def test_perfect_views_of_the_4_view_layout_are_left_untouched(size):
    """5 views constrain the estimate less (measured ≤ 0.5° at both sizes); none may be resampled."""
    shared_reference("real_scenes", f"maidroid_{size}.safetensors")
    five = load_real_scene(size)
    videos, masks, report = align_views(five.train_rgb, five.train_mask, five.train_cameras,
                                        bound(five.train_cameras))
    assert not any(report.moved), report.summary()
    assert torch.equal(videos, five.train_rgb) and torch.equal(masks, five.train_mask)
