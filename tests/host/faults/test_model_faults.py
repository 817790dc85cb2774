"""Broken checkpoints through the real host: NaN or black model output is never a success, and bad VAE/CLIP
tensors, metadata and names are explained before anything loads."""
from __future__ import annotations

import pytest
import torch

from sv4d_lib import checkpoint

from . import harness as h
from .test_input_faults import nvvs_prompt

DECODER = checkpoint.DECODER_PREFIX
UNET = checkpoint.UNET_PREFIX
CLIP = checkpoint.CLIP_PREFIX


def nan_unet(tensors, metadata):
    tensors[UNET + "out.2.weight"][0] = float("nan")


def nan_decoder(tensors, metadata):
    tensors[DECODER + "conv_out.weight"][1] = float("nan")


def black_decoder(tensors, metadata):
    tensors[DECODER + "conv_out.weight"].zero_()
    tensors[DECODER + "conv_out.bias"].fill_(-2.0)  # decoded (x + 1) / 2 clamps to 0


def wrong_vae_shape(tensors, metadata):
    key = DECODER + "up.1.block.0.conv2.weight"
    tensors[key] = tensors[key][:, :-1].contiguous()


def wrong_vae_encoder_shape(tensors, metadata):
    key = checkpoint.COND_VAE_PREFIX + "encoder.mid.attn_1.q.bias"
    tensors[key] = torch.cat([tensors[key], tensors[key][:2]])


def wrong_clip_projection(tensors, metadata):
    key = CLIP + "visual.proj"
    tensors[key] = torch.cat([tensors[key], tensors[key][:8]])  # 8 extra rows


def clip_projection_of_another_width(tensors, metadata):
    key = CLIP + "visual.proj"
    tensors[key] = tensors[key][:, :48].contiguous()


def metadata(key: str, value: str):
    def edit(tensors, meta):
        meta[key] = value

    edit.__name__ = f"metadata_{value}"
    return edit


@pytest.fixture(scope="module")
def base(host):
    return host.models_dir / h.base_checkpoint(host.models_dir)


@pytest.fixture
def broken(host, base, request):
    """Writes the checkpoint variant the test is parametrized with; returns its combo name; removes it after."""
    edit = request.param
    path = host.models_dir / "checkpoints" / f"sv4d2_tiny_faults_{edit.__name__}.safetensors"
    h.write_checkpoint(path, base, edit)
    yield f"checkpoints/{path.name}"
    path.unlink()


def test_a_healthy_checkpoint_samples_decodes_and_saves(host, base):
    before = h.output_files(host)
    result = host.run(nvvs_prompt(f"checkpoints/{base.name}"))
    written = h.listed_files(host, result.ui["6"])
    assert len(written) == 5 and all(p.stat().st_size > 0 for p in written)
    assert h.output_files(host) - before == set(written)


@pytest.mark.parametrize("broken, problem", [
    (nan_unet, r"the model produced NaN: \d+ of \d+ sampled latent values"),
    (nan_decoder, "the model produced NaN: the VAE decoded"),
    (black_decoder, r"VAE decoded view\(s\) \[0, 1, 2, 3\] entirely black"),
], indirect=["broken"])
def test_nan_or_black_model_output_is_an_error_not_a_video(host, broken, problem):
    message = h.assert_fails_cleanly(host, nvvs_prompt(broken), problem)
    assert "SV4D2SampleNVVS" in message


@pytest.mark.parametrize("broken, problem", [
    (wrong_vae_shape, r"the VAE decoder tensors do not match .*up\.1\.block\.0\.conv2\.weight"),
    (wrong_vae_encoder_shape, r"the VAE encoder tensors do not match .*encoder\.mid\.attn_1\.q\.bias"),
    (wrong_clip_projection, r"the CLIP image encoder tensors do not match .*visual\.proj: \(40, 64\) instead of "
                            r"\(32, 64\)"),
    (clip_projection_of_another_width, "CLIP image embedding has 48 channels but the UNet's cross-attention takes 64"),
    (metadata("sv4d2.num_head_channels", "0"), "metadata 'sv4d2.num_head_channels' = '0' is not a positive whole"),
    (metadata("sv4d2.num_head_channels", "abc"), "metadata 'sv4d2.num_head_channels' = 'abc' is not a positive"),
    (metadata("sv4d2.clip_num_heads", "abc"), "metadata 'sv4d2.clip_num_heads' = 'abc' is not a positive whole"),
], indirect=["broken"])
def test_bad_checkpoint_parts_are_explained(host, broken, problem):
    message = h.assert_fails_cleanly(host, nvvs_prompt(broken), problem)
    assert "SV4D2LoadModel" in message and "size mismatch" not in message


@pytest.mark.parametrize("name", [5, 2.5, True])
def test_a_checkpoint_name_that_is_not_text_is_explained(host, name):
    prompt = nvvs_prompt("unused")
    prompt["1"]["inputs"]["ckpt_name"] = name
    ok, _, _ = host.validate(prompt)
    if ok:
        h.assert_fails_cleanly(host, prompt, "ckpt_name must be a file name from the list")
    else:
        h.assert_fails_cleanly(host, prompt, "ckpt_name", at_validation=True)

