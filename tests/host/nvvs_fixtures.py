"""Test-only pieces for the conditioning/sampling host tests: the tiny checkpoint, the golden tiny UNet and two
test nodes (registered into the session's ComfyUI by `register_test_nodes`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sv4d_lib import conditioning
from sv4d_lib.model import SV4D2UNet
from tests.tiny_checkpoint import write_tiny_checkpoint

CKPT_FILE = "sv4d2_tiny_nvvs.safetensors"
CKPT_NAME = f"checkpoints/{CKPT_FILE}"
FIXTURE_NODE = "SV4D2TestSamplerFixture"
FRAMES_NODE = "SV4D2TestFrames"
UNET_PREFIX = "model.diffusion_model."


def golden_unet(golden_dir: Path) -> SV4D2UNet:
    """The tiny 4-view UNet with the golden weights, in float32."""
    params = json.loads((golden_dir / "tiny_unet_config.json").read_text())["network_config_4v"]["params"]
    net = SV4D2UNet(**params)
    weights = load_file(str(golden_dir / "tiny_unet_weights.safetensors"))
    net.load_state_dict({k[len(UNET_PREFIX):]: v.float() for k, v in weights.items()})
    return net.eval()


def write_checkpoint(models_dir: Path) -> str:
    """Write the tiny engine file (golden UNet + VAE, random tiny CLIP) once; returns its combo name."""
    path = models_dir / "checkpoints" / CKPT_FILE
    if not path.is_file():
        write_tiny_checkpoint(path)
    return CKPT_NAME


class FixtureNoise:
    """A NOISE object (as core RandomNoise) that returns the fixture's noise."""

    def __init__(self, noise: torch.Tensor):
        self.noise, self.seed = noise, 0

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        return self.noise.clone()


class SamplerFixtureNode:
    """NOISE, positive, negative and LATENT of `sampler_4v_T3V4_16` in the pack's conditioning contract."""

    golden_dir: Path

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("NOISE", "CONDITIONING", "CONDITIONING", "LATENT")
    FUNCTION = "build"
    CATEGORY = "testing"

    def build(self):
        data = load_file(str(self.golden_dir / "sampler_4v_T3V4_16.safetensors"))
        return (
            FixtureNoise(data["noise"]),
            contract_conditioning(data, "c"),
            contract_conditioning(data, "uc"),
            {"samples": torch.zeros_like(data["noise"])},
        )


def contract_conditioning(data: dict[str, torch.Tensor], half: str, num_frames: int = 3, num_views: int = 4) -> list:
    """Official-shaped fixture conds → per-latent rows (crossattn (1, T, D) → (T·V, 1, D), cond_view (V, ...) → T·V)."""
    extra = {
        "concat_latent_image": data[f"{half}.concat"],
        "sv4d2_vector": data[f"{half}.vector"],
        "sv4d2_cond_view": conditioning.per_view_rows(data[f"{half}.cond_view"], num_frames),
        "sv4d2_num_frames": num_frames,
        "sv4d2_num_views": num_views,
    }
    return [[conditioning.per_frame_rows(data[f"{half}.crossattn"][0], num_views)[:, None], extra]]


class FramesNode:
    """Smooth random frames (T, size, size, 3), 8-bit values like decoded images."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 12, "min": 1}), "size": ("INT", {"default": 64, "min": 8}),
                             "height": ("INT", {"default": 0, "min": 0}), "seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "build"
    CATEGORY = "testing"

    def build(self, count: int, size: int, height: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        small = torch.rand(count, 3, 8, 8, generator=g)
        frames = torch.nn.functional.interpolate(small, (height or size, size), mode="bilinear", align_corners=False)
        return ((frames.movedim(1, -1) * 255).round() / 255,)


def register_test_nodes(comfy_host, golden_dir: Path) -> None:
    SamplerFixtureNode.golden_dir = golden_dir
    comfy_host.nodes.NODE_CLASS_MAPPINGS[FIXTURE_NODE] = SamplerFixtureNode
    comfy_host.nodes.NODE_CLASS_MAPPINGS[FRAMES_NODE] = FramesNode


def unregister_test_nodes(comfy_host) -> None:
    for name in (FIXTURE_NODE, FRAMES_NODE):
        comfy_host.nodes.NODE_CLASS_MAPPINGS.pop(name, None)


@pytest.fixture(scope="module")
def nvvs_host(comfy_host, golden_dir):
    """The session's ComfyUI with the test nodes registered and the tiny engine file written."""
    register_test_nodes(comfy_host, golden_dir)
    write_checkpoint(comfy_host.models_dir)
    yield comfy_host
    unregister_test_nodes(comfy_host)
