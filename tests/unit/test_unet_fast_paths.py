"""The fused fp32 CPU paths (`sv4d_lib.model.fused_cpu`) against the reference layers they replace."""
from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sv4d_lib.model import fused_cpu
from sv4d_lib.model import attention
from sv4d_lib.model.attention import FeedForward, SelfAttention, SpatialViewFrameTransformer, mix_in_sequence_layout
from sv4d_lib.model.blocks import AlphaBlender, VideoResBlock

from .unet_tiny import tiny_inputs, tiny_unet


def forward(net, inputs, frames=2, views=4, fast=True) -> torch.Tensor:
    net.set_cpu_fast_paths(fast)
    with torch.no_grad():
        return net(**inputs, num_frames=frames, num_views=views)


@pytest.fixture
def fused_calls(monkeypatch) -> dict[str, int]:
    """Counts the calls of each fused kernel, so a test can tell which path ran."""
    calls = {"geglu_feed_forward_add": 0, "linear_add": 0, "time_conv": 0}
    for name in calls:
        original = getattr(fused_cpu, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(fused_cpu, name, counted)
    return calls


@pytest.mark.parametrize("use_3d_attention", [True, False])
def test_fast_paths_match_the_reference_computation(use_3d_attention, fused_calls):
    net = tiny_unet(use_3d_attention)
    inputs = tiny_inputs(batch=2, frames=2, views=4, size=6)  # 3² middle level: 3-D groups straddle views
    reference = forward(net, inputs, fast=False)
    assert fused_calls == {"geglu_feed_forward_add": 0, "linear_add": 0, "time_conv": 0}
    fast = forward(net, inputs)
    stages = sum(isinstance(m, SpatialViewFrameTransformer) for m in net.modules())
    res_blocks = sum(isinstance(m, VideoResBlock) for m in net.modules())
    assert fused_calls["geglu_feed_forward_add"] == 5 * stages  # spatial ff, view ff_in + ff, frame ff_in + ff
    assert fused_calls["linear_add"] == 3 * stages  # to_out of the three self-attentions
    assert fused_calls["time_conv"] == 2 * res_blocks  # both convolutions of every temporal ResBlock
    assert (reference - fast).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item())
    assert reference.abs().max() > 0.1  # a real output, not a vanishing one


def test_fast_paths_in_bounded_row_chunks_match_the_reference(monkeypatch, fused_calls):
    """A temporary budget of a few rows splits every fused feed-forward and self-attention into many calls, with
    a shorter last one; the output must not change."""
    net = tiny_unet(True)
    inputs = tiny_inputs(batch=1, frames=2, views=4, size=6)
    reference = forward(net, inputs, fast=False)
    monkeypatch.setattr(fused_cpu, "TEMPORARY_BYTES", 4 * 128 * 7)  # 7 rows of the 4·32-wide hidden state
    assert fused_cpu.rows_per_call(128) == 7 and fused_cpu.rows_per_call(10**6) == 1
    fast = forward(net, inputs)
    stages = sum(isinstance(m, SpatialViewFrameTransformer) for m in net.modules())
    assert fused_calls["geglu_feed_forward_add"] > 5 * 5 * stages  # ≥ 5 chunks per feed-forward
    assert fused_calls["linear_add"] > 3 * 3 * stages
    assert (reference - fast).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("layer", ["feed-forward", "self-attention"])
def test_chunked_sums_written_into_the_consumed_residual_are_right(monkeypatch, layer):
    """Each chunk reads its rows of the residual before the sum overwrites them: no chunk sees another's result."""
    torch.manual_seed(0)
    module = FeedForward(32, nn) if layer == "feed-forward" else SelfAttention(32, 2, 16, nn)
    x, residual = torch.randn(9, 5, 32), torch.randn(9, 5, 32)
    monkeypatch.setattr(fused_cpu, "TEMPORARY_BYTES", 4 * 128 * 7)  # 7 tokens (1 sequence) per call, 45 in all
    with torch.no_grad():
        expected = residual + module(x)
        torch.testing.assert_close(module.add_to(residual.clone(), x), expected, rtol=1e-5, atol=1e-5)


SEQUENCES = {
    "view": ("to_view_sequences", "from_view_sequences"),
    "3d": ("to_3d_attention_sequences", "from_3d_attention_sequences"),
    "frame": ("to_frame_sequences", "from_frame_sequences"),
}


