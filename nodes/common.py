"""Helpers shared by the SV4D2 nodes; this module defines no node, and node modules import only it (and `types`),
never each other.

* inputs several nodes declare (grid, seed, decoding_t, the window-loop settings) and the grid widget type;
* the ComfyUI adapters of the diffusion stage: Encode Video's conditioning (`encode_video`), GridGuider + euler
  (`run_guider`), per-view decoding (`decode_views`), layout checks;
* the ComfyUI side of the window loop (`sv4d_lib.extend`): a `WindowHost` over the loaded MODEL, CLIP_VISION and
  VAE, with one progress bar and previews over all windows.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import comfy.model_management as mm
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from sv4d_lib import conditioning, guidance, sampling, video, windows
from sv4d_lib.cameras import OrbitCameras
from sv4d_lib.extend import WindowHost


def model_inputs() -> list:
    """MODEL, CLIP_VISION and VAE of SV4D2 Load Model: what every window needs to encode, sample and decode."""
    return [
        io.Model.Input("model", tooltip="The SV4D 2.0 model (SV4D2 Load Model)."),
        io.ClipVision.Input("clip_vision", tooltip="The SV4D 2.0 CLIP image encoder (SV4D2 Load Model)."),
        io.Vae.Input("vae", tooltip="The SV4D 2.0 VAE: encodes the conditioning, decodes every window."),
    ]


def window_inputs(steps_tooltip: str, seed_tooltip: str) -> list:
    """steps, seed, grid, decoding_t, crossfade and pad_frames: the window-loop settings."""
    return [
        io.Int.Input("steps", default=50, min=1, max=1000, tooltip=steps_tooltip),
        seed_input(seed_tooltip),
        grid_input(),
        decoding_t_input(),
        io.Boolean.Input(
            "crossfade", default=False,
            tooltip="Off (official): a later window overwrites the frames it shares with earlier ones. On: the "
            "shared frames blend linearly from the earlier window's output to the later one's.",
        ),
        io.Boolean.Input(
            "pad_frames", default=False,
            tooltip="Repeat the last frame so that full windows cover the video (videos shorter than a window; the "
            "8-view tail past the last full window); the extra output frames are dropped. Off: such videos are "
            "errors.",
        ),
    ]


def windows_output() -> io.String.Output:
    return io.String.Output(display_name="windows", tooltip="The windows: frames, reference source, overlap.")


def plan_video(model, cameras: OrbitCameras, num_frames: int, pad: bool) -> tuple[list[windows.Window], int, list[str]]:
    """`sv4d_lib.windows.plan_video` for this model's window length and variant, after checking the model and the
    cameras, before any compute."""
    window_len = getattr(model.model, "sv4d2_num_frames", None)
    check_layout(model, cameras, window_len, cameras.num_novel_views)
    return windows.plan_video(num_frames, window_len, model.model.sv4d2_variant, pad)


class WindowProgress:
    """One progress bar over all windows: sampling steps and decode batches, a latent preview per step and a
    decoded preview (views × frames grid) per window; checks for interruption at every update."""

    def __init__(self, model, num_windows: int, steps: int, decode_batches: int):
        self.per_window = steps + decode_batches
        self.bar = comfy.utils.ProgressBar(num_windows * self.per_window)
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        self.window = 0

    def step(self, step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        preview = self.previewer.decode_latent_to_preview_image("JPEG", x0) if self.previewer else None
        self.bar.update_absolute(self.window * self.per_window + step + 1, preview=preview)

    def decoded_batch(self) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.bar.update(1)

    def window_done(self, videos: torch.Tensor) -> None:
        """`videos` `(V', T, H, W, 3)`: the window's frames of every view."""
        grid = video.fit_within(video.tile_grid(videos)[0], latent_preview.MAX_PREVIEW_RESOLUTION)
        image = latent_preview.preview_to_image(grid, do_scale=False)
        self.window += 1
        preview = ("JPEG", image, latent_preview.MAX_PREVIEW_RESOLUTION)
        self.bar.update_absolute(self.window * self.per_window, preview=preview)


