"""SV4D 2.0 as a native ComfyUI model: a `BaseModel` subclass, the UNet adapter and the ModelPatcher glue.

With these, core samplers (KSampler, SamplerCustomAdvanced with CFGGuider, ...) run SV4D 2.0 unchanged: ComfyUI
supplies the EDM v-prediction maths (c_in, c_noise = ¼·ln σ, v → x0), appends `c_concat` after the c_in scaling
and batches cond + uncond; the adapter turns its per-latent conds back into the official UNet call.

Conditioning contract (produced by the SV4D2 Encode Video node). Every tensor has one row per latent,
N = T·V rows in (t, v) order (v fastest), so ComfyUI's cond batching works unchanged:

* `cond[0]` `(N, 1, 1024)`: CLIP image embedding of input frame t (uncond: zeros) → `c_crossattn`;
* `"concat_latent_image"` `(N, 4, h, w)`: unscaled VAE mean of input frame t (uncond: zeros) → `c_concat`;
* `"sv4d2_vector"` `(N, 1280)`: [σ-emb | polar-emb | azimuth-emb] camera vector → `y`;
* `"sv4d2_cond_view"` `(N, 4, h, w)`: row (t, v) = reference latent of view v at the window's first frame (zeros
  for a first window and in the uncond) → the adapter keeps the t = 0 rows;
* `"sv4d2_num_frames"`, `"sv4d2_num_views"`: T and V.
"""
from __future__ import annotations

import os

import comfy.conds
import comfy.latent_formats
import comfy.ldm.modules.attention
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.supported_models_base
import torch

from sv4d_lib import checkpoint
from sv4d_lib.model import SV4D2UNet

from .common import check_sampled

ENCODE_NODE = "SV4D2 Encode Video"
PRECISIONS = {"auto": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PER_LATENT_KEYS = ("concat_latent_image", "sv4d2_vector", "sv4d2_cond_view")
LAYOUT_KEYS = ("sv4d2_num_frames", "sv4d2_num_views")


class SV4D2Config(comfy.supported_models_base.BASE):
    """ComfyUI model config: EDM σ range of the official sampler, SD 1.x latent scale 0.18215 (spec §4)."""

    unet_extra_config: dict = {}  # the network_config is complete; BASE would inject 64-channel heads
    latent_format = comfy.latent_formats.SD15
    sampling_settings = {"sigma_max": 700.0, "sigma_min": 0.002}
    # Activation memory per latent pixel in ComfyUI's `BaseModel.memory_required` units (fp16, memory-efficient
    # attention: 0.02·factor MB per latent pixel). Measured: the tiny UNet (model_channels 32) peaks at 8.2 KB of
    # fp32 activations per latent pixel on CPU (RSS, linear in the latent area from 16² to 48²); scaled by 10 to
    # the 320-channel model and halved for fp16 that is 41 KB, i.e. a factor of 1.96 (SVD's default is 2.0).
    memory_usage_factor = 2.0
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]

    def __init__(self, network_config: dict, variant: checkpoint.Variant) -> None:
        super().__init__(network_config)
        self.variant = variant

    def get_model(self, state_dict: dict | None = None, prefix: str = "", device=None) -> SV4D2Model:
        return SV4D2Model(self, device=device)


class SV4D2Diffusion(SV4D2UNet):
    """The UNet as ComfyUI calls it: per-latent conds in, the official `(context, y, cond_view, T, V)` call out.

    A subclass (not a wrapper) so the state-dict keys stay the official ones: LoRA key maps and saving work.
    """

    def __init__(self, *, dtype: torch.dtype | None = None, device=None, operations=torch.nn, **network_config):
        # ComfyUI's attention picks the backend of the command line (sage, flash, xformers, sdpa, ...) and honours
        # attention overrides in transformer_options.
        super().__init__(**network_config, device=device, dtype=dtype, operations=operations,
                         attention_fn=comfy.ldm.modules.attention.optimized_attention)
        self.dtype = dtype  # read by BaseModel.get_dtype

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                y: torch.Tensor | None = None, control=None, transformer_options: dict | None = None,
                cond_view: torch.Tensor | None = None, num_frames: int | None = None,
                num_views: int | None = None) -> torch.Tensor:
        if context is None or y is None or cond_view is None or num_frames is None or num_views is None:
            raise ValueError(f"the SV4D 2.0 model got incomplete conditioning; build it with the {ENCODE_NODE} node")
        per_window = num_frames * num_views
        batch = x.shape[0] // per_window
        if context.shape[1] != 1:
            raise ValueError(f"SV4D 2.0 takes one CLIP token per latent, got {context.shape[1]}; do not combine its "
                             f"conditioning with text conditioning (use the {ENCODE_NODE} output directly)")
        # Rows are (b, t, v): the CLIP token of frame t is repeated over v, the reference latents over t.
        context = context.reshape(batch, num_frames, num_views, -1)[:, :, 0]
        cond_view = cond_view.reshape(batch, num_frames, num_views, *cond_view.shape[1:])[:, 0].flatten(0, 1)
        return super().forward(x, timesteps, context, y, cond_view, num_frames=num_frames, num_views=num_views,
                               transformer_options=transformer_options, control=control)


