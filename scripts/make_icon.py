"""Renders the pack's registry icon (docs/img/icon.png, pyproject's [tool.comfy] Icon): the sample object from the
four novel views of the official 4-view orbit, 2 × 2, on white — what the pack makes from one video.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sv4d_lib.cameras import OrbitCameras  # noqa: E402
from sv4d_lib.synthetic import render_scene  # noqa: E402

TILE = 200  # pixels per view: a 400 × 400 icon


def main() -> None:
    orbit = OrbitCameras.preset("4v")
    novel = OrbitCameras(orbit.elevations_deg[1:], orbit.azimuths_deg[1:])
    views = render_scene(novel, 1, TILE, TILE).rgb[:, 0]  # (4, H, W, 3), first frame
    grid = torch.cat([torch.cat([views[0], views[1]], 1), torch.cat([views[2], views[3]], 1)], 0)
    path = REPO / "docs" / "img" / "icon.png"
    Image.fromarray((grid.clamp(0, 1) * 255).round().byte().numpy()).save(path, optimize=True)
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
