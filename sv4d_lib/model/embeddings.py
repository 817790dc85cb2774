"""Sinusoidal embeddings and the small MLPs that turn them into UNet conditioning vectors (spec §2.3)."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

# Any namespace with the layer classes `Linear`, `Conv2d`, `Conv3d`, `GroupNorm`, `LayerNorm` (default `torch.nn`;
# ComfyUI injects `comfy.ops.*` classes for weight casting and low-VRAM offload).
Operations = Any


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """`[cos(t·f_i), sin(t·f_i)]` with f_i = exp(−ln(max_period)·i/half), **cos first**, in float32.

    The official `timestep_embedding` (sgm util.py) embeds the noise level c_noise, the frame index and (in the
    conditioner) raw camera angles in radians; all of them use this layout. The arithmetic follows the official
    operation order so results agree to the last bit on CPU. An odd `dim` is zero-padded.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = nn.functional.pad(embedding, (0, 1))
    return embedding


def embedding_mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    operations: Operations,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    """`Linear → SiLU → Linear`, the shape of every embedding MLP of the UNet (keys `.0` and `.2`).

    Used for `time_embed`, `label_emb.0`, and per attention block for the view embedding
    (`time_mix_time_embed`) and the frame-index embedding (`time_mix_motion_embed`).
    """
    return nn.Sequential(
        operations.Linear(in_dim, hidden_dim, device=device, dtype=dtype),
        nn.SiLU(),
        operations.Linear(hidden_dim, out_dim, device=device, dtype=dtype),
    )
