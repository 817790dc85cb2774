"""fit_4d on tiny synthetic scenes: bad input, interruption, static-to-dynamic, warm starts and that it learns."""
import copy

import pytest
import torch

from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.nerf import FieldConfig, FitConfig, derive_masks, fit_4d
from sv4d_lib.nerf.metrics import video_metrics
from sv4d_lib.nerf.render import render_videos
from sv4d_lib.synthetic import render_scene

CAMERAS = OrbitCameras((10.0,) * 4, (0.0, 90.0, 180.0, 270.0))
SMALL_FIELD = FieldConfig(grid={"n_levels": 6, "log2_hashmap_size": 13, "per_level_scale": 1.5},
                          occupancy_resolution=16)


def tiny_config(**kwargs) -> FitConfig:
    base = {"iterations": 8, "rays_per_step": 256, "num_samples": 32, "preview_every": 4, "field": SMALL_FIELD,
            "occupancy_warmup": 4, "occupancy_every": 2, "lpips_weight": 0.0, "device": "cpu"}
    return FitConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def scene():
    return render_scene(CAMERAS, 3, 24, 24)


@pytest.fixture(scope="module")
def fitted(scene):
    """A short real fit (static then dynamic) shared by the tests that need a trained field."""
    config = tiny_config(iterations=240, rays_per_step=512, preview_every=60, static_fraction=0.4)
    return fit_4d(scene.rgb, scene.mask, CAMERAS, config)


def test_fit_learns_the_training_views(scene, fitted):
    rgb, alpha = render_videos(fitted, CAMERAS, 3, 24, 24)
    scores = video_metrics(rgb.flatten(0, 1), scene.rgb.flatten(0, 1))
    blank = video_metrics(torch.ones_like(rgb.flatten(0, 1)), scene.rgb.flatten(0, 1))
    assert scores["psnr"] > 17.0 and scores["psnr"] > blank["psnr"] + 5
    assert (alpha - scene.mask).abs().mean() < 0.1
    assert fitted.dynamic and not any(p.requires_grad for p in fitted.parameters())


def test_static_stage_keeps_the_deformation_frozen(scene):
    field = fit_4d(scene.rgb, scene.mask, CAMERAS, tiny_config(static_fraction=1.0))
    last = field.deformation.mlp[-1]
    assert last.weight.abs().max() == 0 and last.bias.abs().max() == 0
    field = fit_4d(scene.rgb, scene.mask, CAMERAS, tiny_config(static_fraction=0.5))
    assert field.deformation.mlp[-1].weight.abs().max() > 0


def test_stage_two_warm_starts_without_touching_init(scene, fitted):
    before = copy.deepcopy(fitted.state_dict())
    refined = fit_4d(scene.rgb, scene.mask, CAMERAS, tiny_config(stage=2), init=fitted)
    for key, value in fitted.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert refined is not fitted
    assert not torch.equal(refined.encoding.params, fitted.encoding.params)
    # warm start: a few stage-2 steps keep the quality of the stage-1 field
    rgb, _ = render_videos(refined, CAMERAS, 3, 24, 24)
    assert video_metrics(rgb.flatten(0, 1), scene.rgb.flatten(0, 1))["psnr"] > 15.0


def test_callback_sees_progress_and_previews_and_can_interrupt(scene):
    seen = []

    def callback(step, total, preview):
        seen.append((step, total, None if preview is None else tuple(preview.shape)))
        if step == 6:
            raise InterruptedError("stop")

    with pytest.raises(InterruptedError):
        fit_4d(scene.rgb, scene.mask, CAMERAS, tiny_config(preview_size=16), callback=callback)
    assert [s for s, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[3] == (4, 8, (16, 16, 3)) and seen[0][2] is None


def test_nan_loss_is_reported(scene):
    with pytest.raises(FloatingPointError, match="NaN"):
        fit_4d(scene.rgb, scene.mask, CAMERAS, tiny_config(lr_mlp=float("nan")))


def test_masks_default_to_non_white_pixels(scene):
    masks = derive_masks(scene.rgb)
    assert torch.equal(masks > 0.5, scene.rgb.amin(dim=-1) < 1 - 4 / 255)
    pure = (scene.mask == 0) | (scene.mask == 1)  # pixels fully background or fully object
    assert torch.equal(masks[pure], scene.mask[pure])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v, m, c: (v, m, c.select([0, 1, 2])), "cameras/views mismatch"),
        (lambda v, m, c: (v[..., :2], m, c), r"\(views, frames, height, width, 3\)"),
        (lambda v, m, c: (v, m[:, :2], c), "masks must be"),
        (lambda v, m, c: (v, torch.zeros_like(m), c), "mask of view 0 frame 0 is empty"),
        (lambda v, m, c: (v, m * float("nan"), c), "masks must be finite"),
        (lambda v, m, c: (torch.where(torch.arange(4)[:, None, None, None, None] == 2, 1.0, v), None, c),
         "view 2 frame 0 is entirely white"),
        (lambda v, m, c: (v * float("nan"), m, c), "finite floats in"),
    ],
)
def test_bad_input_is_rejected_before_fitting(scene, change, message):
    videos, masks, cameras = change(scene.rgb, scene.mask, CAMERAS)
    with pytest.raises(ValueError, match=message):
        fit_4d(videos, masks, cameras, tiny_config())


