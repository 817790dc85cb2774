"""Convolutional UNet blocks: ResBlocks, the temporal (Conv3d) ResBlock over the flattened T·V axis, the learned
blend between them, and down/upsampling (spec §2.2, §2.4, §2.6).

Module and attribute names mirror the official `sgm` classes so the checkpoint's keys load unchanged.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from . import fused_cpu
from .embeddings import Operations

Device = torch.device | str | None


# Elements per float32 chunk when GroupNorm32 upcasts fp16/bf16 activations (256 MiB).
GROUP_NORM_CHUNK_ELEMENTS = 2**26


@functools.cache
def _float32_group_norm_class(base: type[nn.GroupNorm]) -> type[nn.GroupNorm]:
    """`base` (torch's or ComfyUI's GroupNorm) computing in float32, like the official `GroupNorm32`."""

    class GroupNorm32(base):  # type: ignore[valid-type, misc]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dtype == torch.float32:
                return super().forward(x)
            # Statistics are per sample, so upcast a few samples at a time: the float32 copies of the widest
            # decoder input (96×960×72² at full size) would otherwise add 3.6 GB to the peak.
            out = torch.empty_like(x)
            step = max(1, GROUP_NORM_CHUNK_ELEMENTS // x[0].numel())
            for start in range(0, x.shape[0], step):
                out[start : start + step] = super().forward(x[start : start + step].float())
            return out

    return GroupNorm32


def group_norm32(channels: int, operations: Operations, device: Device = None) -> nn.GroupNorm:
    """Official `normalization(channels)`: 32 groups, eps 1e-5, statistics and affine in float32.

    Why float32 parameters whatever the model dtype: the official checkpoint stores them in fp32 and computes in
    fp32 under fp16 autocast; plain `torch.nn` also refuses fp32 inputs with fp16 weights. ComfyUI's casting ops
    cast the weights to the (float32) input anyway.
    """
    return _float32_group_norm_class(operations.GroupNorm)(32, channels, eps=1e-5, device=device, dtype=torch.float32)


class AlphaBlender(nn.Module):
    """Learned blend `α·x_spatial + (1−α)·x_temporal` with α = sigmoid(mix_factor) (official `AlphaBlender`).

    Only the "learned_with_images" strategy with an all-zero `image_only_indicator` ever runs in SV4D 2.0 (the
    official blocks multiply the indicator by 0), so α is the plain sigmoid. The scalar stays float32 whatever the
    model dtype (as ComfyUI's own AlphaBlender does): an fp16/fp8 copy would shift α for no memory gain.
    """

    def __init__(self, merge_factor: float, device: Device = None) -> None:
        super().__init__()
        self.mix_factor = nn.Parameter(torch.full((1,), float(merge_factor), device=device, dtype=torch.float32))

    def forward(
        self, x_spatial: torch.Tensor, x_temporal: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`out`: optional destination (any strides), which saves a copy when the caller wants another layout."""
        # `.to(device)` keeps it working when ComfyUI leaves un-managed parameters on the offload device.
        alpha = torch.sigmoid(self.mix_factor.to(x_spatial.device, torch.float32)).to(x_spatial.dtype)
        return torch.lerp(x_temporal, x_spatial, alpha, out=out)


class ResBlock(nn.Module):
    """Official `ResBlock` (no up/down-sampling, no scale-shift norm): GN→SiLU→conv, +emb, GN→SiLU→conv, +skip.

    `dims=2` is the per-image block. `dims=3` is the temporal block of `VideoResBlock` (official
    `exchange_temb_dims=True`): it runs on `(B, C, T', h, w)` with an emb of shape `(B, T', emb_channels)`.
    With `cpu_fast_paths` on fp32 CPU inference, activations and sums run in place and the temporal convolutions
    as 2-D ones (`fused_cpu.time_conv`).
    """

    cpu_fast_paths = True

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int,
        operations: Operations,
        dims: int = 2,
        kernel_size: int | Sequence[int] = 3,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        conv = {2: operations.Conv2d, 3: operations.Conv3d}[dims]
        kernel = tuple(kernel_size) if isinstance(kernel_size, Sequence) else (kernel_size,) * dims
        padding = tuple(k // 2 for k in kernel)
        self.in_layers = nn.Sequential(
            group_norm32(channels, operations, device),
            nn.SiLU(),
            conv(channels, out_channels, kernel, padding=padding, device=device, dtype=dtype),
        )
        self.emb_layers = nn.Sequential(
            nn.SiLU(), operations.Linear(emb_channels, out_channels, device=device, dtype=dtype)
        )
        self.out_layers = nn.Sequential(
            group_norm32(out_channels, operations, device),
            nn.SiLU(),
            nn.Identity(),  # official Dropout(0) slot, keeps the conv at key `out_layers.3`
            conv(out_channels, out_channels, kernel, padding=padding, device=device, dtype=dtype),
        )
        self.skip_connection = (
            nn.Identity()
            if out_channels == channels
            else conv(channels, out_channels, 1, device=device, dtype=dtype)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.cpu_fast_paths and fused_cpu.applies(x, self.in_layers[2], self.out_layers[3], self.emb_layers[1]):
            return self._forward_in_place(x, emb)
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)
        if x.ndim == 5:
            emb_out = rearrange(emb_out, "b t c -> b c t 1 1")
        else:
            emb_out = emb_out[:, :, None, None]
        h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h

    def _forward_in_place(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """`forward` for fp32 CPU inference: the same operations, each activation written over its input."""
        conv = fused_cpu.time_conv if x.ndim == 5 else (lambda inputs, layer: layer(inputs))
        h = conv(F.silu(self.in_layers[0](x), inplace=True), self.in_layers[2])
        emb_out = self.emb_layers(emb)
        h += rearrange(emb_out, "b t c -> b c t 1 1") if x.ndim == 5 else emb_out[:, :, None, None]
        h = conv(F.silu(self.out_layers[0](h), inplace=True), self.out_layers[3])
        return h.add_(self.skip_connection(x))


class VideoResBlock(ResBlock):
    """Official `PostHocResBlockWithTime`: a 2-D ResBlock, then a Conv3d ResBlock over the flattened T·V axis.

    The "time" axis of the Conv3d block is the **flattened (t, v) index** `t·V + v` (length 48 for 4 views × 12
    frames): with kernel 3 each latent mixes with its two neighbours in that order, i.e. adjacent views of one frame
    and, at the seams, view V−1 of frame t with view 0 of frame t+1. Its GroupNorms pool statistics over all T·V
    latents of a sample. Output: `α·h2d + (1−α)·h3d`.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int,
        operations: Operations,
        time_kernel_size: int | Sequence[int],
        merge_factor: float,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, emb_channels, out_channels, operations, device=device, dtype=dtype)
        self.time_mix_blocks = ResBlock(
            out_channels, emb_channels, out_channels, operations, dims=3, kernel_size=time_kernel_size,
            device=device, dtype=dtype,
        )
        self.time_mixer = AlphaBlender(merge_factor, device=device)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_video_frames: int) -> torch.Tensor:
        """x `(B·T·V, C, h, w)`, emb `(B·T·V, emb_channels)`, num_video_frames = T·V."""
        h2d_flat = super().forward(x, emb)
        h2d = rearrange(h2d_flat, "(b t) c h w -> b c t h w", t=num_video_frames)
        h3d = self.time_mix_blocks(h2d, rearrange(emb, "(b t) c -> b t c", t=num_video_frames))
        if self.cpu_fast_paths and fused_cpu.applies(h3d):
            # Blend straight into the (b t) layout instead of blending, then copying.
            out = torch.empty_like(h2d_flat)
            self.time_mixer(h2d, h3d, out=rearrange(out, "(b t) c h w -> b c t h w", t=num_video_frames))
            return out
        return rearrange(self.time_mixer(h2d, h3d), "b c t h w -> (b t) c h w")


class Downsample(nn.Module):
    """Stride-2 3×3 convolution (official `Downsample` with `use_conv=True`, key `op`)."""

    def __init__(self, channels: int, operations: Operations, device: Device = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.op = operations.Conv2d(channels, channels, 3, stride=2, padding=1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest ×2 then a 3×3 convolution (official `Upsample` with `use_conv=True`, key `conv`)."""

    def __init__(self, channels: int, operations: Operations, device: Device = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.conv = operations.Conv2d(channels, channels, 3, padding=1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
