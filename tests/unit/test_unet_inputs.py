"""SV4D2UNet rejects bad inputs and unsupported hyper-parameters with a ValueError naming the problem."""
from __future__ import annotations

import pytest
import torch

from sv4d_lib.model import SV4D2UNet

from .unet_tiny import TINY, tiny_inputs

FRAMES, VIEWS = 2, 4


@pytest.fixture(scope="module")
def net() -> SV4D2UNet:
    # Shape checks must fire before any compute, so a meta-device network and meta inputs are enough.
    return SV4D2UNet(**TINY, device="meta")


def good_inputs() -> dict[str, torch.Tensor]:
    return tiny_inputs(batch=2, frames=FRAMES, views=VIEWS, size=8, device="meta")


def test_good_inputs_pass(net):
    out = net(**good_inputs(), num_frames=FRAMES, num_views=VIEWS)
    assert out.shape == (2 * FRAMES * VIEWS, 4, 8, 8)


@pytest.mark.parametrize(
    "name, bad, message",
    [
        ("x", (2 * FRAMES * VIEWS, 4, 8, 8), "x must be"),  # concat channels missing
        ("x", (2 * FRAMES * VIEWS - 1, 8, 8, 8), "not a multiple of num_frames"),
        ("x", (2 * FRAMES * VIEWS, 8, 7, 8), "divisible by 2"),
        ("timesteps", (2,), "timesteps must be"),
        ("context", (1, FRAMES, TINY["context_dim"]), "context must be"),
        ("context", (2, FRAMES + 1, TINY["context_dim"]), "context must be"),
        ("context", (2, FRAMES, 8), "context must be"),
        ("y", (2 * FRAMES * VIEWS - 1, TINY["adm_in_channels"]), "y must be"),
        ("cond_view", (VIEWS, 4, 8, 8), "cond_view must be"),
        ("cond_view", (2 * VIEWS, 8, 8, 8), "cond_view must be"),
    ],
)
def test_bad_shapes_raise(net, name, bad, message):
    inputs = good_inputs()
    inputs[name] = torch.empty(bad, device="meta")
    with pytest.raises(ValueError, match=message):
        net(**inputs, num_frames=FRAMES, num_views=VIEWS)


def test_bad_counts_raise(net):
    with pytest.raises(ValueError, match="num_video_frames"):
        net(**good_inputs(), num_frames=FRAMES, num_views=VIEWS, num_video_frames=FRAMES * VIEWS + 1)
    with pytest.raises(ValueError, match="num_frames and num_views"):
        net(**good_inputs(), num_frames=0, num_views=VIEWS)
    with pytest.raises(ValueError, match="ControlNet"):
        net(**good_inputs(), num_frames=FRAMES, num_views=VIEWS, control={"output": []})


def test_inert_official_options_are_accepted():
    SV4D2UNet(
        **TINY, device="meta", replicate_time_mix_bug=False, dropout=0.1, use_checkpoint=True, legacy=True,
        spatial_transformer_attn_type="softmax", time_block_merge_strategy="learned", view_block_merge_factor=0.3,
        use_spatial_transformer=True, transformer_depth=1, num_classes="sequential",
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(use_spatial_transformer=False), "use_spatial_transformer"),
        (dict(transformer_depth=2), "transformer_depth"),
        (dict(num_classes=None), "num_classes"),
        (dict(time_block_merge_strategy="fixed"), "time_block_merge_strategy"),
        (dict(use_scale_shift_norm=True), "use_scale_shift_norm"),
        (dict(not_an_option=1), "unknown"),
        (dict(num_heads=4), "exactly one of num_heads"),
        (dict(adm_in_channels=64), "adm_in_channels"),
    ],
)
def test_unsupported_hyper_parameters_raise(options, message):
    with pytest.raises(ValueError, match=message):
        SV4D2UNet(**{**TINY, **options}, device="meta")
