"""The real development scene (`../shared/reference/real_scenes/`, README there): loader and the pooled PSNR of
its reference numbers, shared by the 4D benches and the real-scene tests."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sv4d_lib.cameras import OrbitCameras

SCENES = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "real_scenes"


@dataclass
class RealScene:
    """Training and held-out multi-view videos (V, F, H, W, 3) / masks (V, F, H, W) in [0, 1] with their cameras."""

    train_rgb: torch.Tensor
    train_mask: torch.Tensor
    heldout_rgb: torch.Tensor
    heldout_mask: torch.Tensor
    train_cameras: OrbitCameras
    heldout_cameras: OrbitCameras
    meta: dict


def load_real_scene(size: int = 128, name: str = "maidroid", folder: Path = SCENES) -> RealScene:
    """Load `<name>_<size>.safetensors` and `<name>.json`; a clear error when the shared folder is missing."""
    from safetensors.torch import load_file

    path = folder / f"{name}_{size}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"real scene {path} not found: put the shared reference folder beside the clone "
                                "(../shared/reference/real_scenes)")
    data = load_file(str(path))
    meta = json.loads((folder / f"{name}.json").read_text())

    def cameras(key: str) -> OrbitCameras:
        pairs = data[key].double()
        return OrbitCameras(pairs[:, 0].tolist(), pairs[:, 1].tolist(), meta["radius"], meta["fov_deg"])

    def unit(key: str) -> torch.Tensor:
        return data[key].float() / 255

    return RealScene(unit("train_rgb"), unit("train_mask"), unit("heldout_rgb"), unit("heldout_mask"),
                     cameras("train_cameras"), cameras("heldout_cameras"), meta)


def pooled_psnr(pred: torch.Tensor, target: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """PSNR (dB) of the squared error pooled over every pixel (inside `where` when given), as the scene's README
    quotes its reference numbers."""
    error = (pred.float() - target.float()).square()
    if where is not None:
        error = error[where]
    return float(-10 * torch.log10(error.mean().clamp(min=1e-10)))
