"""Losses of the 4D fit: visibility-weighted photometric MSE, silhouette loss and LPIPS (SV4D 2.0 §4), and the
opacity total variation that stands in for a shape prior where five views leave the depth open.

Generated novel views are least reliable where the surface is seen at a grazing angle, so each pixel's squared
error is weighted by W = clip(v·n, 0, 1) (v: unit direction towards the camera, n: the field's own surface normal,
detached). LPIPS uses a pure-torch VGG16 (torchvision's CPU build is unusable here, nerf4d.md §3) loading
torchvision's VGG16 weights and the `lpips` package's linear heads from local files; nothing is downloaded.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

VGG16_WEIGHTS = "vgg16-397923af.pth"  # torchvision's file name in the torch hub cache
# VGG16 "features" layout (cfg D): conv widths, "M" = 2×2 max pool; LPIPS taps relu1_2..relu5_3.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_LPIPS_TAPS = (3, 8, 15, 22, 29)
# LPIPS ScalingLayer constants (inputs in [−1, 1] → ImageNet statistics).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def visibility_weights(normals: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """W = clip(v·n, 0, 1) with v = −ray direction (towards the camera); normals and dirs (N, 3)."""
    return (-(dirs * normals).sum(dim=-1)).clamp(0.0, 1.0)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over pixels of `weights · ‖pred − target‖²/3`; pred/target (N, 3), weights (N,) or None."""
    error = (pred - target).square().mean(dim=-1)
    return (error if weights is None else weights * error).mean()


def mask_loss(acc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Silhouette loss: MSE between rendered opacity and the target mask."""
    return (acc - mask).square().mean()


def opacity_total_variation(sigma: torch.Tensor, sigma_nearby: torch.Tensor, step: float) -> torch.Tensor:
    """Mean |α(x) − α(x + ε·d)| over pairs of points (N,) ε apart in random directions d, α = 1 − exp(−σ·step).

    For a near-binary opacity this estimates the surface area per unit volume, so minimising it prefers the least
    surface the views allow. Uniformly coloured boxes seen from a ring of views admit any shape inside their visual
    hull (hexagonal prisms around boxes, bulging fronts and backs); the least-area shape is closer to the truth.
    """
    alpha = 1.0 - torch.exp(-sigma * step)
    alpha_nearby = 1.0 - torch.exp(-sigma_nearby * step)
    return (alpha - alpha_nearby).abs().mean()


class LPIPS(nn.Module):
    """LPIPS-VGG (Zhang et al. 2018) in pure torch; `forward(pred, target)` on (B, 3, H, W) images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers)  # indices match torchvision's vgg16().features
        widths = [64, 128, 256, 512, 512]
        self.lins = nn.ModuleList(nn.Conv2d(w, 1, 1, bias=False) for w in widths)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _LPIPS_TAPS:
                taps.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean LPIPS distance over the batch."""
        a = self._taps(((pred * 2 - 1) - self.shift) / self.scale)
        b = self._taps(((target * 2 - 1) - self.shift) / self.scale)
        return sum(lin((fa - fb).square()).mean(dim=(1, 2, 3)) for lin, fa, fb in zip(self.lins, a, b)).mean()

    def load_weights(self, vgg_state: dict[str, torch.Tensor], lin_state: dict[str, torch.Tensor]) -> LPIPS:
        """torchvision VGG16 state dict (`features.*` keys used) + lpips heads (`linK.model.1.weight`)."""
        self.features.load_state_dict({k[len("features."):]: v for k, v in vgg_state.items() if k.startswith("features.")})
        for k, lin in enumerate(self.lins):
            lin.weight.data.copy_(lin_state[f"lin{k}.model.1.weight"])
        return self


def default_lpips_paths() -> tuple[Path | None, Path | None]:
    """Where weights already live on disk: torch hub's VGG16 checkpoint and the `lpips` package's heads.

    The package is located without importing it (its import needs torchvision).
    """
    vgg = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_WEIGHTS
    spec = importlib.util.find_spec("lpips")
    lin = None
    if spec is not None and spec.submodule_search_locations:
        lin = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "vgg.pth"
    return (vgg if vgg.is_file() else None), (lin if lin is not None and lin.is_file() else None)


_notified = False


def load_lpips(
    vgg_path: str | Path | None = None, lin_path: str | Path | None = None, device: torch.device | str = "cpu"
) -> LPIPS | None:
    """LPIPS from local weight files (defaults: `default_lpips_paths()`), or None with one notice when absent."""
    global _notified
    default_vgg, default_lin = default_lpips_paths()
    vgg_path, lin_path = vgg_path or default_vgg, lin_path or default_lin
    missing = [name for name, path in (("VGG16", vgg_path), ("LPIPS heads", lin_path)) if not path or not Path(path).is_file()]
    if missing:
        if not _notified:
            log.warning(
                "LPIPS loss disabled: %s weights not found (looked for %s in the torch hub cache and the `lpips` "
                "package's weights/v0.1/vgg.pth); the fit continues with MSE + mask losses. Install `lpips` and put "
                "torchvision's %s into %s (or pass both paths) to enable it.",
                " and ".join(missing), VGG16_WEIGHTS, VGG16_WEIGHTS, Path(torch.hub.get_dir()) / "checkpoints",
            )
            _notified = True
        return None
    vgg_state = torch.load(vgg_path, map_location="cpu", weights_only=True)
    lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
    return LPIPS().load_weights(vgg_state, lin_state).to(device).eval()
