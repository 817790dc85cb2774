"""Merging sampling passes into one set of views for the 4D fit (sv4d_lib.merge_views).

The acceptance test splits the 9-view dev scene into two passes as if they had been sampled separately (a 4-view
style subset and the rest, the input view in both, in another order) and requires the merge to give back exactly
the 9 views, cameras and order, so the fit cannot tell the difference."""
from __future__ import annotations

import pytest
import torch

from bench.real_scene import SCENES, load_real_scene, pooled_psnr
from sv4d_lib.cameras import AZIMUTHS_4V, AZIMUTHS_8V, OrbitCameras
from sv4d_lib.extend import WindowHost, extend_video
from sv4d_lib.merge_views import (
    TIMING_TOLERANCE,
    Pass,
    apply_merge,
    frame_timing,
    merge_views,
    plan_merge,
    view_order,
)
from sv4d_lib.multiview import frame_major_to_views, views_to_frame_major
from sv4d_lib.nerf import FitConfig, fit_4d
from sv4d_lib.nerf.render import render_views
from sv4d_lib.windows import plan_video
from tests.prerequisites import shared_reference

FOUR_VIEW_STYLE = [0, 2, 4, 6, 8]  # 9-view scene azimuths 0, 75, 165, 255, 330: one view per quadrant
THE_REST = [0, 7, 1, 5, 3]  # 0, 300, 30, 210, 120: the input view again, the others out of order


@pytest.fixture(scope="module")
def scene_9v():
    shared_reference("real_scenes_9v", "maidroid_128.safetensors")
    return load_real_scene(128, folder=SCENES.parent / "real_scenes_9v")


def as_passes(videos: torch.Tensor, cameras: OrbitCameras, *subsets: list[int]) -> list[Pass]:
    return [Pass(videos[subset], cameras.select(subset)) for subset in subsets]


def test_two_passes_of_the_9_view_scene_merge_into_exactly_the_9_views(scene_9v):
    passes = as_passes(scene_9v.train_rgb, scene_9v.train_cameras, FOUR_VIEW_STYLE, THE_REST)
    plan = plan_merge(passes)
    merged = apply_merge(plan, [p.videos for p in passes])
    masks = apply_merge(plan, [scene_9v.train_mask[s] for s in (FOUR_VIEW_STYLE, THE_REST)])
    assert plan.cameras == scene_9v.train_cameras
    assert torch.equal(merged, scene_9v.train_rgb) and torch.equal(masks, scene_9v.train_mask)
    assert "merged: 9 views × 21 frames" in plan.report and "largest azimuth gap 45°" in plan.report


def test_the_merged_9_views_fit_as_the_direct_9_views(scene_9v):
    """A short fit of each (the fit is seeded): the held-out views score the same."""
    passes = as_passes(scene_9v.train_rgb, scene_9v.train_cameras, FOUR_VIEW_STYLE, THE_REST)
    merged, cameras, _ = merge_views(passes)
    config = FitConfig.preset("draft", iterations=20, resolution=32, rays_per_step=256, device="cpu",
                              preview_every=10**9, lpips_weight=0.0)
    truth = torch.nn.functional.interpolate(scene_9v.heldout_rgb[:, 10].permute(0, 3, 1, 2), size=32, mode="area")
    scores = []
    for videos, cams in ((merged, cameras), (scene_9v.train_rgb, scene_9v.train_cameras)):
        field = fit_4d(videos, None, cams, config)
        rendered = render_views(field, scene_9v.heldout_cameras, 0.5, 32, 32)[0]
        scores.append(pooled_psnr(rendered, truth.permute(0, 2, 3, 1)))
    assert abs(scores[0] - scores[1]) < 0.1, scores


