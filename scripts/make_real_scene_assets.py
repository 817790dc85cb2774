"""Writes the shipped real scene (assets/sv4d2_maidroid_*.png + assets/maidroid.json) from the development scene.

`python scripts/make_real_scene_assets.py DIR` where DIR holds `maidroid_128.safetensors` and `maidroid.json`
(the project's shared reference scenes). Each view's frames are stored view-major in one animated PNG with
alpha (lossless, ~0.3 MB instead of the 11 MB tensor file), which core *Load Image* reads as an IMAGE batch
plus a MASK (1 − alpha): the train views (5 × 21 frames) for the fit, the held-out views (3 × 21) to score it.
Attribution and licence (CC BY-SA 4.0): assets/README.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence
from safetensors.numpy import load_file

ASSETS = Path(__file__).resolve().parent.parent / "assets"
FPS = 15  # the walk cycle's own rate (the mod plays it at 15 fps)
KEPT = ("name", "radius", "fov_deg", "fov_is", "convention", "background", "train_elevations", "train_azimuths",
        "heldout_elevations", "heldout_azimuths", "num_frames", "time_of_frame", "placement", "source", "animation")


def write_views(rgb: np.ndarray, mask: np.ndarray, path: Path) -> None:
    """(V, F, H, W, 3) colour over white + (V, F, H, W) alpha → one animated RGBA PNG, view-major; checked."""
    frames = [np.dstack([rgb[v, f], mask[v, f]]) for v in range(rgb.shape[0]) for f in range(rgb.shape[1])]
    images = [Image.fromarray(frame, "RGBA") for frame in frames]
    temporary = path.with_suffix(".tmp.png")
    images[0].save(temporary, save_all=True, append_images=images[1:], duration=1000 / FPS, loop=0, optimize=True)
    back = np.stack([np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(Image.open(temporary))])
    if not np.array_equal(back, np.stack(frames)):
        temporary.unlink()
        raise RuntimeError(f"{path.name} does not read back bit-exactly; not written")
    temporary.replace(path)


def main(source: Path) -> None:
    scene = load_file(source / "maidroid_128.safetensors")
    write_views(scene["train_rgb"], scene["train_mask"], ASSETS / "sv4d2_maidroid_views.png")
    write_views(scene["heldout_rgb"], scene["heldout_mask"], ASSETS / "sv4d2_maidroid_heldout.png")
    meta = json.loads((source / "maidroid.json").read_text())
    kept = {key: meta[key] for key in KEPT}
    kept["files"] = {"sv4d2_maidroid_views.png": "train views, view-major (5 views × 21 frames), 128², RGBA",
                     "sv4d2_maidroid_heldout.png": "held-out views, view-major (3 views × 21 frames), 128², RGBA"}
    (ASSETS / "maidroid.json").write_text(json.dumps(kept, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
