"""SV4D2 Fit 4D / Render 4D / Metrics 4D: the dynamic-NeRF stage on multi-view videos (view-major IMAGE batches)."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io
from PIL import Image

from sv4d_lib.multiview import join_views, split_views
from sv4d_lib.nerf import FitConfig, fit_4d
from sv4d_lib.nerf.fit import PRESETS
from sv4d_lib.nerf.metrics import video_metrics
from sv4d_lib.nerf.render import render_videos
from sv4d_lib.synthetic import render_scene
from sv4d_lib.video import check_finite

from .types import Cameras, Field4D

PREVIEW_SIZE = 256


def _progress_callback(total: int):
    """Fit callback: interruption point + progress bar with the latest render as preview."""
    bar = comfy.utils.ProgressBar(total)

    def callback(step: int, steps: int, preview: torch.Tensor | None) -> None:
        mm.throw_exception_if_processing_interrupted()
        image = None
        if preview is not None:
            image = ("JPEG", Image.fromarray((preview.clamp(0, 1) * 255).byte().cpu().numpy()), PREVIEW_SIZE)
        bar.update_absolute(step, steps, image)

    return callback


class SV4D2Fit4D(io.ComfyNode):
    """Fits a canonical hash-grid NeRF + deformation field to multi-view videos from known orbit cameras."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2Fit4D",
            display_name="SV4D2 Fit 4D",
            category="SV4D2/4d",
            description="4D optimisation (SV4D 2.0 §4): static-to-dynamic dynamic NeRF with photometric, mask and (when its weights are on disk) LPIPS losses. Generated views whose camera is "
            "turned by a few degrees (their silhouettes disagree with the others) are fitted through the turned "
            "camera, whose rotation is refined from colour during the fit (the object is taken to sit at the orbit "
            "centre, as SV4D draws it); the console says which views and by how much, and Export 4D Mesh textures "
            "them through the same cameras.",
            inputs=[
                io.Image.Input("images", tooltip="Multi-view video, view-major (all frames of view 0 = the input "
                               "view, then view 1, ...), object on a white background."),
                Cameras.Input("cameras", tooltip="Orbit of the views in `images`, input view first."),
                io.Int.Input("stage", default=1, min=1, max=2,
                             tooltip="1: fit from scratch (static on frame 0, then dynamic with progressive frames). "
                             "2: warm-started refit of `init_field` on refined videos."),
                io.Combo.Input("preset", options=list(PRESETS), default="default",
                               tooltip="Quality/speed trade-off measured on a real animated asset at 128 px "
                               "(docs/bench_nerf4d.md): draft (quick look), default (good quality), high "
                               "(slower, a little sharper)."),
                io.Int.Input("iterations", default=0, min=0, max=100000,
                             tooltip="Optimisation steps; 0 uses the preset's count. On a 2-core CPU a step takes "
                             "about 0.1–0.2 s at 128 px; a GPU is much faster."),
                io.Int.Input("resolution", default=128, min=16, max=1024, step=8,
                             tooltip="Training height in pixels; the videos are resized to it."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="Seed of the initialisation and of the ray sampling."),
                io.Mask.Input("masks", optional=True,
                              tooltip="Object masks (1 = object), view-major like `images`. Without masks, "
                              "non-white pixels count as the object."),
                Field4D.Input("init_field", optional=True,
                              tooltip="Field to start from (required for stage 2; it is not modified)."),
            ],
            outputs=[Field4D.Output(display_name="field", tooltip="The fitted dynamic NeRF.")],
        )

    @classmethod
    def execute(cls, images, cameras, stage: int, preset: str, iterations: int, resolution: int, seed: int,
                masks=None, init_field=None) -> io.NodeOutput:
        if stage == 2 and init_field is None:
            raise ValueError("stage 2 refits a fitted field: connect the field of a stage-1 SV4D2 Fit 4D to "
                             "`init_field` (or set stage to 1)")
        check_finite(images, "images")
        if masks is not None:
            check_finite(masks, "masks")
        videos = split_views(images[..., :3], cameras)
        mask_videos = None if masks is None else split_views(masks, cameras)
        if mask_videos is not None and mask_videos.shape[:2] != videos.shape[:2]:
            raise ValueError(f"got {masks.shape[0]} masks for {images.shape[0]} images; pass one mask per image")
        changes = {"iterations": iterations} if iterations else {}
        config = FitConfig.preset(preset, seed=seed, stage=stage, resolution=resolution,
                                  device=str(mm.get_torch_device()), **changes)
        field = fit_4d(videos, mask_videos, cameras, config, callback=_progress_callback(config.iterations),
                       init=init_field)
        return io.NodeOutput(field)


