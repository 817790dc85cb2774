"""Export 4D Mesh inside real ComfyUI: where its frame rate comes from (never a silent default)."""
from __future__ import annotations

import pytest
import torch

from .inprocess import NodeFailed, pack_module
from .test_nerf_host import graph


def test_frame_rate_comes_from_the_source_video(comfy_host, tmp_path):
    from comfy_api.latest import InputImpl

    from sv4d_lib.video import write_video

    export = pack_module("nodes.export")
    path = tmp_path / "source.mp4"
    write_video(torch.rand(4, 16, 16, 3), path, fps=7.0)
    assert export.resolve_fps(0.0, InputImpl.VideoFromFile(str(path))) == pytest.approx(7.0)
    assert export.resolve_fps(12.5, InputImpl.VideoFromFile(str(path))) == 12.5  # set by hand: the user's rate
    with pytest.raises(ValueError, match="no video is connected"):
        export.resolve_fps(0.0, None)


def test_export_without_a_frame_rate_is_refused(comfy_host):
    prompt = graph()
    prompt["export"]["inputs"].update(fps=0.0)
    with pytest.raises(NodeFailed, match="no video is connected"):
        comfy_host.run({k: prompt[k] for k in ("cams", "scene", "fit", "render", "refit", "export", "view")})
