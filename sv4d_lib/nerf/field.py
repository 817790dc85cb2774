"""Dynamic NeRF: a canonical hash-grid NeRF queried through a deformation field (backward warp, D-NeRF style).

`x_c = x + Δ(x, t)` maps a point seen at time t to canonical space, which is frame 0 by construction
(`deformation.py`), so the mesh exporter reads the canonical field as frame 0. Cameras are not part of the field:
render it with any `OrbitCameras` (`render.py`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

import torch
from torch import nn

from .deformation import DeformationConfig, DeformationField
from .hashgrid import hash_grid_config, make_encoding
from .layers import mlp
from .occupancy import OccupancyGrid


def _default_grid() -> dict[str, Any]:
    # 8 levels from 16 to 256 vertices per axis over the cube (~2 texels per pixel at 128 px); 2^15 rows keep a CPU
    # step cheap (nerf4d.md §5); 12 levels up to 512 measured no better at 128 px (docs/bench_nerf4d.md)
    return hash_grid_config(8, 15, 16, 256)


@dataclass
class FieldConfig:
    """Architecture of the dynamic field (what must match to load weights)."""

    grid: dict[str, Any] = dataclass_field(default_factory=_default_grid)
    hidden: int = 64
    geo_features: int = 15
    deformation: DeformationConfig = dataclass_field(default_factory=DeformationConfig)
    # Magic3D-style density blob σ = exp(h + blob·(1 − ‖x‖/blob_radius)): without it the fit does not start
    # (nerf4d.md §5); lengths are fractions of the cube half-size.
    blob_density: float = 5.0
    blob_radius: float = 0.75
    occupancy_resolution: int = 64


class DynamicNeRF(nn.Module):
    """Canonical NeRF (hash grid → density MLP → colour MLP) + deformation field Δ(x, t).

    World coordinates live in the cube [−bound, bound]^3; `t` ∈ [0, 1] is `frame / (num_frames − 1)`. Colour is
    view-independent: generated views disagree on lighting, and view-dependent colour would learn those
    inconsistencies instead of one surface colour.
    """

    def __init__(self, config: FieldConfig, bound: float, num_frames: int, device: torch.device | str = "cpu",
                 seed: int = 0) -> None:
        super().__init__()
        if num_frames < 1:
            raise ValueError(f"a field needs at least one frame, got num_frames={num_frames}")
        self.config = config
        self.bound, self.num_frames = float(bound), num_frames
        self.dynamic = num_frames > 1  # the static stage switches this off
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(seed)
            self.encoding = make_encoding(3, config.grid, device, seed=1337 + seed)
            self.density_mlp = mlp([self.encoding.n_output_dims, config.hidden, 1 + config.geo_features])
            self.colour_mlp = mlp([config.geo_features, config.hidden, config.hidden, 3])
            self.deformation = DeformationField(config.deformation, self.bound, num_frames, device, seed)
        self.occupancy = OccupancyGrid(config.occupancy_resolution, self.bound, num_frames)
        # (V, 3, 3) world rotations of the rays of the views it was fitted to, where the fit found views turned
        # (fit.py's view refinement); texturing from those views projects through the same turned cameras
        self.view_turns: torch.Tensor | None = None
        self.to(device)

    @property
    def device(self) -> torch.device:
        return self.occupancy.density.device

    def metadata(self) -> dict[str, Any]:
        """Everything besides the state dict needed to rebuild this field."""
        return {"config": asdict(self.config), "bound": self.bound, "num_frames": self.num_frames}

    def warp(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Observation-space points `x` (N, 3) at times `t` (N,) → canonical points."""
        return x + self.deformation(x, t) if self.dynamic else x

    def _canonical_hidden(self, x_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = ((x_c / self.bound + 1) * 0.5).clamp(0.0, 1.0)
        h = self.density_mlp(self.encoding(unit).float())
        blob = self.config.blob_density * (1 - x_c.norm(dim=-1) / (self.config.blob_radius * self.bound))
        # exp with a clamped argument: Instant-NGP's activation, kept finite
        sigma = torch.exp(torch.clamp(h[:, 0] + blob, max=15.0))
        return sigma, h[:, 1:]

    def canonical(self, x_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N,) and colour (N, 3) in canonical space (= frame 0)."""
        sigma, geo = self._canonical_hidden(x_c)
        return sigma, torch.sigmoid(self.colour_mlp(geo))

    def canonical_density(self, x_c: torch.Tensor) -> torch.Tensor:
        """Density (N,) in canonical space, without the colour branch (regularisers)."""
        return self._canonical_hidden(x_c)[0]

    def surface_density(self, x_c: torch.Tensor) -> torch.Tensor:
        """Canonical density (N,) as renders show frame 0: zero where the occupancy grid culls samples (outside
        frame 0's hull or the density mask), since the fit never supervises the field there (mesh export)."""
        return self.canonical_density(x_c) * self.occupancy.occupied(x_c, x_c.new_zeros(x_c.shape[0]))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N,) and colour (N, 3) of observation-space points `x` (N, 3) at times `t` (N,)."""
        return self.canonical(self.warp(x, t))

    def density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Density only (occupancy updates, normals, marching cubes)."""
        return self._canonical_hidden(self.warp(x, t))[0]
