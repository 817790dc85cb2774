"""SV4D 2.0 conditioning: CLIP preprocessing, the camera `vector`, and per-latent cond/uncond rows.

Everything follows the official conditioner (spec §3): crossattn = CLIP embedding of input frame t, concat =
unscaled VAE mean of input frame t, vector = [sigma-emb(1e-5) | emb(polar) | emb(azimuth)], cond_view =
unscaled VAE mean of reference novel view v; the unconditional branch zeroes all of them except the camera part
of `vector` (spec §3.5). Per-latent tensors are frame-major `(T·V, ...)` in (t, v) order.
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from .cameras import OrbitCameras
from .model.embeddings import timestep_embedding

# Widths of the three `vector` parts of the production model: sigma, polar, azimuth (adm_in_channels = 1280).
VECTOR_DIMS: tuple[int, int, int] = (256, 512, 512)
# `vector` layout by CLIP width (= UNet context_dim): production (1024-d ViT-H/14, adm 1280) and the tiny golden/test
# model (64-d, adm 128 = [32 | 48 | 48]). The conditioning encoder sees the CLIP width, not the UNet.
VECTOR_DIMS_BY_CONTEXT_DIM: dict[int, tuple[int, int, int]] = {1024: VECTOR_DIMS, 64: (32, 48, 48)}
# The official ZeroSampler conditions every VAE embedder on noise level 1e-5, embedded into `vector`.
COND_SIGMA = 1e-5

CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def relative_angles(cameras: OrbitCameras, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Polar and azimuth (radians, float64, `(T·V,)` in (t, v) order) of the V novel views relative to view 0.

    Reproduces the official script's float64 statements (spec §3.4) so the embeddings match bit for bit:
    polar = deg2rad(90 − e), azimuth = deg2rad((a − a_last) mod 360), then
    polar_rel = (polar_v − polar_0 + π/2) mod 2π and azimuth_rel = (azim_v − azim_0) mod 2π.
    """
    cameras.require_novel_views()
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    # Python floats are IEEE doubles; math.radians and % match numpy's deg2rad and remainder exactly.
    polars = [math.radians(90.0 - e) for e in cameras.elevations_deg]
    azimuths = [math.radians((a - cameras.azimuths_deg[-1]) % 360.0) for a in cameras.azimuths_deg]
    polar_rel = [(p - polars[0] + math.pi / 2) % (2 * math.pi) for p in polars[1:]]
    azimuth_rel = [(a - azimuths[0]) % (2 * math.pi) for a in azimuths[1:]]
    polar = torch.tensor(polar_rel, dtype=torch.float64).repeat(num_frames)
    azimuth = torch.tensor(azimuth_rel, dtype=torch.float64).repeat(num_frames)
    return polar, azimuth


def camera_vector(cameras: OrbitCameras, num_frames: int, dims: tuple[int, int, int] = VECTOR_DIMS) -> torch.Tensor:
    """Conditional `vector` `(T·V, sum(dims))`: `[sigma-emb(1e-5) | emb(polar) | emb(azimuth)]`.

    Angles are relative to the input view (camera 0); rows are in (t, v) order. `dims` only changes for
    reduced test models (the tiny golden UNet uses (32, 48, 48)).
    """
    polar, azimuth = relative_angles(cameras, num_frames)
    # The official sigma is a float32 tensor filled with 1e-5, embedded like a timestep.
    sigma = torch.full((polar.shape[0],), COND_SIGMA, dtype=torch.float32)
    return torch.cat(
        [timestep_embedding(sigma, dims[0]), timestep_embedding(polar, dims[1]), timestep_embedding(azimuth, dims[2])],
        dim=1,
    )


def vector_dims(context_dim: int) -> tuple[int, int, int]:
    """(sigma, polar, azimuth) widths of `vector` for a model whose CLIP embeddings are `context_dim` wide."""
    if context_dim not in VECTOR_DIMS_BY_CONTEXT_DIM:
        raise ValueError(
            f"CLIP vision gives {context_dim}-d embeddings; SV4D 2.0 needs the ViT-H/14 image encoder (1024-d) of "
            "its checkpoint: load it with SV4D2 Load Model"
        )
    return VECTOR_DIMS_BY_CONTEXT_DIM[context_dim]


def uncond_vector(vector: torch.Tensor, sigma_dim: int = VECTOR_DIMS[0]) -> torch.Tensor:
    """Unconditional `vector`: the sigma part zeroed, the camera parts kept (official force_uc_zero_embeddings)."""
    out = vector.clone()
    out[:, :sigma_dim] = 0
    return out


def camera_vector_uc(
    cameras: OrbitCameras, num_frames: int, dims: tuple[int, int, int] = VECTOR_DIMS
) -> torch.Tensor:
    """Unconditional `vector` of the given cameras (see `camera_vector`, `uncond_vector`)."""
    return uncond_vector(camera_vector(cameras, num_frames, dims), dims[0])


def _gaussian_kernel1d(size: int, sigma: float) -> torch.Tensor:
    # kornia 0.6.9's kernel, computed with a Python-float sigma; kornia >= 0.7 builds it from a float32 tensor
    # and lands 1 ulp away, which moves the preprocessed pixels by ~1e-6 (measured against the golden fixture).
    x = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-x.pow(2.0) / float(2 * sigma**2))
    return kernel / kernel.sum()