def test_stage_two_needs_a_field_of_the_same_length(scene, fitted):
    with pytest.raises(ValueError, match="pass it as `init`"):
        fit_4d(scene.rgb, scene.mask, CAMERAS, tiny_config(stage=2))
    with pytest.raises(ValueError, match="fitted on 3 frames but the videos have 2"):
        fit_4d(scene.rgb[:, :2], scene.mask[:, :2], CAMERAS, tiny_config(stage=2), init=fitted)


def test_presets_are_named_trade_offs():
    assert FitConfig.preset("draft").iterations < FitConfig.preset("default").iterations
    assert FitConfig.preset("high").iterations > FitConfig.preset("default").iterations
    assert FitConfig.preset("default") == FitConfig()
    assert FitConfig.preset("draft", seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown fit preset 'best'"):
        FitConfig.preset("best")


def test_fit_runs_under_inference_mode(scene):
    """ComfyUI executes nodes under torch.inference_mode; the fit must still train."""
    with torch.inference_mode():
        field = fit_4d(scene.rgb, scene.mask, CAMERAS, tiny_config(iterations=3))
    assert field.encoding.params.abs().max() > 1e-4  # moved away from tcnn's ±1e-4 init


def test_lpips_patches_join_the_loss_when_weights_exist(scene, tmp_path, monkeypatch):
    from sv4d_lib.nerf import losses

    model = losses.LPIPS()
    torch.save({f"features.{k}": torch.randn_like(v) * 0.05 for k, v in model.features.state_dict().items()},
               tmp_path / "vgg.pth")
    torch.save({f"lin{k}.model.1.weight": torch.rand_like(m.weight) for k, m in enumerate(model.lins)},
               tmp_path / "lin.pth")
    patches = []
    original = losses.LPIPS.forward

    def spy(self, pred, target):
        patches.append((tuple(pred.shape), pred.requires_grad))
        return original(self, pred, target)

    monkeypatch.setattr(losses.LPIPS, "forward", spy)
    config = tiny_config(iterations=3, lpips_weight=0.1, lpips_patch=16, lpips_vgg_path=str(tmp_path / "vgg.pth"),
                         lpips_lin_path=str(tmp_path / "lin.pth"))
    fit_4d(scene.rgb, scene.mask, CAMERAS, config)
    assert patches == [((1, 3, 16, 16), True)] * 3


def test_opacity_total_variation_measures_surface_area():
    """For an opaque ball, pairs ε apart in random directions straddle the surface with probability A·ε/(2V)
    (A: its area, V: the sampled volume), so the regulariser is a surface-area estimate: a ball of twice the radius
    scores four times as much, and a ball beats a cube of the same volume."""
    from sv4d_lib.nerf.losses import opacity_total_variation

    generator = torch.Generator().manual_seed(0)
    half, eps, step, n = 0.6, 0.01, 0.05, 400_000
    x = (torch.rand(n, 3, generator=generator) * 2 - 1) * half
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)

    def score(inside) -> float:
        sigma = lambda p: inside(p).float() * 1e4  # opaque inside, empty outside
        return float(opacity_total_variation(sigma(x), sigma(x + eps * d), step))

    volume = (2 * half) ** 3
    for radius in (0.15, 0.3):
        expected = 4 * torch.pi * radius**2 * eps / (2 * volume)
        assert score(lambda p: p.norm(dim=-1) < radius) == pytest.approx(expected, rel=0.05)
    side = (4 / 3 * torch.pi * 0.3**3) ** (1 / 3)
    cube = score(lambda p: (p.abs() < side / 2).all(dim=-1))
    assert cube == pytest.approx(6 * side**2 * eps / (2 * volume), rel=0.05)
    assert cube > 1.2 * score(lambda p: p.norm(dim=-1) < 0.3)
