"""Fit a dynamic NeRF to multi-view videos from known orbit cameras (SV4D 2.0 §4, written from the paper).

Stage 1 starts static (canonical NeRF on frame 0, deformation off), then unfreezes the deformation and opens the
frames progressively while the deformation grid anneals coarse to fine. Each step renders random rays of one frame
from a near-orthogonal view set and minimises the MSE (visibility-weighted as in the paper when `visibility` is on;
measured worse on real content) + silhouette loss + the canonical field's opacity total variation (the least surface
where the views leave the shape open, docs/nerf4d_analysis.md), plus LPIPS on a patch when its weights are on disk.
Views whose silhouettes disagree by a small camera rotation are fitted through their turned cameras, registered to
the field and refined from colour as it sharpens (`alignment.py`).
Samples outside the frame's visual hull carry no density (`occupancy.py`). Stage 2 warm-starts from a stage-1 field
and refits all frames at once on refined targets (the diffusion-denoised stage-1 renders). `FitConfig.preset` names
the quality/speed trade-offs measured in docs/bench_nerf4d.md.
"""
from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import torch
import torch.nn.functional as F

from ..cameras import OrbitCameras
from .alignment import (AlignmentReport, RegistrationSettings, ViewRotations, align_views, corrected_views,
                        plan_alignment, register_views)
from .curriculum import frame_window, orthogonal_views
from .field import DynamicNeRF, FieldConfig
from .losses import load_lpips, mask_loss, opacity_total_variation, visibility_weights, weighted_mse
from .occupancy import visual_hulls
from .render import DEFAULT_SAMPLES, render_rays, render_views, surface_normals

# Callback(step, total, preview (H, W, 3) or None); raising from it aborts the fit.
FitCallback = Callable[[int, int, "torch.Tensor | None"], None]

# Views are registered to the field at most this many pixels high: the comparison is blurred, and the renders of
# every view must stay a few seconds on a CPU (register_views recovers turns to 0.02° at 128 px).
REGISTRATION_HEIGHT = 128
REGISTRATION_MIN_STEPS = 100  # static steps before the field is worth registering to (the draft preset has 200)

# Pixels whose every channel is within this of 1.0 count as white background when no masks are given.
WHITE_TOLERANCE = 4.0 / 255.0


