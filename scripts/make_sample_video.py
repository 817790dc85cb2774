"""Renders the pack's sample input video (assets/sample_object.mp4) from the procedural scene generator.

The object (textured ellipsoids that move and deform) is seen from the input view (elevation 0, azimuth 0) on
white, 21 frames at 10 fps like the official script's default clip length: long enough for the 4-view
autoregressive extension (windows 0-11 and 9-20) and for the 8-view model (windows of 5 frames).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sv4d_lib.cameras import OrbitCameras  # noqa: E402
from sv4d_lib.synthetic import render_scene  # noqa: E402
from sv4d_lib.video import write_video  # noqa: E402

FRAMES, SIZE, FPS = 21, 576, 10


def main() -> None:
    scene = render_scene(OrbitCameras([0.0], [0.0]), FRAMES, SIZE, SIZE)
    path = REPO / "assets" / "sample_object.mp4"
    path.parent.mkdir(exist_ok=True)
    write_video(scene.rgb[0], str(path), FPS)
    print(f"wrote {path.relative_to(REPO)} ({FRAMES} frames, {SIZE}², {path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