@pytest.mark.parametrize("layout", list(SEQUENCES))
@pytest.mark.parametrize("pixels", [16, 9])  # 9: P not divisible by V, 3-D groups straddle views
def test_mixing_in_sequence_layout_matches_the_rearranged_sequences(layout, pixels):
    torch.manual_seed(0)
    counts = (2, 3, 4)  # B, T, V
    x = torch.randn(24, pixels, 5)
    offset = torch.randn(3, 5) if layout == "frame" else torch.randn(2, 4, 5)
    module = sys.modules[attention.__module__]
    to_seqs, from_seqs = (getattr(module, name) for name in SEQUENCES[layout])
    shift = offset[:, None, None] if layout == "frame" else offset[:, None, :, None]
    mixer = AlphaBlender(0.3)

    def run(seqs: torch.Tensor) -> torch.Tensor:  # depends on which rows share a sequence
        return seqs.square() + seqs.cumsum(dim=1)

    expected = mixer(x, from_seqs(run(to_seqs((x.unflatten(0, counts) + shift).flatten(0, 2), *counts)), *counts))
    with torch.no_grad():
        got = mix_in_sequence_layout(x, offset, layout, counts, run, mixer)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_fast_path_is_off_under_autograd_and_gradients_flow(fused_calls):
    net = tiny_unet(True)
    inputs = tiny_inputs(batch=1, frames=2, views=4, size=4)
    x = inputs.pop("x").requires_grad_()
    out = net(x, **inputs, num_frames=2, num_views=4)
    out.square().mean().backward()
    assert sum(fused_calls.values()) == 0
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


def test_layers_that_cast_or_patch_their_weights_run_themselves(fused_calls):
    """ComfyUI's casting layers (`comfy_cast_weights`, `weight_function`) compute a different weight at call time,
    so the fused path must step aside and call the layer."""
    torch.manual_seed(0)
    ff = FeedForward(32, nn)
    x, residual = torch.randn(2, 7, 32), torch.randn(2, 7, 32)
    ff.net[2].weight_function = [lambda weight: 2 * weight]  # a patch only the layer itself would apply
    with torch.no_grad():
        out = ff.add_to(residual, x)
        torch.testing.assert_close(out, residual + ff(x), rtol=0, atol=0)  # exactly the layers' own computation
    assert fused_calls["geglu_feed_forward_add"] == 0
    ff.net[2].weight_function = []
    with torch.no_grad():
        fused = ff.add_to(residual.clone(), x)
        torch.testing.assert_close(fused, residual + ff(x), rtol=1e-5, atol=1e-6)
    assert fused_calls["geglu_feed_forward_add"] == 1
    ff.net[0].proj.comfy_cast_weights = True
    with torch.no_grad():
        ff.add_to(residual, x)
    assert fused_calls["geglu_feed_forward_add"] == 1


def test_in_place_weight_updates_are_seen_at_the_next_call():
    """Weights are read at every call (no cached fused copies), so in-place patches such as a merged LoRA apply."""
    torch.manual_seed(0)
    layer = SelfAttention(32, 2, 16, nn)
    x, residual = torch.randn(3, 5, 32), torch.randn(3, 5, 32)
    with torch.no_grad():
        before = layer.add_to(residual.clone(), x)
        layer.to_k.weight.mul_(3.0)
        layer.to_out[0].bias.add_(1.0)
        after = layer.add_to(residual.clone(), x)
        torch.testing.assert_close(after, residual + layer(x), rtol=1e-5, atol=1e-5)
    assert (after - before).abs().max() > 0.5


def test_fused_qkv_works_with_a_view_based_attention_function():
    """ComfyUI's attention functions `.view` q, k, v; the fused projection hands them strided slices."""

    def view_attention(q, k, v, heads, transformer_options=None):
        b, _, inner = q.shape
        q, k, v = (t.view(b, -1, heads, inner // heads).transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, inner)

    torch.manual_seed(0)
    layer = SelfAttention(64, 4, 16, nn, attention_fn=view_attention, chunk_tokens=12)  # chunks of 2 sequences
    x, residual = torch.randn(5, 6, 64), torch.randn(5, 6, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer.add_to(residual.clone(), x), residual + layer(x), rtol=1e-5, atol=1e-5)


def test_time_conv_equals_the_3d_convolution():
    torch.manual_seed(0)
    conv = nn.Conv3d(16, 24, (3, 1, 1), padding=(1, 0, 0))
    x = torch.randn(2, 16, 9, 5, 3).transpose(3, 4)  # non-contiguous, like the permuted (b, c, t, h, w) stream
    with torch.no_grad():
        torch.testing.assert_close(fused_cpu.time_conv(x, conv), conv(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_other_dtypes_keep_the_reference_layers(dtype, fused_calls):
    net = tiny_unet(True, dtype=dtype)
    inputs = {k: (v.to(dtype) if k != "timesteps" else v) for k, v in tiny_inputs(1, 2, 4, 4).items()}
    out = forward(net, inputs)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert sum(fused_calls.values()) == 0
