"""Image-quality metrics of rendered multi-view videos against targets (kornia: pure torch, no torchvision)."""
from __future__ import annotations

import torch


def video_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM (11×11 Gaussian window) over frames; `pred`/`target` (N, H, W, 3) in [0, 1]."""
    import kornia.metrics

    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[-1] != 3:
        raise ValueError(
            f"metrics need two image batches of the same shape (N, H, W, 3), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}; render the field at the target's size and frame count"
        )
    a = pred.float().clamp(0, 1).permute(0, 3, 1, 2)
    b = target.float().to(a.device).clamp(0, 1).permute(0, 3, 1, 2)
    mse = (a - b).square().flatten(1).mean(dim=1)
    psnr = 10 * torch.log10(1.0 / mse.clamp(min=1e-10))  # per image, then averaged (the usual NeRF protocol)
    ssim = kornia.metrics.ssim(a, b, window_size=11).flatten(1).mean(dim=1)
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean())}
