"""The exported mesh's outline follows the views' masks (`sv4d_lib.nerf.silhouettes`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.nerf.projection import ViewSet
from sv4d_lib.nerf.raycast import depth_maps
from sv4d_lib.nerf.silhouettes import SilhouetteSettings, refine_silhouettes

SIZE = 64
PIXEL = 2 * 2.0 * np.tan(np.radians(33.8 / 2)) / SIZE  # world size of a pixel at the orbit centre
CAMERAS = OrbitCameras((0.0,) * 6 + (30.0,) * 3 + (-20.0,) * 3,
                       tuple(range(0, 360, 60)) + (30.0, 150.0, 270.0) + (90.0, 210.0, 330.0))


def _views(radius: float | list[float], frames: int = 2) -> ViewSet:
    """Grey multi-view video of a ball of `radius` (or one radius per frame) at the orbit centre, with its exact
    masks."""
    radii = radius if isinstance(radius, list) else [radius] * frames
    balls = [trimesh.creation.icosphere(subdivisions=5, radius=r) for r in radii]
    masks = torch.stack([torch.isfinite(depth_maps(np.asarray(ball.vertices), np.asarray(ball.faces), CAMERAS, SIZE,
                                                   SIZE)).float() for ball in balls], dim=1)
    videos = torch.where(masks[..., None] > 0.5, 0.5, 1.0).expand(-1, -1, -1, -1, 3).contiguous()
    return ViewSet(videos, masks, CAMERAS)


@pytest.mark.parametrize("start", [0.26, 0.34])
def test_a_ball_too_small_or_too_large_takes_the_size_its_masks_show(start: float):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=start)
    vertices = np.asarray(mesh.vertices, np.float32)
    frames = np.stack([vertices, vertices])  # a still clip of two frames
    refined, (moved,), report = refine_silhouettes(vertices, np.asarray(mesh.faces), np.asarray(mesh.edges_unique),
                                                   [frames], _views(0.30), SilhouetteSettings(rounds=4))
    radius = np.linalg.norm(refined, axis=1)
    assert abs(start - 0.30) > 2 * PIXEL  # the ball started more than two pixels off
    assert abs(radius.mean() - 0.30) < 0.25 * PIXEL, (radius.mean(), PIXEL)
    assert radius.std() < 0.25 * PIXEL  # still a ball: every part moved, not only the rims some view saw
    np.testing.assert_allclose(np.linalg.norm(moved, axis=-1).mean(), radius.mean(), atol=1e-4)  # frames follow
    assert report.rounds == 4 and report.rim_vertices > 0


@pytest.mark.parametrize("frame_rounds", [0, 4])
def test_each_frame_takes_the_size_its_own_masks_show(frame_rounds: int):
    # the masks show the ball 1.5 px smaller at frame 0 and 1.5 px larger at frame 1 than the mesh at both frames (a
    # warp that misplaces a limb at one frame); the shared rounds keep the mean, the frame rounds split the frames
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.30)
    vertices = np.asarray(mesh.vertices, np.float32)
    shown = [0.30 - 1.5 * PIXEL, 0.30 + 1.5 * PIXEL]
    animation = np.stack([vertices] * 3)  # an animation sampled at 3 times: the middle one lies between the frames
    _, (at_views, moved), report = refine_silhouettes(
        vertices, np.asarray(mesh.faces), np.asarray(mesh.edges_unique), [np.stack([vertices, vertices]), animation],
        _views(shown), SilhouetteSettings(rounds=2, frame_rounds=frame_rounds))
    radius = np.linalg.norm(at_views, axis=-1).mean(axis=1)
    assert report.frame_rounds == frame_rounds
    if frame_rounds == 0:
        assert abs(radius[1] - radius[0]) < 0.1 * PIXEL  # one shared offset cannot tell the frames apart
        return
    np.testing.assert_allclose(radius, shown, atol=0.3 * PIXEL)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=-1).mean(axis=1), [radius[0], radius.mean(), radius[1]],
                               atol=1e-4)  # the animation's frames in between take the blend


def test_without_rounds_nothing_moves():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.33)
    vertices = np.asarray(mesh.vertices, np.float32)
    refined, (moved,), report = refine_silhouettes(vertices, np.asarray(mesh.faces), np.asarray(mesh.edges_unique),
                                                   [vertices[None]], _views(0.30, frames=1),
                                                   SilhouetteSettings(rounds=0))
    np.testing.assert_array_equal(refined, vertices)
    np.testing.assert_array_equal(moved[0], vertices)
    assert report.rounds == 0