class SV4D2Render4D(io.ComfyNode):
    """Renders a fitted field from every camera and frame: the input of refinement (stage 2)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2Render4D",
            display_name="SV4D2 Render 4D",
            category="SV4D2/4d",
            description="Multi-view video of a fitted 4D field, view-major, input view included as view 0.",
            inputs=[
                Field4D.Input("field", tooltip="The fitted dynamic NeRF (SV4D2 Fit 4D)."),
                Cameras.Input("cameras", tooltip="Views to render (input view first)."),
                io.Int.Input("frames", default=0, min=0, max=4096,
                             tooltip="Frames per view, spread over the clip (0: the field's own frame count)."),
                io.Int.Input("width", default=576, min=8, max=4096, step=8, tooltip="Render width in pixels."),
                io.Int.Input("height", default=576, min=8, max=4096, step=8, tooltip="Render height in pixels."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="View-major renders on white."),
                io.Mask.Output(display_name="alpha", tooltip="Rendered opacity, same order."),
            ],
        )

    @classmethod
    def execute(cls, field, cameras, frames: int, width: int, height: int) -> io.NodeOutput:
        num_frames = frames or field.num_frames
        bar = comfy.utils.ProgressBar(num_frames)

        def step() -> None:
            bar.update(1)
            mm.throw_exception_if_processing_interrupted()

        rgb, alpha = render_videos(field, cameras, num_frames, width, height, callback=step)
        return io.NodeOutput(join_views(rgb).cpu(), join_views(alpha).cpu())


class SV4D2Metrics4D(io.ComfyNode):
    """PSNR/SSIM of rendered multi-view videos against targets (e.g. held-out or refined views)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2Metrics4D",
            display_name="SV4D2 Metrics 4D",
            category="SV4D2/4d",
            description="Mean PSNR (dB) and SSIM over all images; both batches must have the same shape.",
            inputs=[
                io.Image.Input("images", tooltip="Renders, e.g. from SV4D2 Render 4D."),
                io.Image.Input("reference", tooltip="Target images in the same order and size."),
            ],
            outputs=[
                io.String.Output(display_name="report"),
                io.Float.Output(display_name="psnr"),
                io.Float.Output(display_name="ssim"),
            ],
        )

    @classmethod
    def execute(cls, images, reference) -> io.NodeOutput:
        scores = video_metrics(images[..., :3], reference[..., :3])
        report = f"PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f} over {images.shape[0]} images"
        return io.NodeOutput(report, scores["psnr"], scores["ssim"])


class SV4D2SyntheticScene(io.ComfyNode):
    """Procedural moving, deforming textured shapes with exact masks: a test input for the 4D stage."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SV4D2SyntheticScene",
            display_name="SV4D2 Synthetic Scene",
            category="SV4D2/4d",
            description="Renders the built-in dynamic test scene (two textured ellipsoids that move and squash) "
            "from every camera: a multi-view video with known ground truth.",
            inputs=[
                Cameras.Input("cameras", tooltip="Views to render (input view first)."),
                io.Int.Input("frames", default=12, min=1, max=256, tooltip="Frames per view (t = frame / (frames − 1))."),
                io.Int.Input("width", default=576, min=8, max=4096, step=8, tooltip="Image width in pixels."),
                io.Int.Input("height", default=576, min=8, max=4096, step=8, tooltip="Image height in pixels."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="View-major multi-view video on white."),
                io.Mask.Output(display_name="masks", tooltip="Exact object coverage, same order."),
            ],
        )

    @classmethod
    def execute(cls, cameras, frames: int, width: int, height: int) -> io.NodeOutput:
        bar = comfy.utils.ProgressBar(cameras.num_views_total * frames)

        def on_rays(done: int, total: int) -> None:
            mm.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)

        scene = render_scene(cameras, frames, width, height, callback=on_rays)
        return io.NodeOutput(join_views(scene.rgb), join_views(scene.mask))


NODES = [SV4D2Fit4D, SV4D2Render4D, SV4D2Metrics4D, SV4D2SyntheticScene]
