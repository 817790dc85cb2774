"""Multi-resolution hash encoding (Instant-NGP) with tinycudann's exact semantics and flat `params` layout.

tinycudann is the fast CUDA backend but is not on PyPI and refuses to import without CUDA, so a pure-torch grid
computes the same function from the same flat parameter vector: a fitted field moves between backends and CPU
tests exercise the maths that runs on the GPU. Semantics follow tcnn's `grid.h` (see docs in nerf4d.md §1.3):
per-level scale `2**(l·log2 b)·N_min − 1` (float32), `res = ceil(scale) + 1`, `+0.5` staggering, coarse levels
dense (x fastest) and fine levels hashed with the CoherentPrime XOR hash, every index taken modulo the level size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

# tcnn's CoherentPrime factors, one per input dimension.
PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)

DEFAULT_CONFIG: dict[str, Any] = {
    "otype": "HashGrid",
    "n_levels": 16,
    "n_features_per_level": 2,
    "log2_hashmap_size": 19,
    "base_resolution": 16,
    "per_level_scale": 2.0,
    "interpolation": "Linear",
}


def hash_grid_config(n_levels: int, log2_hashmap_size: int, base_resolution: int, finest_resolution: int) -> dict:
    """tcnn "HashGrid" config whose levels grow geometrically from `base_resolution` to `finest_resolution`."""
    return {
        "otype": "HashGrid",
        "n_levels": n_levels,
        "n_features_per_level": 2,
        "log2_hashmap_size": log2_hashmap_size,
        "base_resolution": base_resolution,
        "per_level_scale": (finest_resolution / base_resolution) ** (1 / max(n_levels - 1, 1)),
    }


@dataclass(frozen=True)
class GridLevel:
    """One resolution level: its float32 scale, vertices per axis, table size/offset (rows) and hashing."""

    scale: float
    resolution: int
    size: int
    offset: int
    hashed: bool


def _next_multiple(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def grid_levels(config: dict[str, Any], n_input_dims: int = 3) -> list[GridLevel]:
    """The level table tcnn builds for `config` (float32 scales, dense-vs-hashed choice, prefix-sum offsets)."""
    config = {**DEFAULT_CONFIG, **config}
    otype, grid_type = config["otype"], config.get("type", "Hash")
    if otype == "DenseGrid":
        grid_type = "Dense"
    elif otype == "HashGrid":
        grid_type = "Hash"
    elif otype != "Grid" or grid_type not in ("Hash", "Dense"):
        raise ValueError(
            f"unsupported grid encoding {otype!r} (type {grid_type!r}); use otype 'HashGrid', 'DenseGrid' or 'Grid' "
            "with type 'Hash'/'Dense'"
        )
    if config.get("interpolation", "Linear") not in ("Linear", "Smoothstep"):
        raise ValueError(f"unsupported interpolation {config['interpolation']!r}; use 'Linear' or 'Smoothstep'")
    if config.get("hash", "CoherentPrime") != "CoherentPrime":
        raise ValueError(f"unsupported hash {config['hash']!r}; the torch grid implements tcnn's 'CoherentPrime'")
    if not 1 <= n_input_dims <= len(PRIMES):
        raise ValueError(f"hash grids take 1..{len(PRIMES)} input dimensions, got {n_input_dims}")
    max_size = 2 ** int(config["log2_hashmap_size"])
    log2_scale = np.float32(math.log2(float(config["per_level_scale"])))
    base = np.float32(config["base_resolution"])
    levels, offset = [], 0
    for level in range(int(config["n_levels"])):
        scale = np.exp2(np.float32(level) * log2_scale) * base - np.float32(1.0)  # float32 like exp2f
        resolution = math.ceil(float(scale)) + 1
        dense = resolution**n_input_dims
        size = _next_multiple(dense, 8)
        if grid_type == "Hash":
            size = min(size, max_size)
        levels.append(GridLevel(float(scale), resolution, size, offset, size < dense))
        offset += size
    return levels


class _Gather(torch.autograd.Function):
    """Row gather whose backward is a scatter-add: autograd's `index_select`/embedding backward sorts on CPU and
    took half of a training step in profiles (nerf4d.md §1.3)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return table.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        grad_table = grad.new_zeros(ctx.rows, grad.shape[1]).index_add_(0, index, grad)
        return grad_table, None


