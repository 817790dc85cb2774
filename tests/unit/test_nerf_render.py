"""Rays, compositing, occupancy culling, schedules and losses of the 4D fitter, against first principles."""
import logging
import math

import pytest
import torch

from sv4d_lib.cameras import AZIMUTHS_4V, AZIMUTHS_8V, DEFAULT_FOV_DEG, OrbitCameras
from sv4d_lib.nerf import losses
from sv4d_lib.nerf.field import DynamicNeRF, FieldConfig
from sv4d_lib.nerf.occupancy import OccupancyGrid, visual_hull
from sv4d_lib.nerf.render import (
    aabb_intersect,
    camera_rays,
    composite,
    project,
    render_rays,
    surface_normals,
)
from sv4d_lib.nerf.schedule import frame_window, orthogonal_views


def test_centre_ray_points_at_origin_and_projects_back():
    origins, dirs = camera_rays(20.0, 60.0, 2.0, DEFAULT_FOV_DEG, 5, 5)
    centre = 2 * 5 + 2
    torch.testing.assert_close(dirs[centre], -origins[centre] / 2.0, atol=1e-6, rtol=0)
    # a point 1.3 units along any pixel's ray lands on that pixel's centre
    points = origins + 1.3 * dirs
    pixels = project(points, 20.0, 60.0, 2.0, DEFAULT_FOV_DEG, 5, 5)
    v, u = torch.meshgrid(torch.arange(5) + 0.5, torch.arange(5) + 0.5, indexing="ij")
    torch.testing.assert_close(pixels, torch.stack((u.flatten(), v.flatten()), dim=-1), atol=1e-4, rtol=0)


def test_top_image_row_looks_up():
    _, dirs = camera_rays(0.0, 0.0, 2.0, 40.0, 4, 4)
    c2w = OrbitCameras((0.0,), (0.0,), 2.0, 40.0).c2w()[0]
    assert dirs[0, 1] > 0 > dirs[-1, 1]  # world y up, image rows grow downwards
    assert torch.allclose(c2w[:3, 1], torch.tensor([0.0, 1.0, 0.0]))


def test_aabb_intersection_of_axis_ray():
    near, far = aabb_intersect(torch.tensor([[0.0, 0.0, 2.0], [0.0, 2.0, 2.0]]),
                               torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]), 0.5)
    torch.testing.assert_close(near[0], torch.tensor(1.5))
    torch.testing.assert_close(far[0], torch.tensor(2.5))
    assert far[1] <= near[1]  # misses the box


def test_constant_density_slab_has_analytic_transmittance():
    sigma, length, samples = 3.0, 0.8, 64
    delta = torch.full((1, samples), length / samples)
    depths = torch.cumsum(delta, dim=1)
    out = composite(torch.full((1, samples), sigma), torch.zeros(1, samples, 3), depths, delta)
    opacity = 1 - math.exp(-sigma * length)  # Beer–Lambert
    torch.testing.assert_close(out["acc"], torch.tensor([opacity]))
    torch.testing.assert_close(out["rgb"], torch.full((1, 3), 1 - opacity))  # black slab over white


def _field(**kwargs) -> DynamicNeRF:
    config = FieldConfig(grid={"n_levels": 2, "log2_hashmap_size": 8}, occupancy_resolution=8, **kwargs)
    return DynamicNeRF(config, bound=0.6, radius=2.0, fov_deg=DEFAULT_FOV_DEG, num_frames=3)


def test_culled_samples_contribute_nothing():
    field = _field()
    origins, dirs = camera_rays(0.0, 0.0, 2.0, DEFAULT_FOV_DEG, 8, 8)
    times = torch.zeros(origins.shape[0])
    with torch.no_grad():
        assert render_rays(field, origins, dirs, times)["acc"].max() > 0.5  # the initial density blob is opaque
        field.occupancy.restrict(torch.zeros(8**3, dtype=torch.bool))
        out = render_rays(field, origins, dirs, times)
    assert out["acc"].abs().max() == 0
    torch.testing.assert_close(out["rgb"], torch.ones_like(out["rgb"]))


def test_occupancy_update_keeps_only_dense_cells():
    grid = OccupancyGrid(4, 1.0)
    grid.update(lambda x, t: (x[:, 0] > 0).float() * 10.0, 0.1, 0.0, torch.Generator().manual_seed(0))
    points = grid.cell_points()
    assert torch.equal(grid.mask, points[:, 0] > 0)
    assert torch.equal(grid.occupied(torch.tensor([[0.6, 0.0, 0.0], [-0.6, 0.0, 0.0], [2.0, 0.0, 0.0]])),
                       torch.tensor([True, False, False]))


