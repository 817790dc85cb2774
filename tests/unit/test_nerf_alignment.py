"""View alignment on the real dev scene (9 views): views turned by a few degrees are warped back to their nominal
cameras, perfect views are left untouched, and the whole object does not drift."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from bench.degraded_views import Degradation, degrade, misalignment_homography
from bench.real_scene import SCENES, load_real_scene
from sv4d_lib.nerf.alignment import (AlignmentReport, ViewRotations, align_views, corrected_views, plan_alignment,
                                     register_views, warp_views)
from sv4d_lib.nerf.occupancy import visual_hulls
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
    # measured ≤ 0.64° on the novel views, almost all of it a common tilt of 0.5–0.6° (the blurred-silhouette
    # objective's bias, below the 0.75° threshold); view 0 is the reference and never moves
    assert float(report.rotations_deg[1:].norm(dim=1).max()) < 0.7
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
    # measured: mean IoU with the true silhouettes 0.75 → 0.90 (0.84 while the object's move along view 0's axis
    # was left to chance); what is left is mostly the rolls, which the silhouettes do not estimate
    assert sum(after) / 8 > sum(before) / 8 + 0.1
    assert sum(a < b - 0.01 for a, b in zip(after, before)) <= 1  # measured: 1 view worse, by 0.011


def test_a_common_elevation_error_of_the_novel_views_is_found(scene):
    """Generated views that all look from a little higher than asked (every novel camera tilted alike) are turned
    views, not an object that moved: view 0 pins the object across its image."""
    cameras = scene.train_cameras
    rgb, masks = scene.train_rgb.clone(), scene.train_mask.clone()
    turn = misalignment_homography(cameras, 128, 128, 2.0, (1.0, 0.0, 0.0))  # a 2° tilt: ~7 px up or down
    for view in range(1, 9):
        rgb[view], masks[view] = warp_views(rgb[view], masks[view], turn)
    _, _, report = align_views(rgb, masks, cameras, bound(cameras))
    # measured: every novel view moved, tilts 1.3–1.5° (the objective's common bias of about 0.55° included)
    assert all(report.moved[1:]), report.summary()
    assert bool((report.rotations_deg[1:, 0] > 1.0).all()), report.rotations_deg


def test_a_single_turned_view_is_found_and_the_others_stay(scene):
    cameras = scene.train_cameras
    rgb, masks = scene.train_rgb.clone(), scene.train_mask.clone()
    turn = misalignment_homography(cameras, 128, 128, 2.5, (0.0, 1.0, 0.0))  # a pan: ~9 px sideways
    rgb[3], masks[3] = warp_views(rgb[3], masks[3], turn)
    _, aligned, report = align_views(rgb, masks, cameras, bound(cameras))
    assert [v for v, m in enumerate(report.moved) if m] == [3], report.summary()
    assert abs(report.rotations_deg[3, 1].abs() - 2.5) < 0.6  # measured 2.1° (7.8 of 9.2 px)
    # measured IoU with the true silhouettes 0.89 after the warp: the objective's common tilt bias (about 0.55°)
    # stays in the estimate; the fit's registration to the field takes it out
    assert iou(masks[3], scene.train_mask[3]) < 0.8 < 0.85 < iou(aligned[3], scene.train_mask[3])


@pytest.mark.parametrize("seed", [0, 2])
def test_the_object_stays_centred_along_view_0s_axis(scene, seed):
    """Turns whose pans follow sin(azimuth) look like the object moving along view 0's axis, which the silhouettes
    cannot tell from turned views; the estimate keeps the object centred (as SV4D's views show it), so what it
    leaves of that pattern is much smaller than what the turns carry."""
    cameras = scene.train_cameras
    _, masks, defects = degrade(scene.train_rgb, scene.train_mask, cameras, dataclasses.replace(POSE_ONLY, seed=seed))
    true_pan = torch.tensor([0.0] + [d.axis[1] * d.rotation_deg for d in defects[1:]])
    found = plan_alignment(masks, cameras, bound(cameras)).rotations_deg[:, 1]
    pattern = torch.tensor(cameras.azimuths_deg).deg2rad().sin()

    def amplitude(pans: torch.Tensor) -> float:  # degrees of pan per unit sin(azimuth), least squares
        return float((pans * pattern).sum() / pattern.square().sum())

    # the draws carry +1.18° and −1.09°; measured left over: 0.06° and 0.03° (1.02° and 1.16° when the estimate
    # took out only the object move that best explained the turns)
    assert abs(amplitude(true_pan)) > 1.0
    assert abs(amplitude(true_pan - found)) < 0.25


@pytest.mark.parametrize("size", [128, 256])
def test_perfect_views_of_the_4_view_layout_are_left_untouched(size):
    """5 views constrain the estimate less (measured ≤ 0.5° at both sizes); none may be resampled."""
    shared_reference("real_scenes", f"maidroid_{size}.safetensors")
    five = load_real_scene(size)
    videos, masks, report = align_views(five.train_rgb, five.train_mask, five.train_cameras,
                                        bound(five.train_cameras))
    assert not any(report.moved), report.summary()
    assert torch.equal(videos, five.train_rgb) and torch.equal(masks, five.train_mask)


def test_turned_rays_see_what_the_turned_camera_sees(scene):
    """ViewRotations turns a view's rays as the camera whose image the misalignment homography makes: the turned
    ray through pixel p is the nominal ray through the pixel that the homography carries to p."""
    cameras = scene.train_cameras
    axis, angle = torch.nn.functional.normalize(torch.tensor([0.3, -0.5, 0.8]), dim=0), 2.5
    report = AlignmentReport(torch.zeros(9, 3), [0.0] * 9, [v == 4 for v in range(9)])
    report.rotations_deg[4] = axis * angle
    turned = ViewRotations(cameras, report, "cpu")
    _, dirs = cameras.rays(128, 128)
    pixels = torch.tensor([[10.5, 20.5], [64.5, 64.5], [120.5, 3.5], [33.5, 99.5]], dtype=torch.float64)
    flat = ((pixels[:, 1] - 0.5) * 128 + pixels[:, 0] - 0.5).long()
    for view in (4, 5):
        got = turned(dirs[view, flat], torch.full((4,), view)).double()
        # view 5 is not corrected: its rays stay nominal
        homography = misalignment_homography(cameras, 128, 128, angle if view == 4 else 0.0, tuple(axis.tolist()))
        source = torch.linalg.solve(homography.double(), torch.cat((pixels, torch.ones(4, 1)), 1).T).T
        source = source[:, :2] / source[:, 2:]
        focal = cameras.focal(128)
        camera_dirs = torch.stack(((source[:, 0] - 64) / focal, -(source[:, 1] - 64) / focal, -torch.ones(4)), 1)
        expected = torch.nn.functional.normalize(camera_dirs @ cameras.c2w()[view, :3, :3].double().T, dim=1)
        assert torch.allclose(got, expected, atol=1e-5), (view, got, expected)


def test_hulls_through_turned_cameras_recover_the_true_hull(scene):
    """A view whose silhouettes are those of a turned camera carves the hull unless the hull is cut through that
    turned camera (what the fit does once it knows the rotation)."""
    cameras, frames = scene.train_cameras, [0, 10]
    masks = scene.train_mask[:, frames]
    rotation = torch.tensor([1.5, -2.0, 1.0])  # camera axes, degrees: pan, tilt and roll
    turned = masks.clone()
    homography = misalignment_homography(cameras, 128, 128, float(rotation.norm()),
                                         tuple(torch.nn.functional.normalize(rotation, dim=0).tolist()))
    _, turned[6] = warp_views(torch.ones(2, 128, 128, 3), turned[6], homography)
    report = AlignmentReport(torch.zeros(9, 3), [0.0] * 9, [v == 6 for v in range(9)])
    report.rotations_deg[6] = rotation
    turns = ViewRotations(cameras, report, "cpu").world_rotations().detach()
    size = bound(cameras)
    truth = visual_hulls(cameras, masks, 64, size)
    nominal = visual_hulls(cameras, turned, 64, size)
    through_turned = visual_hulls(cameras, turned, 64, size, turns=turns)
    # measured: IoU with the true hull 0.81 through the nominal camera, 0.99 through the turned one
    assert iou(nominal.float(), truth.float()) < 0.85
    assert iou(through_turned.float(), truth.float()) > 0.95


def test_registration_to_the_field_finds_pan_tilt_and_roll(scene):
    """`register_views` recovers each view's full turn, roll included (which the silhouettes cannot see), from
    renders of a field that shows the object where the nominal cameras put it (here: the true views)."""
    cameras, frames = scene.train_cameras, [10]
    truth_rgb, truth_mask = scene.train_rgb[:, frames], scene.train_mask[:, frames]
    rgb, masks = truth_rgb.clone(), truth_mask.clone()
    turns = {2: (0.5, -1.0, 2.5), 5: (-1.5, 1.0, -2.0), 7: (0.0, 0.0, 2.0)}  # camera axes, degrees
    for view, rotation in turns.items():
        rotation = torch.tensor(rotation)
        homography = misalignment_homography(cameras, 128, 128, float(rotation.norm()),
                                             tuple(torch.nn.functional.normalize(rotation, dim=0).tolist()))
        rgb[view], masks[view] = warp_views(rgb[view], masks[view], homography)
    found = register_views(rgb, masks, truth_rgb, truth_mask, cameras, torch.zeros(9, 3))
    expected = torch.zeros(9, 3)
    for view, rotation in turns.items():
        expected[view] = torch.tensor(rotation)
    error = (found - expected).norm(dim=1)
    # measured: ≤ 0.02° on every view, turned or not
    assert float(error.max()) < 0.2, error
    assert corrected_views(found) == [v in turns for v in range(9)]


def test_registration_lets_the_host_interrupt_it(scene):
    """The registration polls after every step, so an interrupt raised there stops it at once (ComfyUI's interrupt
    check raises from the fit's callback)."""
    calls = []

    def poll() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise InterruptedError("interrupted")

    small = torch.nn.functional.interpolate(scene.train_rgb[:, :1, ..., 0], size=(16, 16))[..., None].expand(
        -1, -1, -1, -1, 3).contiguous()
    masks = torch.nn.functional.interpolate(scene.train_mask[:, :1], size=(16, 16))
    with pytest.raises(InterruptedError):
        register_views(small, masks, small, masks, scene.train_cameras, torch.zeros(9, 3), poll=poll)
    assert len(calls) == 3
