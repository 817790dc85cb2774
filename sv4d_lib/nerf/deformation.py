"""Deformation field Δ(x, t) of the dynamic NeRF: a backward warp from frame t to canonical space (= frame 0).

Articulated motion (limbs swinging in opposite directions a few centimetres apart) needs spatial capacity that a
bare positional-encoding MLP lacks, so the MLP reads multiresolution hash-grid features of x together with a small
learned code per frame (interpolated linearly between frames). Two choices keep the fit stable:
* canonical space is frame 0 by construction: Δ(x, t) = g(x, c_t) − g(x, c_0), so Δ(x, 0) = 0 exactly and the
  mesh exporter can read the canonical field as frame 0 (no anchor regulariser needed);
* coarse-to-fine annealing (BARF-style window over the grid levels): fine levels are faded in as the fit goes, so
  the warp first explains the large motion and only later the local detail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .hashgrid import hash_grid_config, make_encoding
from .layers import mlp


def _default_grid() -> dict[str, Any]:
    # coarse on purpose: motion is smooth in space; 6 levels from 8 to 64 vertices per axis over the cube
    return hash_grid_config(6, 14, 8, 64)


@dataclass
class DeformationConfig:
    """Architecture of Δ(x, t) (what must match to load weights)."""

    grid: dict[str, Any] = field(default_factory=_default_grid)
    code_dim: int = 16
    hidden: int = 64
    layers: int = 2


class DeformationField(nn.Module):
    """Δ(x, t) = g(hash(x), code(t)) − g(hash(x), code(0)); x (N, 3) in the cube, t (N,) ∈ [0, 1]."""

    def __init__(self, config: DeformationConfig, bound: float, num_frames: int, device: torch.device | str,
                 seed: int = 0) -> None:
        super().__init__()
        self.config, self.bound, self.num_frames = config, float(bound), num_frames
        self.encoding = make_encoding(3, config.grid, device, seed=4242 + seed)
        self.num_levels = int(config.grid["n_levels"])
        self.features_per_level = int(config.grid.get("n_features_per_level", 2))
        # small random codes tell frames apart from the first step; the zero last layer keeps Δ = 0 at the start
        self.codes = nn.Parameter(torch.randn(num_frames, config.code_dim) * 0.1)
        self.mlp = mlp([self.encoding.n_output_dims + config.code_dim] + [config.hidden] * config.layers + [3])
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("level_weights", torch.ones(self.num_levels))

    def anneal(self, progress: float) -> None:
        """Open grid levels coarse to fine: all levels are on once `progress` ∈ [0, 1] reaches 1."""
        alpha = progress * self.num_levels
        levels = torch.arange(self.num_levels, dtype=torch.float32, device=self.level_weights.device)
        window = (alpha - levels).clamp(0, 1)
        self.level_weights.copy_(0.5 * (1 - torch.cos(torch.pi * window)))
        self.level_weights[0] = 1.0  # the coarsest level is always on

    def code(self, t: torch.Tensor) -> torch.Tensor:
        """Frame codes (N, code_dim) at times t (N,), linear between the two nearest frames."""
        position = t.clamp(0, 1) * (self.num_frames - 1)
        before = position.floor().long().clamp(max=self.num_frames - 1)
        after = (before + 1).clamp(max=self.num_frames - 1)
        w = (position - before.float())[:, None]
        # index_select: its backward is a serial index_add; advanced indexing's backward (index_put with
        # accumulate) adds with atomics across CPU threads, so two same-seed fits came out different
        return self.codes.index_select(0, before) * (1 - w) + self.codes.index_select(0, after) * w

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Offsets Δ (N, 3) such that x + Δ is the canonical point."""
        unit = ((x / self.bound + 1) * 0.5).clamp(0.0, 1.0)
        features = self.encoding(unit).float().view(-1, self.num_levels, self.features_per_level)
        features = (features * self.level_weights[:, None]).flatten(1)
        rest = self.codes[:1].expand(x.shape[0], -1)
        inputs = torch.cat((torch.cat((features, self.code(t)), 1), torch.cat((features, rest), 1)), 0)
        moved, still = self.mlp(inputs).chunk(2, dim=0)
        return moved - still
