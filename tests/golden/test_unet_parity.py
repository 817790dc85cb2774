"""Parity of `SV4D2UNet` with the official `SpatialUNetModelWithTime` on the golden tiny-UNet forwards."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sv4d_lib.model import SV4D2UNet

CASES = [("unet_3d_T3V4_16", "network_config_4v"), ("unet_no3d_T2V8_16", "network_config_8v")]


@pytest.fixture(scope="module")
def tiny_config(golden_dir) -> dict:
    return json.loads((golden_dir / "tiny_unet_config.json").read_text())


@pytest.fixture(scope="module")
def tiny_weights(golden_dir) -> dict[str, torch.Tensor]:
    """Official keys without `model.diffusion_model.`, upcast from the stored fp16 to fp32."""
    sd = load_file(golden_dir / "tiny_unet_weights.safetensors")
    return {k.removeprefix("model.diffusion_model."): v.float() for k, v in sd.items()}


def load_case(golden_dir, case: str) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(golden_dir / f"{case}.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["json"])


def build(tiny_config, tiny_weights, config_key: str, dtype: torch.dtype = torch.float32) -> SV4D2UNet:
    """Built on `meta` then materialised uninitialised: the weights are loaded anyway (copied into `dtype`)."""
    net = SV4D2UNet(**tiny_config[config_key]["params"], device="meta", dtype=dtype).to_empty(device="cpu")
    net.load_state_dict(tiny_weights, strict=True)
    return net.eval()


@pytest.mark.parametrize("case, config_key", CASES)
def test_unet_matches_official_forward(golden_dir, tiny_config, tiny_weights, case, config_key):
    t, meta = load_case(golden_dir, case)
    assert meta["use_3d_attention"] == tiny_config[config_key]["params"]["use_3d_attention"]
    net = build(tiny_config, tiny_weights, config_key)
    with torch.no_grad():
        out = net(
            t["x"], t["timesteps"], t["context"], t["y"], t["cond_view"],
            num_frames=meta["T"], num_views=meta["V"],
            # the official call's inert inputs are accepted as-is
            cond_motion=t["cond_motion"], image_only_indicator=t["image_only_indicator"],
            num_video_frames=meta["num_video_frames"],
        )
    error = (out - t["expected_output"]).abs().max().item()
    print(f"{case}: max|Δ| = {error:.3e}")
    assert out.shape == t["expected_output"].shape
    assert error <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_stays_close_to_fp32(golden_dir, tiny_config, tiny_weights, dtype):
    """fp16/bf16 weights and activations run on CPU and track the fp32 result (GroupNorm32 stays fp32) to within
    two units of the format's rounding error, relative to the output's magnitude.

    A small slice of the golden inputs (B=1, T=1, 8x8) keeps CPU half-precision convolutions fast.
    """
    t, meta = load_case(golden_dir, "unet_3d_T3V4_16")
    views = meta["V"]
    inputs = (
        t["x"][:views, :, :8, :8], t["timesteps"][:views], t["context"][:1, :1], t["y"][:views],
        t["cond_view"][:views, :, :8, :8],
    )
    outputs = {}
    for run_dtype in (torch.float32, dtype):
        net = build(tiny_config, tiny_weights, "network_config_4v", run_dtype)
        with torch.no_grad():
            outputs[run_dtype] = net(inputs[0].to(run_dtype), *inputs[1:], num_frames=1, num_views=views)
    assert outputs[dtype].dtype == dtype
    error = (outputs[dtype].float() - outputs[torch.float32]).abs().max().item()
    scale = outputs[torch.float32].abs().max().item()
    print(f"{dtype}: max|Δ| = {error:.3e} (max |out| {scale:.3f})")
    assert error <= 2 * torch.finfo(dtype).eps * scale
