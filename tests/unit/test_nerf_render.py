"""Rays, compositing, occupancy culling, schedules and losses of the 4D fitter, against first principles."""
import logging
import math

import pytest
import torch

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.nerf import losses
from sv4d_lib.nerf.curriculum import frame_window, orthogonal_views
from sv4d_lib.nerf.field import DynamicNeRF, FieldConfig
from sv4d_lib.nerf.occupancy import OccupancyGrid, visual_hulls
from sv4d_lib.nerf.render import aabb_intersect, composite, march_rays, render_rays, render_views, surface_normals


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
    return DynamicNeRF(config, bound=0.6, num_frames=3)


def _front_rays(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    origins, dirs = OrbitCameras((0.0,), (0.0,)).rays(size, size)
    return origins[0], dirs[0]


def test_culled_samples_contribute_nothing():
    field = _field()
    origins, dirs = _front_rays()
    times = torch.zeros(origins.shape[0])
    with torch.no_grad():
        assert render_rays(field, origins, dirs, times)["acc"].max() > 0.5  # the initial density blob is opaque
        field.occupancy.set_hulls(torch.zeros(3, 8**3, dtype=torch.bool))
        out = render_rays(field, origins, dirs, times)
    assert out["acc"].abs().max() == 0
    torch.testing.assert_close(out["rgb"], torch.ones_like(out["rgb"]))


def test_hull_of_one_frame_culls_only_that_frame():
    field = _field()
    origins, dirs = _front_rays()
    hulls = torch.ones(3, 8**3, dtype=torch.bool)
    hulls[2] = False
    field.occupancy.set_hulls(hulls)
    with torch.no_grad():
        at = {t: render_rays(field, origins, dirs, torch.full((origins.shape[0],), t))["acc"].max() for t in (0, 1)}
    assert at[0] > 0.5 and at[1] == 0
    # between frames 1 and 2 a point counts as occupied when either neighbour frame holds it
    occupied = field.occupancy.occupied(torch.zeros(3, 3), torch.tensor([0.5, 0.75, 1.0]))
    assert occupied.tolist() == [True, True, False]


def test_occupancy_update_keeps_only_dense_cells():
    grid = OccupancyGrid(4, 1.0, 1)
    grid.update(lambda x, t: (x[:, 0] > 0).float() * 10.0, 0.1, 1, torch.Generator().manual_seed(0))
    points = grid.cell_points()
    assert torch.equal(grid.mask, points[:, 0] > 0)
    assert torch.equal(grid.occupied(torch.tensor([[0.6, 0.0, 0.0], [-0.6, 0.0, 0.0], [2.0, 0.0, 0.0]]),
                                     torch.zeros(3)),
                       torch.tensor([True, False, False]))


def test_visual_hulls_follow_each_frames_silhouettes():
    size = 32
    v, u = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")

    def disc(centre_u: float) -> torch.Tensor:
        return (((u - centre_u) ** 2 + (v - size / 2) ** 2) < (size / 8) ** 2).float()

    cameras = OrbitCameras((0.0,) * 4, (0.0, 90.0, 180.0, 270.0))
    # frame 0: a ball at the centre; frame 1: the front/back views see it shifted sideways (a moving object)
    masks = torch.stack((disc(size / 2).expand(4, size, size),
                         torch.stack((disc(size / 2 + 10), disc(size / 2), disc(size / 2 - 10), disc(size / 2)))), 1)
    hulls = visual_hulls(cameras, masks, 32, 0.6, margin_px=0.0)
    points = OccupancyGrid(32, 0.6, 1).cell_points()
    centre = points.norm(dim=-1) < 0.1
    assert hulls[0, centre].all() and not hulls[0, points.norm(dim=-1) > 0.45].any()
    assert not hulls[1, centre].any()  # the ball left the centre in frame 1
    # one disagreeing view is tolerated on request
    assert visual_hulls(cameras, masks, 32, 0.6, margin_px=0.0, tolerance=2)[1, centre].all()


def test_surface_normals_of_density_blob_point_outwards():
    field = _field()
    points = torch.tensor([[0.2, 0.0, 0.0], [0.0, -0.3, 0.0]])
    normals = surface_normals(field, points, torch.zeros(2))
    torch.testing.assert_close(normals, torch.nn.functional.normalize(points, dim=-1), atol=0.05, rtol=0)


def test_deformation_starts_as_identity_and_frame_zero_stays_canonical():
    field = _field()
    x = torch.rand(10, 3) - 0.5
    torch.testing.assert_close(field.warp(x, torch.rand(10)), x)
    with torch.no_grad():  # any trained deformation: frame 0 is canonical space by construction
        for p in field.deformation.parameters():
            p.normal_()
    assert (field.warp(x, torch.ones(10)) - x).abs().max() > 1e-3
    torch.testing.assert_close(field.warp(x, torch.zeros(10)), x)


def test_deformation_levels_open_coarse_to_fine():
    field = _field()
    field.deformation.anneal(0.0)
    assert field.deformation.level_weights.tolist()[0] == 1.0 and field.deformation.level_weights[1:].max() == 0
    field.deformation.anneal(1.0)
    assert field.deformation.level_weights.min() == 1.0


def test_render_views_gives_every_camera():
    field = _field()
    rgb, alpha = render_views(field, OrbitCameras((0.0, 10.0), (0.0, 90.0)), 0.5, 6, 4)
    assert rgb.shape == (2, 4, 6, 3) and alpha.shape == (2, 4, 6)
    with pytest.raises(ValueError, match="t must lie in"):
        render_views(field, OrbitCameras((0.0,), (0.0,)), 1.5, 6, 4)


def test_orthogonal_views_on_official_layouts():
    # 8v (0, 30, 75, 120, 165, 210, 255, 300, 330), anchor 0°: nearest to 90°, 180°, 270° are 75°, 165°, 255°
    assert orthogonal_views(OrbitCameras.preset("8v", 10.0), 0, 4) == [0, 2, 4, 6]
    # 4v (0, 60, 120, 180, 240): 90° is a tie between 60° and 120°; 180° and 240° are the other picks
    chosen = orthogonal_views(OrbitCameras.preset("4v"), 0, 4)
    assert chosen[0] == 0 and chosen[1] in (1, 2) and chosen[2:] == [3, 4]
    assert orthogonal_views(OrbitCameras((0.0,) * 4, (0.0, 90.0, 180.0, 270.0)), 2, 4) == [2, 3, 0, 1]
    assert orthogonal_views(OrbitCameras((0.0,) * 2, (0.0, 90.0)), 1, 4) == [1, 0]  # never more views than exist


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


def test_marching_with_early_termination_matches_full_compositing():
    field = _field()
    origins, dirs = _front_rays(12)
    times = torch.full((origins.shape[0],), 0.5)
    with torch.no_grad():
        full = render_rays(field, origins, dirs, times, num_samples=40)
        exact = march_rays(field, origins, dirs, times, num_samples=40, segment=7, min_transmittance=0.0)
        early = march_rays(field, origins, dirs, times, num_samples=40, segment=7, min_transmittance=1e-3)
    torch.testing.assert_close(exact["rgb"], full["rgb"], atol=1e-5, rtol=0)
    torch.testing.assert_close(exact["acc"], full["acc"], atol=1e-5, rtol=0)
    assert full["acc"].max() > 0.99  # opaque rays exist, so termination had something to skip
    torch.testing.assert_close(early["rgb"], full["rgb"], atol=2e-3, rtol=0)
