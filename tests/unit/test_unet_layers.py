"""SV4D2UNet building blocks against their definitions (spec §2.3-§2.6)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sv4d_lib.model import attention, blocks, timestep_embedding
from sv4d_lib.model.attention import (
    SingleTokenCrossAttention,
    from_3d_attention_sequences,
    to_3d_attention_sequences,
)
from sv4d_lib.model.blocks import AlphaBlender, group_norm32

from .unet_tiny import tiny_inputs, tiny_unet


def test_timestep_embedding_is_cos_then_sin():
    t = torch.tensor([0.0, 1.5, -2.0])
    emb = timestep_embedding(t, 7, max_period=100.0)
    half = 3
    for row, value in enumerate(t.tolist()):
        freqs = [100.0 ** (-i / half) for i in range(half)]
        expected = [math.cos(value * f) for f in freqs] + [math.sin(value * f) for f in freqs] + [0.0]
        torch.testing.assert_close(emb[row], torch.tensor(expected), rtol=0, atol=1e-6)
    assert emb.dtype == torch.float32


@pytest.mark.parametrize("chunk_elements", [None, 1])  # 1: one sample per float32 chunk
def test_group_norm32_normalises_in_float32_and_keeps_the_input_dtype(monkeypatch, chunk_elements):
    if chunk_elements is not None:
        monkeypatch.setattr(blocks, "GROUP_NORM_CHUNK_ELEMENTS", chunk_elements)
    norm = group_norm32(64, nn)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    x = torch.randn(2, 64, 3, 5, 5).to(torch.bfloat16)  # 5-D like the temporal block: stats pool over T·V
    out = norm(x)
    assert norm.weight.dtype == torch.float32 and out.dtype == torch.bfloat16
    expected = F.group_norm(x.float(), 32, norm.weight, norm.bias, 1e-5).to(torch.bfloat16)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_alpha_blender_is_sigmoid_weighted_sum():
    blend = AlphaBlender(0.0)
    with torch.no_grad():
        blend.mix_factor.fill_(0.7)
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    alpha = 1 / (1 + math.exp(-0.7))
    torch.testing.assert_close(blend(a, b), alpha * a + (1 - alpha) * b)


@pytest.mark.parametrize("pixels", [16, 9])  # 9: P not divisible by V, groups straddle views (the 9² block)
def test_3d_attention_sequences_follow_the_official_row_grouping(pixels):
    """Rows r = (b·V + v)·P + p of the official (B·V·P, T, C) layout, regrouped in blocks of V consecutive rows:
    sequence R = g·T + t holds rows g·V .. g·V+V−1 of frame t."""
    batch, frames, views, channels = 2, 3, 4, 1
    x = torch.arange(batch * frames * views * pixels, dtype=torch.float32).reshape(-1, pixels, channels)
    seqs = to_3d_attention_sequences(x, batch, frames, views)
    assert seqs.shape == (batch * pixels * frames, views, channels)
    for big_r in range(seqs.shape[0]):
        g, t = divmod(big_r, frames)
        for j in range(views):
            r = g * views + j
            bv, p = divmod(r, pixels)
            b, v = divmod(bv, views)
            assert seqs[big_r, j, 0] == x[(b * frames + t) * views + v, p, 0]
    torch.testing.assert_close(from_3d_attention_sequences(seqs, batch, frames, views), x, rtol=0, atol=0)


def test_single_token_cross_attention_equals_real_attention():
    torch.manual_seed(0)
    heads, dim_head, dim, context_dim = 2, 8, 16, 6
    layer = SingleTokenCrossAttention(dim, context_dim, heads, dim_head, nn)
    queries, context = torch.randn(5, 7, dim), torch.randn(5, 1, context_dim)
    full = layer.to_out(attention(layer.to_q(queries), layer.to_k(context), layer.to_v(context), heads))
    shortcut = layer(context[:, 0])[:, None].expand_as(full)
    torch.testing.assert_close(shortcut, full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_3d_attention", [True, False])
def test_chunked_forward_matches_unchunked(use_3d_attention):
    inputs = tiny_inputs(batch=1, frames=2, views=4, size=6)
    outputs = []
    for chunk_tokens in (None, 48):  # 48 tokens: uneven chunks in every attention and feed-forward layer
        net = tiny_unet(use_3d_attention, chunk_tokens=chunk_tokens)
        with torch.no_grad():
            outputs.append(net(**inputs, num_frames=2, num_views=4))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_3d_attention", [True, False])
def test_cfg_halves_are_independent(use_3d_attention):
    """Changing every input of sample 0 (the uncond half) leaves sample 1 untouched, despite the scrambled
    context of the 3-D attention and the GroupNorms of the temporal blocks."""
    frames, views = 2, 4
    net = tiny_unet(use_3d_attention)
    inputs = tiny_inputs(batch=2, frames=frames, views=views, size=6)  # 3² middle block: groups straddle views
    changed = {k: v.clone() for k, v in inputs.items()}
    per_sample = {"x": frames * views, "timesteps": frames * views, "context": 1, "y": frames * views,
                  "cond_view": views}
    for name, rows in per_sample.items():
        changed[name][:rows] = torch.randn_like(changed[name][:rows])
    with torch.no_grad():
        before = net(**inputs, num_frames=frames, num_views=views)
        after = net(**changed, num_frames=frames, num_views=views)
    half = frames * views
    assert (after[:half] - before[:half]).abs().max() > 1e-3
    torch.testing.assert_close(after[half:], before[half:], rtol=1e-5, atol=1e-6)
