"""The CLIP and VAE shape tables of sv4d_lib.checkpoint against the official engine file's tensor list."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sv4d_lib import checkpoint


@pytest.fixture(scope="module")
def official_shapes(golden_dir) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the official sv4d2.safetensors conditioner and first stage (shared reference)."""
    shapes = {}
    for name in ("sv4d2_conditioner_keys.json", "sv4d2_first_stage_keys.json"):
        shapes.update({k: tuple(v) for k, v in json.loads((golden_dir.parent / name).read_text()).items()})
    return shapes


def test_the_official_clip_tower_matches_its_shape_table(official_shapes):
    clip = checkpoint._strip(official_shapes, checkpoint.CLIP_PREFIX)
    config = checkpoint._clip_config(Path("sv4d2.safetensors"), clip, {}, context_dim=1024)
    assert (config.width, config.layers, config.heads, config.output_dim) == (1280, 32, 16, 1024)
    visual = {k: v for k, v in clip.items() if k.startswith("visual.")}
    assert checkpoint.clip_visual_shapes(config) == visual


def test_the_official_vae_matches_its_shape_tables(official_shapes):
    encoder = checkpoint._strip(official_shapes, checkpoint.COND_VAE_PREFIX)
    decoder = checkpoint._strip(official_shapes, checkpoint.DECODER_PREFIX)
    config = checkpoint._vae_config(Path("sv4d2.safetensors"), encoder, decoder)
    expected_encoder, expected_decoder = checkpoint.vae_architecture_shapes(config)
    assert expected_encoder == {k: v for k, v in encoder.items() if k.startswith(("encoder.", "quant_conv."))}
    assert expected_decoder == decoder and len(decoder) == 138  # spec §6: 138 first-stage tensors


@pytest.mark.parametrize("key, shape, problem", [
    ("visual.proj", (1288, 1024), r"CLIP image encoder tensors .*visual\.proj: \(1288, 1024\) instead of \(1280, 1024\)"),
    ("visual.transformer.resblocks.3.attn.in_proj_bias", (3000,), "CLIP image encoder tensors"),
])
def test_a_wrong_clip_tensor_is_named(official_shapes, key, shape, problem):
    clip = checkpoint._strip(official_shapes, checkpoint.CLIP_PREFIX)
    clip[key] = shape
    with pytest.raises(ValueError, match=problem):
        checkpoint._clip_config(Path("sv4d2.safetensors"), clip, {}, context_dim=1024)


@pytest.mark.parametrize("value", ["0", "-4", "abc", "64.0", ""])
def test_bad_metadata_counts_are_explained(official_shapes, value):
    clip = checkpoint._strip(official_shapes, checkpoint.CLIP_PREFIX)
    with pytest.raises(ValueError, match=f"metadata 'sv4d2.clip_num_heads' = '{value}' is not a positive whole"):
        checkpoint._clip_config(Path("x"), clip, {checkpoint.META_CLIP_NUM_HEADS: value}, context_dim=1024)