def window_host(
    model, clip_vision, vae, cameras: OrbitCameras, grid: str, plan: list[windows.Window], num_steps: int,
    decoding_t: int,
) -> WindowHost:
    """The loaded networks as `sv4d_lib.extend` calls them: SV4D2 Encode Video, GridGuider + euler (the CFG grid
    of `grid`), per-view decoding; `num_steps` sampling steps per window for the progress bar."""
    num_novel_views, window_len = cameras.num_novel_views, plan[0].window_len
    scales = guidance.grid_from_spec(guidance.parse_grid_spec(grid), window_len, num_novel_views, cameras)
    progress = WindowProgress(model, len(plan), num_steps, num_novel_views * -(-window_len // decoding_t))

    def encode(frames: torch.Tensor, references: torch.Tensor | None) -> tuple[tuple[list, list], torch.Tensor]:
        positive, negative, empty = encode_video(clip_vision, vae, frames, cameras, references)
        return (positive, negative), empty["samples"]

    def sample(conditioning: tuple[list, list], noise: torch.Tensor, latent: torch.Tensor,
               sigmas: torch.Tensor) -> torch.Tensor:
        return run_guider(model, *conditioning, scales, noise, latent, sigmas, progress.step)

    def decode(latents: torch.Tensor) -> torch.Tensor:
        return decode_views(vae, latents, num_novel_views, decoding_t, progress.decoded_batch)

    return WindowHost(encode, lambda images: vae_means(vae, images), sample, decode, progress.window_done)


GRID_WIDGET = "SV4D2_CFG_GRID"


def with_widget_type(widget: io.String.Input, widget_type: str) -> io.String.Input:
    """Ask the frontend for a custom widget while the value stays a STRING.

    `extra_dict=` is not accepted by `io.String.Input` on ComfyUI 0.3.75, but the attribute it fills is.
    """
    widget.extra_dict["widgetType"] = widget_type
    return widget


class GridGuider(comfy.samplers.CFGGuider):
    """CFGGuider with a `(T, V)` scale grid: latent i = (b, t, v) gets `uncond + (cond − uncond)·s[t, v]`."""

    def __init__(self, model_patcher, scales: torch.Tensor):
        super().__init__(model_patcher)
        self.scales = scales

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (CFGGuider's signature)
        positive, negative = self.conds.get("positive"), self.conds.get("negative")
        cond, uncond = comfy.samplers.calc_cond_batch(self.inner_model, [positive, negative], x, timestep, model_options)
        self.scales = self.scales.to(x.device)  # moved once; a no-op on later steps
        return guidance.apply_cfg_grid(cond, uncond, self.scales)


# Bounds on the work a grid spec or a preview request can ask for, checked before any grid is computed: far above any
# SV4D 2.0 window (12 frames × 4 views, 5 × 8) and small enough to answer in milliseconds.
MAX_GRID_SIDE = 256


MAX_SPEC_CHARS = 64 * 1024


def check_grid_size(num_frames: Any, num_views: Any) -> None:
    """Frame and view counts of a grid must be whole numbers in [1, MAX_GRID_SIDE]."""
    for name, count in (("num_frames", num_frames), ("num_views", num_views)):
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_GRID_SIDE:
            raise ValueError(f"CFG grid {name} must be a whole number from 1 to {MAX_GRID_SIDE}, got {count!r}")


def parse_bounded_spec(text: Any) -> dict[str, Any]:
    """`guidance.parse_grid_spec` with bounded work: long or deeply nested JSON and oversized shapes are refused
    with a ValueError before anything is computed."""
    if isinstance(text, str) and len(text) > MAX_SPEC_CHARS:
        raise ValueError(f"the CFG grid spec is {len(text)} characters long; a grid spec is at most {MAX_SPEC_CHARS}")
    try:
        spec = guidance.parse_grid_spec(text)
    except RecursionError:
        raise ValueError("the CFG grid spec is nested too deeply to be a grid spec; expected e.g. "
                         f"{guidance.DEFAULT_GRID_SPEC}") from None
    if spec["shape"] is not None:
        check_grid_size(*spec["shape"])
    return spec


def check_layout(model, cameras: OrbitCameras, num_frames: int, num_views: int) -> None:
    """The conditioning, the cameras and the model must agree on T and V before any compute."""
    inner = model.model
    if not hasattr(inner, "sv4d2_num_frames"):
        raise ValueError("model is not an SV4D 2.0 model: load it with SV4D2 Load Model")
    model_t, model_v = inner.sv4d2_num_frames, inner.sv4d2_num_views
    if num_frames != model_t:
        raise ValueError(
            f"the model samples {model_t} frames per window but SV4D2 Encode Video got {num_frames} frames; give it "
            f"exactly {model_t} frames (select them with an image-batch node, or use SV4D2 Extend Video for longer "
            "videos)"
        )
    if num_views != model_v or cameras.num_novel_views != model_v:
        raise ValueError(
            f"the model samples {model_v} novel views but the cameras have {cameras.num_novel_views} (conditioning: "
            f"{num_views}); use the {model_v}-view camera preset or a custom list of {model_v} + 1 entries, and "
            "encode with the same cameras"
        )


def grid_input() -> io.String.Input:
    """The per-latent CFG grid widget shared by the sampling nodes (JSON STRING, web editor SV4D2_CFG_GRID)."""
    return with_widget_type(io.String.Input(
        "grid", default=guidance.DEFAULT_GRID_SPEC, socketless=True,
        tooltip="CFG scale per (frame, view) as a grid spec JSON (see SV4D2 CFG Grid): official_4v, official_8v "
        "(use it with the 8-view model) or ramp, plus per-cell overrides.",
    ), GRID_WIDGET)


def seed_input(tooltip: str) -> io.Int.Input:
    """The noise seed widget of the sampling nodes."""
    return io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True, tooltip=tooltip)


def decoding_t_input() -> io.Int.Input:
    """Frames per VAE decode call, shared by the nodes that decode views (`decode_views`)."""
    return io.Int.Input(
        "decoding_t", default=4, min=1, max=64,
        tooltip="Frames per VAE decode call (official: 4); lower it if decoding runs out of memory.",
    )


def validate_grid(grid: str | None) -> bool | str:
    """Validation-time check of a grid spec (linked values arrive as None and are checked at run time)."""
    if grid is None:
        return True
    try:
        parse_bounded_spec(grid)
    except ValueError as error:
        return str(error)
    return True


NAN_FIXES = (
    "load the model with precision fp32 (fp16 can overflow), check the checkpoint for NaN weights (re-download it), "
    "and check the conditioning inputs"
)


def check_sampled(latents: torch.Tensor) -> torch.Tensor:
    """Refuse non-finite sampled latents (they decode to black videos); returns them unchanged."""
    bad = int((~torch.isfinite(latents)).sum())
    if bad:
        raise FloatingPointError(
            f"the model produced NaN: {bad} of {latents.numel()} sampled latent values are NaN or infinite; "
            f"{NAN_FIXES}"
        )
    return latents


def check_decoded(videos: torch.Tensor) -> torch.Tensor:
    """Refuse decoded views `(V, T, H, W, 3)` with NaN/inf pixels or a view that is entirely black (what a
    failed decode looks like once written); returns them unchanged."""
    bad = int((~torch.isfinite(videos)).sum())
    if bad:
        raise FloatingPointError(
            f"the model produced NaN: the VAE decoded {bad} NaN or infinite pixel values; {NAN_FIXES} (for the VAE, "
            "ComfyUI's --fp32-vae flag)"
        )
    black = [v for v in range(videos.shape[0]) if videos[v].max() <= 0]
    if black:
        raise FloatingPointError(
            f"the model produced NaN or zeros: the VAE decoded view(s) {black} entirely black; {NAN_FIXES} (for the "
            "VAE, ComfyUI's --fp32-vae flag)"
        )
    return videos


def run_guider(model, positive: list, negative: list, scales: torch.Tensor, noise: torch.Tensor,
               latent: torch.Tensor, sigmas: torch.Tensor, callback) -> torch.Tensor:
    """GridGuider + `comfy.samplers` euler over `sigmas` = the official Euler-EDM loop with a per-latent CFG grid.

    `callback(step, x0, x, total_steps)` is ComfyUI's sampler callback (progress, previews, interruption).
    Returns the LATENT samples on the intermediate device; non-finite samples raise (`check_sampled`).
    """
    guider = GridGuider(model, scales)
    guider.set_conds(positive, negative)
    samples = guider.sample(noise, latent, comfy.samplers.sampler_object("euler"), sigmas, callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED)
    return check_sampled(samples.to(mm.intermediate_device()))


def decode_views(vae, latents: torch.Tensor, num_views: int, decoding_t: int, on_batch=None) -> torch.Tensor:
    """`(T·V, 4, h, w)` → `(V, T, H, W, 3)`, one view at a time in batches of `decoding_t` frames.

    `on_batch()` runs after every batch; by default a progress bar with an interruption check. NaN/inf pixels or an
    all-black view raise (`check_decoded`).
    """
    if on_batch is None:
        on_batch = interruptible_progress(num_views * -(-latents.shape[0] // num_views // decoding_t))
    return check_decoded(
        sampling.decode_by_view(lambda z: vae.decode(z)[..., :3], latents, num_views, decoding_t, on_batch))


LATENT_CHANNELS = 4


def check_square_frames(images: torch.Tensor, what: str) -> None:
    """Model frames must be finite, square IMAGE batches with a side that is a multiple of 8 and at least 64."""
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise ValueError(f"{what} must be an IMAGE batch (N, H, W, 3), got shape {tuple(images.shape)}")
    h, w = images.shape[1:3]
    if h != w or h < 64 or h % 8:
        raise ValueError(
            f"{what} are {w}×{h}; SV4D 2.0 needs square frames with a side that is a multiple of 8 and at least 64 "
            "(576 for the released models): run them through SV4D2 Prepare Video"
        )
    video.check_finite(images, what)


def clip_image_embeds(clip_vision, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings `(N, D)` of IMAGE frames with the official preprocessing (not ComfyUI's, which
    centre-crops with torch's antialias and rounds to 8 bits)."""
    mm.load_model_gpu(clip_vision.patcher)
    pixels = images[..., :3].movedim(-1, 1).to(clip_vision.load_device, torch.float32) * 2.0 - 1.0
    out = clip_vision.model(pixel_values=conditioning.clip_preprocess(pixels), intermediate_output=-2)
    return out[2].to(mm.intermediate_device(), torch.float32)


def vae_means(vae, images: torch.Tensor, what: str = "images given to the VAE encoder") -> torch.Tensor:
    """Unscaled VAE means `(N, 4, h, w)` of IMAGE frames (ComfyUI VAEs return the mean, unscaled); NaN/inf pixels
    (which would make every latent NaN) are refused, naming `what`."""
    video.check_finite(images, what)
    return vae.encode(images[..., :3]).float()


def to_comfy_conditioning(rows: dict[str, torch.Tensor], num_frames: int, num_views: int) -> list:
    """Per-latent rows → ComfyUI CONDITIONING per the pack's contract."""
    return [[
        rows["crossattn"],
        {
            "concat_latent_image": rows["concat"],
            "sv4d2_vector": rows["vector"],
            "sv4d2_cond_view": rows["cond_view"],
            "sv4d2_num_frames": num_frames,
            "sv4d2_num_views": num_views,
        },
    ]]


def encode_video(
    clip_vision, vae, frames: torch.Tensor, cameras: OrbitCameras, reference_views: torch.Tensor | None = None
) -> tuple[list, list, dict]:
    """Positive/negative conditioning and the empty latent `(T·V, 4, H/8, W/8)` of one window."""
    check_square_frames(frames, "frames")
    num_frames, num_views = frames.shape[0], cameras.num_novel_views
    if reference_views is not None:
        check_square_frames(reference_views, "reference views")
        if reference_views.shape[0] != num_views or reference_views.shape[1:3] != frames.shape[1:3]:
            raise ValueError(
                f"reference views must be {num_views} images (one per novel view of the cameras) of "
                f"{frames.shape[2]}×{frames.shape[1]}, got {reference_views.shape[0]} of "
                f"{reference_views.shape[2]}×{reference_views.shape[1]}"
            )
    embeds = clip_image_embeds(clip_vision, frames)
    dims = conditioning.vector_dims(embeds.shape[1])
    latents = vae_means(vae, frames)
    references = None if reference_views is None else vae_means(vae, reference_views)
    vector = conditioning.camera_vector(cameras, num_frames, dims).to(latents.device)
    cond, uncond = conditioning.latent_rows(embeds, latents, vector, references, num_views, sigma_dim=dims[0])
    empty = torch.zeros(num_frames * num_views, LATENT_CHANNELS, *latents.shape[2:])
    return (
        to_comfy_conditioning(cond, num_frames, num_views),
        to_comfy_conditioning(uncond, num_frames, num_views),
        {"samples": empty},
    )


def interruptible_progress(total: int) -> Callable[[], None]:
    """A per-item callback for long loops: stops at ComfyUI's "cancel" and advances a progress bar of `total`."""
    bar = comfy.utils.ProgressBar(total)

    def step() -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update(1)

    return step


# File names get "_<counter>_vNNN.mp4" and, while written, a temporary ".<…>.<8 hex>.tmp" around them; most file
# systems allow 255 bytes per name.
MAX_PREFIX_NAME_BYTES = 200


def check_filename_prefix(prefix) -> str | None:
    """Why an output `filename_prefix` ("<sub/folders/>name") cannot be used, or None if it can."""
    if not isinstance(prefix, str):
        return f"filename_prefix must be text, got {type(prefix).__name__}"
    if "\0" in prefix:
        return "filename_prefix contains a NUL character; remove it"
    name = os.path.basename(os.path.normpath(prefix.strip())) if prefix.strip() else ""
    if not name or name.startswith("."):
        return (f"filename_prefix {prefix!r} gives no visible file name (empty, or starting with '.'); give a name "
                "such as 'sv4d2/views'")
    too_long = [part for part in prefix.replace("\\", "/").split("/") if len(part.encode()) > MAX_PREFIX_NAME_BYTES]
    if too_long:
        return (f"filename_prefix part {too_long[0][:40]!r}… is {len(too_long[0].encode())} bytes long; file names "
                f"are limited to 255 bytes, so keep each part of the prefix under {MAX_PREFIX_NAME_BYTES}")
    return None