log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    """Optimisation settings. Defaults are the "default" preset (docs/bench_nerf4d.md); `FitConfig.preset` names the
    measured trade-offs; on a GPU raise `rays_per_step` and `resolution`."""

    bound: float | None = None  # half-size of the scene cube; None: radius·tan(fov/2), what a view sees at the origin
    iterations: int = 5000  # held-out PSNR still grows with steps; 5000 keeps a 2-core fit under 10 min (bench_nerf4d)
    seed: int = 0
    stage: int = 1  # 1: static→dynamic from scratch (or `init`); 2: warm-started refit on refined targets
    resolution: int | None = None  # training height in pixels (videos are resized); None keeps the input size
    rays_per_step: int = 1024
    foreground_fraction: float = 0.75  # share of rays drawn near the object (dilated mask); the rest anywhere
    num_samples: int = DEFAULT_SAMPLES
    views_per_step: int = 4
    static_fraction: float = 0.2  # share of stage-1 iterations spent on frame 0 with the deformation frozen
    progressive: bool = True
    progressive_fraction: float = 0.5  # share of the dynamic iterations over which the frame window opens
    anneal_fraction: float = 0.5  # share of the dynamic iterations over which the deformation grid opens its levels
    view_alignment: bool = True  # undo small camera rotations of views whose silhouettes disagree (alignment.py)
    # refine the rotation of those views from colour during the fit (off: their images are warped back instead)
    view_refinement: bool = True
    view_refinement_start: float = 0.05  # share of the iterations before it starts: the field needs a shape first
    lr_view_deg: float = 0.01  # degrees per step (Adam)
    hulls: bool = True  # cull samples outside each frame's visual hull of the masks
    hull_margin_px: float = 0.5  # silhouette dilation (beyond a projected cell) that tolerates misaligned views
    hull_tolerance: int | None = None  # views that may disagree on a hull cell; None: 0 up to 5 views, else 1
    # SV4D 2.0's visibility-weighted photometric loss (clipped cosine of the normal to the ray); off by default: on the
    # real dev scene it cost 0.43 dB held-out with 9 views, 0.13 dB with 5 and 0.23 dB from degraded views, and it
    # needs the density's double backward (docs/bench_nerf4d.md)
    visibility: bool = False
    visibility_start: float = 0.2  # weights need a surface: start after this share of the iterations
    mask_weight: float = 1.0
    tv_weight: float = 0.03  # opacity total variation: least surface where the views leave the shape open
    tv_pairs_per_ray: float = 2.0  # point pairs per step for each rendered ray (2048 at the default ray count)
    tv_distance_px: float = 1.0  # pair distance, in training pixels at the orbit centre
    lpips_weight: float = 0.1
    lpips_patch: int = 32
    lpips_vgg_path: str | None = None
    lpips_lin_path: str | None = None
    lr_grid: float = 1e-2
    lr_mlp: float = 1e-3
    lr_deform: float = 5e-3
    lr_final_ratio: float = 0.1  # exponential decay to this fraction of each rate
    stage2_lr_scale: float = 0.3
    occupancy_warmup: int = 64
    occupancy_every: int = 16
    preview_every: int = 50
    preview_size: int = 64
    field: FieldConfig = dataclass_field(default_factory=FieldConfig)
    device: str | None = None  # None: CUDA when available

    @classmethod
    def preset(cls, name: str, **changes) -> "FitConfig":
        """A named quality/speed trade-off ("draft", "default", "high") with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown fit preset {name!r}; use one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **changes})


# Measured on the real dev scene at 128 px (docs/bench_nerf4d.md); "default" equals the dataclass defaults.
PRESETS: dict[str, dict] = {
    "draft": {"iterations": 1000},
    "default": {},
    "high": {"iterations": 6000, "rays_per_step": 2048},
}


def _check_inputs(
    videos: torch.Tensor, masks: torch.Tensor | None, cameras: OrbitCameras, config: FitConfig,
    init: DynamicNeRF | None,
) -> None:
    if videos.ndim != 5 or videos.shape[-1] != 3:
        raise ValueError(f"videos must be (views, frames, height, width, 3), got shape {tuple(videos.shape)}")
    cameras.check_count(videos.shape[0], "videos")
    if masks is not None and tuple(masks.shape) != tuple(videos.shape[:-1]):
        raise ValueError(f"masks must be (views, frames, height, width) = {tuple(videos.shape[:-1])}, got {tuple(masks.shape)}")
    if min(videos.shape[2:4]) < 8:
        raise ValueError(f"frames of {videos.shape[3]}×{videos.shape[2]} px are too small to fit; use at least 8×8")
    if not torch.isfinite(videos).all() or videos.min() < 0 or videos.max() > 1:
        raise ValueError("videos must be finite floats in [0, 1]; normalise the images (e.g. uint8 / 255)")
    if masks is not None and (not torch.isfinite(masks).all() or masks.min() < 0 or masks.max() > 1):
        raise ValueError("masks must be finite floats in [0, 1] (1 = object); normalise them or leave them out")
    if config.stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {config.stage}")
    if config.stage == 2 and init is None:
        raise ValueError("stage 2 refits a stage-1 field: pass it as `init` (warm start)")
    if init is not None and init.num_frames != videos.shape[1]:
        raise ValueError(f"the field to refit was fitted on {init.num_frames} frames but the videos have "
                         f"{videos.shape[1]}; refit on videos of the same length (render the field at that length)")
    if config.iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {config.iterations}")
    white = (videos >= 1 - WHITE_TOLERANCE).all(dim=-1).flatten(2).all(dim=-1)
    if white.any():
        v, f = (int(i) for i in white.nonzero()[0])
        raise ValueError(
            f"view {v} frame {f} is entirely white: there is no object to fit; check the video (white background "
            "expected around a visible object) or drop that view"
        )


def derive_masks(videos: torch.Tensor) -> torch.Tensor:
    """Object masks from a white background: a pixel is object when any channel is below 1 − 4/255."""
    return ((1 - videos).amax(dim=-1) > WHITE_TOLERANCE).float()


def _resize(videos: torch.Tensor, masks: torch.Tensor, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    num_views, num_frames, h, w, _ = videos.shape
    if height == h:
        return videos, masks
    size = (height, max(8, round(w * height / h)))
    rgb = F.interpolate(videos.flatten(0, 1).permute(0, 3, 1, 2), size=size, mode="area")
    alpha = F.interpolate(masks.flatten(0, 1)[:, None], size=size, mode="area")
    return (
        rgb.permute(0, 2, 3, 1).reshape(num_views, num_frames, *size, 3),
        alpha[:, 0].reshape(num_views, num_frames, *size),
    )


def _optimizer(field: DynamicNeRF, config: FitConfig, scale: float, rotations: ViewRotations | None
               ) -> torch.optim.Adam:
    groups = [
        {"params": list(field.encoding.parameters()), "lr": config.lr_grid * scale, "eps": 1e-15},
        {"params": list(field.density_mlp.parameters()) + list(field.colour_mlp.parameters()), "lr": config.lr_mlp * scale},
        {"params": list(field.deformation.encoding.parameters()), "lr": config.lr_deform * scale, "eps": 1e-15},
        {"params": list(field.deformation.mlp.parameters()) + [field.deformation.codes], "lr": config.lr_deform * scale},
    ]
    if rotations is not None:
        groups.append({"params": [rotations.angles_deg], "lr": config.lr_view_deg * scale})
    return torch.optim.Adam(groups, betas=(0.9, 0.99))


def fit_4d(
    videos: torch.Tensor,
    masks: torch.Tensor | None,
    cameras: OrbitCameras,
    config: FitConfig | None = None,
    callback: FitCallback | None = None,
    init: DynamicNeRF | None = None,
) -> DynamicNeRF:
    """Fit a `DynamicNeRF` to `videos` (V, F, H, W, 3) in [0, 1] seen from `cameras` (one per view, in order).

    `masks` (V, F, H, W) in [0, 1]; None derives them from the white background (`derive_masks`). Frame f is time
    `t = f / (F − 1)`. `init` warm-starts from a fitted field (required for stage 2; never modified). `callback`
    gets (step, total, preview or None) every step; an exception raised there propagates and nothing is returned.
    """
    config = config or FitConfig()
    with torch.inference_mode(False), torch.enable_grad():  # ComfyUI executes nodes in inference mode
        videos = videos.detach().clone().float()
        masks = None if masks is None else masks.detach().clone().float()
        _check_inputs(videos, masks, cameras, config, init)
        masks = derive_masks(videos) if masks is None else masks
        empty = masks.flatten(2).amax(dim=-1) <= 0
        if empty.any():
            v, f = (int(i) for i in empty.nonzero()[0])
            raise ValueError(f"the mask of view {v} frame {f} is empty; pass masks that cover the object (or none)")
        if config.resolution is not None:
            videos, masks = _resize(videos, masks, config.resolution)
        return _Fitter(videos, masks, cameras, config, init).run(callback)


class _Fitter:
    """State of one fit: targets, rays, field, optimiser and the step schedule."""

    def __init__(
        self, videos: torch.Tensor, masks: torch.Tensor, cameras: OrbitCameras, config: FitConfig,
        init: DynamicNeRF | None,
    ) -> None:
        self.config, self.cameras = config, cameras
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if init is not None:
            bound = init.bound
        else:
            bound = config.bound or cameras.radius * math.tan(math.radians(cameras.fov_deg) / 2)
        self.alignment: AlignmentReport | None = None
        if config.view_alignment and videos.shape[0] >= 3:  # fewer views cannot outvote one turned view
            if config.view_refinement:  # the estimates start the refinement: the views are never resampled
                self.alignment = plan_alignment(masks, cameras, bound)
            else:
                videos, masks, self.alignment = align_views(videos, masks, cameras, bound)
            log.info("4D fit: %s", self.alignment.summary())
        self.num_views, self.num_frames, self.height, self.width, _ = videos.shape
        self.rgb = videos.to(self.device).flatten(2, 3)  # (V, F, H·W, 3)
        self.mask = masks.to(self.device).flatten(2, 3)
        # where foreground rays are drawn (CPU, like the sampling generator): the mask dilated by a few pixels
        near = F.max_pool2d((masks > 0.5).float().flatten(0, 1)[:, None], 5, stride=1, padding=2)
        self.near_object = near.view(self.num_views, self.num_frames, -1) + 1e-4  # never an all-zero row
        self.origins, self.dirs = cameras.rays(self.width, self.height, self.device)  # (V, H·W, 3)
        self.generator = torch.Generator().manual_seed(config.seed)
        if init is not None:
            self.field = copy.deepcopy(init).to(self.device).requires_grad_(True)
        else:
            self.field = DynamicNeRF(config.field, bound, self.num_frames, self.device, seed=config.seed)
        self.field.train()
        refine = config.view_refinement and self.alignment is not None
        self.view_rotations = ViewRotations(cameras, self.alignment, self.device) if refine else None
        self._set_hulls()
        # one training pixel at the orbit centre, in world units
        self.tv_distance = config.tv_distance_px * cameras.radius / cameras.focal(self.height)
        self.warm = init is not None
        self.static_steps = 0 if self.warm or self.num_frames == 1 else int(config.static_fraction * config.iterations)
        scale = config.stage2_lr_scale if config.stage == 2 else 1.0
        self.refine_from = int(config.view_refinement_start * config.iterations)
        # every view is registered to the field once frame 0 is fitted and again halfway through the motion; a
        # field of fewer static steps does not hold the object yet (smoke runs), and registering costs seconds
        self.register_at = {self.static_steps, (self.static_steps + config.iterations) // 2} if (
            self.view_rotations is not None and self.static_steps >= REGISTRATION_MIN_STEPS) else set()
        self.optimizer = _optimizer(self.field, config, scale, self.view_rotations)
        decay = config.lr_final_ratio ** (1.0 / max(config.iterations - 1, 1))
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, decay)
        self.lpips = (load_lpips(config.lpips_vgg_path, config.lpips_lin_path, self.device)
                      if config.lpips_weight > 0 else None)
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)

    def _set_hulls(self) -> None:
        """Cull each frame to its visual hull (never density outside its silhouettes: no floaters or ghost limbs),
        through the views' refined rotations once they are learnt."""
        cfg = self.config
        if cfg.hulls:
            tolerance = cfg.hull_tolerance if cfg.hull_tolerance is not None else int(self.num_views > 5)
            turns = self.view_rotations.world_rotations().detach() if self._turned() else None
            masks = self.mask.view(self.num_views, self.num_frames, self.height, self.width)
            self.field.occupancy.set_hulls(visual_hulls(self.cameras, masks, self.field.occupancy.resolution,
                                                        self.field.bound, cfg.hull_margin_px, tolerance, turns))
        self.tv_cells = self.field.occupancy.hulls[0].nonzero().squeeze(1)  # where frame 0 may hold matter

    def _turned(self) -> bool:
        return self.view_rotations is not None and self.view_rotations.active

    @torch.no_grad()
    def _register(self, step: int, poll: Callable[[], None]) -> None:
        """Register every novel view to renders of the field from the nominal cameras (`register_views`): views
        turned by more than the alignment threshold are fitted through their turned cameras from here on (the
        silhouettes miss rolls), the others through their nominal ones; the hulls are re-cut through them.

        Renders and comparisons run at most `REGISTRATION_HEIGHT` pixels high (the comparison is blurred anyway);
        `poll` runs after each render and registration step (the host's interrupt check)."""
        open_frames = 1
        if self.field.dynamic:
            open_frames = self.num_frames
            if self.config.progressive:
                open_frames = frame_window(self._dynamic_progress(step), self.num_frames,
                                           self.config.progressive_fraction)
        count = min(RegistrationSettings().frames, open_frames)
        frames = torch.linspace(0, open_frames - 1, count).round().long().unique().tolist()
        height = min(self.height, REGISTRATION_HEIGHT)
        width = max(8, round(self.width * height / self.height))
        renders = []
        for f in frames:
            renders.append(render_views(self.field, self.cameras, self._time(f), width, height,
                                        self.config.num_samples))
            poll()
        shape = (self.num_views, self.num_frames, self.height, self.width)
        videos, masks = _resize(self.rgb.view(*shape, 3)[:, frames], self.mask.view(shape)[:, frames], height)
        rotations = register_views(videos, masks, torch.stack([r[0] for r in renders], 1),
                                   torch.stack([r[1] for r in renders], 1), self.cameras,
                                   self.view_rotations.angles_deg * self.view_rotations.free, poll=poll)
        moved = corrected_views(rotations)
        self.view_rotations.correct(rotations, moved)
        log.info("4D fit: views registered to the field at step %d: %s", step, ", ".join(
            f"view {v} {float(r.norm()):.2f}°{'' if m else ' (kept)'}" for v, (r, m) in enumerate(zip(rotations, moved))
            if v > 0))
        self._set_hulls()

    def _randint(self, high: int, size: int = 1) -> torch.Tensor:
        return torch.randint(high, (size,), generator=self.generator)

    def _dynamic_progress(self, step: int) -> float:
        """Share ∈ [0, 1] of the dynamic iterations done at `step` (1 for warm starts: everything open)."""
        if self.warm:
            return 1.0
        return max(step - self.static_steps, 0) / max(self.config.iterations - self.static_steps, 1)

    def _frame(self, step: int) -> tuple[int, int]:
        """Frame to fit at `step` and the size of the open frame window."""
        if step < self.static_steps:
            return 0, 1
        window = self.num_frames
        if self.config.progressive:
            window = frame_window(self._dynamic_progress(step), self.num_frames, self.config.progressive_fraction)
        return int(self._randint(window)), window

    def _time(self, frame: int) -> float:
        return frame / max(self.num_frames - 1, 1)

    def _loss(self, step: int, frame: int) -> torch.Tensor:
        cfg = self.config
        views = orthogonal_views(self.cameras, int(self._randint(self.num_views)), cfg.views_per_step)
        per_view = max(cfg.rays_per_step // len(views), 1)
        near_count = round(per_view * cfg.foreground_fraction)
        view_idx = torch.tensor(views).repeat_interleave(per_view).to(self.device)
        near = torch.multinomial(self.near_object[views, frame], near_count, replacement=True,
                                 generator=self.generator) if near_count else torch.empty(len(views), 0, dtype=torch.long)
        anywhere = torch.randint(self.height * self.width, (len(views), per_view - near_count), generator=self.generator)
        pixel_idx = torch.cat((near, anywhere), dim=1).flatten().to(self.device)
        origins, dirs = self._rays(view_idx, pixel_idx)
        target, mask = self.rgb[view_idx, frame, pixel_idx], self.mask[view_idx, frame, pixel_idx]
        times = torch.full((origins.shape[0],), self._time(frame), device=self.device)
        out = render_rays(self.field, origins, dirs, times, cfg.num_samples, self.generator)
        weights = None
        if cfg.visibility and step >= cfg.visibility_start * cfg.iterations:
            surface = origins + dirs * out["depth"].detach()[:, None]
            normals = surface_normals(self.field, surface, times)
            weights = torch.where(mask > 0.5, visibility_weights(normals, dirs), torch.ones_like(mask))
        loss = weighted_mse(out["rgb"], target, weights) + cfg.mask_weight * mask_loss(out["acc"], mask)
        if self.lpips is not None:
            loss = loss + cfg.lpips_weight * self._lpips_loss(views[0], frame)
        if cfg.tv_weight > 0 and self.tv_cells.numel():  # an empty hull leaves nothing to regularise
            loss = loss + cfg.tv_weight * self._tv_loss()
        return loss

    def _tv_loss(self) -> torch.Tensor:
        """Opacity total variation of the canonical field (= frame 0) at random points of frame 0's hull."""
        cfg, occupancy = self.config, self.field.occupancy
        pairs = max(round(cfg.tv_pairs_per_ray * cfg.rays_per_step), 1)
        cells = self.tv_cells[torch.randint(self.tv_cells.numel(), (pairs,), generator=self.generator)]
        x = occupancy.cell_points(self.generator, cells)
        direction = F.normalize(torch.randn(x.shape, generator=self.generator), dim=-1).to(x.device)
        sigma = self.field.canonical_density(torch.cat((x, x + self.tv_distance * direction)))
        return opacity_total_variation(*sigma.chunk(2), 2 * self.field.bound / cfg.num_samples)

    def _rays(self, views: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Origins and directions (R, 3) of pixels (R,) of views (R,), turned by the views' rotations."""
        origins, dirs = self.origins[views, pixels], self.dirs[views, pixels]
        if self._turned():
            dirs = self.view_rotations(dirs, views)
        return origins, dirs

    def _lpips_loss(self, view: int, frame: int) -> torch.Tensor:
        """LPIPS on a square patch around a random pixel near the object in one view."""
        size = min(self.config.lpips_patch, self.height, self.width)
        centre = int(torch.multinomial(self.near_object[view, frame], 1, generator=self.generator))  # CPU: no sync
        top = min(max(centre // self.width - size // 2, 0), self.height - size)
        left = min(max(centre % self.width - size // 2, 0), self.width - size)
        rows = torch.arange(top, top + size, device=self.device)[:, None] * self.width
        idx = (rows + torch.arange(left, left + size, device=self.device)).flatten()
        times = torch.full((idx.numel(),), self._time(frame), device=self.device)
        origins, dirs = self._rays(torch.full_like(idx, view), idx)
        out = render_rays(self.field, origins, dirs, times, self.config.num_samples, self.generator)

        def as_image(x: torch.Tensor) -> torch.Tensor:
            return x.view(1, size, size, 3).permute(0, 3, 1, 2)

        return self.lpips(as_image(out["rgb"]), as_image(self.rgb[view, frame, idx]))

    def _update_occupancy(self, step: int, window: int) -> None:
        cfg = self.config
        if step < cfg.occupancy_warmup or step % cfg.occupancy_every:
            return
        open_frames = window if self.field.dynamic else 1
        self.field.occupancy.update(self.field.density, 2 * self.field.bound / cfg.num_samples, open_frames,
                                    self.generator)

    def _check_finite(self, step: int) -> None:
        if bool(self.nonfinite):
            raise FloatingPointError(
                f"the 4D fit produced a NaN/inf loss by step {step}; lower the learning rates (lr_grid/lr_mlp/"
                "lr_deform) or check the inputs for NaNs"
            )

    def run(self, callback: FitCallback | None) -> DynamicNeRF:
        cfg, total = self.config, self.config.iterations
        preview_camera = self.cameras.select([0])
        for step in range(total):
            if step in self.register_at:  # before the field turns dynamic: frame 0 is what it holds then
                self._register(step, lambda: callback and callback(step, total, None))
            self.field.dynamic = step >= self.static_steps and self.num_frames > 1
            self.field.deformation.anneal(min(self._dynamic_progress(step) / max(cfg.anneal_fraction, 1e-6), 1.0))
            frame, window = self._frame(step)
            loss = self._loss(step, frame)
            self.nonfinite |= ~torch.isfinite(loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.view_rotations is not None and step < self.refine_from:  # the field needs a shape first
                self.view_rotations.angles_deg.grad = None
            self.optimizer.step()
            self.scheduler.step()
            self._update_occupancy(step, window)
            preview = None
            if (step + 1) % cfg.preview_every == 0 or step + 1 == total:
                self._check_finite(step)
                if callback is not None:
                    preview = render_views(self.field, preview_camera, self._time(frame), cfg.preview_size,
                                           cfg.preview_size, cfg.num_samples)[0][0]
            if callback is not None:
                callback(step + 1, total, preview)
        return self._finish()

    @torch.no_grad()
    def _finish(self) -> DynamicNeRF:
        """Union-over-time occupancy for rendering any frame, then a frozen field in eval mode."""
        if self._turned():
            turns = (self.view_rotations.angles_deg * self.view_rotations.free).norm(dim=1).tolist()
            log.info("4D fit: refined view rotations: %s", ", ".join(f"view {v} {a:.2f}°" for v, a in enumerate(turns)
                                                                     if a > 0))
            self.field.view_turns = self.view_rotations.world_rotations().cpu()  # a warm start keeps its own
        self.field.dynamic = self.num_frames > 1
        self.field.deformation.anneal(1.0)
        step_size = 2 * self.field.bound / self.config.num_samples
        for _ in range(4):
            self.field.occupancy.update(self.field.density, step_size, self.num_frames, self.generator, decay=1.0)
        return self.field.eval().requires_grad_(False)
