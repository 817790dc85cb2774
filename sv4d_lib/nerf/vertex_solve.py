"""Per-frame vertex positions: invert the backward warp `x_c = x + Δ(x, t)` for every canonical vertex.

For a canonical vertex v, its position at time t solves r(x) = x + Δ(x, t) − v = 0. The plain fixed-point
iteration x ← v − Δ(x, t) (nerf4d.md §4.4) only converges where ‖∂Δ/∂x‖ < 1; on a fitted field it failed for
12–18 % of the vertices at moving frames. Here each frame is solved by damped Gauss–Newton (Levenberg–Marquardt)
with the 3×3 Jacobian I + ∂Δ/∂x from autograd, started from the better of the previous frame's solution (frames
are close in time) and the fixed-point guess. A root only counts where the field renders matter at time t (its
occupancy grid: the frame's visual hull ∩ density): a backward warp also maps space the renders cull onto the
canonical surface, and on the real dev scene 1–1.3 % of the vertices (the walking feet) converged there, outside
every view's silhouette. A vertex without a valid root (or stuck on a fold of the warp) is solved again from the
motion of its valid neighbours, and where that fails too it takes their mean motion instead of a spike, and is
counted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .field import DynamicNeRF

CHUNK = 16384  # vertices per warp query (one LM step of a chunk stays well under a second on a CPU core)


@dataclass
class FrameSolve:
    """Residual statistics of one frame's solve, in world units."""

    t: float
    max_residual: float
    p99_residual: float
    unconverged: int  # vertices without a valid root (moved with their neighbours)
    vertices: int  # vertices solved


def _residual(field: DynamicNeRF, x: torch.Tensor, target: torch.Tensor, t: float) -> torch.Tensor:
    return field.warp(x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)) - target


