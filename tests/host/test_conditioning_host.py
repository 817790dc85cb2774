"""SV4D2 Encode Video inside real ComfyUI with the tiny engine file: the conditioning contract, value by value.

Checks run under inference mode, like ComfyUI's executor, because the loaded weights are inference tensors.
"""
from __future__ import annotations

import pytest
import torch

from sv4d_lib import conditioning
from sv4d_lib.cameras import OrbitCameras

from . import nvvs_fixtures as fx
from .inprocess import NodeFailed

T, V, SIZE = 12, 4, 64


host = fx.nvvs_host


def encode_prompt(count: int = T, size: int = SIZE, height: int = 0, references: int = 0) -> dict:
    prompt = {
        "1": {"class_type": "SV4D2LoadModel",
              "inputs": {"ckpt_name": fx.CKPT_NAME, "variant": "auto", "precision": "fp32", "download": False}},
        "2": {"class_type": fx.FRAMES_NODE, "inputs": {"count": count, "size": size, "height": height, "seed": 1}},
        "3": {"class_type": "SV4D2Cameras", "inputs": {"preset": "4v", "elevation_deg": 0.0,
                                                      "cameras": '{"elevations_deg": [0, 0], "azimuths_deg": [0, 1]}'}},
        "4": {"class_type": "SV4D2EncodeVideo",
              "inputs": {"clip_vision": ["1", 1], "vae": ["1", 2], "frames": ["2", 0], "cameras": ["3", 0]}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
    }
    if references:
        prompt["6"] = {"class_type": fx.FRAMES_NODE, "inputs": {"count": references, "size": size, "height": 0,
                                                                "seed": 2}}
        prompt["4"]["inputs"]["reference_views"] = ["6", 0]
    return prompt


@torch.inference_mode()
def test_encode_video_follows_the_contract(host):
    result = host.run(encode_prompt())
    _, clip_vision, vae = result.outputs["1"]
    frames = result.outputs["2"][0]
    positive, negative, latent = result.outputs["4"]
    (cross, extra), (cross_uc, extra_uc) = positive[0], negative[0]
    n = T * V
    assert latent["samples"].shape == (n, 4, SIZE // 8, SIZE // 8) and not latent["samples"].any()
    assert (extra["sv4d2_num_frames"], extra["sv4d2_num_views"]) == (T, V)
    assert (extra_uc["sv4d2_num_frames"], extra_uc["sv4d2_num_views"]) == (T, V)
    # crossattn: the CLIP image embedding of frame t, with the official preprocessing, on every view of frame t
    pixels = conditioning.clip_preprocess(frames.movedim(-1, 1) * 2 - 1)
    embeds = clip_vision.model(pixel_values=pixels, intermediate_output=-2)[2].float()
    assert cross.shape == (n, 1, 64)
    assert torch.allclose(cross[:, 0], conditioning.per_frame_rows(embeds, V), atol=1e-6)
    assert not torch.allclose(cross[::V, 0], clip_vision.encode_image(frames)["image_embeds"].float(), atol=1e-3)
    # concat: the unscaled VAE mean of frame t
    assert torch.allclose(extra["concat_latent_image"], conditioning.per_frame_rows(vae.encode(frames), V), atol=1e-5)
    # vector: official camera embedding in the tiny layout [32 | 48 | 48]
    cams = OrbitCameras.preset("4v")
    expected = conditioning.camera_vector(cams, T, (32, 48, 48))
    assert torch.equal(extra["sv4d2_vector"], expected)
    assert not extra["sv4d2_cond_view"].any()  # first chunk: no reference views
    # negative: zeros except the camera part of the vector
    assert not cross_uc.any() and not extra_uc["concat_latent_image"].any() and not extra_uc["sv4d2_cond_view"].any()
    assert torch.equal(extra_uc["sv4d2_vector"], conditioning.uncond_vector(expected, 32))


@torch.inference_mode()
def test_reference_views_become_cond_view_rows(host):
    result = host.run(encode_prompt(references=V))
    vae, refs = result.outputs["1"][2], result.outputs["6"][0]
    positive, negative, _ = result.outputs["4"]
    cond_view = positive[0][1]["sv4d2_cond_view"]
    assert torch.allclose(cond_view, conditioning.per_view_rows(vae.encode(refs), T), atol=1e-5)
    assert not negative[0][1]["sv4d2_cond_view"].any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"height": 48}, "square frames"),
        ({"size": 60}, "multiple of 8"),
        ({"references": 3}, "reference views must be 4 images"),
    ],
)
def test_bad_frames_are_clear_errors(host, kwargs, message):
    with pytest.raises(NodeFailed, match=message):
        host.run(encode_prompt(**kwargs))


def test_schema(host):
    info = host.nodes.NODE_CLASS_MAPPINGS["SV4D2EncodeVideo"].GET_NODE_INFO_V1()
    assert list(info["input"]["required"]) == ["clip_vision", "vae", "frames", "cameras"]
    assert list(info["input"]["optional"]) == ["reference_views"]
    assert info["output"] == ["CONDITIONING", "CONDITIONING", "LATENT"]
    for name, value in {**info["input"]["required"], **info["input"]["optional"]}.items():
        assert value[1].get("tooltip"), f"input {name} has no tooltip"
