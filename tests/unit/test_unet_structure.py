"""SV4D2UNet structure: official key manifest, meta-device forwards at full size, injected layers and attention."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sv4d_lib.model import SV4D2UNet, attention
from sv4d_lib.model.attention import SelfAttention
from tests.prerequisites import shared_reference

from .unet_tiny import tiny_inputs, tiny_unet

PREFIX = "model.diffusion_model."


@pytest.fixture(scope="module")
def manifest() -> dict[str, list[int]]:
    path = shared_reference("sv4d2_unet_keys.json")
    return {k.removeprefix(PREFIX): shape for k, shape in json.loads(path.read_text()).items()}


@pytest.mark.parametrize("use_3d_attention", [True, False])
def test_full_size_state_dict_matches_official_manifest(manifest, use_3d_attention):
    """Same keys, shapes and registration order as the official checkpoint (defaults = sv4d2.yaml)."""
    net = SV4D2UNet(use_3d_attention=use_3d_attention, device="meta")
    state = net.state_dict()
    assert list(state) == list(manifest)
    assert {k: list(v.shape) for k, v in state.items()} == manifest


@pytest.mark.parametrize("use_3d_attention, frames, views", [(True, 12, 4), (False, 5, 8)])
def test_full_size_forward_on_meta(use_3d_attention, frames, views):
    """Production shapes (B=2 under CFG, 72² latents) run without touching data: no host syncs in forward."""
    net = SV4D2UNet(use_3d_attention=use_3d_attention, device="meta")
    batch, size = 2, 72
    n = batch * frames * views
    meta = SimpleNamespace(empty=lambda *s: torch.empty(*s, device="meta"))
    with torch.no_grad():
        out = net(
            meta.empty(n, 8, size, size), meta.empty(n), meta.empty(batch, frames, 1024), meta.empty(n, 1280),
            meta.empty(batch * views, 4, size, size), num_frames=frames, num_views=views,
        )
    assert out.shape == (n, 4, size, size) and out.device.type == "meta"


def recording_operations() -> SimpleNamespace:
    """Layer classes that are subclasses of torch's, so the test can tell who built each layer."""
    names = ("Linear", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm")
    return SimpleNamespace(**{name: type(f"Recorded{name}", (getattr(nn, name),), {}) for name in names})


def test_every_layer_comes_from_operations_with_device_and_dtype():
    ops = recording_operations()
    net = tiny_unet(operations=ops, device="meta", dtype=torch.float16)
    weighted = (nn.Linear, nn.Conv2d, nn.Conv3d, nn.GroupNorm, nn.LayerNorm)
    layers = [m for m in net.modules() if isinstance(m, weighted)]
    assert layers and all(isinstance(m, tuple(vars(ops).values())) for m in layers)
    for name, param in net.named_parameters():
        assert param.device.type == "meta", name
        # GroupNorm32 (official fp32 normalisation) and the blend scalars stay float32; all else takes `dtype`.
        in_group_norm32 = ".in_layers.0." in name or ".out_layers.0." in name or name.startswith("out.0.")
        float32 = in_group_norm32 or name.endswith("mix_factor")
        assert param.dtype == (torch.float32 if float32 else torch.float16), name


def test_attention_fn_replaces_every_self_attention_and_receives_transformer_options():
    calls = []
    options = {"marker": object()}

    def recording_attention(q, k, v, heads, transformer_options=None):
        calls.append((q.shape, heads, transformer_options))
        return attention(q, k, v, heads)

    inputs = tiny_inputs(batch=1, frames=2, views=4, size=4)
    reference = tiny_unet()
    hooked = tiny_unet(attention_fn=recording_attention)
    with torch.no_grad():
        expected = reference(**inputs, num_frames=2, num_views=4)
        out = hooked(**inputs, num_frames=2, num_views=4, transformer_options=options)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # tiny inputs need no chunking: one call per self-attention module
    assert len(calls) == sum(isinstance(m, SelfAttention) for m in hooked.modules()) > 0
    assert all(opts is options for _, _, opts in calls)
    assert all(len(shape) == 3 and shape[2] % heads == 0 for shape, heads, _ in calls)
