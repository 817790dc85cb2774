"""Parity of `sv4d_lib.sampling` with the official Euler-EDM loop (sampler_4v_T3V4_16 fixture, tiny 3D UNet)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sv4d_lib import sampling as S
from sv4d_lib.model import SV4D2UNet

KEYS = ("crossattn", "concat", "vector", "cond_view")
PREFIX = "model.diffusion_model."


@pytest.fixture(scope="module")
def fixture(golden_dir) -> dict[str, torch.Tensor]:
    return load_file(str(golden_dir / "sampler_4v_T3V4_16.safetensors"))


@pytest.fixture(scope="module")
def unet(golden_dir) -> SV4D2UNet:
    params = json.loads((golden_dir / "tiny_unet_config.json").read_text())["network_config_4v"]["params"]
    net = SV4D2UNet(**params)
    weights = load_file(str(golden_dir / "tiny_unet_weights.safetensors"))
    net.load_state_dict({k[len(PREFIX):]: v.float() for k, v in weights.items()})
    return net.eval()


def conds(fixture: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    return ({k: fixture[f"c.{k}"] for k in KEYS}, {k: fixture[f"uc.{k}"] for k in KEYS})


def test_sigmas_match_official(fixture):
    assert torch.equal(S.edm_sigmas(4), fixture["sigmas"])


@torch.no_grad()
def test_free_running_loop_matches_official(fixture, unet):
    cond, uncond = conds(fixture)
    grid = fixture["cfg_scale"].view(3, 4)
    steps = []
    out = S.sample_nvvs(unet, fixture["noise"].clone(), cond, uncond, fixture["sigmas"], grid, 3, 4,
                        callback=lambda i, x, den: steps.append((x.clone(), den.clone())))
    scale = fixture["x_start"].abs().max()
    assert (out - fixture["expected_output"]).abs().max() <= 1e-5
    assert (steps[0][0] - fixture["x_after_step_1"]).abs().max() <= 1e-6 * scale
    xs = torch.stack([x for x, _ in steps])
    assert (xs - fixture["x_steps"]).abs().max() <= 1e-6 * scale
    dens = torch.stack([den for _, den in steps])
    assert (dens - fixture["denoised_steps"]).abs().max() <= 1e-5


@torch.no_grad()
def test_teacher_forced_steps_match_official(fixture, unet):
    """One step at a time from the stored x_i: UNet-level precision for every D(x_i, σ_i) and x_{i+1}."""
    cond, uncond = conds(fixture)
    grid = fixture["cfg_scale"]
    sigmas = fixture["sigmas"]
    xs = [fixture["x_start"], *fixture["x_steps"][:-1]]
    scale = fixture["x_start"].abs().max()
    for i, x in enumerate(xs):
        sigma = x.new_full((12,), sigmas[i].item())
        denoised = S.denoise(unet, x, sigma, cond, uncond, grid, 3, 4)
        assert (denoised - fixture["denoised_steps"][i]).abs().max() <= 1e-6, f"step {i}"
        x_next = S.sample_nvvs(unet, x / torch.sqrt(1.0 + sigmas[i] ** 2), cond, uncond, sigmas[i : i + 2],
                               grid.view(3, 4), 3, 4)
        assert (x_next - fixture["x_steps"][i]).abs().max() <= 1e-6 * scale, f"step {i}"
