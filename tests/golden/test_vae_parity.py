"""The VAE built by SV4D2 Load Model (a core ComfyUI VAE) against the official encode/decode (golden `vae_cases`).

Encode = conditioning VAE of embedder 1 → unscaled mean; decode = first-stage decoder of z / 0.18215 without
post_quant_conv. Both within 1e-5 of the official float32 outputs (noise floor ~3e-6, MANIFEST.md).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sv4d_lib import checkpoint
from tests.tiny_checkpoint import write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
PACK_NODES = "sv4d2_pack_nodes_under_test"
LATENT_SCALE = 0.18215


@pytest.fixture(scope="module")
def loaders():
    """The pack's `nodes.loaders` on ComfyUI in CPU mode, imported under a private package name because ComfyUI
    owns the top-level name `nodes`."""
    from headless.server import find_comfyui

    comfy_dir = str(find_comfyui())
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args

    args.cpu = True
    if PACK_NODES not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK_NODES, REPO / "nodes" / "__init__.py",
                                                      submodule_search_locations=[str(REPO / "nodes")])
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NODES] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{PACK_NODES}.loaders")


@pytest.fixture(scope="module")
def vae(loaders, golden_dir, tmp_path_factory):
    path = write_tiny_checkpoint(tmp_path_factory.mktemp("vae") / "sv4d2_tiny.safetensors")
    vae = loaders.build_vae(checkpoint.inspect_checkpoint(path))
    assert vae.vae_dtype == torch.float32  # ComfyUI's choice on CPU; the official decode runs in fp32 too
    return vae


@pytest.fixture(scope="module")
def cases(golden_dir):
    return load_file(golden_dir / "vae_cases.safetensors")


def test_encode_gives_the_unscaled_official_mean(vae, cases):
    pixels = ((cases["image"] + 1) / 2).movedim(1, -1)  # [-1, 1] NCHW → ComfyUI IMAGE
    latents = vae.encode(pixels)
    assert latents.shape == cases["expected_latents"].shape
    torch.testing.assert_close(latents, cases["expected_latents"], rtol=0, atol=1e-5)


def test_decode_matches_official_first_stage(vae, cases):
    z = cases["z"] / LATENT_SCALE
    with torch.no_grad():
        raw = vae.first_stage_model.decode(z.to(vae.vae_dtype))
    torch.testing.assert_close(raw, cases["expected_decoded"], rtol=0, atol=1e-5)
    images = vae.decode(z)  # ComfyUI's IMAGE: clamp((x + 1) / 2, 0, 1), channels last
    expected = ((cases["expected_decoded"] + 1) / 2).clamp(0, 1).movedim(1, -1)
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-5)
