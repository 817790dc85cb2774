"""Fused fp32 CPU inference kernels for the UNet's linear layers (oneDNN linear + pointwise, via torch.ops.mkldnn).

Why: on CPU the gated feed-forward `Linear → GEGLU → Linear` spends as long in its separate GELU, multiply and
residual-add passes over the 4·C-wide activations as in the matrix products; oneDNN applies those pointwise steps
inside the matmul's output loop (`_linear_pointwise`: `act(x·Wᵀ + b)`; `.binary`: `(x·Wᵀ + b) ∘ other`). Same
arithmetic, one pass: outputs stay within ~1e-6 of the unfused layers.

When: only for fp32 CPU tensors with gradients off (the kernels have no backward) and layers with plain weights.
ComfyUI's `comfy.ops` layers qualify unless they cast or patch their weights at call time (`comfy_cast_weights`,
`weight_function`, `bias_function`: low-VRAM streaming, fp8, on-the-fly LoRA) — then the layer itself must run, so
the unfused path is taken. Weights are read at every call, never cached, so in-place weight patches are honoured
and the module keeps the official state-dict keys and shapes (lazily created weights only need to exist by then).
"""
from __future__ import annotations

import torch
from torch import nn

_FUSED_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")

# Largest temporary one fused call should allocate. glibc serves blocks above its mmap threshold (at most 32 MiB)
# with fresh pages that the kernel faults in and zeroes at every call, and a whole-layer 4·C-wide feed-forward
# hidden state is far above it (50 MB for 24k tokens at C = 128); 8 MiB blocks are reused from the heap and stay
# mostly in cache. The C = 128 feed-forward alone went from 51 to 72 GFLOP/s; whole forwards: docs/bench_unet.md.
TEMPORARY_BYTES = 8 * 2**20


def _plain_weights(layer: nn.Module) -> bool:
    """The layer computes exactly `F.linear`/`F.conv*` with its own `weight` and `bias` tensors."""
    weight = getattr(layer, "weight", None)
    return (
        type(weight) in (torch.Tensor, nn.Parameter)
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and not getattr(layer, "comfy_cast_weights", False)
        and not getattr(layer, "weight_function", None)
        and not getattr(layer, "bias_function", None)
        and not layer._forward_hooks
        and not layer._forward_pre_hooks
    )


def applies(x: torch.Tensor, *layers: nn.Module) -> bool:
    """True when the fused CPU path may replace `layers` on input x: fp32 CPU tensors under `torch.no_grad` or
    `torch.inference_mode` (the fused kernels and `out=` writes have no autograd), layers with plain weights."""
    return (
        _FUSED_AVAILABLE
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and all(_plain_weights(layer) for layer in layers)
    )


def rows_per_call(row_elements: int) -> int:
    """Rows of an fp32 temporary `row_elements` wide that fit in `TEMPORARY_BYTES` (at least one)."""
    return max(1, TEMPORARY_BYTES // (4 * row_elements))


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`x · weightᵀ` (no bias), x `(..., in)`, through oneDNN: 10–25 % faster than the BLAS `mm` behind `F.linear`
    on the UNet's projection shapes (one core, fp32)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")


def linear_add(x: torch.Tensor, layer: nn.Linear, residual: torch.Tensor) -> torch.Tensor:
    """`residual + layer(x)` in one oneDNN call; x `(..., in)`, residual `(..., out)`."""
    return torch.ops.mkldnn._linear_pointwise.binary(x, residual, layer.weight, layer.bias, "add")


def geglu_feed_forward_add(x: torch.Tensor, proj: nn.Linear, out: nn.Linear, residual: torch.Tensor) -> torch.Tensor:
    """`residual + out(a · gelu(gate))` with `[a | gate] = proj(x)` (exact erf GELU) in three oneDNN calls:
    gate with GELU fused, a with the product fused, the output projection with the residual add fused."""
    inner = out.in_features
    bias_a, bias_gate = (None, None) if proj.bias is None else (proj.bias[:inner], proj.bias[inner:])
    fused = torch.ops.mkldnn._linear_pointwise
    gate = fused(x, proj.weight[inner:], bias_gate, "gelu", [], "none")
    hidden = fused.binary(x, gate, proj.weight[:inner], bias_a, "mul")
    del gate
    return fused.binary(hidden, residual, out.weight, out.bias, "add")


def time_conv(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """A Conv3d whose kernel is `(k, 1, 1)` (the temporal ResBlock's) as a Conv2d over `(T, h·w)`.

    Why: torch's CPU Conv3d falls back to a slow unfolding kernel; the 2-D oneDNN convolution computes the same
    sums about twice as fast. x `(B, C, T, h, w)` → `(B, C_out, T', h, w)`.
    """
    weight = conv.weight
    if weight.shape[-2:] != (1, 1) or conv.stride[1:] != (1, 1) or conv.padding[1:] != (0, 0) or conv.groups != 1:
        return conv(x)
    y = torch.nn.functional.conv2d(
        x.flatten(3), weight.flatten(3), conv.bias, stride=(conv.stride[0], 1), padding=(conv.padding[0], 0),
        dilation=(conv.dilation[0], 1),
    )
    return y.unflatten(3, x.shape[3:])