class TorchHashGrid(nn.Module):
    """Pure-torch twin of `tcnn.Encoding(n_input_dims, config)`: same output, same flat `params`."""

    def __init__(self, n_input_dims: int, config: dict[str, Any], seed: int = 1337) -> None:
        super().__init__()
        self.config = {**DEFAULT_CONFIG, **config}
        self.n_input_dims = n_input_dims
        self.levels = grid_levels(self.config, n_input_dims)
        self.n_features = int(self.config["n_features_per_level"])
        self.n_output_dims = len(self.levels) * self.n_features
        self.smoothstep = self.config.get("interpolation", "Linear") == "Smoothstep"
        rows = self.levels[-1].offset + self.levels[-1].size
        generator = torch.Generator().manual_seed(seed)
        # tcnn initialises uniformly in ±1e-4
        self.params = nn.Parameter((torch.rand(rows * self.n_features, generator=generator) * 2 - 1) * 1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` (N, D) in [0,1]^D → features (N, L·F), level-major.

        One level at a time: each level's table slice stays in cache, 2.8× faster on CPU than gathering all levels
        at once (91k points, 8 levels, 2^15 rows: 0.19 s vs 0.53 s, one thread).
        """
        n, dims = x.shape[0], self.n_input_dims
        x = x.float()
        table = self.params.view(-1, self.n_features)
        features = []
        for level in self.levels:
            pos = x * level.scale + 0.5
            floor = torch.floor(pos)
            frac = pos - floor
            if self.smoothstep:
                frac = frac * frac * (3.0 - 2.0 * frac)
            low = floor.detach().long()
            index = weight = None
            for d in range(dims):  # corner bit d (set: the upper vertex along axis d) is the slowest corner axis
                mult = PRIMES[d] if level.hashed else level.resolution**d
                corner = torch.stack((low[:, d] * mult, low[:, d] * mult + mult), dim=-1)  # (N, 2)
                w = torch.stack((1.0 - frac[:, d], frac[:, d]), dim=-1)
                if weight is None:
                    index, weight = corner, w
                else:
                    index = (index[:, None, :] ^ corner[:, :, None]) if level.hashed else (
                        index[:, None, :] + corner[:, :, None])
                    index = index.flatten(1)
                    weight = (weight[:, None, :] * w[:, :, None]).flatten(1)
            # indices are non-negative, so these equal tcnn's uint32 modulo; hashed sizes are powers of two
            if level.hashed:
                index = index.bitwise_and_(level.size - 1).add_(level.offset)
            else:
                index = index % level.size + level.offset
            rows = _Gather.apply(table, index.reshape(-1)).view(n, 2**dims, self.n_features)
            if torch.is_grad_enabled():  # the broadcast sum has the cheaper backward
                features.append((weight.unsqueeze(-1) * rows).sum(dim=1))
            else:  # a batched matrix product is ~10 % faster for renders
                features.append(torch.bmm(weight.unsqueeze(1), rows).squeeze(1))
        return torch.cat(features, dim=1)


def tcnn_available() -> bool:
    """True when tinycudann imports (it raises a plain EnvironmentError at import when CUDA is missing)."""
    try:
        import tinycudann  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure (ImportError, EnvironmentError without CUDA) means "use torch"
        return False
    return True


def make_encoding(n_input_dims: int, config: dict[str, Any], device: torch.device | str, seed: int = 1337) -> nn.Module:
    """`tcnn.Encoding` on CUDA when tinycudann imports, else `TorchHashGrid`.

    Both hold one flat `params` (state-dict key `params`) and expose `n_output_dims`; tcnn may return fp16, so
    callers cast the output with `.float()`.
    """
    device = torch.device(device)
    grid_levels(config, n_input_dims)  # same validation on both backends
    if device.type == "cuda" and tcnn_available():
        import tinycudann as tcnn

        with torch.cuda.device(device):
            return tcnn.Encoding(n_input_dims, {**DEFAULT_CONFIG, **config}, seed=seed)
    return TorchHashGrid(n_input_dims, config, seed=seed).to(device)
