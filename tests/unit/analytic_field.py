"""A dynamic field with closed-form density, colour and warp, for export tests with known answers.

It has the interface the exporter relies on (`canonical`, `surface_density`, `warp`, `bound`, `num_frames`,
`device`, `occupancy`: everywhere in the cube until a test limits its hulls) and nothing of the fitter, so export tests do not depend on how a fit parameterises its field.
"""
from __future__ import annotations

import torch

from sv4d_lib.nerf.occupancy import OccupancyGrid


class AnalyticField:
    """Balls of density `peak·sigmoid((r_i − ‖x − c_i‖)/softness)`; colour (x/bound + 1)/2 per axis (sRGB);
    backward warp x_c = x + Δ(x, t) with Δ = t·(x @ matrix.T + shift) (linear, so its inverse is known)."""

    def __init__(self, centres=((0.0, 0.0, 0.0),), radii=(0.3,), peak: float = 400.0, softness: float = 0.005,
                 bound: float = 0.6, num_frames: int = 3, matrix=None, shift=(0.0, 0.0, 0.0)) -> None:
        self.centres = torch.tensor(centres, dtype=torch.float32)
        self.radii = torch.tensor(radii, dtype=torch.float32)
        self.peak, self.softness, self.bound, self.num_frames = peak, softness, bound, num_frames
        self.matrix = torch.zeros(3, 3) if matrix is None else torch.tensor(matrix, dtype=torch.float32)
        self.shift = torch.tensor(shift, dtype=torch.float32)
        self.device = torch.device("cpu")
        self.occupancy = OccupancyGrid(32, bound, num_frames)

    def canonical(self, x_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distance = torch.cdist(x_c, self.centres) - self.radii  # (N, balls), negative inside
        sigma = self.peak * torch.sigmoid(-distance / self.softness).sum(dim=-1)
        return sigma, ((x_c / self.bound + 1) / 2).clamp(0, 1)

    def surface_density(self, x_c: torch.Tensor) -> torch.Tensor:
        return self.canonical(x_c)[0]  # nothing culled: the closed form holds everywhere

    def warp(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x + t[:, None] * (x @ self.matrix.T + self.shift)

    def inverse_warp(self, x_c: torch.Tensor, t: float) -> torch.Tensor:
        """Exact observation-space position of canonical points at time t (test oracle)."""
        a = torch.eye(3) + t * self.matrix
        return torch.linalg.solve(a, (x_c - t * self.shift).T).T