def test_visual_hull_of_a_centred_disc_mask():
    grid = OccupancyGrid(16, 0.6)
    size = 32
    v, u = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    disc = (((u - size / 2) ** 2 + (v - size / 2) ** 2) < (size / 6) ** 2).float()
    azimuths = [0.0, 90.0, 180.0, 270.0]
    masks = disc.expand(4, 2, size, size)
    hull = visual_hull(grid, masks, [0.0] * 4, azimuths, 2.0, DEFAULT_FOV_DEG)
    points = grid.cell_points()
    assert hull[points.norm(dim=-1) < 0.1].all()  # the object's centre survives
    assert not hull[points.norm(dim=-1) > 0.5].any()  # far corners are carved


def test_surface_normals_of_density_blob_point_outwards():
    field = _field()
    points = torch.tensor([[0.2, 0.0, 0.0], [0.0, -0.3, 0.0]])
    normals = surface_normals(field, points, torch.zeros(2))
    torch.testing.assert_close(normals, torch.nn.functional.normalize(points, dim=-1), atol=0.05, rtol=0)


def test_deformation_starts_as_identity():
    field = _field()
    x = torch.rand(10, 3) - 0.5
    torch.testing.assert_close(field.warp(x, torch.rand(10)), x)


def test_orthogonal_views_on_official_layouts():
    # 8v (0, 30, 75, 120, 165, 210, 255, 300, 330), anchor 0°: nearest to 90°, 180°, 270° are 75°, 165°, 255°
    assert orthogonal_views([10.0] * len(AZIMUTHS_8V), list(AZIMUTHS_8V), 0, 4) == [0, 2, 4, 6]
    # 4v (0, 60, 120, 180, 240): 90° is a tie between 60° and 120°; 180° and 240° are the other picks
    chosen = orthogonal_views([0.0] * len(AZIMUTHS_4V), list(AZIMUTHS_4V), 0, 4)
    assert chosen[0] == 0 and chosen[1] in (1, 2) and chosen[2:] == [3, 4]
    assert orthogonal_views([0.0] * 4, [0.0, 90.0, 180.0, 270.0], 2, 4) == [2, 3, 0, 1]
    assert orthogonal_views([0.0] * 2, [0.0, 90.0], 1, 4) == [1, 0]  # never more views than exist


def test_frame_window_grows_from_frame_zero():
    windows = [frame_window(p / 10, 5, 0.5) for p in range(11)]
    assert windows[0] == 1 and windows[5:] == [5] * 6
    assert windows == sorted(windows)
    assert frame_window(0.0, 5, 0.0) == 5  # progressive sampling off


def test_visibility_weights_are_clipped_cosines():
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    dirs = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [-math.sqrt(0.5), 0.0, -math.sqrt(0.5)]])
    torch.testing.assert_close(losses.visibility_weights(normals, dirs), torch.tensor([1.0, 0.0, math.sqrt(0.5)]))
    pred, target = torch.zeros(3, 3), torch.ones(3, 3)
    torch.testing.assert_close(losses.weighted_mse(pred, target, torch.tensor([1.0, 0.0, 0.5])), torch.tensor(0.5))


@pytest.fixture()
def random_lpips_files(tmp_path):
    """LPIPS weight files with torchvision/lpips key names and random values (the real ones are not shipped)."""
    model = losses.LPIPS()
    torch.manual_seed(0)
    vgg = {f"features.{k}": torch.randn_like(v) * 0.05 for k, v in model.features.state_dict().items()}
    lin = {f"lin{k}.model.1.weight": torch.rand_like(m.weight) for k, m in enumerate(model.lins)}
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lin, tmp_path / "lin.pth")
    return tmp_path / "vgg16.pth", tmp_path / "lin.pth"


def test_lpips_from_weight_files(random_lpips_files):
    metric = losses.load_lpips(*random_lpips_files)
    a = torch.rand(2, 3, 32, 32)
    b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1).requires_grad_(True)
    assert float(metric(a, a)) == 0.0
    distance = metric(b, a)
    assert distance > 0
    (grad,) = torch.autograd.grad(distance, b)
    assert grad.abs().sum() > 0
    assert all(not p.requires_grad for p in metric.parameters())


def test_lpips_missing_weights_gives_one_notice(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(losses, "_notified", False)
    monkeypatch.setattr(losses, "default_lpips_paths", lambda: (None, None))
    with caplog.at_level(logging.WARNING, logger=losses.__name__):
        assert losses.load_lpips() is None
        assert losses.load_lpips(tmp_path / "missing.pth") is None
    assert len([r for r in caplog.records if "LPIPS loss disabled" in r.message]) == 1
