"""OrbitCameras: validation, counts and the geometry every stage shares (poses, rays, projection)."""
from __future__ import annotations

import math

import pytest
import torch

from sv4d_lib.cameras import OrbitCameras


def test_camera_position_follows_the_documented_convention():
    cams = OrbitCameras((30.0,), (90.0,), radius=2.0)
    e, a = math.radians(30.0), math.radians(90.0)
    expected = torch.tensor([2 * math.cos(e) * math.sin(a), 2 * math.sin(e), 2 * math.cos(e) * math.cos(a)])
    torch.testing.assert_close(cams.c2w()[0, :3, 3], expected)
    # OpenGL axes: the camera's −z axis points at the origin, +y leans up
    torch.testing.assert_close(-cams.c2w()[0, :3, 2], -expected / 2)
    assert cams.c2w()[0, 1, 1] > 0


def test_focal_length_from_vertical_fov():
    cams = OrbitCameras((0.0,), (0.0,), fov_deg=90.0)
    assert cams.focal(100) == pytest.approx(50.0)
    torch.testing.assert_close(cams.intrinsics(60, 100), torch.tensor([[50.0, 0, 30], [0, 50.0, 50], [0, 0, 1]]))


def test_rays_and_projection_agree_for_every_view():
    cams = OrbitCameras((5.0, 15.0, -10.0), (0.0, 90.0, 330.0))
    origins, dirs = cams.rays(6, 4)
    assert origins.shape == dirs.shape == (3, 24, 3)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(3, 24))
    v, u = torch.meshgrid(torch.arange(4) + 0.5, torch.arange(6) + 0.5, indexing="ij")
    centres = torch.stack((u.flatten(), v.flatten()), dim=-1)
    for view in range(3):
        points = origins[view] + 1.7 * dirs[view]
        pixels, depth = cams.project(points, 6, 4)
        torch.testing.assert_close(pixels[view], centres, atol=1e-4, rtol=0)
        assert (depth[view] > 0).all()


def test_counts_and_subsets():
    cams = OrbitCameras.preset("4v", 5.0)
    assert (cams.num_views_total, cams.num_novel_views) == (5, 4)
    sub = cams.select([3, 0])
    assert sub.azimuths_deg == (180.0, 0.0) and sub.elevations_deg == (5.0, 5.0)
    with pytest.raises(ValueError, match="3 views but the cameras have 5"):
        cams.check_count(3, "videos")
    with pytest.raises(ValueError, match="at least one novel view"):
        OrbitCameras((0.0,), (0.0,)).require_novel_views()


@pytest.mark.parametrize(
    ("elevations", "azimuths", "message"),
    [
        ((0.0, 0.0), (0.0,), "one elevation per azimuth"),
        ((), (), "at least one view"),
        ((0.0, 0.0), (0.0, float("nan")), "finite"),
        ((0.0, float("inf")), (0.0, 10.0), "finite"),
        ((0.0, 90.0), (0.0, 10.0), "strictly between -90 and 90"),
    ],
)
def test_invalid_cameras_are_refused(elevations, azimuths, message):
    with pytest.raises(ValueError, match=message):
        OrbitCameras(elevations, azimuths)


def test_planning_presets_put_the_input_view_at_the_given_elevation():
    dense = OrbitCameras.preset("dense", 10.0)
    assert dense.azimuths_deg == (0, 30, 60, 75, 120, 165, 180, 210, 240, 255, 300, 330)
    assert dense.elevations_deg == (10.0,) * 12
    passes = OrbitCameras.preset_passes("dense")
    assert passes[0] == passes[4] == ("4v", "8v") and passes[2] == ("4v",) and passes[1] == ("8v",)  # 0°, 120°
    ortho = OrbitCameras.preset("ortho_elevated", 5.0)
    assert ortho.num_novel_views == 8  # sampled by the 8-view model
    assert ortho.azimuths_deg[:4] == (0.0, 90.0, 180.0, 270.0) and ortho.elevations_deg[:4] == (5.0,) * 4
    assert ortho.azimuths_deg[4:] == (36.0, 108.0, 180.0, 252.0, 324.0) and ortho.elevations_deg[4:] == (35.0,) * 5
    assert set(OrbitCameras.preset_passes("ortho_elevated")) == {("8v",)}
    with pytest.raises(ValueError, match="30° above the input view: its elevation must stay below 60°"):
        OrbitCameras.preset("ortho_elevated", 60.0)
    with pytest.raises(ValueError, match="unknown camera preset '5v'"):
        OrbitCameras.preset("5v")
