"""The reference SV4D 2.0 sampler: EDM sigmas, v-prediction denoiser scalings and the Euler-EDM loop with a
per-latent CFG grid (spec §4).

This is the host-independent reference; inside ComfyUI the same maths runs through `comfy.samplers`
(euler + `edm_sigmas` + the pack's GridGuider). Both are pinned to the official fixture by the golden tests.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .multiview import frame_major_to_views

SIGMA_MIN = 0.002
SIGMA_MAX = 700.0  # the script's value; the yaml's 500 is never used (spec §4)
RHO = 7.0

StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]
# The UNet call: net(x, timesteps, context, y, cond_view, num_frames=T, num_views=V) (sv4d_lib.model.SV4D2UNet).
NVVSNetwork = Callable[..., torch.Tensor]


def edm_sigmas(steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO) -> torch.Tensor:
    """EDM (Karras) noise levels, float32 like the official `EDMDiscretization`, with a final 0: `(steps + 1,)`."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def v_scalings(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`VScalingWithEDMcNoise`: c_skip, c_out, c_in, c_noise of the v-prediction denoiser."""
    c_skip = 1.0 / (sigma**2 + 1.0)
    c_out = -sigma / (sigma**2 + 1.0) ** 0.5
    c_in = 1.0 / (sigma**2 + 1.0) ** 0.5
    c_noise = 0.25 * sigma.log()
    return c_skip, c_out, c_in, c_noise


def _check_conds(
    cond: dict[str, torch.Tensor], num_frames: int, num_novel_views: int, latent: torch.Tensor, name: str
) -> None:
    n = num_frames * num_novel_views
    expected = {
        "crossattn": (1, num_frames),
        "concat": (n, latent.shape[1], *latent.shape[2:]),
        "vector": (n,),
        "cond_view": (num_novel_views, latent.shape[1], *latent.shape[2:]),
    }
    for key, shape in expected.items():
        if key not in cond:
            raise ValueError(f"{name} lacks {key!r}; it needs crossattn, concat, vector and cond_view")
        if tuple(cond[key].shape[: len(shape)]) != shape:
            raise ValueError(
                f"{name}[{key!r}] has shape {tuple(cond[key].shape)}, expected leading dims {shape} "
                f"for T={num_frames} frames and V={num_novel_views} views"
            )


def denoise(
    unet: NVVSNetwork,
    x: torch.Tensor,
    sigma: torch.Tensor,
    cond: dict[str, torch.Tensor],
    uncond: dict[str, torch.Tensor],
    scale: torch.Tensor,
    num_frames: int,
    num_novel_views: int,
) -> torch.Tensor:
    """Guided D(x, σ): one batched uncond+cond UNet call (official batch order: uncond first), CFG on the
    denoised outputs with the per-latent `scale` `(T·V,)`."""
    x2 = torch.cat([x, x])
    s2 = torch.cat([sigma, sigma])[:, None, None, None]
    c_skip, c_out, c_in, c_noise = v_scalings(s2)
    # concat is appended after the c_in scaling (official OpenAIWrapper).
    net_in = torch.cat([x2 * c_in, torch.cat([uncond["concat"], cond["concat"]])], dim=1)
    out = unet(
        net_in,
        c_noise.reshape(-1),
        torch.cat([uncond["crossattn"], cond["crossattn"]]),
        torch.cat([uncond["vector"], cond["vector"]]),
        torch.cat([uncond["cond_view"], cond["cond_view"]]),
        num_frames=num_frames,
        num_views=num_novel_views,
    )
    denoised = out * c_out + x2 * c_skip
    x_u, x_c = denoised.chunk(2)
    return x_u + scale[:, None, None, None] * (x_c - x_u)


def sample_nvvs(
    unet: NVVSNetwork,
    noise: torch.Tensor,
    cond: dict[str, torch.Tensor],
    uncond: dict[str, torch.Tensor],
    sigmas: torch.Tensor,
    cfg_grid: torch.Tensor,
    num_frames: int,
    num_novel_views: int,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Sample one window of T frames × V views with the official Euler-EDM loop (spec §4).

    noise `(T·V, 4, h, w)` is unscaled standard normal (x0 = noise·√(1+σ0²)); cond/uncond hold the official
    shapes: crossattn `(1, T, D)`, concat `(T·V, 4, h, w)`, vector `(T·V, adm)`, cond_view `(V, 4, h, w)`.
    `cfg_grid` `(T, V)` is the per-latent CFG scale. `callback(i, x, denoised)` runs after every step (raise in
    it to interrupt). Returns the final latents `(T·V, 4, h, w)` in the diffusion (0.18215-scaled) space.
    """
    n = num_frames * num_novel_views
    if noise.ndim != 4 or noise.shape[0] != n:
        raise ValueError(f"noise must be (T·V, C, h, w) = ({n}, ...), got {tuple(noise.shape)}")
    if tuple(cfg_grid.shape) != (num_frames, num_novel_views):
        raise ValueError(f"cfg_grid must be (T, V) = ({num_frames}, {num_novel_views}), got {tuple(cfg_grid.shape)}")
    if sigmas.ndim != 1 or sigmas.shape[0] < 2:
        raise ValueError(f"sigmas must be a 1-D schedule with at least 2 entries, got shape {tuple(sigmas.shape)}")
    _check_conds(cond, num_frames, num_novel_views, noise, "cond")
    _check_conds(uncond, num_frames, num_novel_views, noise, "uncond")

    sigmas = sigmas.to(noise.device)
    scale = cfg_grid.reshape(-1).to(noise)
    s_in = noise.new_ones([n])
    x = noise * torch.sqrt(1.0 + sigmas[0] ** 2.0)
    for i in range(sigmas.shape[0] - 1):
        sigma = s_in * sigmas[i]
        denoised = denoise(unet, x, sigma, cond, uncond, scale, num_frames, num_novel_views)
        d = (x - denoised) / sigma[:, None, None, None]
        x = x + (s_in * sigmas[i + 1] - sigma)[:, None, None, None] * d
        if callback is not None:
            callback(i, x, denoised)
    return x


def decode_by_view(
    decode: Callable[[torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    num_novel_views: int,
    decoding_t: int,
    on_batch: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Decode frame-major latents `(T·V, ...)` one view at a time in batches of `decoding_t` frames.

    Per-view batches keep each decoder call a short clip of one view (what a temporal decoder expects, and the
    official `decoding_t` memory bound). `decode` maps `(n, ...)` latents to `(n, ...)` images; `on_batch` runs
    after every batch (progress, interruption). Returns `(V, T, ...)`.
    """
    if decoding_t < 1:
        raise ValueError(f"decoding_t must be >= 1, got {decoding_t}")
    views = frame_major_to_views(latents, num_novel_views)
    decoded = []
    for view in views:
        batches = []
        for start in range(0, view.shape[0], decoding_t):
            batches.append(decode(view[start : start + decoding_t]))
            if on_batch is not None:
                on_batch()
        decoded.append(torch.cat(batches))
    return torch.stack(decoded)