def _jacobian(field: DynamicNeRF, x: torch.Tensor, target: torch.Tensor, t: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual (N, 3) and its Jacobian (N, 3, 3) d r_i / d x_j (three backward passes: works for any field)."""
    # ComfyUI runs nodes under inference mode, whose tensors cannot join autograd: work on normal copies
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        r = _residual(field, x, target.clone(), t)
        rows = [torch.autograd.grad(r[:, i].sum(), x, retain_graph=i < 2)[0] for i in range(3)]
    return r.detach(), torch.stack(rows, dim=1)


@torch.no_grad()
def solve_positions(
    field: DynamicNeRF,
    vertices: torch.Tensor,
    t: float,
    init: torch.Tensor | None = None,
    iterations: int = 12,
    tolerance: float = 1e-4,
    check: Callable[[], None] | None = None,
    fixed_point: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions x (N, 3) at time t with x + Δ(x, t) ≈ `vertices` (N, 3), and their residual norms (N,).

    `init` (N, 3): a starting guess (the previous frame's positions); unless `fixed_point` is False, the
    fixed-point guess v − Δ(v, t) is tried as well and the better one per vertex kept. Levenberg–Marquardt: the
    damping λ of a vertex shrinks after an accepted step and grows after a rejected one. `check()` runs after every step of every chunk (interrupts).
    """
    out_x, out_r = [], []
    for start in range(0, vertices.shape[0], CHUNK):
        v = vertices[start:start + CHUNK]
        x = v - (_residual(field, v, v, t)) if fixed_point or init is None else init[start:start + CHUNK]
        if init is not None and fixed_point:
            guess = init[start:start + CHUNK]
            better = _residual(field, guess, v, t).norm(dim=-1) < _residual(field, x, v, t).norm(dim=-1)
            x = torch.where(better[:, None], guess, x)
        damping = torch.full((v.shape[0],), 1e-3, device=v.device, dtype=v.dtype)
        eye = torch.eye(3, device=v.device, dtype=v.dtype)
        for _ in range(iterations):
            r, jac = _jacobian(field, x, v, t)
            norm = r.norm(dim=-1)
            active = norm > tolerance
            if not active.any():
                break
            jt = jac.transpose(1, 2)
            normal = jt @ jac + damping[:, None, None] * eye
            step = torch.linalg.solve(normal, -(jt @ r[..., None]))[..., 0]
            candidate = x + step
            accept = active & (_residual(field, candidate, v, t).norm(dim=-1) < norm)
            x = torch.where(accept[:, None], candidate, x)
            damping = torch.where(accept, damping * 0.3, damping * 10.0).clamp(1e-6, 1e6)
            if check is not None:
                check()
        out_x.append(x)
        out_r.append(_residual(field, x, v, t).norm(dim=-1))
    return torch.cat(out_x), torch.cat(out_r)


def _valid(field: DynamicNeRF, x: torch.Tensor, residual: torch.Tensor, t: float, tolerance: float) -> torch.Tensor:
    """Roots (N,) bool that converged and lie where the field renders matter at time t (its occupancy grid)."""
    return (residual <= tolerance) & field.occupancy.occupied(x, torch.full((x.shape[0],), t, device=x.device))


def neighbour_fill(displacement: np.ndarray, bad: np.ndarray, edges: np.ndarray, rounds: int = 50) -> np.ndarray:
    """Displacements (N, 3) where the `bad` (N,) vertices take the mean of their good/filled neighbours (graph
    `edges` (E, 2)), spreading inwards round by round; bad vertices no good vertex reaches keep theirs."""
    out = displacement.copy()
    known = ~bad
    for _ in range(rounds):
        todo = ~known
        if not todo.any():
            break
        a, b = edges[:, 0], edges[:, 1]
        total = np.zeros_like(out)
        count = np.zeros(len(out))
        for src, dst in ((a, b), (b, a)):
            use = known[src] & todo[dst]
            np.add.at(total, dst[use], out[src[use]])
            np.add.at(count, dst[use], 1.0)
        reached = count > 0
        if not reached.any():
            break
        out[reached] = total[reached] / count[reached, None]
        known = known | reached
    return out


def solve_frames(
    field: DynamicNeRF,
    vertices: np.ndarray,
    edges: np.ndarray,
    times: list[float],
    tolerance: float | None = None,
    iterations: int = 12,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[FrameSolve]]:
    """Positions (K, N, 3) float32 of canonical `vertices` (N, 3) at each of `times`, and a solve report per frame.

    Frames are solved in order, each starting from the previous one. `tolerance` (world units, default 1e-3 of the
    scene half-size) decides which vertices count as converged; the others follow their neighbours (`edges`).
    `iterations`: Levenberg–Marquardt steps per frame. `progress(done, total)` is called after each step (raise
    from it to interrupt).
    """
    tolerance = 1e-3 * field.bound if tolerance is None else tolerance
    base = torch.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32)).to(field.device)
    frames, reports, previous = [], [], None
    steps_per_frame = iterations * -(-len(vertices) // CHUNK)
    total = steps_per_frame * len(times)
    for k, t in enumerate(times):
        done = [k * steps_per_frame]

        def check() -> None:
            done[0] += 1
            check_only()

        def check_only() -> None:  # the retry's steps: interrupts are honoured, the bar does not move
            if progress is not None:
                progress(min(done[0], total), total)

        # iterate well below the tolerance: converged vertices then sit at float precision, not at its edge
        x, residual = solve_positions(field, base, t, previous, iterations, 1e-2 * tolerance, check)
        if not torch.isfinite(x).all():
            raise ValueError(f"the deformation at t={t:.3f} gives non-finite positions; the fit diverged, refit it")
        bad = ~_valid(field, x, residual, t, tolerance)
        if bad.any() and not bad.all():  # again from the motion of the valid neighbours
            retry = torch.from_numpy(np.flatnonzero(bad.cpu().numpy())).to(x.device)
            guess = base + torch.from_numpy(neighbour_fill((x - base).cpu().numpy(), bad.cpu().numpy(), edges)).to(x)
            x_retry, r_retry = solve_positions(field, base[retry], t, guess[retry], iterations, 1e-2 * tolerance,
                                               check_only, fixed_point=False)
            fixed = _valid(field, x_retry, r_retry, t, tolerance)
            x[retry[fixed]], residual[retry[fixed]] = x_retry[fixed], r_retry[fixed]
            bad[retry[fixed]] = False
        if progress is not None:
            progress((k + 1) * steps_per_frame, total)
        positions = x.cpu().numpy()
        residual_np = residual.cpu().numpy()
        bad_np = bad.cpu().numpy()
        if bad_np.any():
            positions = vertices + neighbour_fill(positions - vertices, bad_np, edges)
        previous = torch.from_numpy(positions).to(field.device)  # invalid roots must not seed the next frame
        frames.append(positions.astype(np.float32))
        reports.append(FrameSolve(float(t), float(residual_np.max()), float(np.quantile(residual_np, 0.99)),
                                  int(bad_np.sum()), len(vertices)))
    return np.stack(frames), reports
