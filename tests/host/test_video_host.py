"""SV4D2 Prepare Video inside real ComfyUI, fed by core Load Image (+ its alpha mask, inverted)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sv4d_lib import video

from .inprocess import NodeFailed


@pytest.fixture(scope="module")
def rgba_png(comfy_host) -> str:
    """A 96×80 RGBA image: an opaque dark-red disc off centre on a transparent black background."""
    h, w = 96, 80
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 40) ** 2 + (xx - 50) ** 2 < 15**2
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[disc] = (120, 20, 20, 255)
    Image.fromarray(rgba, mode="RGBA").save(comfy_host.input_dir / "sv4d2_disc.png")
    return "sv4d2_disc.png"


def prepare_prompt(image: str, mode: str = "official", size: int = 64, use_mask: bool = True) -> dict:
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
        "3": {"class_type": "InvertMask", "inputs": {"mask": ["1", 1]}},
        "4": {"class_type": "SV4D2PrepareVideo",
              "inputs": {"frames": ["2", 0], "size": size, "mode": mode, "frame_ratio": 0.9}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    if use_mask:
        prompt["4"]["inputs"]["mask"] = ["3", 0]
    return prompt


@pytest.mark.parametrize("mode", video.MODES)
def test_prepare_video_with_a_mask_matches_the_library(comfy_host, rgba_png, mode):
    result = comfy_host.run(prepare_prompt(rgba_png, mode))
    frames = result.outputs["4"][0]
    assert frames.shape == (3, 64, 64, 3)
    image, mask = result.outputs["1"][0], 1.0 - result.outputs["1"][1]
    assert torch.equal(frames, video.prepare_frames(image.repeat(3, 1, 1, 1), mask, size=64, mode=mode))
    assert frames[:, 0, 0].eq(1.0).all()  # transparent background composited on white
    assert result.ui["5"]["images"]  # core preview accepted the frames


def test_prepare_video_without_mask_uses_white_detection(comfy_host, rgba_png):
    # Load Image drops alpha, so the black background is "object" everywhere: the crop is the whole frame
    frames = comfy_host.run(prepare_prompt(rgba_png, use_mask=False)).outputs["4"][0]
    assert frames.shape == (3, 64, 64, 3) and frames[:, 0, 0].eq(1.0).all()


def test_empty_mask_is_a_clear_error(comfy_host, rgba_png):
    prompt = prepare_prompt(rgba_png)
    prompt["6"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 80, "height": 96}}
    prompt["4"]["inputs"]["mask"] = ["6", 0]
    with pytest.raises(NodeFailed, match="no object found"):
        comfy_host.run(prompt)


def test_tiny_frames_are_a_clear_error(comfy_host):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
        "2": {"class_type": "SV4D2PrepareVideo",
              "inputs": {"frames": ["1", 0], "size": 64, "mode": "official", "frame_ratio": 0.9}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    with pytest.raises(NodeFailed, match="at least 16 pixels"):
        comfy_host.run(prompt)
