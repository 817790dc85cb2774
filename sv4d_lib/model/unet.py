"""The SV4D 2.0 denoising UNet (official `SpatialUNetModelWithTime`, spec §2), loading the official weights unchanged.

Batch layout everywhere: `N = B·T·V` latents in (b, t, v) order, v fastest; under CFG B = 2 (uncond, cond).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .attention import DEFAULT_CHUNK_TOKENS, AttentionFn, SpatialViewFrameTransformer, attention
from .blocks import Device, Downsample, Upsample, VideoResBlock, group_norm32
from .embeddings import Operations, embedding_mlp, timestep_embedding

# Official hyper-parameters that appear in the configs but are not arguments below, with the values this
# implementation supports (None: any value, they do not affect inference). Anything else would build a different
# network, so it is rejected instead of silently ignored.
OFFICIAL_OPTIONS: dict[str, tuple[Any, ...] | None] = {
    "num_classes": ("sequential",),
    "use_spatial_transformer": (True,),
    "use_linear_in_transformer": (True,),
    "transformer_depth": (1,),
    "extra_ff_mix_layer": (True,),
    "use_spatial_context": (True,),
    "use_motion_attention": (True,),
    "separate_motion_merge_factor": (True,),
    "use_camera_emb": (True,),
    "use_temporal_resblock": (True,),
    "time_mix_legacy": (False,),
    "time_block_merge_strategy": ("learned_with_images", "learned"),
    "spatial_transformer_attn_type": ("softmax", "softmax-xformers"),
    "use_scale_shift_norm": (False,),
    "resblock_updown": (False,),
    "conv_resample": (True,),
    "dims": (2,),
    "time_downup": (False,),
    "disable_temporal_crossattention": (False,),
    "time_context_dim": (None,),
    "use_new_attention_order": (False,),
    "num_heads_upsample": (-1,),
    "max_ddpm_temb_period": (10000,),
    "dropout": None,
    "use_checkpoint": None,
    "legacy": None,  # with a spatial transformer both settings give the same heads
    "replicate_time_mix_bug": None,  # the official branch is `if False`
    "view_context_dim": None,
    "view_block_merge_factor": None,
}


def _check_official_options(options: dict[str, Any]) -> None:
    for name, value in options.items():
        if name not in OFFICIAL_OPTIONS:
            raise ValueError(f"unknown SV4D2UNet hyper-parameter {name!r}; known: {sorted(OFFICIAL_OPTIONS)}")
        allowed = OFFICIAL_OPTIONS[name]
        if allowed is not None and value not in allowed:
            raise ValueError(
                f"{name}={value!r} would change the network and is not implemented; SV4D 2.0 uses "
                f"{' or '.join(map(repr, allowed))}"
            )


class SV4D2UNet(nn.Module):
    """SV4D 2.0 UNet with the official parameter names; the defaults are the 4-view `sv4d2.yaml` network_config.

    `use_3d_attention=True` is the 4-view model, False the 8-view model (identical weights layout).
    `operations` supplies the layer classes (ComfyUI's `comfy.ops`); `attention_fn(q, k, v, heads, **kw)` replaces
    the self-attention kernel (e.g. ComfyUI's `optimized_attention`); `chunk_tokens` bounds the tokens per
    attention/feed-forward call (`None`: no chunking). `cpu_fast_paths` (default on) lets fp32 CPU inference use
    fused oneDNN kernels and in-place updates (`fused_cpu`; same outputs within ~1e-6, same weights and keys); it
    has no effect on other devices, dtypes or with gradients enabled. `set_cpu_fast_paths(False)` gives the plain
    reference computation.
    """

    def __init__(
        self,
        in_channels: int = 8,
        model_channels: int = 320,
        out_channels: int = 4,
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (4, 2, 1),
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        num_head_channels: int = 64,
        num_heads: int = -1,
        context_dim: int = 1024,
        motion_context_dim: int = 4,
        adm_in_channels: int = 1280,
        use_3d_attention: bool = True,
        time_kernel_size: int | Sequence[int] = (3, 1, 1),
        time_block_merge_factor: float = 0.0,
        motion_block_merge_factor: float = 0.5,
        *,
        device: Device = None,
        dtype: torch.dtype | None = None,
        operations: Operations = nn,
        attention_fn: AttentionFn = attention,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
        cpu_fast_paths: bool = True,
        **official_options: Any,
    ) -> None:
        super().__init__()
        _check_official_options(official_options)
        if (num_heads == -1) == (num_head_channels == -1):
            raise ValueError("set exactly one of num_heads and num_head_channels (SV4D 2.0: num_head_channels=64)")
        time_embed_dim = model_channels * 4
        if adm_in_channels != time_embed_dim:
            raise ValueError(
                f"adm_in_channels ({adm_in_channels}) must equal 4·model_channels ({time_embed_dim}): the camera "
                "embedding feeds the UNet emb into Linear(adm_in_channels, ...) in every attention block"
            )
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.context_dim = context_dim
        self.motion_context_dim = motion_context_dim
        self.adm_in_channels = adm_in_channels
        self.num_levels = len(channel_mult)
        kw = dict(device=device, dtype=dtype)

        def res_block(ch_in: int, ch_out: int) -> VideoResBlock:
            return VideoResBlock(
                ch_in, time_embed_dim, ch_out, operations, time_kernel_size, time_block_merge_factor, **kw
            )

        def attention_block(ch: int) -> SpatialViewFrameTransformer:
            heads = ch // num_head_channels if num_head_channels != -1 else num_heads
            return SpatialViewFrameTransformer(
                ch, heads, ch // heads, context_dim, motion_context_dim, adm_in_channels, use_3d_attention,
                time_block_merge_factor, motion_block_merge_factor, operations,
                attention_fn=attention_fn, chunk_tokens=chunk_tokens, **kw,
            )

        self.time_embed = embedding_mlp(model_channels, time_embed_dim, time_embed_dim, operations, **kw)
        self.label_emb = nn.Sequential(
            embedding_mlp(adm_in_channels, time_embed_dim, time_embed_dim, operations, **kw)
        )

        ch = model_channels
        self.input_blocks = nn.ModuleList(
            [nn.ModuleList([operations.Conv2d(in_channels, ch, 3, padding=1, **kw)])]
        )
        skip_channels = [ch]
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                stage: list[nn.Module] = [res_block(ch, model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    stage.append(attention_block(ch))
                self.input_blocks.append(nn.ModuleList(stage))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(nn.ModuleList([Downsample(ch, operations, **kw)]))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = nn.ModuleList([res_block(ch, ch), attention_block(ch), res_block(ch, ch)])

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                stage = [res_block(ch + skip_channels.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    stage.append(attention_block(ch))
                if level and i == num_res_blocks:
                    stage.append(Upsample(ch, operations, **kw))
                    ds //= 2
                self.output_blocks.append(nn.ModuleList(stage))

        self.out = nn.Sequential(
            group_norm32(ch, operations, device),
            nn.SiLU(),
            operations.Conv2d(model_channels, out_channels, 3, padding=1, **kw),
        )
        self.set_cpu_fast_paths(cpu_fast_paths)

    def set_cpu_fast_paths(self, enabled: bool) -> None:
        """Switch the fused fp32 CPU kernels on or off in every layer that has them."""
        for module in self.modules():
            if hasattr(module, "cpu_fast_paths"):
                module.cpu_fast_paths = enabled

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        y: torch.Tensor,
        cond_view: torch.Tensor,
        *,
        num_frames: int,
        num_views: int,
        cond_motion: torch.Tensor | None = None,
        image_only_indicator: torch.Tensor | None = None,
        num_video_frames: int | None = None,
        transformer_options: dict | None = None,
        control: dict | None = None,
    ) -> torch.Tensor:
        """Predict the v-target for N = B·T·V latents.

        x `(N, in_channels, h, w)` (noisy latent ++ concat latent) in (b, t, v) order; timesteps `(N,)` = c_noise =
        0.25·ln σ; context `(B, T, context_dim)` CLIP frame embeddings; y `(N, adm_in_channels)` the vector
        conditioning; cond_view `(B·V, motion_context_dim, H, W)` reference-view latents of the first frame.
        Returns `(N, out_channels, h, w)`. `cond_motion` and `image_only_indicator` are read by nothing in the
        official network either (spec §2.7); `num_video_frames`, if given, must be T·V. `control` is ComfyUI's
        ControlNet hook, which this network has no use for.
        """
        del cond_motion, image_only_indicator  # inert in the official network
        self._check_inputs(x, timesteps, context, y, cond_view, num_frames, num_views, num_video_frames, control)
        dtype = x.dtype
        context, cond_view = context.to(dtype), cond_view.to(dtype)
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(dtype))
        emb = emb + self.label_emb(y.to(dtype))

        def run(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
            if isinstance(layer, VideoResBlock):
                return layer(h, emb, num_frames * num_views)
            if isinstance(layer, SpatialViewFrameTransformer):
                return layer(h, emb, context, cond_view, num_frames, num_views, transformer_options)
            return layer(h)

        # Layers run one by one from here, so each layer's input is released as soon as it is consumed.
        skips = []
        h = x
        for stage in self.input_blocks:
            for layer in stage:
                h = run(layer, h)
            skips.append(h)
        for layer in self.middle_block:
            h = run(layer, h)
        for stage in self.output_blocks:
            h = torch.cat([h, skips.pop()], dim=1)
            for layer in stage:
                h = run(layer, h)
        return self.out(h)

    def _check_inputs(
        self, x: Tensor, timesteps: Tensor, context: Tensor, y: Tensor, cond_view: Tensor, num_frames: int,
        num_views: int, num_video_frames: int | None, control: dict | None,
    ) -> None:
        """Shape checks with messages that name the fix; shapes only, so no device sync."""
        if control is not None:
            raise ValueError("the SV4D 2.0 UNet takes no ControlNet residuals; remove the ControlNet from the model")
        if num_frames < 1 or num_views < 1:
            raise ValueError(f"num_frames and num_views must be >= 1, got {num_frames} and {num_views}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must be (B·T·V, {self.in_channels}, h, w): noisy latent channels followed by the concat "
                f"latent; got {tuple(x.shape)}"
            )
        n, _, height, width = x.shape
        latents = num_frames * num_views
        if n % latents:
            raise ValueError(
                f"x holds {n} latents, not a multiple of num_frames·num_views = {num_frames}·{num_views}; it must "
                "hold B·T·V latents in (b, t, v) order"
            )
        batch = n // latents
        factor = 2 ** (self.num_levels - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"latent size {height}x{width} must be divisible by {factor} (the UNet downsamples "
                f"{self.num_levels - 1} times); use images whose sides are multiples of {8 * factor} pixels"
            )
        if num_video_frames is not None and num_video_frames != latents:
            raise ValueError(f"num_video_frames={num_video_frames} disagrees with num_frames·num_views = {latents}")
        if tuple(timesteps.shape) != (n,):
            raise ValueError(f"timesteps must be ({n},), one c_noise per latent; got {tuple(timesteps.shape)}")
        if tuple(context.shape) != (batch, num_frames, self.context_dim):
            raise ValueError(
                f"context must be (B, T, {self.context_dim}) = ({batch}, {num_frames}, {self.context_dim}), one CLIP "
                f"embedding per input frame; got {tuple(context.shape)}"
            )
        if tuple(y.shape) != (n, self.adm_in_channels):
            raise ValueError(f"y must be ({n}, {self.adm_in_channels}), one vector per latent; got {tuple(y.shape)}")
        if cond_view.ndim != 4 or cond_view.shape[:2] != (batch * num_views, self.motion_context_dim):
            raise ValueError(
                f"cond_view must be (B·V, {self.motion_context_dim}, h, w) with B·V = {batch * num_views}, the "
                f"reference-view latents of the first frame (zeros for a first chunk); got {tuple(cond_view.shape)}"
            )
