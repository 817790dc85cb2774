"""A short 4D fit on real animated content (the shared dev scene: a skinned game character walking, 5 training
views) sees more than its training views: the held-out views, at every scored frame including the ones with the
most motion, beat copying the nearest training view by a clear margin (measured: 4.3–5 dB), and the fitted motion
matters: the frame with the most motion is rendered closer to its ground truth at its own time than at frame 0's
(measured: 1.05 dB). Exported, the GLB textured from the views is sharper inside the object than the one textured
from the field."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.real_scene import RealScene, load_real_scene, pooled_psnr
from sv4d_lib.nerf import DynamicNeRF, FitConfig, fit_4d
from sv4d_lib.nerf.export import ExportSettings, export_4d
from sv4d_lib.nerf.gltf import read_glb
from sv4d_lib.nerf.mesh import SurfaceSettings
from sv4d_lib.nerf.projection import ViewSet
from sv4d_lib.nerf.raycast import render_mesh
from sv4d_lib.nerf.render import render_views
from sv4d_lib.nerf.texture import BakeSettings
from tests.prerequisites import shared_reference

SIZE = 64  # the fitter resizes the 128 px videos; this short fit takes about 80 s of CPU
FRAMES = (0, 7, 14)
MARGIN_DB = 1.0  # views over field texture inside the object; measured 1.7 dB (12.9 vs 11.2 dB)  # the walk's extremes: frame 14 moves the legs and arms most on this scene


def downsize(videos: torch.Tensor) -> torch.Tensor:
    """(V, F, H, W, 3) → (V, F, SIZE, SIZE, 3), area-averaged as the fitter resizes its targets."""
    frames = F.interpolate(videos.flatten(0, 1).permute(0, 3, 1, 2), size=(SIZE, SIZE), mode="area")
    return frames.permute(0, 2, 3, 1).unflatten(0, videos.shape[:2])


@pytest.fixture(scope="module")
def fitted() -> tuple[RealScene, DynamicNeRF]:
    shared_reference("real_scenes", "maidroid_128.safetensors")
    scene = load_real_scene(128)
    config = FitConfig.preset("draft", iterations=800, resolution=SIZE, rays_per_step=512, device="cpu",
                              preview_every=10**9, lpips_weight=0.0)
    return scene, fit_4d(scene.train_rgb, scene.train_mask, scene.train_cameras, config)


def test_short_real_scene_fit_beats_the_nearest_view_and_carries_the_motion(fitted):
    scene, field = fitted

    truth = downsize(scene.heldout_rgb)[:, list(FRAMES)]
    train = downsize(scene.train_rgb)
    nearest = [int((scene.train_cameras.view_directions() @ d).argmax())
               for d in scene.heldout_cameras.view_directions()]
    copied = train[nearest][:, list(FRAMES)]
    rendered = torch.stack([render_views(field, scene.heldout_cameras, f / 20, SIZE, SIZE)[0] for f in FRAMES], 1)

    fit = [pooled_psnr(rendered[:, k], truth[:, k]) for k in range(len(FRAMES))]
    copy = [pooled_psnr(copied[:, k], truth[:, k]) for k in range(len(FRAMES))]
    assert min(f - c for f, c in zip(fit, copy)) > 3.0, (fit, copy)
    # the deformation carries the motion: frame 14 rendered at t = 0 (the canonical pose) is clearly worse
    unmoved = render_views(field, scene.heldout_cameras, 0.0, SIZE, SIZE)[0]
    assert fit[2] > pooled_psnr(unmoved, truth[:, 2]) + 0.5, (fit, pooled_psnr(unmoved, truth[:, 2]))


def test_glb_textured_from_the_views_beats_the_field_texture_inside_the_object(fitted, tmp_path):
    """Both GLBs share the mesh and its motion; only the texture differs. Scored at 128 px (the views' size) on the
    held-out views, inside the object (where the truth or the GLB has it)."""
    scene, field = fitted
    views = ViewSet(scene.train_rgb, scene.train_mask, scene.train_cameras)
    inside_psnr = {}
    for source in ("views", "field"):
        settings = ExportSettings(surface=SurfaceSettings(resolution=96, face_budget=10000),
                                  bake=BakeSettings(size=512), turntable=False, texture_source=source)
        export = export_4d(field, tmp_path, source, 15.0, settings, views=views)
        assert export.texture_source == source
        mesh = read_glb(export.glb.read_bytes())
        out = [render_mesh(mesh, f, scene.heldout_cameras, 128, 128) for f in FRAMES]
        rgb, acc = torch.stack([o[0] for o in out], 1), torch.stack([o[1] for o in out], 1)
        truth, mask = scene.heldout_rgb[:, list(FRAMES)], scene.heldout_mask[:, list(FRAMES)]
        inside_psnr[source] = pooled_psnr(rgb, truth, (mask > 0.5) | (acc > 0.5))
        if source == "views":
            # measured 0.66: what is left is inside the body, under the skirt or outside the masks (bulges)
            assert export.view_coverage > 0.5
            # the least-squares correction brings the mesh's renders closer to the views it was textured from
            # (measured 17.52 → 18.05 dB over the view pixels the mesh covers)
            assert export.texture_fit.psnr_after > export.texture_fit.psnr_before + 0.25, export.texture_fit
        else:
            assert export.texture_fit is None
    assert inside_psnr["views"] > inside_psnr["field"] + MARGIN_DB, inside_psnr
