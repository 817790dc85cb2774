"""Dynamic NeRF: a canonical hash-grid NeRF queried through a temporal deformation MLP (D-NeRF style).

The deformation is a backward warp `x_c = x + Δ(x, t)` from observation space at time t to canonical space. Its
last layer starts at zero, so the field equals the canonical NeRF at the static→dynamic switch and canonical
space stays frame 0 (the mesh exporter relies on that).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

import torch
from torch import nn

from .hashgrid import make_encoding
from .occupancy import OccupancyGrid


def _default_grid() -> dict[str, Any]:
    # 8 levels from 16 to 256 vertices per axis over the box; 2^15 rows keep a CPU step cheap (nerf4d.md §5)
    return {
        "otype": "HashGrid",
        "n_levels": 8,
        "n_features_per_level": 2,
        "log2_hashmap_size": 15,
        "base_resolution": 16,
        "per_level_scale": (256 / 16) ** (1 / 7),
    }


@dataclass
class FieldConfig:
    """Architecture of the dynamic field (what must match to load weights)."""

    grid: dict[str, Any] = dataclass_field(default_factory=_default_grid)
    hidden: int = 64
    geo_features: int = 15
    deform_hidden: int = 64
    deform_layers: int = 3
    deform_pos_freqs: int = 6
    deform_time_freqs: int = 4
    # Magic3D-style density blob σ = exp(h + blob·(1 − ‖x‖/blob_radius)): without it the fit does not start
    # (nerf4d.md §5); lengths are fractions of the box half-size.
    blob_density: float = 5.0
    blob_radius: float = 0.75
    occupancy_resolution: int = 32


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def frequency_encoding(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """[x, sin(2^k π x), cos(2^k π x)] for k < num_freqs (NeRF positional encoding)."""
    freqs = (2.0 ** torch.arange(num_freqs, device=x.device, dtype=x.dtype)) * math.pi
    angles = (x[..., None] * freqs).flatten(-2)
    return torch.cat((x, angles.sin(), angles.cos()), dim=-1)


class DynamicNeRF(nn.Module):
    """Canonical NeRF (hash grid → density MLP → colour MLP) + deformation MLP (x, t) → Δx.

    World coordinates live in the cube [−bound, bound]^3; `t` ∈ [0, 1] is `frame / (num_frames − 1)`. Colour is
    view-independent: generated views disagree on lighting, and view-dependent colour would learn those
    inconsistencies instead of one surface colour.
    """

    def __init__(
        self,
        config: FieldConfig,
        bound: float,
        radius: float,
        fov_deg: float,
        num_frames: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.config = config
        self.bound, self.radius, self.fov_deg, self.num_frames = float(bound), float(radius), float(fov_deg), num_frames
        self.dynamic = num_frames > 1  # the static stage switches this off
        deform_in = 3 * (1 + 2 * config.deform_pos_freqs) + (1 + 2 * config.deform_time_freqs)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(seed)
            self.encoding = make_encoding(3, config.grid, device, seed=1337 + seed)
            self.density_mlp = _mlp([self.encoding.n_output_dims, config.hidden, 1 + config.geo_features])
            self.colour_mlp = _mlp([config.geo_features, config.hidden, config.hidden, 3])
            self.deformation = _mlp([deform_in] + [config.deform_hidden] * config.deform_layers + [3])
        last = self.deformation[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.occupancy = OccupancyGrid(config.occupancy_resolution, self.bound)
        self.to(device)

    @property
    def device(self) -> torch.device:
        return self.occupancy.density.device

    def metadata(self) -> dict[str, Any]:
        """Everything besides the state dict needed to rebuild this field."""
        return {
            "config": asdict(self.config),
            "bound": self.bound,
            "radius": self.radius,
            "fov_deg": self.fov_deg,
            "num_frames": self.num_frames,
        }

    def warp(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Observation-space points `x` (N, 3) at times `t` (N,) → canonical points."""
        if not self.dynamic:
            return x
        cfg = self.config
        features = torch.cat(
            (
                frequency_encoding(x / self.bound, cfg.deform_pos_freqs),
                frequency_encoding(t[:, None] * 2 - 1, cfg.deform_time_freqs),
            ),
            dim=-1,
        )
        return x + self.deformation(features)

    def _canonical_hidden(self, x_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = ((x_c / self.bound + 1) * 0.5).clamp(0.0, 1.0)
        h = self.density_mlp(self.encoding(unit).float())
        blob = self.config.blob_density * (1 - x_c.norm(dim=-1) / (self.config.blob_radius * self.bound))
        # exp with a clamped argument: Instant-NGP's activation, kept finite
        sigma = torch.exp(torch.clamp(h[:, 0] + blob, max=15.0))
        return sigma, h[:, 1:]

    def canonical(self, x_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N,) and colour (N, 3) in canonical space."""
        sigma, geo = self._canonical_hidden(x_c)
        return sigma, torch.sigmoid(self.colour_mlp(geo))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N,) and colour (N, 3) of observation-space points `x` (N, 3) at times `t` (N,)."""
        return self.canonical(self.warp(x, t))

    def density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Density only (occupancy updates, normals, marching cubes)."""
        return self._canonical_hidden(self.warp(x, t))[0]

    def render(
        self, elevation_deg: float, azimuth_deg: float, t: float, width: int, height: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB (H, W, 3) composited on white and alpha (H, W) seen from an orbit camera (this field's radius/fov)."""
        from .render import render_view

        return render_view(self, elevation_deg, azimuth_deg, t, width, height)