class SV4D2Model(comfy.model_base.BaseModel):
    """EDM v-prediction model whose conds follow the SV4D 2.0 contract (module docstring).

    `sv4d2_variant`, `sv4d2_num_frames`, `sv4d2_num_views` expose the trained layout (12×4 or 5×8) to other nodes.
    """

    def __init__(self, model_config: SV4D2Config, device=None) -> None:
        super().__init__(model_config, comfy.model_base.ModelType.V_PREDICTION_EDM, device=device,
                         unet_model=SV4D2Diffusion)
        self.sv4d2_variant = model_config.variant.name
        self.sv4d2_num_frames = model_config.variant.num_frames
        self.sv4d2_num_views = model_config.variant.num_views

    def extra_conds(self, **kwargs) -> dict:
        """Check the conditioning against the latent batch (before any UNet call) and map it to UNet inputs."""
        noise = kwargs["noise"]
        missing = [k for k in ("cross_attn", *PER_LATENT_KEYS, *LAYOUT_KEYS) if kwargs.get(k) is None]
        if missing:
            raise ValueError(f"the conditioning lacks {', '.join(missing)}: SV4D 2.0 needs the positive and negative "
                             f"outputs of the {ENCODE_NODE} node")
        num_frames, num_views = int(kwargs["sv4d2_num_frames"]), int(kwargs["sv4d2_num_views"])
        per_window = num_frames * num_views
        if per_window < 1 or noise.shape[0] % per_window:
            raise ValueError(f"the latent batch has {noise.shape[0]} latents, not a multiple of the conditioning's "
                             f"{num_frames} frames × {num_views} views; use the latent made by the {ENCODE_NODE} node")
        config = self.model_config.unet_config
        expected = {"cross_attn": (1, config["context_dim"]), "sv4d2_vector": (config["adm_in_channels"],),
                    "concat_latent_image": tuple(noise.shape[1:]), "sv4d2_cond_view": tuple(noise.shape[1:])}
        for key, shape in expected.items():
            value = kwargs[key]
            rows = value.shape[0]
            if tuple(value.shape[1:]) != shape or rows % per_window or noise.shape[0] % rows:
                raise ValueError(f"conditioning '{key}' has shape {tuple(value.shape)}, expected rows in multiples of "
                                 f"{per_window} and trailing shape {shape} for this latent "
                                 f"{tuple(noise.shape)}; re-run the {ENCODE_NODE} node for this model and latent")
        return {
            "c_crossattn": comfy.conds.CONDCrossAttn(kwargs["cross_attn"]),
            "c_concat": comfy.conds.CONDNoiseShape(kwargs["concat_latent_image"]),
            "y": comfy.conds.CONDRegular(kwargs["sv4d2_vector"]),
            "cond_view": comfy.conds.CONDNoiseShape(kwargs["sv4d2_cond_view"]),
            "num_frames": comfy.conds.CONDConstant(num_frames),
            "num_views": comfy.conds.CONDConstant(num_views),
        }


def load_model_patcher(path: str | os.PathLike, variant: str = "auto", precision: str = "auto",
                       disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """MODEL from an engine (or UNet-only) file; also registered as the patcher's `cached_patcher_init`."""
    return build_model_patcher(checkpoint.inspect_checkpoint(path, variant), precision, disable_dynamic)


def build_model_patcher(info: checkpoint.CheckpointInfo, precision: str = "auto",
                        disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """Build the model in the chosen precision, read the (already validated) UNet weights, check all were set.

    Mirrors ComfyUI's own diffusion-model loader: `unet_dtype`/`unet_manual_cast` pick weight and compute dtypes,
    `pick_operations` (inside BaseModel) makes lowvram and weight casting work, and the patcher class is looked up
    at call time because ComfyUI rebinds `CoreModelPatcher` at start-up (dynamic VRAM).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    config = SV4D2Config(info.network_config, info.variant)
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    dtype = PRECISIONS[precision] or comfy.model_management.unet_dtype(
        model_params=info.unet_params, supported_dtypes=config.supported_inference_dtypes, weight_dtype=info.unet_dtype)
    config.set_inference_dtype(dtype, comfy.model_management.unet_manual_cast(
        dtype, load_device, config.supported_inference_dtypes))
    # `inspect_checkpoint` has already matched every UNet tensor name and shape against the architecture; the
    # instantiated model is no reference (with dynamic VRAM its Linear weights only exist after loading).
    model = config.get_model().to(offload_device)
    base_patcher = comfy.model_patcher.ModelPatcher
    patcher_class = base_patcher if disable_dynamic else getattr(comfy.model_patcher, "CoreModelPatcher", base_patcher)
    patcher = patcher_class(model, load_device=load_device, offload_device=offload_device)
    if getattr(patcher, "is_dynamic", lambda: False)():
        model.load_model_weights(checkpoint.read_unet(info), "", assign=True)
    else:
        model.load_model_weights(checkpoint.read_unet(info), "")
    unfilled = sorted(set(info.unet_shapes) - set(model.diffusion_model.state_dict()))
    if unfilled:  # ComfyUI only logs keys its loader skipped; a model with unset weights must not run
        raise RuntimeError(f"{info.path.name}: ComfyUI's loader left {len(unfilled)} UNet tensors unset (e.g. "
                           f"{unfilled[:3]}); please report this with your ComfyUI version")
    # Every sampler, core ones included, refuses a step whose guided prediction is not finite (a NaN model output,
    # or cfg = NaN in KSampler/CFGGuider) with the pack's own error, instead of finishing on black frames.
    patcher.set_model_sampler_post_cfg_function(refuse_non_finite)
    patcher.cached_patcher_init = (load_model_patcher, (str(info.path), info.variant.name, precision))
    return patcher


def refuse_non_finite(args: dict) -> torch.Tensor:
    """Post-CFG step of every sampler: the guided x0 prediction `(N, 4, h, w)`, refused if not finite."""
    return check_sampled(args["denoised"])
