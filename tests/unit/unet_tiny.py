"""A two-level SV4D2UNet small enough for CPU unit tests, and random inputs in the UNet's batch layout."""
from __future__ import annotations

import torch

from sv4d_lib.model import SV4D2UNet

TINY = dict(
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(1, 2),
    num_head_channels=16,
    context_dim=16,
    adm_in_channels=128,
)


def tiny_unet(use_3d_attention: bool = True, seed: int = 0, **overrides) -> SV4D2UNet:
    torch.manual_seed(seed)
    return SV4D2UNet(**{**TINY, "use_3d_attention": use_3d_attention, **overrides}).eval()


def tiny_inputs(
    batch: int, frames: int, views: int, size: int, seed: int = 1, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """x, timesteps, context, y, cond_view for N = batch·frames·views latents of `size`² (b, t, v order)."""
    g = torch.Generator().manual_seed(seed)
    n = batch * frames * views

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    return dict(
        x=randn(n, 8, size, size),
        timesteps=torch.full((n,), 0.25, device=device),
        context=randn(batch, frames, TINY["context_dim"]),
        y=randn(n, TINY["adm_in_channels"]),
        cond_view=randn(batch * views, 4, size, size),
    )