def test_the_official_layouts_merge_into_12_views_and_the_first_pass_keeps_shared_cameras():
    frames = torch.rand(6, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    four = Pass(torch.cat([frames[None], torch.full((4, 6, 16, 16, 3), 0.25)]), OrbitCameras.preset("4v", 5.0))
    eight = Pass(torch.cat([frames[None], torch.full((8, 6, 16, 16, 3), 0.75)]), OrbitCameras.preset("8v", 5.0))
    merged, cameras, report = merge_views([four, eight])
    assert cameras.azimuths_deg == tuple(sorted(set(AZIMUTHS_4V) | set(AZIMUTHS_8V)))
    assert cameras.elevations_deg == (5.0,) * 12
    assert torch.equal(merged[0], frames)
    from_four = {a for a in AZIMUTHS_4V if a}  # 120° is in both layouts: the first pass's view is kept
    for k, azimuth in enumerate(cameras.azimuths_deg[1:], start=1):
        assert merged[k].unique().item() == (0.25 if azimuth in from_four else 0.75), azimuth
    assert "pass 2 view 3 (5°, 120°) = merged view 4" in report and cameras.azimuths_deg[4] == 120
    assert cameras == OrbitCameras.preset("dense", 5.0)  # the camera editor's "dense (both)" plan


def test_the_real_input_frames_replace_a_reconstructed_input_view():
    frames = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    reconstructed = (frames + 0.02 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    item = Pass(torch.stack([reconstructed, 1 - frames]), OrbitCameras((0.0, 0.0), (0.0, 90.0)))
    merged, _, report = merge_views([item], input_frames=frames)
    assert torch.equal(merged[0], frames) and torch.equal(merged[1], 1 - frames)
    assert "input view: the input frames" in report
    merged, _, report = merge_views([item])
    assert torch.equal(merged[0], reconstructed) and "input view: view 0 of pass 1" in report


def test_passes_on_other_timings_are_refused_or_merged_on_their_common_frames(scene_9v):
    videos, cameras = scene_9v.train_rgb, scene_9v.train_cameras
    full = Pass(videos[[0, 2, 4, 6, 8]], cameras.select([0, 2, 4, 6, 8]))
    first_five = Pass(videos[[0, 1, 3]][:, :5], cameras.select([0, 1, 3]))  # one 8-view window
    every_other = Pass(videos[[0, 5, 7]][:, ::2], cameras.select([0, 5, 7]))  # half the frame rate
    with pytest.raises(ValueError, match=r"pass 2 covers input frames 0-4 .*pad_frames.*'common frames'"):
        plan_merge([full, first_five])
    merged, _, report = merge_views([full, first_five], frame_mode="common frames")
    assert torch.equal(merged, videos[[0, 1, 2, 3, 4, 6, 8]][:, :5])
    assert "kept the 5 of 21 input frames" in report
    assert frame_timing(every_other.videos[0], videos[0]).stride == 2
    merged, _, _ = merge_views([every_other, full], frame_mode="common frames")
    assert torch.equal(merged, videos[[0, 2, 4, 5, 6, 7, 8]][:, ::2])


def test_8_view_windows_extended_to_21_frames_line_up_with_the_4_view_windows():
    """Both models through the real window loop (stub networks whose novel view v of a frame is the frame times a
    per-view factor): every merged view, frame f, comes from input frame f."""
    frames = torch.rand(21, 8, 8, 3, generator=torch.Generator().manual_seed(3))
    passes = []
    for variant, window_len, cameras in (("4v", 12, OrbitCameras.preset("4v")), ("8v", 5, OrbitCameras.preset("8v"))):
        num_views = cameras.num_novel_views
        factors = torch.linspace(0.1, 0.9, num_views)

        def encode(window, references, num_views=num_views):
            return window, torch.zeros(window.shape[0] * num_views, 3, *window.shape[1:3])

        def sample(window, noise, latent, sigmas, factors=factors):
            views = factors[:, None, None, None, None] * window[None]  # (V, T, H, W, 3)
            return views_to_frame_major(views).movedim(-1, 1)

        def decode(latents, num_views=num_views):
            return frame_major_to_views(latents, num_views).movedim(2, -1)

        host = WindowHost(encode, lambda images: images.movedim(-1, 1), sample, decode)
        plan, length, _ = plan_video(21, window_len, variant, pad=False)
        assert length == 21 and len(plan) == {"4v": 2, "8v": 5}[variant]
        videos = extend_video(host, frames, num_views, plan, steps=1, seed=0, crossfade=False)
        passes.append(Pass(videos, cameras))
        for v, factor in enumerate(factors, start=1):
            torch.testing.assert_close(videos[v], factor * frames, rtol=0, atol=1e-6)
    merged, cameras, _ = merge_views(passes, input_frames=frames)
    assert merged.shape[:2] == (12, 21)
    for k in range(1, 12):
        ratio = merged[k] / frames  # one per-view factor for every frame: no frame came from another time
        assert ratio.max() - ratio.min() < 1e-4, cameras.azimuths_deg[k]


def test_views_are_resized_to_the_input_view_and_other_aspect_ratios_refused():
    coarse = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(4))  # a smooth picture
    frames = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear").permute(0, 2, 3, 1)
    small = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2), size=16, mode="area").permute(0, 2, 3, 1)
    item = Pass(torch.stack([small, small]), OrbitCameras((0.0, 0.0), (0.0, 90.0)))
    merged, _, report = merge_views([item], input_frames=frames)
    assert merged.shape == (2, 3, 32, 32, 3) and "pass 1: resized from 16×16 to 32×32" in report
    assert (merged[1] - frames).abs().mean() < 0.1  # the same picture, upsampled
    wide = Pass(torch.rand(2, 3, 16, 24, 3), OrbitCameras((0.0, 0.0), (0.0, 90.0)))
    with pytest.raises(ValueError, match="aspect ratio"):
        plan_merge([wide], input_frames=frames)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (OrbitCameras((0.0, 0.0), (0.0, 200.0), radius=2.5), "radius 2.5"),
        (OrbitCameras((10.0, 0.0), (0.0, 200.0)), "input view .* elevation 10"),
        (OrbitCameras((0.0, 0.0, 0.0), (0.0, 200.0, 250.0)), "pass 2 has 2 views but the cameras have 3"),
    ],
)
def test_passes_of_another_orbit_are_refused(second, message):
    videos = torch.rand(2, 4, 16, 16, 3, generator=torch.Generator().manual_seed(5))
    first = Pass(videos, OrbitCameras((0.0, 0.0), (0.0, 90.0)))
    with pytest.raises(ValueError, match=message):
        plan_merge([first, Pass(videos, second)])