def clip_preprocess(images: torch.Tensor) -> torch.Tensor:
    """CLIP input of the official image embedder: `(N, 3, H, W)` in [−1, 1] → `(N, 3, 224, 224)` normalised.

    kornia 0.6.9 `resize(bicubic, align_corners=True, antialias=True)` = separable Gaussian pre-blur (reflect
    border, σ = (factor − 1)/2) then bicubic interpolation; then (x+1)/2 and CLIP mean/std (spec §3.2).
    The blur kernel is built here (see `_gaussian_kernel1d`); filtering and normalisation use kornia.
    """
    import kornia

    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"clip_preprocess expects (N, 3, H, W) RGB images in [-1, 1], got shape {tuple(images.shape)}")
    x = images.float()
    h, w = x.shape[-2:]
    factors = (h / CLIP_SIZE, w / CLIP_SIZE)
    if max(factors) > 1:
        sigmas = (max((factors[0] - 1.0) / 2.0, 0.001), max((factors[1] - 1.0) / 2.0, 0.001))
        sizes = [int(max(2.0 * 2 * s, 3)) for s in sigmas]
        sizes = [k if k % 2 else k + 1 for k in sizes]
        kernel_y = _gaussian_kernel1d(sizes[0], sigmas[0]).to(x.device)
        kernel_x = _gaussian_kernel1d(sizes[1], sigmas[1]).to(x.device)
        x = kornia.filters.filter2d_separable(x, kernel_x[None], kernel_y[None], border_type="reflect")
    x = F.interpolate(x, (CLIP_SIZE, CLIP_SIZE), mode="bicubic", align_corners=True)
    mean = torch.tensor(CLIP_MEAN, device=x.device)
    std = torch.tensor(CLIP_STD, device=x.device)
    return kornia.enhance.normalize((x + 1.0) / 2.0, mean, std)


def per_frame_rows(per_frame: torch.Tensor, num_novel_views: int) -> torch.Tensor:
    """`(T, ...)` → `(T·V, ...)`: row (t, v) = entry t (crossattn, concat: the input frame is shared by its views)."""
    return per_frame.repeat_interleave(num_novel_views, dim=0)


def per_view_rows(per_view: torch.Tensor, num_frames: int) -> torch.Tensor:
    """`(V, ...)` → `(T·V, ...)`: row (t, v) = entry v (cond_view: reference view v for every frame)."""
    return per_view.repeat(num_frames, *([1] * (per_view.ndim - 1)))


def latent_rows(
    clip_embeds: torch.Tensor,
    frame_latents: torch.Tensor,
    vector: torch.Tensor,
    reference_latents: torch.Tensor | None,
    num_novel_views: int,
    sigma_dim: int = VECTOR_DIMS[0],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Conditional and unconditional per-latent rows `(T·V, ...)` of one window.

    clip_embeds `(T, D)`, frame_latents `(T, 4, h, w)` (unscaled VAE means), vector `(T·V, adm)` from
    `camera_vector`, reference_latents `(V, 4, h, w)` (unscaled VAE means of the first frame's novel views) or
    None for a first window (zeros, as the official `do_sample` does); `sigma_dim` is the width of the sigma part
    of `vector` (zeroed in the uncond). Returns dicts with keys `crossattn`
    `(T·V, 1, D)`, `concat`, `vector`, `cond_view` `(T·V, 4, h, w)`.
    """
    num_frames = clip_embeds.shape[0]
    if frame_latents.shape[0] != num_frames:
        raise ValueError(f"{clip_embeds.shape[0]} CLIP embeddings but {frame_latents.shape[0]} frame latents")
    if vector.shape[0] != num_frames * num_novel_views:
        raise ValueError(
            f"camera vector has {vector.shape[0]} rows, expected {num_frames}·{num_novel_views}; the cameras must "
            f"have {num_novel_views} novel views and the vector must be built for {num_frames} frames"
        )
    if reference_latents is None:
        cond_view = frame_latents.new_zeros(num_frames * num_novel_views, *frame_latents.shape[1:])
    else:
        if reference_latents.shape[0] != num_novel_views or reference_latents.shape[1:] != frame_latents.shape[1:]:
            raise ValueError(
                f"reference views must be {num_novel_views} latents of shape {tuple(frame_latents.shape[1:])}, got "
                f"{tuple(reference_latents.shape)}; give one reference image per novel view, at the frames' size"
            )
        cond_view = per_view_rows(reference_latents.to(frame_latents), num_frames)
    cond = {
        "crossattn": per_frame_rows(clip_embeds, num_novel_views)[:, None],
        "concat": per_frame_rows(frame_latents, num_novel_views),
        "vector": vector,
        "cond_view": cond_view,
    }
    uncond = {
        "crossattn": torch.zeros_like(cond["crossattn"]),
        "concat": torch.zeros_like(cond["concat"]),
        "vector": uncond_vector(vector, sigma_dim),
        "cond_view": torch.zeros_like(cond["concat"]),
    }
    return cond, uncond


def official_conds(rows: dict[str, torch.Tensor], num_frames: int, num_novel_views: int) -> dict[str, torch.Tensor]:
    """Per-latent rows → the official conditioner shapes used by `sampling.sample_nvvs`.

    crossattn `(1, T, D)` (the entry of view 0 of each frame), concat `(T·V, 4, h, w)`, vector `(T·V, adm)`,
    cond_view `(V, 4, h, w)` (the rows of frame 0).
    """
    n = num_frames * num_novel_views
    for key, value in rows.items():
        if value.shape[0] != n:
            raise ValueError(f"conditioning {key!r} has {value.shape[0]} rows, expected T·V = {n}")
    return {
        "crossattn": rows["crossattn"][::num_novel_views, 0][None],
        "concat": rows["concat"],
        "vector": rows["vector"],
        "cond_view": rows["cond_view"][:num_novel_views],
    }