def test_a_pass_whose_input_view_is_a_render_is_placed_by_its_frame_count_and_a_shorter_one_refused():
    videos = torch.rand(2, 4, 16, 16, 3, generator=torch.Generator().manual_seed(6))
    render = torch.rand(2, 4, 16, 16, 3, generator=torch.Generator().manual_seed(7))  # e.g. Refine of Render 4D
    cameras = OrbitCameras((0.0, 0.0), (0.0, 90.0))
    merged, _, report = merge_views([Pass(videos, cameras), Pass(render, OrbitCameras((0.0, 0.0), (0.0, 180.0)))])
    assert torch.equal(merged[2], render[1]) and torch.equal(merged[0], videos[0])
    assert "pass 2: 2 views × 4 frames (16×16), view 0 shows no input frame (mean difference" in report
    with pytest.raises(ValueError, match="matches no run of the 4 input frames.*Sample NVVS's `frames`"):
        plan_merge([Pass(videos, cameras), Pass(render[:, :3], OrbitCameras((0.0, 0.0), (0.0, 180.0)))])
    assert frame_timing(videos[0], videos[0]).error == 0 < TIMING_TOLERANCE


def test_view_order_is_counter_clockwise_from_the_input_view_lower_elevation_first():
    cameras = OrbitCameras((0.0, 30.0, 0.0, -20.0, 0.0, 0.0), (40.0, 130.0, 10.0, 130.0, 400.0, 220.0))
    # relative azimuths: input, 90, 330, 90, 0 (a second camera above the input's azimuth), 180
    assert view_order(cameras) == [0, 4, 3, 1, 5, 2]
